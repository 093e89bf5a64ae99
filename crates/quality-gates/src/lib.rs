//! The quality gates (review, tests and coverage, docs, boundary) and QA in a fresh checkout.
//!
//! The playbooks make the gates mandatory for every code change — review score at least 7/10,
//! all tests pass, coverage at least 85 %, docs complete, no critical or high findings, at most
//! three fix iterations — but can only ask a model to honour them. This crate enforces them.
//!
//! # The gates
//!
//! Each gate is a [`fugue_core::QualityGate`] judging a [`fugue_core::GateContext`] (a
//! checkout of the task's head, the base and head commits, the changed paths, the diff, the
//! task's `modifies` and the plan's `common` paths) and returning a
//! [`fugue_core::GateReport`]: pass, fail (the agent's fault: findings go back to it) or
//! blocked (the environment's fault: a command not found, an unreadable report, a crashed
//! reviewer).
//!
//! * [`BoundaryGate`] (always on): every changed path inside `modifies`, none under `common`
//!   during a parallel phase, no changed symlink leading outside the checkout; one critical
//!   finding per offending path.
//! * [`ReviewGate`]: a [`Reviewer`] — the built-in [`heuristic`] review, run in-process, or a
//!   plan agent (a command printing a review report, or a plugin) — scores the diff; the
//!   report must validate against `review-report.schema.json`; pass when `score ≥ min_score`
//!   and no finding has a `block_on` severity.
//! * [`TestsGate`]: the plan's test commands and the task's `verify` commands, without a shell,
//!   with a timeout and capped output; test counts from cargo test, nextest, pytest and JUnit
//!   XML; line coverage from lcov, Cobertura or llvm-cov JSON against `min`.
//! * [`DocsGate`]: the plan's docs commands and the rule that new public API comes with
//!   documentation ([`docs_findings`]).
//!
//! # QA
//!
//! [`Qa`] is what the engine calls when an agent signals ready: build it once per run with
//! [`Qa::from_plan`] (which loads the reviewer), then for every iteration call
//! [`Qa::verify`] with a [`QaRequest`] (the task, the repository, the agent's worktree and
//! branch, the base commit, whether the phase is parallel). It checks the agent's worktree
//! (on the branch, in bounds), commits what the agent left uncommitted, runs every gate
//! concurrently in a fresh checkout of the branch head ([`run_gates`]) and returns a
//! [`QaOutcome`]: the [`fugue_core::QaVerdict`], every report (for the task log and
//! `PARALLEL_STATUS.json`'s `qa`), the judged head commit, the changed files, the commit QA
//! made, a one-line summary and, on rejection, the feedback text for the agent's next
//! iteration ([`format_feedback`]). The engine owns the loop:
//!
//! ```text
//! TASK_APPROVED  → qa_approved, merge
//! TASK_REJECTED  → iteration += 1; if iteration < qa.max_iterations(): run the agent again
//!                  with outcome.feedback as {feedback}; else failed
//! QA_BLOCKED     → no iteration burnt; report the summary, retry QA or stop
//! Err(QaError)   → QA itself could not run (git failed): like QA_BLOCKED
//! ```
//!
//! Limits — the command timeout (10 minutes by default), the output kept, the diff size given
//! to reviewers, extra environment, whether QA checkouts are recycled with their build caches,
//! the [`fugue_core::Executor`] that starts gate commands and command reviewers (local by
//! default) — are the host's policy, not the plan's, and live in [`GateSettings`].

mod boundary;
mod commands;
mod counts;
mod coverage;
mod diff;
mod docs;
mod feedback;
mod git;
pub mod heuristic;
mod qa;
mod review;
mod settings;
mod test_gate;

pub use boundary::{BOUNDARY_GATE, BoundaryGate, boundary_findings};
pub use docs::{DOCS_GATE, DocsGate, docs_findings};
pub use feedback::{format_feedback, format_finding, qa_verdict, summarize};
pub use qa::{CHANGES_CHECK, Qa, QaError, QaOutcome, QaRequest, gate_context, run_gates};
pub use review::{HEURISTIC_REVIEWER, REVIEW_GATE, ReviewGate, Reviewer, ReviewerError, validate_report};
pub use settings::GateSettings;
pub use test_gate::{TESTS_GATE, TestsGate};

/// Milliseconds since `started`, saturating.
pub(crate) fn elapsed_ms(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
