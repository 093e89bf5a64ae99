use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Pattern, TaskId};

/// The state of a task's boundary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoundaryStatus {
    /// In force.
    #[default]
    Active,
    /// The task merged; the boundary no longer applies.
    Released,
    /// The task failed; its paths need recovery.
    NeedsRecovery,
}

/// `BOUNDARIES.json`: per task, what it may and may not touch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(title = "BOUNDARIES.json")]
pub struct BoundariesFile(pub BTreeMap<TaskId, TaskBoundary>);

/// One task's boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskBoundary {
    /// What the task reads (its `reads`) and the tasks it depends on.
    pub dependencies: Vec<String>,
    /// Its `modifies`.
    pub can_modify: Vec<Pattern>,
    /// Common paths, and the writes of other tasks of its phase that overlap its scope.
    pub cannot_modify: Vec<Pattern>,
    /// True when nothing in its phase conflicts with it.
    pub parallel_safe: bool,
    /// The boundary's state.
    #[serde(default)]
    pub status: BoundaryStatus,
}
