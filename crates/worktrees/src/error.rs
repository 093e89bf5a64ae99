//! The one error type of the crate.
//!
//! Every message says what failed, names the path, command or branch involved, and where it
//! helps, what to do about it. [`PoolError::class`] sorts the variants the way a caller maps
//! them to outcomes: bad input, an environment problem, or an operation that ran and failed.

use std::path::PathBuf;

/// How a caller should treat an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The request was wrong (unknown slot, bad task id, missing branch): fix the input.
    Input,
    /// The operation ran and could not be done (pool exhausted, target dirty, setup failed).
    Failed,
    /// The environment is broken (git missing, I/O error, corrupt state, git failure).
    Environment,
}

/// Everything the pool and the merge coordinator can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A git command could not be run or failed (names the command, its exit code and stderr).
    #[error(transparent)]
    Git(#[from] fugue_core::git::GitError),
    /// A process could not be started or waited for.
    #[error("failed to run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The repository path is not inside a git work tree.
    #[error("failed to open {path} as a git repository: {detail}; pass --repo with the path of a non-bare git checkout")]
    NotARepository {
        /// The path given.
        path: PathBuf,
        /// What git said.
        detail: String,
    },
    /// A file or directory operation failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done ("write", "remove", "create the directory", …).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `pool-state.json` (or another state file) cannot be parsed.
    #[error("failed to parse {path}: {source}; fix the file, or run `fugue pool reset` to rebuild the pool (branches are kept)")]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// Every slot is busy or broken.
    #[error(
        "failed to acquire a worktree: all {size} slots are busy or broken; release one (`fugue pool release wt-N`) or grow the pool (`fugue pool init N`)"
    )]
    Exhausted {
        /// The pool size.
        size: u32,
    },
    /// A task id is not valid.
    #[error("failed to acquire a worktree: {0}")]
    InvalidTask(#[from] fugue_core::TaskIdError),
    /// A slot id that is not in the pool.
    #[error("failed to find slot `{slot}` in the pool: valid ids are wt-1 … wt-{size}; see `fugue pool status`")]
    UnknownSlot {
        /// The id given.
        slot: String,
        /// The pool size.
        size: u32,
    },
    /// The pool cannot shrink past busy slots.
    #[error("failed to resize the pool to {size}: slot {slot} is busy with task `{task}`; release it first")]
    ShrinkBusy {
        /// The requested size.
        size: u32,
        /// The busy slot.
        slot: String,
        /// Its task.
        task: String,
    },
    /// A pool dir that would hold the repository itself.
    #[error("failed to use {dir} as the pool dir: {reason}; pick a directory of its own, such as the default .claude/worktrees")]
    InvalidPoolDir {
        /// The pool dir.
        dir: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A path outside the pool dir that the pool refuses to change.
    #[error("refusing to {action} {path}: it is not a slot inside the pool dir {pool_dir}")]
    OutsidePool {
        /// What was refused ("delete", "recycle").
        action: &'static str,
        /// The directory.
        path: PathBuf,
        /// The pool dir.
        pool_dir: PathBuf,
    },
    /// A pool size of zero or over the limit.
    #[error("failed to size the pool: {size} is not between 1 and 256")]
    InvalidSize {
        /// The size given.
        size: u32,
    },
    /// The base to branch from does not name a commit.
    #[error("failed to resolve base `{base}` to a commit: name an existing branch, tag or commit")]
    BaseNotFound {
        /// The base given.
        base: String,
    },
    /// A `pool.copy` entry that is not a relative path inside the repository.
    #[error("failed to copy `{entry}` into the worktree: pool.copy entries must be relative paths inside the repository, without `..`")]
    InvalidCopyPath {
        /// The entry.
        entry: String,
    },
    /// A `pool.setup` command exited non-zero.
    #[error("failed to set up worktree {worktree}: `{command}` exited with {status}{tail}; fix the command in pool.setup", tail = stderr_suffix(stderr))]
    Setup {
        /// The command as written.
        command: String,
        /// The worktree.
        worktree: PathBuf,
        /// "code N" or "signal N".
        status: String,
        /// The tail of its stderr (or stdout when stderr is empty).
        stderr: String,
    },
    /// A `pool.setup` command could not be started.
    #[error("failed to start setup command `{command}` in {worktree}: {source}; check that the program exists and is executable")]
    SetupSpawn {
        /// The command as written.
        command: String,
        /// The worktree.
        worktree: PathBuf,
        /// The spawn error.
        source: std::io::Error,
    },
    /// A slot's index is locked by a running git process.
    #[error(
        "failed to recycle slot {slot}: {lock} is held by a running git process (or, without /proc, is younger than 10 minutes); wait for it, or stop it and run `fugue pool health --repair`"
    )]
    SlotLocked {
        /// The slot.
        slot: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// The merge target does not exist.
    #[error("failed to merge into `{target}`: no branch refs/heads/{target}; name an existing branch")]
    TargetNotFound {
        /// The target given.
        target: String,
    },
    /// No target given and the main worktree is on a detached HEAD.
    #[error("failed to pick a merge target: the main worktree is on a detached HEAD; name the target branch")]
    NoTarget,
    /// The target is checked out in a worktree with uncommitted changes.
    #[error(
        "refusing to merge into `{target}`: it is checked out in {worktree} with uncommitted changes ({files}); commit or stash them, then merge again — the branch was not moved",
        files = summarize(files)
    )]
    TargetDirty {
        /// The target branch.
        target: String,
        /// Where it is checked out.
        worktree: PathBuf,
        /// The changed files.
        files: Vec<String>,
    },
    /// The target moved while merging (compare-and-swap failed).
    #[error("failed to move `{target}` to the merge result: it changed during the merge (expected {expected}); run the merge again")]
    TargetMoved {
        /// The target branch.
        target: String,
        /// The commit it had when the merge started.
        expected: String,
    },
    /// The target's worktree could not be fast-forwarded.
    #[error("failed to fast-forward `{target}` in {worktree}: {detail}; the branch was not moved — resolve this and merge again")]
    FastForward {
        /// The target branch.
        target: String,
        /// Where it is checked out.
        worktree: PathBuf,
        /// What git said.
        detail: String,
    },
}

impl PoolError {
    /// How a caller should treat this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            PoolError::InvalidTask(_)
            | PoolError::UnknownSlot { .. }
            | PoolError::InvalidSize { .. }
            | PoolError::BaseNotFound { .. }
            | PoolError::InvalidCopyPath { .. }
            | PoolError::TargetNotFound { .. }
            | PoolError::NoTarget
            | PoolError::InvalidPoolDir { .. }
            | PoolError::NotARepository { .. } => ErrorClass::Input,
            PoolError::Exhausted { .. }
            | PoolError::ShrinkBusy { .. }
            | PoolError::Setup { .. }
            | PoolError::SetupSpawn { .. }
            | PoolError::SlotLocked { .. }
            | PoolError::OutsidePool { .. }
            | PoolError::TargetDirty { .. }
            | PoolError::TargetMoved { .. }
            | PoolError::FastForward { .. } => ErrorClass::Failed,
            PoolError::Spawn { .. } | PoolError::Git(_) | PoolError::Io { .. } | PoolError::CorruptState { .. } => ErrorClass::Environment,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PoolError {
        let path = path.into();
        move |source| PoolError::Io { action, path, source }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() { String::new() } else { format!(":\n{stderr}\n") }
}

fn summarize(files: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = files.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if files.len() > SHOWN {
        s.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_thing_and_the_fix() {
        let e = PoolError::TargetDirty { target: "main".into(), worktree: "/r".into(), files: (0..7).map(|i| format!("f{i}")).collect() };
        let m = e.to_string();
        assert!(m.contains("`main`") && m.contains("/r") && m.contains("f0, f1, f2, f3, f4 and 2 more") && m.contains("not moved"), "{m}");
        assert_eq!(e.class(), ErrorClass::Failed);
        let e = PoolError::Git(fugue_core::git::GitError::Failed {
            command: "git x".into(),
            dir: "/d".into(),
            code: None,
            stderr: "boom".into(),
        });
        assert!(e.to_string().contains("killed by a signal"));
        let e = PoolError::Setup { command: "make".into(), worktree: "/w".into(), status: "code 2".into(), stderr: "no rule".into() };
        assert!(e.to_string().contains("`make` exited with code 2:\nno rule"), "{e}");
    }
}
