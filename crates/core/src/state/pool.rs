use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The state of one pool slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SlotStatus {
    /// Ready to be acquired.
    Free,
    /// Held by a task.
    Busy,
    /// Not usable until repaired (`fugue pool health --repair`).
    Broken,
}

/// `pool-state.json`: the worktree pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "pool-state.json")]
pub struct PoolState {
    /// Format version (1).
    pub version: u32,
    /// Number of slots.
    pub pool_size: u32,
    /// The slots.
    pub worktrees: Vec<WorktreeSlot>,
}

/// One slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorktreeSlot {
    /// `wt-N`.
    pub id: String,
    /// Free, busy or broken.
    pub status: SlotStatus,
    /// The task holding it.
    #[serde(default)]
    pub task_id: Option<String>,
    /// Absolute path of the worktree.
    pub path: String,
    /// The branch checked out.
    #[serde(default)]
    pub branch: Option<String>,
    /// When it was acquired (RFC 3339).
    #[serde(default)]
    pub acquired_at: Option<String>,
}
