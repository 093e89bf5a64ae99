use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{GateReport, Pattern, Phase, TaskId, TaskStatus};

/// `PARALLEL_STATUS.json`: every task of the run and where it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "PARALLEL_STATUS.json")]
pub struct ParallelStatus {
    /// The run's id (`exec-…`).
    pub execution_id: String,
    /// The phase running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// When the run started (RFC 3339).
    pub started: String,
    /// The tasks, in plan order.
    pub tasks: Vec<TaskEntry>,
}

/// One task in `PARALLEL_STATUS.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskEntry {
    /// Task id.
    pub id: TaskId,
    /// Display name.
    pub name: String,
    /// Agent name.
    pub agent: String,
    /// Status.
    pub status: TaskStatus,
    /// The task's `modifies` patterns.
    pub paths: Vec<Pattern>,
    /// When the first attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When it reached a terminal status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    /// Agent runs after failures, retries included.
    #[serde(default)]
    pub attempts: u32,
    /// QA fix iterations of the current attempt.
    #[serde(default)]
    pub iterations: u32,
    /// The task branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The worktree path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<String>,
    /// The last gate results.
    #[serde(default)]
    pub qa: Vec<GateReport>,
}
