//! One run per repository: an OS file lock in the state dir.
//!
//! `fugue run` and `fugue resume` take an exclusive lock on `<state_dir>/fugue/run.lock`
//! (`flock` on Unix, `LockFileEx` on Windows, through `File::try_lock`) before they touch any
//! state, and write their pid and run id into the file. A second run finds the lock taken and
//! fails with an error naming that pid. The kernel drops the lock when the holder exits, however
//! it exits, so a crashed run never blocks the next one; the guard also empties the file on drop
//! so a leftover pid is never mistaken for a live holder.
//!
//! Reading who holds the lock ([`RunLock::holder`]) does not touch the lock itself: taking it,
//! even briefly, could make a concurrently starting run fail.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::process::pid_alive;

/// The active run, as recorded in lock records: its id and the pid of its process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run id.
    pub run_id: String,
    /// The process running it.
    pub pid: u32,
}

impl RunInfo {
    /// This process running `run_id`.
    pub fn current(run_id: impl Into<String>) -> Self {
        Self { run_id: run_id.into(), pid: std::process::id() }
    }
}

/// What the run lock file says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHolder {
    /// The holder's pid.
    pub pid: u32,
    /// The holder's run id.
    pub run_id: String,
    /// When it took the lock (RFC 3339).
    pub since: String,
}

/// Why the run lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunLockError {
    /// Another process holds it.
    #[error("{}", held_message(path, holder.as_ref()))]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, when the file says.
        holder: Option<RunHolder>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("failed to take the run lock {}: {source}; check that the state directory is writable", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn held_message(path: &Path, holder: Option<&RunHolder>) -> String {
    match holder {
        Some(h) => format!(
            "failed to take the run lock {}: fugue process {} (run `{}`, since {}) holds it; one run per repository at a time, so wait for it to finish or stop that process",
            path.display(),
            h.pid,
            h.run_id,
            h.since
        ),
        None => format!(
            "failed to take the run lock {}: another process holds it and has not recorded its pid yet; one run per repository at a time, so try again when it has finished",
            path.display()
        ),
    }
}

/// The held run lock; dropping it releases the lock.
pub struct RunLock {
    file: File,
    path: PathBuf,
    info: RunInfo,
}

impl fmt::Debug for RunLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunLock").field("path", &self.path).field("info", &self.info).finish_non_exhaustive()
    }
}

impl RunLock {
    /// The lock file, relative to the state dir.
    pub const FILE: &'static str = "fugue/run.lock";

    /// The lock file of a state dir.
    pub fn file_in(state_dir: &Path) -> PathBuf {
        state_dir.join(Self::FILE)
    }

    /// Takes the run lock of `state_dir` for `run_id`, without waiting.
    pub fn acquire(state_dir: &Path, run_id: impl Into<String>) -> Result<Self, RunLockError> {
        let path = Self::file_in(state_dir);
        let io = |source| RunLockError::Io { path: path.clone(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // No truncation on open: the holder's record must survive a contender opening the file.
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(RunLockError::Held { holder: read_holder(&path), path }),
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let info = RunInfo::current(run_id);
        let holder = RunHolder { pid: info.pid, run_id: info.run_id.clone(), since: fugue_core::time::now() };
        let mut bytes = serde_json::to_vec(&holder).map_err(|e| io(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(Self { file, path, info })
    }

    /// Who holds the run lock of `state_dir`, judged from the file without touching the lock:
    /// the recorded holder if its process is alive, else `None`.
    pub fn holder(state_dir: &Path) -> Option<RunHolder> {
        read_holder(&Self::file_in(state_dir)).filter(|h| pid_alive(h.pid))
    }

    /// The run holding this lock.
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Empty the record before the lock goes (closing the file releases it), so a later
        // reader never takes a dead run for the holder. Failure only leaves a record whose pid
        // is gone, which readers already discount.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn read_holder(path: &Path) -> Option<RunHolder> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquirer_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = RunLock::acquire(dir.path(), "run-1").expect("first");
        assert_eq!(first.info().pid, std::process::id());
        let holder = RunLock::holder(dir.path()).expect("holder recorded");
        assert_eq!((holder.pid, holder.run_id.as_str()), (std::process::id(), "run-1"));
        // flock locks belong to the open file description, so a second open in this very
        // process contends like another process would.
        let err = RunLock::acquire(dir.path(), "run-2").expect_err("second must fail");
        let msg = err.to_string();
        assert!(msg.contains(&format!("fugue process {}", std::process::id())), "{msg}");
        assert!(msg.contains("run `run-1`"), "{msg}");
        drop(first);
        assert_eq!(RunLock::holder(dir.path()), None, "record emptied on drop");
        let second = RunLock::acquire(dir.path(), "run-2").expect("free again");
        assert_eq!(second.info().run_id, "run-2");
    }
}
