//! The lock manager: read/write path locks, serial resources, read-only common paths, persisted
//! and crash-safe.
//!
//! This is the runtime guard behind "no two agents modify the same file". While a run executes,
//! every task asks the [`LockManager`] for its [`ClaimSet`] — the patterns it writes and reads —
//! before its agent starts, and releases it when the task is done:
//!
//! * a write claim conflicts with every overlapping claim, a read only with overlapping writes;
//!   overlap is `fugue_core::Pattern::overlaps`, answered by a path trie keyed by literal path
//!   components in O(path depth + matches) (a yes/no check in O(path depth)) rather than by
//!   scanning the held locks;
//! * a task that writes into a serial resource class of the plan holds the whole class;
//! * while a parallel phase runs, writing a `common` path is refused outright;
//! * all of a task's claims are granted at once or not at all; `try_acquire` answers at once,
//!   `acquire` waits in FIFO order among conflicting requests, so nobody starves and nothing
//!   deadlocks;
//! * each change is written to `RESOURCE_LOCKS.json` ([`FileStore`]), and locks left by a dead
//!   run are reclaimed when the next run opens the manager ([`LockManager::open`]);
//! * one run per repository: [`RunLock`] is an OS file lock in the state dir.
//!
//! Nothing here prints; warnings (reclaimed stale locks) are returned as values.

mod claim;
mod error;
mod manager;
mod process;
mod run_lock;
mod store;
mod trie;

pub use claim::{Claim, ClaimSet, LockPolicy, Resource};
pub use error::LockError;
pub use fugue_core::state::LockMode;
pub use manager::{Blocker, BlockerState, Conflict, Grant, LockManager, Opened, OwnerState, Released, TryAcquire};
pub use process::pid_alive;
pub use run_lock::{RunHolder, RunInfo, RunLock, RunLockError};
pub use store::{FileStore, LockStore, StaleLock, StaleReason, reclaim_stale, stale_reason};
