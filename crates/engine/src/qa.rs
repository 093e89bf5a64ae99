//! The seam between the engine and the quality gates.
//!
//! The engine asks a [`Verifier`] to judge an iteration's work; the default one runs
//! fugue-quality-gates (QA in a fresh checkout), and an embedder can supply its own.

use std::path::PathBuf;

use async_trait::async_trait;

use fugue_core::{GateReport, QaVerdict, TaskSpec};

/// What to verify.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyRequest {
    /// The task.
    pub task: TaskSpec,
    /// True when the task's phase runs in parallel (common paths are read-only).
    pub phase_parallel: bool,
    /// The repository.
    pub repo: PathBuf,
    /// The agent's checkout.
    pub worktree: PathBuf,
    /// The task branch (absent with `isolation: none`).
    pub branch: Option<String>,
    /// The commit the task started from.
    pub base_commit: String,
    /// 0-based QA iteration.
    pub iteration: u32,
}

/// The verdict with its evidence.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyResult {
    /// Approved, rejected or blocked.
    pub verdict: QaVerdict,
    /// Every gate's report.
    pub reports: Vec<GateReport>,
    /// For a rejection: what the agent must fix, as text.
    pub feedback: String,
    /// Files the task changed relative to its base.
    pub changed_files: Vec<String>,
}

impl VerifyResult {
    /// A result.
    pub fn new(verdict: QaVerdict, reports: Vec<GateReport>, feedback: String, changed_files: Vec<String>) -> Self {
        Self { verdict, reports, feedback, changed_files }
    }
}

/// Judges an iteration's work.
#[async_trait]
pub trait Verifier: Send + Sync {
    /// Runs the gates on the work described by `req`.
    async fn verify(&self, req: VerifyRequest) -> Result<VerifyResult, String>;

    /// The run is over (or interrupted): remove checkouts and other leftovers in `repo`.
    async fn finish(&self, _repo: &std::path::Path) {}
}
