use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{GateReport, Pattern, Phase, TaskId, TaskStatus, Usage};

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
    /// What the task's agent runs spent so far, over every attempt, the running iteration's
    /// figures (also in `activity`) included. A figure is absent when no run reported it: it
    /// is unknown, not zero. Absent altogether when nothing is known.
    #[serde(default, skip_serializing_if = "Usage::is_unknown")]
    pub usage: Usage,
    /// The agent session of the last run (a CLI's session or thread id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// What the running agent is doing now; absent when no agent of the task is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<TaskActivity>,
}

/// What a task's running agent is doing, in `PARALLEL_STATUS.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskActivity {
    /// One line: the tool it runs (`Bash: cargo test`), or the start of its last message.
    pub doing: String,
    /// What the running iteration spent so far, where known.
    #[serde(default, skip_serializing_if = "Usage::is_unknown")]
    pub usage: Usage,
}
