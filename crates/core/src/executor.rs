//! The `Executor` trait: how an agent's process gets started.
//!
//! The command agent does not spawn processes itself; it describes one ([`ProcessSpec`]) and
//! hands it to an executor. The local executor runs it as a child process group on this
//! machine; a cluster executor (Slurm) submits it as a job. The contract is deliberately
//! narrow — argv, working directory, environment, optional stdin, a timeout, an output cap —
//! so that a batch scheduler can honour all of it. Cancellation is by dropping the future:
//! an executor must then stop the process (kill the group, `scancel` the job).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One process to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessSpec {
    /// Who asked (a task id), for job names and logs.
    pub label: String,
    /// Program and arguments; no shell is involved.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Bytes written to standard input, which is then closed.
    pub stdin: Option<Vec<u8>>,
    /// Stop the process after this long (SIGTERM to its group, then SIGKILL after `grace`).
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Keep at most this many bytes of combined output in the outcome (head and tail).
    pub output_cap: usize,
    /// Also append the output to this file.
    pub log_file: Option<PathBuf>,
}

impl ProcessSpec {
    /// A spec with defaults: no stdin, no timeout, 2 s grace, 256 KiB of output kept.
    pub fn new(label: impl Into<String>, argv: Vec<String>, cwd: impl Into<PathBuf>) -> Self {
        Self {
            label: label.into(),
            argv,
            cwd: cwd.into(),
            env: BTreeMap::new(),
            stdin: None,
            timeout: None,
            grace: Duration::from_secs(2),
            output_cap: 256 * 1024,
            log_file: None,
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessOutcome {
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when it was killed.
    pub signal: Option<i32>,
    /// True when the timeout stopped it.
    pub timed_out: bool,
    /// Combined stdout and stderr (lossy UTF-8), capped.
    pub output: String,
    /// Output bytes dropped by the cap.
    pub dropped_bytes: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// The scheduler's job id, for executors that have one.
    pub job_id: Option<String>,
}

impl ProcessOutcome {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// Why a process could not be run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The program could not be started (not found, not executable, bad cwd).
    #[error("failed to start `{program}` in {}: {message}", cwd.display())]
    Spawn {
        /// The program.
        program: String,
        /// The working directory.
        cwd: PathBuf,
        /// Why.
        message: String,
    },
    /// The scheduler refused or lost the job.
    #[error("failed to run `{label}` on {executor}: {message}")]
    Scheduler {
        /// The executor.
        executor: String,
        /// The spec's label.
        label: String,
        /// Why.
        message: String,
    },
}

/// Starts processes for agents.
#[async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// The executor's name (`local`, `slurm`).
    fn name(&self) -> &str;

    /// Runs `spec` to completion (or timeout) and reports how it ended.
    async fn run(&self, spec: ProcessSpec) -> Result<ProcessOutcome, ExecError>;
}
