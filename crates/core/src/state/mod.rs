//! The state files fugue keeps under the state dir (default `.claude/`).
//!
//! Their shapes follow the playbooks so that agents and scripts that read them keep working;
//! fugue adds fields, it never renames the playbooks' ones. All of them are snapshots derived
//! from the journal (`fugue/journal.ndjson`) and written atomically with [`write_atomic`].
//! Timestamps are RFC 3339 strings in UTC.

mod boundaries;
mod graph;
mod locks;
mod parallel_status;
mod pool;
mod workflow;

pub use boundaries::{BoundariesFile, BoundaryStatus, TaskBoundary};
pub use graph::{
    DependencyGraph, EdgeReason, EdgeRecord, Estimate, ExecutionMode, ExecutionStrategy, GraphTask, GroupTask, ParallelGroup, Strategy,
};
pub use locks::{LockMode, LockRecord, ResourceLocks};
pub use parallel_status::{ParallelStatus, TaskActivity, TaskEntry};
pub use pool::{PoolState, SlotStatus, WorktreeSlot};
pub use workflow::WorkflowState;

use std::io::Write;
use std::path::{Path, PathBuf};

/// File names of the state files inside the state dir.
pub mod files {
    /// `WORKFLOW_STATE.json`.
    pub const WORKFLOW_STATE: &str = "WORKFLOW_STATE.json";
    /// `PARALLEL_STATUS.json`.
    pub const PARALLEL_STATUS: &str = "PARALLEL_STATUS.json";
    /// `RESOURCE_LOCKS.json`.
    pub const RESOURCE_LOCKS: &str = "RESOURCE_LOCKS.json";
    /// `DEPENDENCY_GRAPH.json`.
    pub const DEPENDENCY_GRAPH: &str = "DEPENDENCY_GRAPH.json";
    /// `BOUNDARIES.json`.
    pub const BOUNDARIES: &str = "BOUNDARIES.json";
    /// `pool-state.json`.
    pub const POOL_STATE: &str = "pool-state.json";
    /// The journal, relative to the state dir.
    pub const JOURNAL: &str = "fugue/journal.ndjson";
}

/// The default state dir, relative to the repository.
pub const DEFAULT_STATE_DIR: &str = ".claude";

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync, rename.
/// A reader sees the old or the new content, never a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(path, bytes, true)
}

/// Like [`write_atomic`] but without the fsync: for snapshots derived from the journal (and
/// logs), which a crash may leave one write behind but never torn. The journal is what must
/// reach the disk; fsyncing every snapshot as well cost a fifth of the dispatch loop.
pub fn write_snapshot(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(path, bytes, false)
}

/// [`write_snapshot`] of pretty JSON with a trailing newline.
pub fn write_json_snapshot<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_snapshot(path, &bytes)
}

fn write_replacing(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Serialises `value` as pretty JSON (with a trailing newline) and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = std::env::temp_dir().join(format!("fugue-core-atomic-{}", std::process::id()));
        let path = dir.join("sub").join("x.json");
        write_json_atomic(&path, &serde_json::json!({"a": 1})).expect("write");
        write_json_atomic(&path, &serde_json::json!({"b": 2})).expect("rewrite");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "{\n  \"b\": 2\n}\n");
        let leftovers = std::fs::read_dir(path.parent().expect("parent")).expect("dir").count();
        assert_eq!(leftovers, 1, "no temp files left behind");
        write_json_snapshot(&path, &serde_json::json!({"c": 3})).expect("snapshot");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\n  \"c\": 3\n}\n");
        assert_eq!(std::fs::read_dir(path.parent().expect("parent")).expect("dir").count(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
