//! The worktree pool and merge coordinator of fugue, over the `git` CLI.
//!
//! Agents work in git worktrees: one slot per task, `wt-1…wt-N` under `pool.dir` (default
//! `.claude/worktrees`, the one folder under `.claude/` where Claude Code lets agents edit
//! files; a pool still in the old default `.claude/worktree-pool` is moved there when it is
//! opened, see [`Pool::migration`]), each on its branch `auto/<task>`. [`Pool`] hands slots out and takes them back; recycling a slot
//! resets and cleans it but keeps the ignored build caches named in `pool.keep_ignored`, so a
//! warm acquire costs a few git processes instead of a full checkout and a cold build. The
//! merge coordinator ([`Pool::merge`]) brings the task branches into the target in the order
//! it is given, without a checkout (`merge-tree --write-tree` and `commit-tree`; an integration
//! worktree only with git older than 2.38), and moves the target with a compare-and-swap.
//!
//! Everything runs `git` as a child process (no libgit2): what fugue does is what a person
//! would do by hand, with git's own locking and on-disk formats. The API is synchronous; from
//! async code call it through `spawn_blocking`. State lives in `pool-state.json` in the state
//! dir (the playbook's shape), updated under an OS file lock, so any number of processes can
//! share one pool.
//!
//! Two promises hold throughout: a branch with commits not merged into the base is never
//! deleted (only an explicit discard does that), and merging is idempotent — a branch already
//! contained in the target is skipped, which is what makes a resumed run merge exactly once.

mod disk;
mod error;
mod git;
mod health;
mod merge;
mod migrate;
mod pool;
mod repo;
mod seed;
mod sparse;
mod state;

pub use disk::{SlotDisk, disk_usage, human_bytes};
pub use error::{ErrorClass, PoolError};
pub use health::{HealthReport, Problem, RepairReport, STALE_LOCK_MIN_AGE, STALE_LOCK_MIN_AGE_NO_PROC};
pub use merge::{BranchMerge, BranchOutcome, MergeMethod, MergeReport, MergeRequest, TargetUpdate, dependency_order};
pub use migrate::{LEGACY_POOL_DIR, LeftBehind, Migration};
pub use pool::{AcquireRequest, Acquired, CleanupOptions, CleanupReport, Pool, ReleaseMode, Released};
pub use seed::{SeedError, SeedReport, plan_caches, reflinks_supported, seed_caches};
