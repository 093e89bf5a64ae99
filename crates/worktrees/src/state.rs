//! `pool-state.json` and the locks that serialize its updates.
//!
//! The state file is read and written only while holding an exclusive OS lock (`flock` through
//! [`std::fs::File::lock`]) on a sibling lock file, so several processes acquiring at once see
//! each other's reservations; writes go through `write_json_atomic` (temp file + rename), so a
//! reader never sees a torn file. The lock is held only for the bookkeeping — a slot is marked
//! busy under the lock and prepared (checkout, clean, setup) after it is dropped — so slow git
//! work in one process never blocks another's acquire. The lock is released when the guard is
//! dropped, or by the kernel when the process dies: a crashed process never leaves the pool
//! locked.
//!
//! A second lock, the *admin lock*, exists because git itself is not safe here: `git worktree
//! add` writes the new worktree's admin files (`.git/worktrees/<name>/commondir`, …) one by
//! one, and a concurrent git command that lists worktrees (`worktree add`, `checkout -B`,
//! `branch -D`, `worktree list`) can read a half-written one and die with "failed to read
//! …/commondir". Creating or pruning admin dirs takes the admin lock exclusively — only for the
//! moment of `worktree add --no-checkout`; the files are checked out afterwards, in parallel —
//! and the pool's commands that list worktrees take it shared.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fugue_core::state::{PoolState, SlotStatus, WorktreeSlot, write_json_atomic};

use crate::PoolError;

/// The format version written to `pool-state.json`.
pub(crate) const STATE_VERSION: u32 = 1;

/// A lock on a file (exclusive or shared), released on drop.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the exclusive lock on `path` (created if missing) is held.
    pub(crate) fn acquire(path: &Path) -> Result<Self, PoolError> {
        let file = Self::open(path)?;
        file.lock().map_err(PoolError::io("lock", path))?;
        Ok(Self { _file: file })
    }

    /// Blocks until a shared lock on `path` is held (it excludes only exclusive holders).
    pub(crate) fn acquire_shared(path: &Path) -> Result<Self, PoolError> {
        let file = Self::open(path)?;
        file.lock_shared().map_err(PoolError::io("lock", path))?;
        Ok(Self { _file: file })
    }

    fn open(path: &Path) -> Result<File, PoolError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(PoolError::io("create the directory", dir))?;
        }
        OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(PoolError::io("open the lock file", path))
    }
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    pub(crate) path: PathBuf,
    lock_path: PathBuf,
}

/// The state, read under the lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct Locked<'a> {
    _lock: FileLock,
    store: &'a StateStore,
    /// `None` when the file does not exist yet.
    pub(crate) state: Option<PoolState>,
}

impl StateStore {
    pub(crate) fn new(state_dir: &Path) -> Self {
        Self { path: state_dir.join(fugue_core::state::files::POOL_STATE), lock_path: state_dir.join("fugue").join("pool.lock") }
    }

    /// Takes the lock and reads the state.
    pub(crate) fn lock(&self) -> Result<Locked<'_>, PoolError> {
        let lock = FileLock::acquire(&self.lock_path)?;
        let state = self.read()?;
        Ok(Locked { _lock: lock, store: self, state })
    }

    /// Takes the lock; a state file that cannot be parsed counts as missing (for reset).
    pub(crate) fn lock_lenient(&self) -> Result<Locked<'_>, PoolError> {
        let lock = FileLock::acquire(&self.lock_path)?;
        let state = match self.read() {
            Ok(s) => s,
            Err(PoolError::CorruptState { path, source }) => {
                tracing::warn!(path = %path.display(), error = %source, "ignoring unreadable pool state");
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Locked { _lock: lock, store: self, state })
    }

    /// Reads the state without the lock (a snapshot; writes are atomic, so never torn).
    pub(crate) fn read(&self) -> Result<Option<PoolState>, PoolError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|source| PoolError::CorruptState { path: self.path.clone(), source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PoolError::Io { action: "read", path: self.path.clone(), source: e }),
        }
    }
}

impl Locked<'_> {
    /// Writes `state` atomically.
    pub(crate) fn save(&mut self, state: PoolState) -> Result<(), PoolError> {
        write_json_atomic(&self.store.path, &state).map_err(PoolError::io("write", &self.store.path))?;
        self.state = Some(state);
        Ok(())
    }
}

/// A fresh state of `size` free slots under `pool_dir`, keeping the slots of `old` that fit.
pub(crate) fn resized(old: Option<&PoolState>, size: u32, pool_dir: &Path) -> PoolState {
    let worktrees = (1..=size)
        .map(|n| {
            let id = slot_id(n);
            old.and_then(|s| s.worktrees.iter().find(|w| w.id == id).cloned()).unwrap_or_else(|| free_slot(&id, pool_dir))
        })
        .collect();
    PoolState { version: STATE_VERSION, pool_size: size, worktrees }
}

pub(crate) fn slot_id(n: u32) -> String {
    format!("wt-{n}")
}

pub(crate) fn free_slot(id: &str, pool_dir: &Path) -> WorktreeSlot {
    WorktreeSlot {
        id: id.to_owned(),
        status: SlotStatus::Free,
        task_id: None,
        path: pool_dir.join(id).to_string_lossy().into_owned(),
        branch: None,
        acquired_at: None,
    }
}

/// Marks a slot free, forgetting its task.
pub(crate) fn set_free(slot: &mut WorktreeSlot) {
    slot.status = SlotStatus::Free;
    slot.task_id = None;
    slot.branch = None;
    slot.acquired_at = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_keeps_existing_slots() {
        let dir = Path::new("/pool");
        let mut s = resized(None, 2, dir);
        assert_eq!(s.worktrees.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), ["wt-1", "wt-2"]);
        assert_eq!(s.worktrees[1].path, "/pool/wt-2");
        s.worktrees[0].status = SlotStatus::Busy;
        let grown = resized(Some(&s), 3, dir);
        assert_eq!(grown.pool_size, 3);
        assert_eq!(grown.worktrees[0].status, SlotStatus::Busy);
        assert_eq!(grown.worktrees[2].status, SlotStatus::Free);
    }

    #[test]
    fn lock_and_atomic_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = StateStore::new(dir.path());
        {
            let mut locked = store.lock().expect("lock");
            assert!(locked.state.is_none());
            locked.save(resized(None, 1, dir.path())).expect("save");
        }
        assert_eq!(store.read().expect("read").map(|s| s.pool_size), Some(1));
        std::fs::write(&store.path, b"{not json").expect("corrupt");
        assert!(matches!(store.lock(), Err(PoolError::CorruptState { .. })));
        assert!(store.lock_lenient().expect("lenient").state.is_none());
    }
}
