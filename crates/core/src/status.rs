//! Task statuses, as they appear in `PARALLEL_STATUS.json`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a task is in its life.
///
/// `pending → in_progress → ready_for_qa → qa_approved → merged`, with `qa_rejected` (back to
/// `in_progress` with the findings), `failed` (retries exhausted), `blocked` (a dependency
/// failed) and `merge_conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started.
    #[default]
    Pending,
    /// The agent is working.
    InProgress,
    /// The agent signalled it is done; the gates run.
    ReadyForQa,
    /// Gates passed; waiting to merge.
    QaApproved,
    /// Gates failed; the agent gets the findings.
    QaRejected,
    /// Merged into the base branch.
    Merged,
    /// Gave up after the configured attempts.
    Failed,
    /// A dependency failed, so it never started.
    Blocked,
    /// Its merge conflicted; the branch is kept.
    MergeConflict,
}

impl TaskStatus {
    /// True for a status that will not change any more in this run.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Merged | TaskStatus::Failed | TaskStatus::Blocked | TaskStatus::MergeConflict)
    }

    /// True when the task ended without its work landing.
    pub fn is_unsuccessful(self) -> bool {
        matches!(self, TaskStatus::Failed | TaskStatus::Blocked | TaskStatus::MergeConflict)
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::ReadyForQa => "ready_for_qa",
            TaskStatus::QaApproved => "qa_approved",
            TaskStatus::QaRejected => "qa_rejected",
            TaskStatus::Merged => "merged",
            TaskStatus::Failed => "failed",
            TaskStatus::Blocked => "blocked",
            TaskStatus::MergeConflict => "merge_conflict",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
