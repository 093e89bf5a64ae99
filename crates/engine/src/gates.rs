//! The default [`Verifier`]: fugue-quality-gates' QA in a clean checkout of the task's head.
//!
//! Tasks in worktrees go through [`Qa::verify`] (commit leftovers, fresh checkout, every gate
//! concurrently). Tasks with `isolation: none` have no branch to check out: their gates run in
//! the repository itself.

use std::path::Path;

use async_trait::async_trait;

use fugue_core::{GateContext, Plan};
use fugue_quality_gates::{GateSettings, Qa, QaRequest, qa_verdict, run_gates, summarize};

use crate::qa::{Verifier, VerifyRequest, VerifyResult};

/// Runs the plan's gates through fugue-quality-gates.
#[derive(Debug)]
pub struct GatesVerifier {
    qa: Qa,
}

impl GatesVerifier {
    /// Gates for `plan`; QA checkouts go under `<state_dir>/fugue/qa`, a warm pool with the
    /// plan's `pool.keep_ignored` caches, new ones seeded as `pool.seed` says.
    pub fn new(plan: &Plan, plan_dir: &Path, state_dir: &Path) -> Result<Self, String> {
        // An `isolation: none` task's agent works in the user's checkout and may write its
        // caches: then they are no longer the user's alone, and QA does not seed from them.
        let agents_in_checkout = plan.tasks.iter().any(|t| plan.isolation_of(t) == fugue_core::Isolation::None);
        let seed = if agents_in_checkout { Vec::new() } else { fugue_worktrees::plan_caches(&plan.pool) };
        let settings = GateSettings::default().with_keep_ignored(plan.pool.keep_ignored.clone()).with_seed(seed);
        let qa = Qa::from_plan(plan, plan_dir, state_dir.join("fugue").join("qa"), settings).map_err(|e| e.to_string())?;
        Ok(Self { qa })
    }
}

#[async_trait]
impl Verifier for GatesVerifier {
    async fn verify(&self, req: VerifyRequest) -> Result<VerifyResult, String> {
        let Some(branch) = req.branch.as_deref() else {
            let mut ctx = GateContext::new(req.task.id.clone(), req.task.phase, req.repo.clone());
            ctx.modifies = req.task.modifies.clone();
            ctx.base_commit = req.base_commit.clone();
            ctx.head_commit = req.base_commit.clone();
            let reports = run_gates(&self.qa.gates_for(&req.task, req.phase_parallel), &ctx).await;
            let verdict = qa_verdict(&reports);
            let feedback = summarize(verdict, &reports);
            return Ok(VerifyResult::new(verdict, reports, feedback, Vec::new()));
        };
        let q = QaRequest::new(&req.task, &req.repo, &req.worktree, branch, &req.base_commit)
            .parallel(req.phase_parallel)
            .iteration(req.iteration);
        let out = self.qa.verify(&q).await.map_err(|e| e.to_string())?;
        let feedback = out.feedback.clone().unwrap_or_else(|| out.summary.clone());
        Ok(VerifyResult::new(out.verdict, out.reports, feedback, out.changed_files))
    }

    async fn finish(&self, repo: &Path) {
        self.qa.remove_checkouts(repo).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(isolation: &str) -> GatesVerifier {
        let text = format!(
            "version: 1\npool: {{ keep_ignored: [target/], seed: {{ target/: copy }} }}\nagents:\n  sh: {{ command: [sh, -c, 'true'] }}\ngates: {{ review: false }}\ntasks:\n  - {{ id: a, agent: sh, modifies: [src/a/**], isolation: {isolation} }}\n"
        );
        let plan = fugue_core::load::load_str("plan.yaml", &text, &Default::default()).expect("valid").plan;
        let dir = tempfile::tempdir().expect("tempdir");
        GatesVerifier::new(&plan, dir.path(), dir.path()).expect("verifier")
    }

    #[test]
    fn qa_keeps_the_plans_caches_and_seeds_only_from_a_checkout_no_agent_writes() {
        let qa = verifier("worktree");
        assert_eq!(qa.qa.settings().keep_ignored, ["target/"]);
        assert_eq!(qa.qa.settings().seed, [("target/".to_owned(), fugue_core::SeedMode::Copy)]);
        // An agent working in the user's checkout may write its target/: QA does not seed from it.
        let qa = verifier("none");
        assert_eq!(qa.qa.settings().keep_ignored, ["target/"]);
        assert!(qa.qa.settings().seed.is_empty());
    }
}
