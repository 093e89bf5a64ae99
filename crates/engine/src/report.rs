//! `fugue report`: the execution report of the playbook's "Phase 6", built from the journal.
//!
//! The measured speedup is the sum of the tasks' busy time over the run's wall time: what the
//! parallelism actually bought, printed beside the plan's estimate.

use serde::Serialize;

use fugue_core::TaskStatus;
use fugue_core::state::DependencyGraph;

use crate::events::RunOutcome;
use crate::validate::concurrency;
use crate::view::RunView;

/// One row of the task table.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    /// Task id.
    pub id: String,
    /// Status.
    pub status: TaskStatus,
    /// Busy time in seconds.
    pub duration_s: f64,
    /// Attempts.
    pub attempts: u32,
    /// QA iterations of the last attempt.
    pub iterations: u32,
    /// Files changed.
    pub files_changed: usize,
    /// Last review score, if reviewed.
    pub review_score: Option<f64>,
    /// Last error.
    pub error: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Run id.
    pub execution_id: String,
    /// PARALLEL or SEQUENTIAL.
    pub mode: String,
    /// A, B, C or D.
    pub strategy: String,
    /// Outcome (`running` while in progress).
    pub status: String,
    /// The task table.
    pub tasks: Vec<TaskRow>,
    /// Tasks merged.
    pub merged: usize,
    /// Merge conflicts: task and files.
    pub conflicts: Vec<(String, Vec<String>)>,
    /// Wall time of the run in seconds.
    pub total_s: f64,
    /// Sum of busy time over wall time.
    pub measured_speedup: f64,
    /// Peak agents at once.
    pub peak_concurrency: usize,
    /// The plan's estimated speedup.
    pub estimated_speedup: f64,
}

#[expect(clippy::cast_precision_loss, reason = "durations in seconds for display")]
fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Builds the report.
pub fn build(view: &RunView, graph: Option<&DependencyGraph>) -> Report {
    let mut busy_total = 0u64;
    let tasks: Vec<TaskRow> = view
        .order
        .iter()
        .map(|id| {
            let t = view.task(id);
            let busy: u64 = t.busy.iter().map(|s| s.end - s.start).sum();
            busy_total += busy;
            TaskRow {
                id: id.to_string(),
                status: t.status,
                duration_s: secs(busy),
                attempts: t.attempts,
                iterations: t.iterations,
                files_changed: t.files.len(),
                review_score: t.qa.iter().find(|g| g.gate == "review").and_then(|g| g.score),
                error: t.last_error.clone(),
            }
        })
        .collect();
    let wall = view.last_ms.saturating_sub(view.first_ms);
    let spans: Vec<_> = view.tasks.values().flat_map(|t| t.busy.clone()).collect();
    let status = match view.outcome {
        Some(RunOutcome::Success) => "success",
        Some(RunOutcome::Failed) => "failed",
        Some(RunOutcome::Interrupted) => "interrupted",
        None => "running",
    };
    Report {
        execution_id: view.execution_id.clone(),
        mode: view.mode.clone(),
        strategy: graph.map(|g| format!("{:?}", g.execution_strategy.strategy)).unwrap_or_default(),
        status: status.into(),
        merged: tasks.iter().filter(|t| t.status == TaskStatus::Merged).count(),
        conflicts: view
            .order
            .iter()
            .filter_map(|id| {
                view.tasks.get(id).filter(|t| !t.conflict_files.is_empty()).map(|t| (id.to_string(), t.conflict_files.clone()))
            })
            .collect(),
        tasks,
        total_s: secs(wall),
        measured_speedup: if wall == 0 { 0.0 } else { secs(busy_total) / secs(wall) },
        peak_concurrency: concurrency(&spans).max,
        estimated_speedup: graph.map_or(0.0, |g| g.execution_strategy.estimate.speedup),
    }
}

fn icon(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Merged => "✅",
        TaskStatus::Failed | TaskStatus::MergeConflict => "❌",
        TaskStatus::Blocked => "⛔",
        _ => "⏳",
    }
}

impl Report {
    /// The report as Markdown, in the playbook's layout, with secret values redacted.
    pub fn to_markdown(&self) -> String {
        let overall = match self.status.as_str() {
            "success" => "✅ Complete",
            "failed" if self.merged > 0 => "⚠️ Partial",
            "failed" => "❌ Failed",
            "interrupted" => "⏸ Interrupted (resume with `fugue resume`)",
            _ => "⏳ Running",
        };
        let mut s = String::new();
        s.push_str("## Parallel Execution Report\n\n");
        s.push_str(&format!(
            "### Execution ID: {}\n### Strategy Used: {} ({})\n### Overall Status: {overall}\n\n",
            self.execution_id, self.strategy, self.mode
        ));
        s.push_str("### Task Summary\n| Task | Status | Duration | Attempts | Files Changed | Review |\n|------|--------|----------|----------|---------------|--------|\n");
        for t in &self.tasks {
            let review = t.review_score.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"));
            s.push_str(&format!(
                "| {} | {} {} | {:.1}s | {} | {} | {} |\n",
                t.id,
                icon(t.status),
                t.status,
                t.duration_s,
                t.attempts,
                t.files_changed,
                review
            ));
        }
        s.push_str("\n### Integration Results\n");
        s.push_str(&format!("- Branches merged: {}/{}\n", self.merged, self.tasks.len()));
        if self.conflicts.is_empty() {
            s.push_str("- Conflicts: none\n");
        } else {
            for (t, files) in &self.conflicts {
                s.push_str(&format!("- Conflict: `{t}` in {}\n", files.join(", ")));
            }
        }
        let failed: Vec<&TaskRow> = self.tasks.iter().filter(|t| t.error.is_some() && t.status != TaskStatus::Merged).collect();
        for t in failed {
            s.push_str(&format!("- `{}`: {}\n", t.id, t.error.as_deref().unwrap_or_default()));
        }
        s.push_str(&format!(
            "\n### Total Duration: {:.1}s\n### Speedup vs Sequential: {:.2}x measured (sum of task time / wall time, peak {} agents), {:.2}x estimated by the plan\n",
            self.total_s, self.measured_speedup, self.peak_concurrency, self.estimated_speedup
        ));
        // Failure reasons quote agent output, which may echo a secret.
        fugue_core::redact::redact_str(&s).into_owned()
    }
}
