//! The one CLI error type, and how it maps to exit codes.
//!
//! `0` success, `1` the run finished with failed or blocked tasks, `2` bad input or usage,
//! `3` internal or environment error.

use std::process::ExitCode;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Bad input: an invalid plan, a schema violation, a bad argument. Exit 2.
    #[error("{0}")]
    Input(String),
    /// Bad input with a rendered diagnostic (already formatted with file, line, column). Exit 2.
    #[error("{0:?}")]
    Diagnostic(miette::Report),
    /// The environment is wrong (git missing, unwritable dir) or fugue failed. Exit 3.
    #[error("{0}")]
    Environment(String),
    /// The command ran and reports failure (failed tasks, exhausted pool, findings). Exit 1.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Input(_) | CliError::Diagnostic(_) => 2,
            CliError::Environment(_) => 3,
        }
    }

    /// Wraps any error as an environment error with context.
    pub fn env(context: &str, err: impl std::fmt::Display) -> Self {
        CliError::Environment(format!("{context}: {err}"))
    }
}

/// The result of a command: an exit code to finish with, or an error.
pub type CliResult = Result<ExitCode, CliError>;
