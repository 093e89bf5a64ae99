//! Pool health: counting the problems that really break worktrees, and repairing them.
//!
//! Problems found (two git calls, `worktree list --porcelain` and `worktree prune --dry-run
//! -v`, plus reads of small files and, only when an `index.lock` exists, of `/proc`):
//!
//! * **missing slot dir** — a busy slot whose directory is gone. Repair: prune git's stale
//!   admin dir and re-create the worktree on the slot's branch (or free the slot when the
//!   branch is gone too).
//! * **stale `index.lock`** — in a pool worktree's git dir, left by a git process that died.
//!   The rule, on Linux: the lock is stale when it is at least [`STALE_LOCK_MIN_AGE`] old
//!   (git holds it for milliseconds; the age only closes the window between a process's last
//!   write and its rename), no process has the lock file open (`/proc/*/fd`), and no `git`
//!   process (`/proc/*/comm` starting with `git`) has its working directory inside that
//!   worktree. Without `/proc` only the age counts, with [`STALE_LOCK_MIN_AGE_NO_PROC`].
//!   Repair: re-check, then remove the file.
//! * **prunable worktree** — an admin dir under `.git/worktrees/` whose worktree is gone, as
//!   `git worktree prune --dry-run -v` reports it. Repair: `git worktree prune`.
//! * **branch checked out twice** — two worktrees on one branch (possible with `worktree add
//!   -f`; a commit in one silently desynchronises the other). Repair: detach every pool
//!   worktree holding it except the busy slot that owns it, leaving non-pool worktrees alone
//!   (among them any other worktree in the pool dir that is not a `wt-N` slot, such as Claude
//!   Code's own in `.claude/worktrees/`).
//! * **broken slot** — marked broken in the state. Repair: mark it free.
//! * **not a worktree** — a slot directory without a `.git` file. Repair: remove it (the next
//!   acquire re-creates the slot).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fugue_core::state::{PoolState, SlotStatus};
use serde::Serialize;

use crate::pool::{Checkout, Pool};
use crate::repo::{self, WorktreeEntry};
use crate::{PoolError, state};

/// The youngest an `index.lock` can be and count as stale (when `/proc` can be read).
pub const STALE_LOCK_MIN_AGE: Duration = Duration::from_secs(1);
/// The youngest an `index.lock` can be and count as stale when processes cannot be inspected.
pub const STALE_LOCK_MIN_AGE_NO_PROC: Duration = Duration::from_secs(600);

/// One problem found by [`Pool::health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Problem {
    /// A busy slot whose directory is gone.
    MissingSlotDir {
        /// `wt-N`.
        slot: String,
        /// Its path.
        path: PathBuf,
        /// The branch it held.
        branch: Option<String>,
    },
    /// An `index.lock` whose process is gone.
    StaleIndexLock {
        /// The lock file.
        lock: PathBuf,
        /// The worktree it locks.
        worktree: PathBuf,
    },
    /// An admin dir git would prune.
    Prunable {
        /// `worktrees/<name>`.
        admin: String,
        /// Why git would prune it.
        reason: String,
    },
    /// A branch checked out in more than one worktree.
    BranchCheckedOutTwice {
        /// The branch (`refs/heads/…`).
        branch: String,
        /// The worktrees holding it.
        worktrees: Vec<PathBuf>,
    },
    /// A slot marked broken.
    BrokenSlot {
        /// `wt-N`.
        slot: String,
    },
    /// A slot directory that is not a git worktree.
    NotAWorktree {
        /// `wt-N`.
        slot: String,
        /// Its path.
        path: PathBuf,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::MissingSlotDir { slot, path, branch } => {
                write!(f, "missing-slot-dir: {slot} is busy but {} does not exist", path.display())?;
                if let Some(b) = branch {
                    write!(f, " (branch {b})")?;
                }
                Ok(())
            }
            Problem::StaleIndexLock { lock, .. } => write!(f, "stale-index-lock: {} (no git process holds it)", lock.display()),
            Problem::Prunable { admin, reason } => write!(f, "prunable-worktree: {admin}: {reason}"),
            Problem::BranchCheckedOutTwice { branch, worktrees } => {
                let list: Vec<String> = worktrees.iter().map(|p| p.display().to_string()).collect();
                write!(f, "branch-checked-out-twice: {branch} in {}", list.join(", "))
            }
            Problem::BrokenSlot { slot } => write!(f, "broken-slot: {slot} is marked broken"),
            Problem::NotAWorktree { slot, path } => write!(f, "not-a-worktree: {slot}: {} has no .git", path.display()),
        }
    }
}

/// What [`Pool::health`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

impl HealthReport {
    /// No problems.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What [`Pool::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RepairReport {
    /// The problems repaired.
    pub repaired: Vec<Problem>,
    /// The problems still there after repairing (a fresh health check).
    pub remaining: Vec<Problem>,
}

impl Pool {
    /// Counts the pool's problems (see the module docs). Read-only.
    pub fn health(&self) -> Result<HealthReport, PoolError> {
        let state = self.store.read()?;
        self.check(state.as_ref())
    }

    /// Repairs what [`Pool::health`] finds, then checks again.
    pub fn repair(&self) -> Result<RepairReport, PoolError> {
        let mut locked = self.store.lock_lenient()?;
        let mut state = locked.state.clone();
        let found = self.check(state.as_ref())?;
        let mut repaired = Vec::new();
        if found.problems.iter().any(|p| matches!(p, Problem::Prunable { .. } | Problem::MissingSlotDir { .. })) {
            self.prune()?;
        }
        for problem in &found.problems {
            let fixed = match problem {
                Problem::Prunable { .. } => true,
                Problem::StaleIndexLock { lock, worktree } => {
                    if lock_is_stale(lock, worktree) {
                        std::fs::remove_file(lock).map_err(PoolError::io("remove", lock))?;
                        true
                    } else {
                        false
                    }
                }
                Problem::MissingSlotDir { slot, path, branch } => self.restore_slot(state.as_mut(), slot, path, branch.as_deref())?,
                Problem::BrokenSlot { slot } => {
                    if let Some(w) = state.as_mut().and_then(|s| s.worktrees.iter_mut().find(|w| &w.id == slot)) {
                        state::set_free(w);
                    }
                    true
                }
                Problem::NotAWorktree { path, .. } => {
                    self.remove_slot_dir(path)?;
                    true
                }
                Problem::BranchCheckedOutTwice { branch, worktrees } => self.undouble(state.as_ref(), branch, worktrees)?,
            };
            if fixed {
                repaired.push(problem.clone());
            }
        }
        if let Some(s) = state
            && Some(&s) != locked.state.as_ref()
        {
            locked.save(s)?;
        }
        let remaining = self.check(locked.state.as_ref())?.problems;
        Ok(RepairReport { repaired, remaining })
    }

    fn check(&self, state: Option<&PoolState>) -> Result<HealthReport, PoolError> {
        let mut problems = Vec::new();
        let list = self.worktree_list()?;
        let slots = state.map(|s| s.worktrees.as_slice()).unwrap_or_default();

        for slot in slots {
            let path = Path::new(&slot.path);
            match slot.status {
                SlotStatus::Broken => problems.push(Problem::BrokenSlot { slot: slot.id.clone() }),
                SlotStatus::Busy if !path.exists() => {
                    problems.push(Problem::MissingSlotDir { slot: slot.id.clone(), path: path.to_path_buf(), branch: slot.branch.clone() })
                }
                _ => {}
            }
            if path.exists() && !path.join(".git").exists() {
                problems.push(Problem::NotAWorktree { slot: slot.id.clone(), path: path.to_path_buf() });
            }
        }

        let mut pool_worktrees: Vec<&Path> = list.iter().filter(|e| self.owns(&e.path)).map(|e| e.path.as_path()).collect();
        for slot in slots {
            let p = Path::new(&slot.path);
            if !pool_worktrees.contains(&p) {
                pool_worktrees.push(p);
            }
        }
        for wt in pool_worktrees {
            let Some(gitdir) = repo::worktree_gitdir(wt) else { continue };
            let lock = gitdir.join("index.lock");
            if lock.exists() && lock_is_stale(&lock, wt) {
                problems.push(Problem::StaleIndexLock { lock, worktree: wt.to_path_buf() });
            }
        }

        let out = {
            let _shared = self.admin_lock(false)?;
            self.repo.git.cmd(&self.repo.toplevel).args(["worktree", "prune", "--dry-run", "-v"]).run()?
        };
        // `Removing worktrees/<name>: <reason>`; git prints it on stderr (older versions on stdout).
        let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        for line in text.lines() {
            if let Some((admin, reason)) = line.strip_prefix("Removing ").and_then(|r| r.split_once(": ")) {
                problems.push(Problem::Prunable { admin: admin.to_owned(), reason: reason.to_owned() });
            }
        }

        let mut by_branch: BTreeMap<&str, Vec<&WorktreeEntry>> = BTreeMap::new();
        for e in list.iter().filter(|e| e.prunable.is_none()) {
            if let Some(b) = &e.branch {
                by_branch.entry(b.as_str()).or_default().push(e);
            }
        }
        for (branch, entries) in by_branch.into_iter().filter(|(_, v)| v.len() > 1) {
            problems.push(Problem::BranchCheckedOutTwice {
                branch: branch.to_owned(),
                worktrees: entries.iter().map(|e| e.path.clone()).collect(),
            });
        }
        Ok(HealthReport { problems })
    }

    /// Re-creates a busy slot's missing worktree on its branch; frees the slot when the branch
    /// is gone. The admin dir has already been pruned.
    fn restore_slot(&self, state: Option<&mut PoolState>, slot: &str, path: &Path, branch: Option<&str>) -> Result<bool, PoolError> {
        let exists = match branch {
            Some(b) => self.repo.resolve(&[format!("refs/heads/{b}")])?.first().is_some_and(Option::is_some),
            None => false,
        };
        match (branch, exists) {
            (Some(b), true) => self.add_worktree(path, &Checkout::Branch(b), None)?,
            _ => {
                if let Some(w) = state.and_then(|s| s.worktrees.iter_mut().find(|w| w.id == slot)) {
                    state::set_free(w);
                }
            }
        }
        Ok(true)
    }

    /// Detaches the pool worktrees holding `branch`, except the busy slot that owns it (or,
    /// when none does, one worktree outside the pool, else the first). Non-pool worktrees are
    /// never touched.
    fn undouble(&self, state: Option<&PoolState>, branch: &str, worktrees: &[PathBuf]) -> Result<bool, PoolError> {
        let short = branch.strip_prefix("refs/heads/").unwrap_or(branch);
        let owner = state
            .and_then(|s| s.worktrees.iter().find(|w| w.status == SlotStatus::Busy && w.branch.as_deref() == Some(short)))
            .map(|w| PathBuf::from(&w.path));
        let in_pool = |p: &Path| self.owns(p);
        let keep = owner
            .filter(|o| worktrees.contains(o))
            .or_else(|| worktrees.iter().find(|p| !in_pool(p)).cloned())
            .or_else(|| worktrees.first().cloned());
        let mut holders = worktrees.len();
        for wt in worktrees {
            if Some(wt) != keep.as_ref() && in_pool(wt) {
                self.detach(wt)?;
                holders -= 1;
            }
        }
        Ok(holders <= 1)
    }
}

/// Is this `index.lock` left behind by a dead process? See the module docs for the rule.
pub(crate) fn lock_is_stale(lock: &Path, worktree: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(lock) else { return false };
    let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).unwrap_or_default();
    match proc_holders(lock, worktree) {
        Some(held) => !held && age >= STALE_LOCK_MIN_AGE,
        None => age >= STALE_LOCK_MIN_AGE_NO_PROC,
    }
}

/// [`lock_is_stale`], but a lock no process holds that is merely too young is waited out (at
/// most [`STALE_LOCK_MIN_AGE`]) rather than taken for a live one: a task that retries right
/// after a git it started died must not find its slot "held".
pub(crate) fn lock_is_stale_after_waiting(lock: &Path, worktree: &Path) -> bool {
    if lock_is_stale(lock, worktree) {
        return true;
    }
    let age = std::fs::metadata(lock).ok().and_then(|m| m.modified().ok()).and_then(|m| SystemTime::now().duration_since(m).ok());
    match (age, proc_holders(lock, worktree)) {
        (Some(age), Some(false)) if age < STALE_LOCK_MIN_AGE => {
            std::thread::sleep(STALE_LOCK_MIN_AGE - age);
            lock_is_stale(lock, worktree)
        }
        _ => false,
    }
}

/// Whether any process has `lock` open or is a git process working inside `worktree`;
/// `None` when `/proc` cannot be read.
fn proc_holders(lock: &Path, worktree: &Path) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let lock = lock.canonicalize().unwrap_or_else(|_| lock.to_path_buf());
    let worktree = worktree.canonicalize().unwrap_or_else(|_| worktree.to_path_buf());
    let me = std::process::id().to_string();
    let mut saw_any = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        if pid == me {
            continue;
        }
        saw_any = true;
        let proc_dir = entry.path();
        let is_git = std::fs::read_to_string(proc_dir.join("comm")).is_ok_and(|c| c.trim_end().starts_with("git"));
        if is_git && std::fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd.starts_with(&worktree)) {
            return Some(true);
        }
        if let Ok(fds) = std::fs::read_dir(proc_dir.join("fd"))
            && fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == lock))
        {
            return Some(true);
        }
    }
    saw_any.then_some(false)
}

/// A process (other than this one) whose working directory is inside `dir`, such as an agent
/// still running in a slot; `None` when there is none or `/proc` cannot be read.
pub(crate) fn process_inside(dir: &Path) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let me = std::process::id();
    entries.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        (pid != me && std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn young_or_held_locks_are_not_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("index.lock");
        std::fs::write(&lock, b"").expect("write");
        assert!(!lock_is_stale(&lock, dir.path()), "a fresh lock may belong to a process that just started");
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&lock).and_then(|f| f.set_modified(old)).expect("age");
        if Path::new("/proc/self/fd").exists() {
            assert!(lock_is_stale(&lock, dir.path()));
            // Holding the file open (as git does while it writes the index) makes it live.
            let held = std::fs::File::open(&lock).expect("open");
            let mut child = std::process::Command::new("sleep").arg("30").stdin(held).spawn().expect("spawn sleep");
            let live = lock_is_stale(&lock, dir.path());
            let _ = child.kill();
            let _ = child.wait();
            assert!(!live, "a lock some process holds open is not stale");
        }
        assert!(!lock_is_stale(&dir.path().join("absent"), dir.path()));
    }

    #[test]
    fn problems_display() {
        let p = Problem::BranchCheckedOutTwice { branch: "refs/heads/auto/x".into(), worktrees: vec!["/a".into(), "/b".into()] };
        assert_eq!(p.to_string(), "branch-checked-out-twice: refs/heads/auto/x in /a, /b");
        let p = Problem::Prunable { admin: "worktrees/wt-2".into(), reason: "gitdir file points to non-existent location".into() };
        assert_eq!(p.to_string(), "prunable-worktree: worktrees/wt-2: gitdir file points to non-existent location");
    }
}
