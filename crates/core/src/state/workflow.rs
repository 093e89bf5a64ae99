use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Phase, TaskId};

/// `WORKFLOW_STATE.json`: where the run is in the phase sequence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "WORKFLOW_STATE.json")]
pub struct WorkflowState {
    /// The phase running now (`null` before the first and after the last).
    pub current_phase: Option<Phase>,
    /// Phases whose every task is merged (or skipped because empty).
    pub completed_phases: Vec<Phase>,
    /// Tasks of the current phase running now.
    pub active_parallel_tasks: Vec<TaskId>,
    /// fugue: the run this state belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// fugue: when this snapshot was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
}
