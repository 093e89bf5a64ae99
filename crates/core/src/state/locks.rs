use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of a path claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Shared: other readers may hold it too.
    Read,
    /// Exclusive: no other claim may overlap it.
    Write,
}

/// `RESOURCE_LOCKS.json`: the held path locks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "RESOURCE_LOCKS.json")]
pub struct ResourceLocks {
    /// One record per holder and mode.
    pub locks: Vec<LockRecord>,
}

/// One holder's locks of one mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LockRecord {
    /// The holder (a task id).
    pub agent_id: String,
    /// The claimed patterns (serial classes appear as `serial:<class>`).
    pub locked_paths: Vec<String>,
    /// When the lock was granted (RFC 3339).
    pub lock_time: String,
    /// Read or write.
    pub mode: LockMode,
    /// fugue: the run holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// fugue: the pid of the process holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}
