//! The pool's view of fugue's one git runner ([`fugue_core::git`]).
//!
//! Every git call of the crate goes through [`Git::cmd`] from core: `git -C <dir> …` with the
//! environment variables that would redirect git elsewhere removed (fugue may itself run from a
//! git hook, where `GIT_DIR` and `GIT_INDEX_FILE` point at the caller's repository) and terminal
//! prompts off. A failure becomes [`PoolError::Git`] naming the command, the directory, the exit
//! code and the tail of stderr, so a message is enough to reproduce it by hand. This module
//! only re-exports the runner and turns a finished command into the crate's error.

use std::path::PathBuf;

pub(crate) use fugue_core::git::{Git, GitError, GitOutput, tail};

use crate::PoolError;

/// The error for a git command that exited non-zero.
pub(crate) fn failure(command: String, dir: PathBuf, out: &GitOutput) -> PoolError {
    PoolError::Git(GitError::failed(command, dir, out))
}
