//! The worktree pool: slots `wt-1…wt-N` that tasks acquire, work in, and release.
//!
//! A slot is a directory under `pool.dir` that becomes a linked git worktree the first time it
//! is used. Acquiring goes in two steps. Under the state lock the pool picks a free slot —
//! one already holding the task's branch first, then a warm one (a worktree exists), then the
//! lowest id — marks it busy and writes `pool-state.json`. Without the lock it then prepares
//! the slot:
//!
//! * warm: `git checkout -f -B auto/<task> <base>` (only files that differ are rewritten; the
//!   stat cache makes unchanged ones free) and `git clean -ffdx -e <keep_ignored>…`, which
//!   removes the previous task's leftovers but neither deletes nor walks the kept build caches;
//! * cold: `git worktree add --no-checkout -B auto/<task> <slot> <base>`, then `git -c
//!   checkout.workers=0 reset --hard` in the new worktree (parallel checkout). The two steps
//!   are split because registering a worktree must be serialized across processes (see
//!   `state`), while checking out its files need not be;
//! * sparse (`pool.sparse: scope` and the task's scopes given): `sparse-checkout set --no-cone`
//!   with patterns from the scopes (see `sparse`), or `sparse-checkout disable` when a slot
//!   that was sparse is recycled for a full checkout;
//!
//! then copies the `pool.copy` files and runs the `pool.setup` commands. A failure puts the
//! slot back to free. The base and the task's existing branch are resolved together by one
//! `cat-file --batch-check`, so a warm acquire is three git processes.
//!
//! Branches are never lost by the pool. An existing `auto/<task>` with commits that are not in
//! the base is checked out as it is (the task resumes its work) instead of being reset;
//! release only detaches the slot's HEAD (so the branch is checked out nowhere and can be
//! merged, deleted or acquired elsewhere) and deletes the branch only when asked to discard
//! it; cleanup and reset delete only `auto/*` branches already merged into the base.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fugue_core::state::{PoolState, SlotStatus, WorktreeSlot};
use fugue_core::{CommandLine, PoolSpec, Scope, SparseMode, TaskId};
use serde::Serialize;

use crate::PoolError;
use crate::repo::{self, Repo};
use crate::state::{self, FileLock, Locked, StateStore};

/// The most slots a pool may have (the plan schema's limit).
const MAX_SIZE: u32 = 256;
/// The integration worktree's directory name under `pool.dir`.
pub(crate) const INTEGRATION_DIR: &str = "integration";

/// A worktree pool over one repository.
///
/// Cheap to clone, `Send + Sync`, and every method is synchronous (it runs `git` processes):
/// from async code call it through `tokio::task::spawn_blocking`. Several `Pool` values — in
/// one process or many — may work on the same pool at once; the state file is locked.
#[derive(Debug, Clone)]
pub struct Pool {
    pub(crate) repo: Repo,
    pub(crate) spec: PoolSpec,
    pub(crate) pool_dir: PathBuf,
    pub(crate) state_dir: PathBuf,
    pub(crate) store: StateStore,
    /// What opening did to a pool found in the old default dir (see `migrate`).
    pub(crate) migration: Option<crate::migrate::Migration>,
}

/// What to acquire: a task, the base to start from, and for sparse pools the task's scopes.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    task: TaskId,
    base: Option<String>,
    scopes: Vec<Scope>,
}

impl AcquireRequest {
    /// Acquire a slot for `task`, starting from the repository's `HEAD`.
    pub fn new(task: TaskId) -> Self {
        Self { task, base: None, scopes: Vec::new() }
    }

    /// Start from `base` (a branch, tag or commit) instead of `HEAD`.
    pub fn base(mut self, base: impl Into<String>) -> Self {
        self.base = Some(base.into());
        self
    }

    /// The task's scopes (modifies, reads, the plan's common paths). With `pool.sparse: scope`
    /// the worktree holds only these paths and the root files; without scopes it is full.
    pub fn sparse_scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        self.scopes = scopes.into_iter().collect();
        self
    }
}

/// A slot handed to a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Acquired {
    /// `wt-N`.
    pub slot: String,
    /// The worktree's absolute path.
    pub path: PathBuf,
    /// `auto/<task>`.
    pub branch: String,
    /// The base commit the branch starts from (or was checked against).
    pub base: String,
    /// The slot was recycled (an existing worktree reset and cleaned) rather than created.
    pub warm: bool,
    /// The branch already existed with commits not in the base and was checked out unchanged.
    pub kept_existing_branch: bool,
    /// The task already held this slot; nothing was changed.
    pub already_held: bool,
}

impl Acquired {
    /// The pool-manager protocol line: `wt-N|PATH|auto/TASK`.
    pub fn line(&self) -> String {
        format!("{}|{}|{}", self.slot, self.path.display(), self.branch)
    }
}

/// What release does with the slot's branch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReleaseMode {
    /// Keep the branch (the default): its commits stay for the merge.
    #[default]
    KeepBranch,
    /// Delete the branch, merged or not (`--discard`).
    DiscardBranch,
}

/// A released slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Released {
    /// `wt-N`.
    pub slot: String,
    /// The branch the slot held.
    pub branch: Option<String>,
    /// The branch was deleted (only with [`ReleaseMode::DiscardBranch`]).
    pub branch_deleted: bool,
    /// The slot was already free.
    pub was_free: bool,
}

/// Options of [`Pool::cleanup`].
#[derive(Debug, Clone, Default)]
pub struct CleanupOptions {
    force: bool,
    base: Option<String>,
}

impl CleanupOptions {
    /// Also remove busy slots (their branches are still kept unless merged).
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// The branch that decides whether an `auto/*` branch is merged (default: the branch
    /// checked out in the main worktree).
    pub fn base(mut self, base: impl Into<String>) -> Self {
        self.base = Some(base.into());
        self
    }
}

/// What cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CleanupReport {
    /// Worktree directories removed.
    pub removed_worktrees: Vec<PathBuf>,
    /// Busy slots left alone (without `force`).
    pub skipped_busy: Vec<String>,
    /// `auto/*` branches deleted because they were merged into the base.
    pub deleted_branches: Vec<String>,
    /// `auto/*` branches kept because they hold commits not in the base.
    pub kept_branches: Vec<String>,
}

/// Where a task's branch starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    /// Create or reset the branch at this commit.
    At(String),
    /// Check out the existing branch unchanged.
    Existing,
}

/// What a new worktree checks out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Checkout<'a> {
    /// Create (or reset) `branch` at `at`.
    NewBranch { branch: &'a str, at: &'a str },
    /// An existing branch as it is.
    Branch(&'a str),
    /// A detached HEAD at a commit.
    Detached(&'a str),
}

impl Pool {
    /// Opens the pool of the repository at `repo`, keeping its state in `state_dir` (relative
    /// paths are taken from the current directory). `spec.dir` is relative to the repository's
    /// top level unless absolute. Costs one git call and a few small file reads; creates nothing
    /// — except that a pool opened with the default dir (`.claude/worktrees`) whose slots are
    /// still in the old default dir (`.claude/worktree-pool`) is moved there first: see
    /// [`Pool::migration`].
    pub fn open(repo: &Path, state_dir: &Path, spec: PoolSpec) -> Result<Self, PoolError> {
        let repo = Repo::open(repo)?;
        let dir = Path::new(&spec.dir);
        let pool_dir = canonical_lenient(&if dir.is_absolute() { dir.to_path_buf() } else { repo.toplevel.join(dir) });
        if repo.toplevel.starts_with(&pool_dir) {
            return Err(PoolError::InvalidPoolDir { dir: pool_dir, reason: "it contains the repository" });
        }
        if pool_dir.starts_with(&repo.common_dir) {
            return Err(PoolError::InvalidPoolDir { dir: pool_dir, reason: "it is inside the .git directory" });
        }
        let state_dir = std::path::absolute(state_dir).map_err(PoolError::io("resolve", state_dir))?;
        let store = StateStore::new(&state_dir);
        let mut pool = Self { repo, spec, pool_dir, state_dir, store, migration: None };
        pool.migration = pool.migrate_legacy()?;
        Ok(pool)
    }

    /// What [`Pool::open`] did to move the pool out of the old default dir
    /// `.claude/worktree-pool`; `None` when there was nothing to move (the usual case), or when
    /// the pool's dir is not the default one. When [`Migration::is_complete`] is false, some
    /// worktrees were left in the old dir (named with the reason in [`Migration::left`]): the
    /// pool works meanwhile, and the next open tries again.
    ///
    /// [`Migration::is_complete`]: crate::Migration::is_complete
    /// [`Migration::left`]: crate::Migration::left
    pub fn migration(&self) -> Option<&crate::migrate::Migration> {
        self.migration.as_ref()
    }

    /// The directory holding the slots.
    pub fn dir(&self) -> &Path {
        &self.pool_dir
    }

    /// The repository's top level.
    pub fn repo_root(&self) -> &Path {
        &self.repo.toplevel
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The integration worktree used by merges.
    pub fn integration_dir(&self) -> PathBuf {
        self.pool_dir.join(INTEGRATION_DIR)
    }

    /// Creates or resizes the pool to `size` slots (default: the current size, else
    /// `pool.size`). Slots are created lazily by the first acquire; with `warm` every missing
    /// worktree is created now (in parallel, detached at `HEAD`), so later acquires only recycle.
    /// Shrinking past a busy slot is an error; removed free slots lose their worktree, never a branch.
    pub fn init(&self, size: Option<u32>, warm: bool) -> Result<PoolState, PoolError> {
        let mut locked = self.store.lock()?;
        let size = size.or(locked.state.as_ref().map(|s| s.pool_size)).unwrap_or(self.spec.size);
        if size == 0 || size > MAX_SIZE {
            return Err(PoolError::InvalidSize { size });
        }
        let old = locked.state.clone();
        if let Some(old) = &old {
            for slot in old.worktrees.iter().skip(size as usize) {
                if slot.status == SlotStatus::Busy {
                    return Err(PoolError::ShrinkBusy { size, slot: slot.id.clone(), task: slot.task_id.clone().unwrap_or_default() });
                }
            }
        }
        let mut new = state::resized(old.as_ref(), size, &self.pool_dir);
        for slot in &mut new.worktrees {
            // A free slot whose worktree does not exist moves to the current pool dir.
            if slot.status == SlotStatus::Free && !Path::new(&slot.path).join(".git").exists() {
                slot.path = self.pool_dir.join(&slot.id).to_string_lossy().into_owned();
            }
        }
        let dropped: Vec<PathBuf> =
            old.iter().flat_map(|o| o.worktrees.iter().skip(size as usize)).map(|s| PathBuf::from(&s.path)).collect();
        if !dropped.is_empty() {
            for p in dropped.iter().filter(|p| p.starts_with(&self.pool_dir)) {
                self.remove_slot_dir(p)?;
            }
            self.prune()?;
        }
        self.ensure_excluded()?;
        std::fs::create_dir_all(&self.pool_dir).map_err(PoolError::io("create the directory", &self.pool_dir))?;
        if warm {
            let head = self.resolve_base("HEAD")?;
            let missing: Vec<PathBuf> = new
                .worktrees
                .iter()
                .filter(|s| s.status == SlotStatus::Free && !Path::new(&s.path).join(".git").exists())
                .map(|s| PathBuf::from(&s.path))
                .collect();
            self.create_detached(&missing, &head)?;
            for path in &missing {
                self.seed(path);
            }
        }
        locked.save(new.clone())?;
        Ok(new)
    }

    /// The pool's state (a snapshot; a pool never initialised shows `pool.size` free slots).
    pub fn status(&self) -> Result<PoolState, PoolError> {
        Ok(self.store.read()?.unwrap_or_else(|| state::resized(None, self.spec.size, &self.pool_dir)))
    }

    /// Acquires a slot for a task: see the module docs. A task that already holds a slot gets
    /// it back untouched. [`PoolError::Exhausted`] when no slot is free.
    pub fn acquire(&self, req: &AcquireRequest) -> Result<Acquired, PoolError> {
        let branch = req.task.branch();
        let base_name = req.base.as_deref().unwrap_or("HEAD");
        let resolved = self.repo.resolve(&[format!("{base_name}^{{commit}}"), format!("refs/heads/{branch}")])?;
        let base = resolved.first().cloned().flatten().ok_or_else(|| PoolError::BaseNotFound { base: base_name.to_owned() })?;
        let existing = resolved.get(1).cloned().flatten();

        let (slot, held) = self.reserve(&req.task, &branch)?;
        let path = PathBuf::from(&slot.path);
        // A slot held for this task is kept as it is (a resumed job may still work in it), but
        // not with the locks of a git that died with the previous run — and only if it is a
        // checkout: a run killed between reserving the slot and adding its worktree left a
        // reservation with no directory, which is prepared now like a new slot.
        if held && repo::worktree_gitdir(&path).is_some_and(|g| g.join("HEAD").is_file()) {
            self.clear_stale_locks(&slot.id, &path)?;
            return Ok(Acquired { slot: slot.id, path, branch, base, warm: true, kept_existing_branch: false, already_held: true });
        }
        let prepared = (|| {
            let start = match &existing {
                Some(oid) if *oid != base && !self.repo.is_ancestor(&self.repo.toplevel, oid, &base)? => Start::Existing,
                _ => Start::At(base.clone()),
            };
            let warm = self.prepare(&slot.id, &path, &branch, &start, req)?;
            if !warm {
                self.seed(&path);
            }
            self.copy_files(&path)?;
            self.run_setup(&path, &req.task, &branch)?;
            Ok((warm, start == Start::Existing))
        })();
        match prepared {
            Ok((warm, kept)) => Ok(Acquired { slot: slot.id, path, branch, base, warm, kept_existing_branch: kept, already_held: false }),
            Err(e) => {
                if let Err(undo) = self.unreserve(&slot.id, req.task.as_str()) {
                    tracing::warn!(slot = %slot.id, error = %undo, "failed to put the slot back after a failed acquire");
                }
                Err(e)
            }
        }
    }

    /// Returns a slot to the pool. The slot's HEAD is detached so its branch is checked out
    /// nowhere; the branch itself is kept unless `mode` discards it. Only committed work is
    /// kept: uncommitted changes left in the slot are discarded when it is next recycled.
    pub fn release(&self, slot_id: &str, mode: ReleaseMode) -> Result<Released, PoolError> {
        let mut locked = self.store.lock()?;
        let mut state = locked.state.clone().unwrap_or_else(|| state::resized(None, self.spec.size, &self.pool_dir));
        let size = state.pool_size;
        let slot = state
            .worktrees
            .iter_mut()
            .find(|w| w.id == slot_id)
            .ok_or_else(|| PoolError::UnknownSlot { slot: slot_id.to_owned(), size })?;
        let path = PathBuf::from(&slot.path);
        let branch = slot.branch.clone();
        let was_free = slot.status == SlotStatus::Free;
        if path.join(".git").exists() {
            self.detach(&path)?;
        } else {
            // The slot's directory is gone (an agent deleted it): git still counts the branch as
            // checked out there until the registration is pruned, and would refuse it to the
            // next slot.
            self.prune()?;
        }
        let mut branch_deleted = false;
        if mode == ReleaseMode::DiscardBranch
            && let Some(b) = &branch
            && self.repo.resolve(&[format!("refs/heads/{b}")])?.first().is_some_and(Option::is_some)
        {
            self.repo.git.cmd(&self.repo.toplevel).args(["branch", "-D", "-q", b]).run()?;
            branch_deleted = true;
        }
        state::set_free(slot);
        locked.save(state)?;
        Ok(Released { slot: slot_id.to_owned(), branch, branch_deleted, was_free })
    }

    /// Removes the pool's worktrees (busy ones only with `force`) and the integration
    /// worktree, and deletes the `auto/*` branches already merged into the base. Branches with
    /// unmerged commits are kept and listed. The state keeps its size; every removed slot is free.
    pub fn cleanup(&self, opts: &CleanupOptions) -> Result<CleanupReport, PoolError> {
        let mut locked = self.store.lock()?;
        self.cleanup_locked(&mut locked, opts)
    }

    /// Cleans everything up (busy slots too, unmerged branches kept) and initialises `size`
    /// slots (default: the current size, else `pool.size`). Works on an unreadable state file.
    pub fn reset(&self, size: Option<u32>) -> Result<(CleanupReport, PoolState), PoolError> {
        let mut locked = self.store.lock_lenient()?;
        let size = size.or(locked.state.as_ref().map(|s| s.pool_size)).unwrap_or(self.spec.size);
        if size == 0 || size > MAX_SIZE {
            return Err(PoolError::InvalidSize { size });
        }
        let report = self.cleanup_locked(&mut locked, &CleanupOptions::default().force(true))?;
        self.ensure_excluded()?;
        let state = state::resized(None, size, &self.pool_dir);
        locked.save(state.clone())?;
        Ok((report, state))
    }

    /// Picks and marks a slot under the lock. Returns the slot and whether the task already held it.
    fn reserve(&self, task: &TaskId, branch: &str) -> Result<(WorktreeSlot, bool), PoolError> {
        let mut locked = self.store.lock()?;
        let mut state = match locked.state.clone() {
            Some(s) => s,
            None => {
                self.ensure_excluded()?;
                state::resized(None, self.spec.size, &self.pool_dir)
            }
        };
        if let Some(slot) = state.worktrees.iter().find(|w| w.status == SlotStatus::Busy && w.task_id.as_deref() == Some(task.as_str())) {
            return Ok((slot.clone(), true));
        }
        for w in state.worktrees.iter_mut().filter(|w| w.status != SlotStatus::Busy && !Path::new(&w.path).starts_with(&self.pool_dir)) {
            // A slot left behind by an earlier pool dir (or an edited state) moves into this one.
            w.path = self.pool_dir.join(&w.id).to_string_lossy().into_owned();
        }
        let wanted_ref = format!("refs/heads/{branch}");
        let rank = |w: &WorktreeSlot| {
            let gitdir = repo::worktree_gitdir(Path::new(&w.path));
            let holds_branch = gitdir.as_deref().and_then(repo::head_ref).is_some_and(|r| r == wanted_ref);
            (!holds_branch, gitdir.is_none())
        };
        let pick = state
            .worktrees
            .iter()
            .enumerate()
            .filter(|(_, w)| w.status == SlotStatus::Free)
            .min_by_key(|(i, w)| (rank(w), *i))
            .map(|(i, _)| i);
        let Some(i) = pick else {
            return Err(PoolError::Exhausted { size: state.pool_size });
        };
        let slot = &mut state.worktrees[i];
        slot.status = SlotStatus::Busy;
        slot.task_id = Some(task.as_str().to_owned());
        slot.branch = Some(branch.to_owned());
        slot.acquired_at = Some(fugue_core::time::now());
        let picked = slot.clone();
        locked.save(state)?;
        Ok((picked, false))
    }

    /// Puts a slot reserved for `task` back to free.
    fn unreserve(&self, slot_id: &str, task: &str) -> Result<(), PoolError> {
        let mut locked = self.store.lock()?;
        let Some(mut state) = locked.state.clone() else { return Ok(()) };
        if let Some(slot) = state.worktrees.iter_mut().find(|w| w.id == slot_id && w.task_id.as_deref() == Some(task)) {
            state::set_free(slot);
            locked.save(state)?;
        }
        Ok(())
    }

    /// Makes the slot a worktree on `branch`; returns whether it was recycled.
    fn prepare(&self, slot_id: &str, path: &Path, branch: &str, start: &Start, req: &AcquireRequest) -> Result<bool, PoolError> {
        let git = &self.repo.git;
        let sparse = match self.spec.sparse {
            Some(SparseMode::Scope) if !req.scopes.is_empty() => Some(crate::sparse::patterns(&req.scopes)),
            _ => None,
        };
        if !path.starts_with(&self.pool_dir) || self.repo.toplevel.starts_with(path) {
            return Err(PoolError::OutsidePool { action: "recycle", path: path.to_path_buf(), pool_dir: self.pool_dir.clone() });
        }
        let Some(gitdir) = repo::worktree_gitdir(path).filter(|g| g.join("HEAD").is_file()) else {
            let how = match start {
                Start::At(oid) => Checkout::NewBranch { branch, at: oid },
                Start::Existing => Checkout::Branch(branch),
            };
            self.add_worktree(path, &how, sparse.as_deref())?;
            return Ok(false);
        };
        self.clear_stale_locks(slot_id, path)?;
        let mut checkout = git.cmd(path).args(["-c", "checkout.workers=0", "checkout", "-q", "-f"]);
        checkout = match start {
            Start::At(oid) => checkout.args(["-B", branch, oid]),
            Start::Existing => checkout.arg(branch),
        };
        {
            // `checkout <branch>` lists the worktrees to refuse a branch checked out elsewhere.
            let _shared = self.admin_lock(false)?;
            checkout.arg("--").run()?;
        }
        let mut clean = git.cmd(path).args(["clean", "-ffdxq"]);
        for keep in &self.spec.keep_ignored {
            clean = clean.args(["-e", keep]);
        }
        clean.run()?;
        match &sparse {
            Some(patterns) => self.sparse_set(path, patterns)?,
            None if repo::is_sparse(&gitdir) => {
                git.cmd(path).args(["sparse-checkout", "disable"]).run()?;
            }
            None => {}
        }
        Ok(true)
    }

    /// Creates a worktree at `path`. Registering it (`worktree add --no-checkout`, milliseconds)
    /// happens under the exclusive admin lock; the files are then checked out without it
    /// (`reset --hard` with parallel checkout), after applying sparse patterns if any.
    pub(crate) fn add_worktree(&self, path: &Path, how: &Checkout<'_>, sparse: Option<&[String]>) -> Result<(), PoolError> {
        let git = &self.repo.git;
        if path.exists() {
            // A leftover directory that is not a worktree (an interrupted add, a removed admin
            // dir): it is inside the pool dir and holds no git data, so it goes.
            self.remove_slot_dir(path)?;
        }
        std::fs::create_dir_all(&self.pool_dir).map_err(PoolError::io("create the directory", &self.pool_dir))?;
        {
            let _exclusive = self.admin_lock(true)?;
            if self.is_registered(path) {
                // git still knows a worktree here whose directory is gone: `add` would refuse.
                git.cmd(&self.repo.toplevel).args(["worktree", "prune"]).run()?;
            }
            let add = git.cmd(&self.repo.toplevel).args(["worktree", "add", "-q", "--no-checkout"]);
            let add = match how {
                Checkout::NewBranch { branch, at } => add.args(["-B", branch]).arg(path).arg(at),
                Checkout::Branch(branch) => add.arg(path).arg(branch),
                Checkout::Detached(at) => add.arg("--detach").arg(path).arg(at),
            };
            add.run()?;
        }
        if let Some(patterns) = sparse {
            self.sparse_set(path, patterns)?;
        }
        git.cmd(path).args(["-c", "checkout.workers=0", "reset", "-q", "--hard", "--no-recurse-submodules"]).run()?;
        Ok(())
    }

    /// Deletes a slot directory; refuses anything not strictly inside the pool dir, so that no
    /// state file, however edited, can make the pool delete the user's files.
    pub(crate) fn remove_slot_dir(&self, path: &Path) -> Result<(), PoolError> {
        let inside =
            path.starts_with(&self.pool_dir) && path != self.pool_dir && !path.components().any(|c| c == std::path::Component::ParentDir);
        if !inside || self.repo.toplevel.starts_with(path) {
            return Err(PoolError::OutsidePool { action: "delete", path: path.to_path_buf(), pool_dir: self.pool_dir.clone() });
        }
        remove_dir(path)
    }

    /// The admin lock (see `state`): exclusive to create or prune worktrees, shared to run a
    /// git command that lists them.
    pub(crate) fn admin_lock(&self, exclusive: bool) -> Result<FileLock, PoolError> {
        // In git's common dir, not the state dir: every process that adds worktrees to this
        // repository (the pool, QA checkouts) must take the same lock.
        let path = self.repo.common_dir.join("fugue-worktrees.lock");
        if exclusive { FileLock::acquire(&path) } else { FileLock::acquire_shared(&path) }
    }

    /// `git worktree list`, under the shared admin lock.
    pub(crate) fn worktree_list(&self) -> Result<Vec<repo::WorktreeEntry>, PoolError> {
        let _shared = self.admin_lock(false)?;
        self.repo.worktrees()
    }

    /// Removes the locks a git killed mid-command left in the slot's git dir (`index.lock`,
    /// `HEAD.lock`, …: an interrupted run's commit, say), each of which would fail the slot's
    /// next git command; a lock a live process holds makes the slot [`PoolError::SlotLocked`].
    fn clear_stale_locks(&self, slot_id: &str, path: &Path) -> Result<(), PoolError> {
        let Some(gitdir) = repo::worktree_gitdir(path) else { return Ok(()) };
        let mut locks: Vec<PathBuf> = std::fs::read_dir(&gitdir)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "lock") && p.is_file()).collect())
            .unwrap_or_default();
        locks.sort();
        for lock in locks {
            if crate::health::lock_is_stale_after_waiting(&lock, path) {
                tracing::warn!(lock = %lock.display(), "removing a stale lock left by a dead git process");
                std::fs::remove_file(&lock).map_err(PoolError::io("remove", &lock))?;
            } else {
                return Err(PoolError::SlotLocked { slot: slot_id.to_owned(), lock });
            }
        }
        Ok(())
    }

    /// `git worktree prune`, under the exclusive admin lock.
    pub(crate) fn prune(&self) -> Result<(), PoolError> {
        let _exclusive = self.admin_lock(true)?;
        self.repo.git.cmd(&self.repo.toplevel).args(["worktree", "prune"]).run()?;
        Ok(())
    }

    /// `git branch -D`, under the shared admin lock (git checks the worktrees first).
    pub(crate) fn delete_branches(&self, branches: &[String]) -> Result<(), PoolError> {
        let _shared = self.admin_lock(false)?;
        for chunk in branches.chunks(200) {
            self.repo.git.cmd(&self.repo.toplevel).args(["branch", "-D", "-q"]).args(chunk).run()?;
        }
        Ok(())
    }

    /// `sparse-checkout set --no-cone`. The first one in a repository turns on
    /// `extensions.worktreeConfig` in the shared config, which two processes must not write at
    /// once; after that each worktree writes only its own config, so the lock is skipped.
    fn sparse_set(&self, path: &Path, patterns: &[String]) -> Result<(), PoolError> {
        let _guard = if repo::config_flag(&self.repo.common_dir.join("config"), "worktreeconfig") {
            None
        } else {
            Some(FileLock::acquire(&self.state_dir.join("fugue").join("git-config.lock"))?)
        };
        self.repo.git.cmd(path).args(["sparse-checkout", "set", "--no-cone"]).args(patterns).run()?;
        Ok(())
    }

    /// Whether git still registers a worktree at `path`, read from the admin dirs' `gitdir`
    /// files (no process).
    fn is_registered(&self, path: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(self.repo.common_dir.join("worktrees")) else { return false };
        let target = path.join(".git");
        entries.flatten().any(|e| std::fs::read_to_string(e.path().join("gitdir")).is_ok_and(|g| Path::new(g.trim()) == target.as_path()))
    }

    /// Detaches a linked worktree's HEAD at its current commit without touching index or
    /// files. The main worktree (whose `.git` is a directory) is never touched.
    pub(crate) fn detach(&self, path: &Path) -> Result<(), PoolError> {
        if !path.join(".git").is_file() {
            return Ok(());
        }
        let Some(head_ref) = repo::worktree_gitdir(path).and_then(|g| repo::head_ref(&g)) else { return Ok(()) };
        let detach = |at: &str| self.repo.git.cmd(path).args(["update-ref", "--no-deref", "-m", "fugue: release slot", "HEAD", at]).run();
        match detach("HEAD") {
            Ok(_) => Ok(()),
            // The branch may be gone (deleted while a task ran): HEAD is then unborn and cannot
            // be detached at itself; park it at the repository's HEAD so the slot can still be
            // freed (its files are reset when it is next recycled).
            Err(e) if self.repo.resolve(std::slice::from_ref(&head_ref))?.first().is_some_and(Option::is_none) => {
                let head = self.repo.resolve(&["HEAD".to_owned()])?.into_iter().next().flatten().ok_or(e)?;
                detach(&head)?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Creates detached worktrees at `oid`, a few at a time.
    fn create_detached(&self, paths: &[PathBuf], oid: &str) -> Result<(), PoolError> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
        for chunk in paths.chunks(workers) {
            let results: Vec<Result<(), PoolError>> = std::thread::scope(|s| {
                let handles: Vec<_> = chunk.iter().map(|p| s.spawn(move || self.add_worktree(p, &Checkout::Detached(oid), None))).collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(PoolError::Spawn {
                                command: "git worktree add".into(),
                                source: std::io::Error::other("worker thread panicked"),
                            })
                        })
                    })
                    .collect()
            });
            results.into_iter().collect::<Result<(), _>>()?;
        }
        Ok(())
    }

    /// Resolves a base name to a commit id.
    pub(crate) fn resolve_base(&self, base: &str) -> Result<String, PoolError> {
        self.repo
            .resolve(&[format!("{base}^{{commit}}")])?
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| PoolError::BaseNotFound { base: base.to_owned() })
    }

    /// Seeds a new slot's build caches from the user's checkout (`pool.seed`, see `seed`). A
    /// failure leaves that cache empty: the slot still works, its first build is cold.
    fn seed(&self, path: &Path) {
        let caches = crate::seed::plan_caches(&self.spec);
        if caches.is_empty() {
            return;
        }
        match crate::seed::seed_caches(&self.repo.toplevel, path, &caches) {
            Ok(r) if !r.seeded.is_empty() => {
                tracing::debug!(slot = %path.display(), caches = ?r.seeded, reflinked = r.reflinked, copied = r.copied, linked = r.linked, "seeded build caches");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(slot = %path.display(), error = %e, "the slot starts with an empty build cache"),
        }
    }

    /// Copies the `pool.copy` entries from the repository into the worktree. Missing sources
    /// are skipped (an `.env` that exists on one machine only).
    fn copy_files(&self, dest: &Path) -> Result<(), PoolError> {
        for entry in &self.spec.copy {
            let rel = Path::new(entry);
            if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)) {
                return Err(PoolError::InvalidCopyPath { entry: entry.clone() });
            }
            let src = self.repo.toplevel.join(rel);
            if !src.exists() {
                tracing::debug!(path = %src.display(), "pool.copy source missing, skipped");
                continue;
            }
            copy_recursive(&src, &dest.join(rel))?;
        }
        Ok(())
    }

    /// Runs the `pool.setup` commands in the worktree, in order, stopping at the first failure.
    fn run_setup(&self, dir: &Path, task: &TaskId, branch: &str) -> Result<(), PoolError> {
        for cmd in &self.spec.setup {
            run_setup_command(cmd, dir, task, branch)?;
        }
        Ok(())
    }

    /// Adds the pool dir to `info/exclude` when it lies inside the repository, so the slots
    /// never show up as untracked (or get added as embedded repositories) in the main worktree.
    pub(crate) fn ensure_excluded(&self) -> Result<(), PoolError> {
        self.ensure_excluded_after(None)
    }

    /// [`Pool::ensure_excluded`], putting the line right after `after` when the file has that
    /// line (the one it is about to replace), else at the end under a comment.
    pub(crate) fn ensure_excluded_after(&self, after: Option<&str>) -> Result<(), PoolError> {
        let Some(line) = self.exclude_line(&self.pool_dir) else { return Ok(()) };
        fugue_core::git::exclude_add(&self.repo.common_dir, &[line], "fugue worktree pool", after)
            .map_err(PoolError::io("write", self.exclude_file()))?;
        Ok(())
    }

    /// Removes `line` from `info/exclude` (a pool dir no longer in use).
    pub(crate) fn unexclude(&self, line: &str) -> Result<(), PoolError> {
        fugue_core::git::exclude_remove(&self.repo.common_dir, line).map_err(PoolError::io("write", self.exclude_file()))?;
        Ok(())
    }

    /// The `info/exclude` line for a directory inside the repository (`/rel/path/`).
    pub(crate) fn exclude_line(&self, dir: &Path) -> Option<String> {
        let rel = dir.strip_prefix(&self.repo.toplevel).ok()?;
        if rel.as_os_str().is_empty() {
            return None;
        }
        Some(format!("/{}/", rel.to_string_lossy().replace('\\', "/")))
    }

    pub(crate) fn exclude_file(&self) -> PathBuf {
        fugue_core::git::exclude_file(&self.repo.common_dir)
    }

    /// Whether `path` is one of the pool's own directories: a slot (`wt-N`) or the integration
    /// worktree, directly in the pool dir. The pool dir may hold other worktrees — the default
    /// `.claude/worktrees` is also where Claude Code puts its own — and the pool never touches
    /// those.
    pub(crate) fn owns(&self, path: &Path) -> bool {
        path.parent() == Some(self.pool_dir.as_path()) && path.file_name().and_then(|n| n.to_str()).is_some_and(is_pool_name)
    }

    fn cleanup_locked(&self, locked: &mut Locked<'_>, opts: &CleanupOptions) -> Result<CleanupReport, PoolError> {
        let _merge = FileLock::acquire(&crate::merge::merge_lock_path(&self.state_dir))?;
        let mut report = CleanupReport::default();
        let list = self.worktree_list()?;
        let mut state = locked.state.clone();
        let kept_slots: Vec<&WorktreeSlot> =
            state.iter().flat_map(|s| s.worktrees.iter()).filter(|w| !opts.force && w.status == SlotStatus::Busy).collect();
        report.skipped_busy = kept_slots.iter().map(|w| w.id.clone()).collect();
        let kept_paths: BTreeSet<PathBuf> = kept_slots.iter().map(|w| PathBuf::from(&w.path)).collect();

        let mut doomed: BTreeSet<PathBuf> = list.iter().skip(1).filter(|e| self.owns(&e.path)).map(|e| e.path.clone()).collect();
        doomed.extend(state.iter().flat_map(|s| s.worktrees.iter()).map(|w| PathBuf::from(&w.path)));
        doomed.insert(self.integration_dir());
        for path in doomed.iter().filter(|p| !kept_paths.contains(*p)) {
            if !path.exists() {
                continue;
            }
            if path.starts_with(&self.pool_dir) {
                self.remove_slot_dir(path)?;
            } else if list.iter().skip(1).any(|e| e.path == *path) {
                // A slot left in a previous pool dir: git removes its own linked worktrees
                // (and refuses to remove the main one).
                let _exclusive = self.admin_lock(true)?;
                self.repo.git.cmd(&self.repo.toplevel).args(["worktree", "remove", "--force", "--force"]).arg(path).run()?;
            } else {
                tracing::warn!(path = %path.display(), "not removing a slot path outside the pool dir that git does not know as a worktree");
                continue;
            }
            report.removed_worktrees.push(path.clone());
        }
        self.prune()?;

        // Branches still checked out somewhere (the main worktree, kept busy slots, worktrees
        // outside the pool) are not deleted even when merged.
        let protected: BTreeSet<String> =
            list.iter().filter(|e| !doomed.contains(&e.path) || kept_paths.contains(&e.path)).filter_map(|e| e.branch.clone()).collect();
        let base = match &opts.base {
            Some(b) => b.clone(),
            None => list.first().and_then(|e| e.branch.clone().or_else(|| e.head.clone())).unwrap_or_else(|| "HEAD".to_owned()),
        };
        let merged = self.auto_branches(&format!("--merged={base}"))?;
        let unmerged = self.auto_branches(&format!("--no-merged={base}"))?;
        let deletable: Vec<String> =
            merged.iter().filter(|r| !protected.contains(*r)).filter_map(|r| r.strip_prefix("refs/heads/")).map(str::to_owned).collect();
        self.delete_branches(&deletable)?;
        report.deleted_branches = deletable;
        report.kept_branches = unmerged.iter().filter_map(|r| r.strip_prefix("refs/heads/")).map(str::to_owned).collect();

        if let Some(s) = state.as_mut() {
            for w in s.worktrees.iter_mut().filter(|w| !kept_paths.contains(Path::new(&w.path))) {
                *w = state::free_slot(&w.id, &self.pool_dir);
            }
        }
        if let Some(s) = state {
            locked.save(s)?;
        }
        // Only removes the directory when it is empty.
        let _ = std::fs::remove_dir(&self.pool_dir);
        Ok(report)
    }

    /// `auto/*` branches (full ref names) selected by a `for-each-ref` filter.
    fn auto_branches(&self, filter: &str) -> Result<Vec<String>, PoolError> {
        let out = self.repo.git.cmd(&self.repo.toplevel).args(["for-each-ref", "--format=%(refname)", filter, "refs/heads/auto/"]).run()?;
        Ok(out.text().lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
    }
}

/// A name the pool gives its directories: `wt-N` or `integration`.
pub(crate) fn is_pool_name(name: &str) -> bool {
    name == INTEGRATION_DIR || name.strip_prefix("wt-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Runs one setup command without a shell.
fn run_setup_command(cmd: &CommandLine, dir: &Path, task: &TaskId, branch: &str) -> Result<(), PoolError> {
    let argv = cmd.argv();
    let program = Path::new(cmd.program());
    // A relative program with a slash (`./scripts/setup.sh`) means the worktree's copy.
    let program = if program.is_relative() && program.components().count() > 1 { dir.join(program) } else { program.to_path_buf() };
    let out = Command::new(&program)
        .args(&argv[1..])
        .current_dir(dir)
        .env("FUGUE_WORKTREE", dir)
        .env("FUGUE_TASK_ID", task.as_str())
        .env("FUGUE_BRANCH", branch)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PoolError::SetupSpawn { command: cmd.to_string(), worktree: dir.to_path_buf(), source })?;
    if out.status.success() {
        return Ok(());
    }
    let status = match out.status.code() {
        Some(c) => format!("code {c}"),
        None => signal_of(&out.status).map_or("no exit code".to_owned(), |s| format!("signal {s}")),
    };
    let stream = if out.stderr.iter().all(u8::is_ascii_whitespace) { &out.stdout } else { &out.stderr };
    Err(PoolError::Setup { command: cmd.to_string(), worktree: dir.to_path_buf(), status, stderr: crate::git::tail(stream) })
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> Option<i32> {
    None
}

fn copy_recursive(src: &Path, dest: &Path) -> Result<(), PoolError> {
    if src.is_dir() {
        std::fs::create_dir_all(dest).map_err(PoolError::io("create the directory", dest))?;
        for entry in std::fs::read_dir(src).map_err(PoolError::io("read the directory", src))? {
            let entry = entry.map_err(PoolError::io("read the directory", src))?;
            copy_recursive(&entry.path(), &dest.join(entry.file_name()))?;
        }
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(PoolError::io("create the directory", parent))?;
    }
    std::fs::copy(src, dest).map(drop).map_err(PoolError::io("copy into the worktree", dest))
}

fn remove_dir(path: &Path) -> Result<(), PoolError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PoolError::Io { action: "remove", path: path.to_path_buf(), source: e }),
    }
}

/// Canonicalizes the longest existing prefix of `path` and appends the rest, so paths compare
/// equal to the real paths git prints even when the directory does not exist yet.
pub(crate) fn canonical_lenient(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_lenient_keeps_missing_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().canonicalize().expect("canonical");
        assert_eq!(canonical_lenient(&dir.path().join("a/b")), real.join("a/b"));
        assert_eq!(canonical_lenient(dir.path()), real);
    }

    #[test]
    fn protocol_line() {
        let a = Acquired {
            slot: "wt-3".into(),
            path: "/p/wt-3".into(),
            branch: "auto/t".into(),
            base: "abc".into(),
            warm: true,
            kept_existing_branch: false,
            already_held: false,
        };
        assert_eq!(a.line(), "wt-3|/p/wt-3|auto/t");
    }
}
