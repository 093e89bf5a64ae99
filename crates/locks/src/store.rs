//! Where the lock table is persisted, and how dead locks are recognised and reclaimed.
//!
//! The manager's memory is the truth while a run executes; `RESOURCE_LOCKS.json` is the
//! snapshot it writes after every change (atomically: temp file + rename), so agents that read
//! the playbook file and `fugue locks` see the current holders. The store is a trait so that
//! embedders can put the snapshot elsewhere and so that tests and benchmarks can run with no
//! store at all.
//!
//! A record is stale when the process that wrote it is gone (`kill(pid, 0)` says ESRCH) or it
//! belongs to a run other than the active one. Stale records are dropped from the file when a
//! run starts or resumes ([`crate::LockManager::open`]) or on `fugue locks release --stale`
//! ([`reclaim_stale`]); each comes back as a [`StaleLock`] so the caller can warn about it.

use std::fmt;
use std::path::{Path, PathBuf};

use fugue_core::state::{LockMode, LockRecord, ResourceLocks, files, write_json_snapshot};

use crate::error::LockError;
use crate::process::pid_alive;
use crate::run_lock::RunInfo;

/// Where lock snapshots are loaded from and saved to.
pub trait LockStore: Send + fmt::Debug {
    /// The last saved snapshot (empty when there is none yet).
    fn load(&mut self) -> Result<ResourceLocks, LockError>;
    /// Replaces the snapshot.
    fn save(&mut self, locks: &ResourceLocks) -> Result<(), LockError>;
    /// Where the snapshot lives, for messages.
    fn location(&self) -> PathBuf;
}

/// `RESOURCE_LOCKS.json` in the state dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// The store of a state dir: `<state_dir>/RESOURCE_LOCKS.json`.
    pub fn new(state_dir: &Path) -> Self {
        Self { path: state_dir.join(files::RESOURCE_LOCKS) }
    }

    /// A store at an explicit file path.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The snapshot file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl LockStore for FileStore {
    fn load(&mut self) -> Result<ResourceLocks, LockError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ResourceLocks::default()),
            Err(source) => return Err(LockError::Read { path: self.path.clone(), source }),
        };
        if text.trim().is_empty() {
            return Ok(ResourceLocks::default());
        }
        serde_json::from_str(&text).map_err(|e| LockError::Corrupt { path: self.path.clone(), detail: e.to_string() })
    }

    fn save(&mut self, locks: &ResourceLocks) -> Result<(), LockError> {
        write_json_snapshot(&self.path, locks).map_err(|source| LockError::Write { path: self.path.clone(), source })
    }

    fn location(&self) -> PathBuf {
        self.path.clone()
    }
}

/// Why a lock record is considered dead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleReason {
    /// The process that holds it no longer exists.
    PidGone {
        /// Its pid.
        pid: u32,
    },
    /// It belongs to a run that is not the active one (or names no run).
    NotActiveRun {
        /// The record's run id.
        run_id: Option<String>,
        /// The active run, if any.
        active: Option<String>,
    },
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleReason::PidGone { pid } => write!(f, "its process (pid {pid}) is gone"),
            StaleReason::NotActiveRun { run_id: None, .. } => f.write_str("it names no fugue run"),
            StaleReason::NotActiveRun { run_id: Some(r), active: Some(a) } => write!(f, "its run `{r}` is not the active run `{a}`"),
            StaleReason::NotActiveRun { run_id: Some(r), active: None } => write!(f, "its run `{r}` is over (no run is active)"),
        }
    }
}

/// A reclaimed lock record and why it was dead: the warning a run start or resume returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleLock {
    /// The record as it was in the snapshot.
    pub record: LockRecord,
    /// Why it was dead.
    pub reason: StaleReason,
}

impl fmt::Display for StaleLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.record.mode {
            LockMode::Read => "read",
            LockMode::Write => "write",
        };
        write!(f, "reclaimed stale {mode} lock of `{}` on {}: {}", self.record.agent_id, self.record.locked_paths.join(", "), self.reason)
    }
}

/// Is `record` dead, given the active run (`None`: no run is active)?
pub fn stale_reason(record: &LockRecord, active: Option<&RunInfo>) -> Option<StaleReason> {
    if let Some(pid) = record.pid.filter(|&pid| !pid_alive(pid)) {
        return Some(StaleReason::PidGone { pid });
    }
    let active_id = active.map(|a| a.run_id.as_str());
    if record.run_id.as_deref() != active_id || active_id.is_none() {
        return Some(StaleReason::NotActiveRun { run_id: record.run_id.clone(), active: active_id.map(str::to_owned) });
    }
    None
}

/// Splits a snapshot into live records and stale ones.
pub(crate) fn partition(locks: ResourceLocks, active: Option<&RunInfo>) -> (Vec<LockRecord>, Vec<StaleLock>) {
    let mut live = Vec::new();
    let mut stale = Vec::new();
    for record in locks.locks {
        match stale_reason(&record, active) {
            Some(reason) => stale.push(StaleLock { record, reason }),
            None => live.push(record),
        }
    }
    (live, stale)
}

/// Drops the stale records from the store's snapshot and returns them. The caller must hold the
/// run lock (or be the active run), so no live run rewrites the snapshot meanwhile.
pub fn reclaim_stale(store: &mut dyn LockStore, active: Option<&RunInfo>) -> Result<Vec<StaleLock>, LockError> {
    let (live, stale) = partition(store.load()?, active);
    if !stale.is_empty() {
        store.save(&ResourceLocks { locks: live })?;
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(agent: &str, run: Option<&str>, pid: Option<u32>) -> LockRecord {
        LockRecord {
            agent_id: agent.to_owned(),
            locked_paths: vec!["src/a/**".to_owned()],
            lock_time: "2024-01-10T10:00:00Z".to_owned(),
            mode: LockMode::Write,
            run_id: run.map(str::to_owned),
            pid,
        }
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    }

    #[test]
    fn classifies_records() {
        let me = std::process::id();
        let run = RunInfo { run_id: "r1".to_owned(), pid: me };
        assert_eq!(stale_reason(&record("a", Some("r1"), Some(me)), Some(&run)), None);
        let dead = dead_pid();
        assert_eq!(stale_reason(&record("a", Some("r1"), Some(dead)), Some(&run)), Some(StaleReason::PidGone { pid: dead }));
        let other = stale_reason(&record("a", Some("r0"), Some(me)), Some(&run)).expect("stale");
        assert_eq!(other.to_string(), "its run `r0` is not the active run `r1`");
        let none = stale_reason(&record("a", None, None), Some(&run)).expect("stale");
        assert_eq!(none.to_string(), "it names no fugue run");
        let over = stale_reason(&record("a", Some("r1"), Some(me)), None).expect("stale without an active run");
        assert_eq!(over.to_string(), "its run `r1` is over (no run is active)");
    }

    #[test]
    fn reclaim_rewrites_the_file_without_dead_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = FileStore::new(dir.path());
        assert_eq!(store.load().expect("missing file is empty"), ResourceLocks::default());
        let me = std::process::id();
        let run = RunInfo { run_id: "r1".to_owned(), pid: me };
        let dead = dead_pid();
        let doc = ResourceLocks { locks: vec![record("live", Some("r1"), Some(me)), record("dead", Some("r1"), Some(dead))] };
        store.save(&doc).expect("save");
        let stale = reclaim_stale(&mut store, Some(&run)).expect("reclaim");
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].to_string(), format!("reclaimed stale write lock of `dead` on src/a/**: its process (pid {dead}) is gone"));
        let left = store.load().expect("load");
        assert_eq!(left.locks.iter().map(|r| r.agent_id.as_str()).collect::<Vec<_>>(), ["live"]);
        assert!(reclaim_stale(&mut store, Some(&run)).expect("again").is_empty(), "nothing left to reclaim");
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = FileStore::new(dir.path());
        std::fs::write(store.path(), "{\"locks\": 3}").expect("write");
        let err = store.load().expect_err("corrupt");
        assert!(matches!(err, LockError::Corrupt { .. }));
        assert!(err.to_string().contains("RESOURCE_LOCKS.json"), "{err}");
    }
}
