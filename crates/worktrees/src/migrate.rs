//! Moving a pool out of the old default dir `.claude/worktree-pool`.
//!
//! The pool dir's default used to be the playbook's `.claude/worktree-pool`. It is now
//! `.claude/worktrees`: Claude Code refuses every file edit under a `.claude/` directory (a
//! "sensitive file") except under its own worktree folder `.claude/worktrees/`, so an agent
//! could edit nothing in a slot of the old dir. [`Pool::open`] with the default dir moves a pool
//! it finds in the old one, under the state lock and the merge lock (so no acquire, release,
//! cleanup or merge of a fugue that takes them runs meanwhile):
//!
//! 1. `info/exclude` gets the new dir's line, right after the old one, before anything moves
//!    (a moved slot never shows up as untracked in the main worktree).
//! 2. Every slot that `pool-state.json` places in the old dir is moved with `git worktree
//!    move`, which keeps its branch, its index, its uncommitted and ignored files (the build
//!    caches) — and the state is rewritten with the slot's new path at once. A held slot keeps
//!    its task. The integration worktree moves too.
//! 3. A worktree git refuses to move (it is locked, or has submodules), whose target already
//!    exists, or that some process is working in is not moved:
//!    * the integration worktree (scratch space every merge rebuilds) is removed;
//!    * a free slot is removed when it holds no work — no uncommitted change, no untracked
//!      file, a HEAD that some branch or tag contains — and the next acquire re-creates it at
//!      the new place;
//!    * anything else — a held slot, a free one with work in it — stays where it is and is
//!      named, with the reason, in [`Migration::left`] (and logged as a warning). A held slot
//!      keeps working there (its task still finds it at the path the state gives); the next
//!      open tries again.
//!
//!    Worktrees git registers in the old dir that the state has no slot for (a `wt-N` of an
//!    earlier, larger pool) are removed when they are detached and hold no work, else named;
//!    a slot directory that is not a worktree (an interrupted `worktree add`) is deleted when
//!    its slot is free; anything else in the old dir is left and named.
//! 4. When the old dir is empty it is removed, and then its `info/exclude` line.
//!
//! **Crash safety.** Each step is idempotent and the next open resumes from what is on disk:
//!
//! * The migration runs while any trace of the old pool remains — the old dir exists, or
//!   `info/exclude` still has its line, or the state still names a path in it — and the traces
//!   go in the reverse order: the exclude line only after the old dir is gone, the old dir only
//!   once it is empty, i.e. after every slot is out of it. A crash anywhere leaves a trace.
//! * `git worktree move` renames the directory, then updates git's pointer to it (the admin
//!   dir's `gitdir`). After a crash between the two — or between the move and the state write
//!   — the slot's old path is gone and its new path is a worktree: the next open runs `git
//!   worktree repair` on it, which reconnects git to it, and records the new path. Nothing is
//!   pruned before those repairs (a prune would delete the admin dir of such a worktree, its
//!   index and HEAD with it).
//! * `pool-state.json` is written atomically (temp + rename): it is the old one or the new one.
//! * A slot is removed only when it holds no work, so a crash during a removal loses none;
//!   whatever the removal left (the directory or git's registration) is finished by the next
//!   open (a directory that is no worktree is deleted, a registration without its directory
//!   pruned).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use fugue_core::PoolSpec;
use fugue_core::state::SlotStatus;
use serde::Serialize;

use crate::PoolError;
use crate::pool::{INTEGRATION_DIR, Pool, canonical_lenient, is_pool_name};
use crate::repo::WorktreeEntry;
use crate::state::FileLock;

/// The pool dir's old default, relative to the repository: a pool found there is moved to the
/// default dir (now `.claude/worktrees`) when it is opened with the default dir.
pub const LEGACY_POOL_DIR: &str = ".claude/worktree-pool";

/// What [`Pool::open`] did to a pool it found in [`LEGACY_POOL_DIR`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Migration {
    /// The old dir.
    pub from: PathBuf,
    /// The pool dir the worktrees moved to.
    pub to: PathBuf,
    /// The worktrees moved (`wt-N`, `integration`), with their branch, files and build caches.
    pub moved: Vec<String>,
    /// The worktrees that could not be moved and were removed instead, holding no work; a slot
    /// among them is re-created at the new place by its next acquire.
    pub removed: Vec<String>,
    /// What stays in the old dir, and why.
    pub left: Vec<LeftBehind>,
    /// The old dir is gone, and its `info/exclude` line with it.
    pub old_dir_removed: bool,
}

impl Migration {
    /// Nothing was left in the old dir: the next open has nothing to do.
    pub fn is_complete(&self) -> bool {
        self.left.is_empty()
    }
}

/// Something left in the old pool dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LeftBehind {
    /// `wt-N`, `integration`, or the name of whatever else is there.
    pub name: String,
    /// Where it stays.
    pub path: PathBuf,
    /// The task holding the slot, if any.
    pub task: Option<String>,
    /// Why it was not moved, and what to do.
    pub reason: String,
}

impl std::fmt::Display for LeftBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} stays in {}", self.name, self.path.display())?;
        if let Some(t) = &self.task {
            write!(f, " (held by task `{t}`)")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What became of one worktree.
enum Outcome {
    /// It is at the new place.
    Moved,
    /// It was removed (no work in it).
    Removed,
    /// There was nothing on disk.
    Gone,
    /// It stays, for this reason.
    Left(String),
}

/// Whether a worktree that cannot be moved may be removed instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposal {
    /// Never: a held slot.
    Never,
    /// When it holds no work: a free slot.
    IfNoWork,
    /// Always: the integration worktree.
    Always,
}

impl Pool {
    /// Moves a pool out of [`LEGACY_POOL_DIR`] when this pool uses the default dir (see the
    /// module docs); `None` when there was nothing to do.
    pub(crate) fn migrate_legacy(&self) -> Result<Option<Migration>, PoolError> {
        let top = &self.repo.toplevel;
        if self.pool_dir != canonical_lenient(&top.join(PoolSpec::default().dir)) {
            // An explicit dir, even `.claude/worktree-pool` itself: the pool stays where it is.
            return Ok(None);
        }
        let old = canonical_lenient(&top.join(LEGACY_POOL_DIR));
        if old == self.pool_dir || !self.legacy_traces(&old) {
            return Ok(None);
        }
        let mut locked = match self.store.lock() {
            Ok(l) => l,
            Err(PoolError::CorruptState { path, source }) => {
                // `pool reset` must still open the pool; the slots move once the state is readable.
                tracing::warn!(path = %path.display(), error = %source, "not moving the pool out of {}: its state cannot be read", old.display());
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let _merge = FileLock::acquire(&crate::merge::merge_lock_path(&self.state_dir))?;
        let old_line = self.exclude_line(&old);
        self.ensure_excluded_after(old_line.as_deref())?;
        std::fs::create_dir_all(&self.pool_dir).map_err(PoolError::io("create the directory", &self.pool_dir))?;
        let list = self.worktree_list()?;
        let mut m = Migration {
            from: old.clone(),
            to: self.pool_dir.clone(),
            moved: vec![],
            removed: vec![],
            left: vec![],
            old_dir_removed: false,
        };
        let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
        let mut prune = false;

        // The state's slots.
        let mut state = locked.state.clone();
        if let Some(s) = state.as_mut() {
            for i in 0..s.worktrees.len() {
                let slot = &s.worktrees[i];
                let src = PathBuf::from(&slot.path);
                if src.parent() != Some(old.as_path()) {
                    continue;
                }
                let (name, task) = (slot.id.clone(), slot.task_id.clone());
                let dst = self.pool_dir.join(&slot.id);
                let disposal = if slot.status == SlotStatus::Free { Disposal::IfNoWork } else { Disposal::Never };
                seen.insert(src.clone());
                match self.move_one(&src, &dst, disposal, task.as_deref(), &list, &mut prune)? {
                    Outcome::Left(reason) => m.left.push(LeftBehind { name, path: src, task, reason }),
                    outcome => {
                        s.worktrees[i].path = dst.to_string_lossy().into_owned();
                        match outcome {
                            Outcome::Moved => m.moved.push(name),
                            Outcome::Removed => m.removed.push(name),
                            _ => {}
                        }
                        locked.save(s.clone())?;
                    }
                }
            }
        }

        // Worktrees git has in the old dir that the state has no slot for.
        for e in list.iter().skip(1).filter(|e| e.path.parent() == Some(old.as_path())) {
            if !seen.insert(e.path.clone()) {
                continue;
            }
            let name = e.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let outcome = if name == INTEGRATION_DIR {
                self.move_one(&e.path, &self.pool_dir.join(INTEGRATION_DIR), Disposal::Always, None, &list, &mut prune)?
            } else if !e.path.exists() {
                prune = true;
                Outcome::Gone
            } else if !is_pool_name(&name) {
                Outcome::Left(
                    "it is not one of the pool's worktrees (they are named wt-N); move it with `git worktree move` or remove it".into(),
                )
            } else if let Some(branch) = &e.branch {
                let short = branch.strip_prefix("refs/heads/").unwrap_or(branch);
                Outcome::Left(format!(
                    "the pool's state has no slot here, yet it has branch {short} checked out (a slot of another state dir?); release or remove it, then open the pool again"
                ))
            } else {
                self.dispose(&e.path, Disposal::IfNoWork, "the pool's state has no slot here", None)?
            };
            match outcome {
                Outcome::Moved => m.moved.push(name),
                Outcome::Removed => m.removed.push(name),
                Outcome::Gone => {}
                Outcome::Left(reason) => m.left.push(LeftBehind { name, path: e.path.clone(), task: None, reason }),
            }
        }

        // Whatever else is in the old dir.
        if let Ok(entries) = std::fs::read_dir(&old) {
            for entry in entries.flatten() {
                let path = entry.path();
                if seen.contains(&path) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let reason = if is_dir && is_pool_name(&name) && !path.join(".git").exists() {
                    // A slot directory that never became a worktree (an interrupted add): no git data.
                    match std::fs::remove_dir_all(&path) {
                        Ok(()) => continue,
                        Err(e) => format!("failed to remove it: {e}"),
                    }
                } else if path.join(".git").exists() {
                    "git does not know this worktree (its admin dir is gone); copy out what you need and delete it".to_owned()
                } else {
                    "it is not part of the pool; move or delete it, and the old dir goes with the next open".to_owned()
                };
                m.left.push(LeftBehind { name, path, task: None, reason });
            }
        }

        if prune {
            // Only now: every worktree moved by a crashed migration has been repaired above.
            self.prune()?;
        }
        if old.symlink_metadata().is_err() || std::fs::remove_dir(&old).is_ok() {
            if let Some(line) = &old_line {
                self.unexclude(line)?;
            }
            m.old_dir_removed = true;
        }
        if !m.moved.is_empty() || !m.removed.is_empty() {
            tracing::info!(from = %old.display(), to = %self.pool_dir.display(), moved = ?m.moved, removed = ?m.removed, "moved the worktree pool to its new default dir");
        }
        for l in &m.left {
            tracing::warn!("{l}");
        }
        Ok(Some(m))
    }

    /// Whether anything of a pool in `old` remains (cheap: a stat and two small reads).
    fn legacy_traces(&self, old: &Path) -> bool {
        if old.symlink_metadata().is_ok() {
            return true;
        }
        if let Some(line) = self.exclude_line(old)
            && std::fs::read_to_string(self.exclude_file()).is_ok_and(|t| t.lines().any(|l| l.trim() == line))
        {
            return true;
        }
        self.store.read().ok().flatten().is_some_and(|s| s.worktrees.iter().any(|w| Path::new(&w.path).parent() == Some(old)))
    }

    /// Moves the worktree at `src` (in the old dir) to `dst`, or deals with it when it cannot
    /// be moved.
    fn move_one(
        &self,
        src: &Path,
        dst: &Path,
        disposal: Disposal,
        task: Option<&str>,
        list: &[WorktreeEntry],
        prune: &mut bool,
    ) -> Result<Outcome, PoolError> {
        if !src.join(".git").exists() {
            if src.symlink_metadata().is_ok() {
                if disposal == Disposal::Never {
                    return Ok(Outcome::Left(
                        "it is not a git worktree (it has no .git); move its files away, then run `fugue pool health --repair`".into(),
                    ));
                }
                // A free slot's directory without git data (an interrupted add or removal;
                // git may still register it).
                if list.iter().any(|e| e.path == src) {
                    *prune = true;
                }
                return Ok(match std::fs::remove_dir_all(src) {
                    Ok(()) => Outcome::Removed,
                    Err(e) => Outcome::Left(format!("it is not a git worktree, and removing it failed: {e}")),
                });
            }
            if dst.join(".git").is_file() {
                // Moved by an open that stopped before recording it — maybe before git updated
                // its own pointer to the worktree, which `repair` does now.
                let _exclusive = self.admin_lock(true)?;
                if let Err(e) = self.repo.git.cmd(&self.repo.toplevel).args(["worktree", "repair"]).arg(dst).run() {
                    tracing::warn!(worktree = %dst.display(), error = %e, "git worktree repair failed");
                }
                return Ok(Outcome::Moved);
            }
            if list.iter().any(|e| e.path == src) {
                *prune = true;
            }
            return Ok(Outcome::Gone);
        }
        if let Some(pid) = crate::health::process_inside(src) {
            return Ok(Outcome::Left(format!("process {pid} is working in it; when it is done, open the pool again to move it")));
        }
        let refused = if dst.symlink_metadata().is_ok() {
            // `worktree move` would move it *into* an existing directory.
            format!("{} already exists", dst.display())
        } else {
            let out = {
                let _exclusive = self.admin_lock(true)?;
                self.repo.git.cmd(&self.repo.toplevel).args(["worktree", "move"]).arg(src).arg(dst).output()?
            };
            if out.success() {
                return Ok(Outcome::Moved);
            }
            format!("git refused to move it ({})", crate::git::tail(&out.stderr).replace('\n', " "))
        };
        self.dispose(src, disposal, &refused, task)
    }

    /// Removes a worktree that could not be moved, when `disposal` allows it.
    fn dispose(&self, src: &Path, disposal: Disposal, why: &str, task: Option<&str>) -> Result<Outcome, PoolError> {
        match disposal {
            Disposal::Never => {
                let held = task.map_or("it is held".to_owned(), |t| format!("task `{t}` holds it"));
                return Ok(Outcome::Left(format!(
                    "{why}; {held}, so it stays where it is and keeps working there — after its release, the next open moves it"
                )));
            }
            Disposal::IfNoWork => match self.work_in(src) {
                Ok(None) => {}
                Ok(Some(work)) => {
                    return Ok(Outcome::Left(format!(
                        "{why}; it holds {work}, so it stays where it is — commit or delete that, then open the pool again"
                    )));
                }
                Err(e) => {
                    return Ok(Outcome::Left(format!("{why}; whether it holds work could not be checked ({e}), so it stays where it is")));
                }
            },
            Disposal::Always => {}
        }
        let removed = {
            let _exclusive = self.admin_lock(true)?;
            // Twice forced: a clean slot git keeps locked (an interrupted `worktree add` leaves
            // it locked) or with submodules is removed all the same.
            self.repo.git.cmd(&self.repo.toplevel).args(["worktree", "remove", "--force", "--force"]).arg(src).run()
        };
        Ok(match removed {
            Ok(_) => Outcome::Removed,
            Err(e) => Outcome::Left(format!("{why}; removing it failed too: {e}")),
        })
    }

    /// Work a worktree holds that removing it would lose: uncommitted changes, untracked files,
    /// or commits no branch or tag contains. Ignored files (build caches) do not count.
    fn work_in(&self, wt: &Path) -> Result<Option<String>, PoolError> {
        let git = &self.repo.git;
        let status = git.cmd(wt).args(["status", "--porcelain", "--untracked-files=all"]).run()?.text();
        let changed: Vec<&str> = status.lines().filter(|l| l.len() > 3).map(|l| &l[3..]).collect();
        if !changed.is_empty() {
            let mut shown = changed.iter().take(3).copied().collect::<Vec<_>>().join(", ");
            if changed.len() > 3 {
                shown.push_str(&format!(" and {} more", changed.len() - 3));
            }
            return Ok(Some(format!("uncommitted changes ({shown})")));
        }
        if !git.cmd(wt).args(["rev-parse", "-q", "--verify", "HEAD"]).output()?.success() {
            return Ok(None);
        }
        let lost = git.cmd(wt).args(["rev-list", "-n", "1", "HEAD", "--not", "--branches", "--tags", "--remotes"]).run()?.text();
        Ok((!lost.is_empty()).then(|| format!("commits on no branch (its detached HEAD {})", lost.get(..12).unwrap_or(&lost))))
    }
}
