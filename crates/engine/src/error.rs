//! The engine's errors.

use std::path::{Path, PathBuf};

use fugue_core::PlanError;

use crate::journal::JournalError;

/// Why a run could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The plan could not be planned (a cycle).
    #[error(transparent)]
    Plan(PlanError),
    /// Another fugue process runs in this repository.
    #[error("{0}")]
    RunLock(String),
    /// A previous run was interrupted.
    #[error("run {execution_id} in {} did not finish: continue it with `fugue resume`, or move {}/fugue aside to start over", state_dir.display(), state_dir.display())]
    Unfinished {
        /// The run.
        execution_id: String,
        /// The state dir.
        state_dir: PathBuf,
    },
    /// `resume` found no run.
    #[error("there is no run to resume in {}: start one with `fugue run PLAN`", state_dir.display())]
    NothingToResume {
        /// The state dir.
        state_dir: PathBuf,
    },
    /// `resume` found a finished run.
    #[error("run {execution_id} already finished; `fugue report` shows it")]
    AlreadyFinished {
        /// The run.
        execution_id: String,
    },
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A state file is not what fugue wrote.
    #[error("failed to read {}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An I/O error.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: String,
        /// Where.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// git failed or is missing.
    #[error("{0}")]
    Git(String),
    /// The worktree pool failed.
    #[error("worktree pool: {0}")]
    Pool(String),
    /// The lock manager failed.
    #[error("locks: {0}")]
    Locks(String),
    /// An agent could not be set up.
    #[error("{0}")]
    Agent(String),
    /// The executor (a cluster scheduler) cannot run the agents.
    #[error("{0}")]
    Executor(String),
    /// Bad input that is not a plan (a bad directory, a bad option).
    #[error("{0}")]
    Input(String),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    pub(crate) fn io(action: &str, path: &Path, source: std::io::Error) -> Self {
        EngineError::Io { action: action.to_owned(), path: path.to_owned(), source }
    }

    pub(crate) fn join(e: tokio::task::JoinError) -> Self {
        EngineError::Internal(format!("a task panicked or was cancelled: {e}"))
    }

    /// True for problems with the user's input rather than the environment.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            EngineError::Plan(_)
                | EngineError::Unfinished { .. }
                | EngineError::NothingToResume { .. }
                | EngineError::AlreadyFinished { .. }
                | EngineError::Agent(_)
                | EngineError::Input(_)
        )
    }
}
