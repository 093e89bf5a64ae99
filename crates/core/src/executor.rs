//! The `Executor` trait: how an agent's process gets started.
//!
//! The command agent does not spawn processes itself; it describes one ([`ProcessSpec`]) and
//! hands it to an executor. The local executor runs it as a child process group on this
//! machine; a cluster executor (Slurm) submits it as a job. The contract is deliberately
//! narrow — argv, working directory, environment, optional stdin, a timeout, an output cap, a
//! log file — so that a batch scheduler can honour all of it. Cancellation is by dropping the
//! future: an executor must then stop the process (kill the group, `scancel` the job).
//!
//! The spec and the outcome are plain data (serde), so an executor can ship them elsewhere;
//! they hold no handles, only what a job script needs. How the process ended is reported, not
//! judged: turning an exit code or a signal into success or failure is the caller's business.
//!
//! A scheduler's jobs outlive the process that submitted them. So that a crashed orchestrator
//! does not submit the same work twice, an executor that has job ids reports each one to an
//! [`ExecObserver`] as soon as the scheduler accepts it (the engine journals it), and a spec
//! may carry the id of a job an earlier process started for it ([`ProcessSpec::attach_job`]):
//! the executor then waits for that job, or collects its result, instead of submitting again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One process to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessSpec {
    /// Who asked (a task id), for job names and logs.
    pub label: String,
    /// Program and arguments; no shell is involved.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Variables added to the executor's own environment (they override inherited ones).
    pub env: BTreeMap<String, String>,
    /// Bytes written to standard input, which is then closed; without them stdin is empty.
    pub stdin: Option<Vec<u8>>,
    /// Stop the process after this long (SIGTERM to its group, then SIGKILL after `grace`).
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Keep at most this many bytes of combined output in the outcome (head and tail).
    pub output_cap: usize,
    /// Also append the output to this file (its directory is created).
    pub log_file: Option<PathBuf>,
    /// Write at most this many bytes of output to `log_file`; the executor's own lines do not
    /// count.
    pub log_cap: u64,
    /// A line written to `log_file` before the output, saying what runs; the executor ends
    /// the part it wrote with a line saying how the process ended.
    pub log_header: Option<String>,
    /// A job an earlier process submitted for this same run: re-attach to it while the
    /// scheduler still runs it (or collect its result when it has ended) instead of starting
    /// the process again. Executors without jobs ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_job: Option<String>,
    /// Also keep standard output on its own in [`ProcessOutcome::stdout`], capped at this many
    /// bytes (head and tail): for agents whose stdout is machine output (JSON lines) and whose
    /// stderr is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_stdout: Option<usize>,
    /// Confine the process (Landlock) to writing beneath these paths. An executor that cannot
    /// enforce a strict confinement must refuse to run the process rather than run it
    /// unconfined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confine: Option<crate::Confinement>,
}

impl ProcessSpec {
    /// A spec with defaults: no extra environment, no stdin, no timeout, 2 s grace, 256 KiB of
    /// output kept, no log (16 MiB cap when one is set).
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
            log_cap: 16 * 1024 * 1024,
            log_header: None,
            attach_job: None,
            keep_stdout: None,
            confine: None,
        }
    }

    /// The program (the first word of `argv`).
    pub fn program(&self) -> Option<&str> {
        self.argv.first().map(String::as_str)
    }
}

/// How a process ended. The default says nothing yet: no exit code, no signal, no output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessOutcome {
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when it was killed.
    pub signal: Option<i32>,
    /// True when the timeout stopped it.
    pub timed_out: bool,
    /// Combined stdout and stderr (lossy UTF-8), capped; where bytes were dropped it says so.
    pub output: String,
    /// Output bytes dropped by the cap.
    pub dropped_bytes: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// The scheduler's job id, for executors that have one.
    pub job_id: Option<String>,
    /// Standard output alone (lossy UTF-8, capped like `output`), when the spec asked for it
    /// with [`ProcessSpec::keep_stdout`] and the executor keeps the streams apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
}

impl ProcessOutcome {
    /// A process that exited with `code`.
    pub fn exited(code: i32) -> Self {
        Self { exit_code: Some(code), ..Self::default() }
    }

    /// A process killed by `signal` (not by the executor's timeout).
    pub fn killed_by(signal: i32) -> Self {
        Self { signal: Some(signal), ..Self::default() }
    }

    /// A process the executor stopped because its timeout ran out.
    pub fn timed_out() -> Self {
        Self { timed_out: true, ..Self::default() }
    }

    /// Sets the captured output and how many bytes the cap dropped from it.
    pub fn with_output(mut self, output: impl Into<String>, dropped_bytes: u64) -> Self {
        self.output = output.into();
        self.dropped_bytes = dropped_bytes;
        self
    }

    /// Sets the wall time.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// Why a process could not be run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The program could not be started. `kind` says why in a way callers can act on:
    /// `NotFound` (no such program), `PermissionDenied` (not executable), `NotADirectory`
    /// (the working directory is missing), `InvalidInput` (an empty argv), anything else.
    #[error("failed to start `{program}` in {}: {message}", cwd.display())]
    Spawn {
        /// The program.
        program: String,
        /// The working directory.
        cwd: PathBuf,
        /// What kind of failure.
        kind: std::io::ErrorKind,
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
    /// An I/O failure around the process (opening the log file, waiting for the process).
    #[error("failed to {action}: {source}")]
    Io {
        /// What was being done, e.g. "open the task log /r/.fugue/logs/t.log".
        action: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Hears about a process while it runs.
pub trait ExecObserver: Send + Sync + std::fmt::Debug {
    /// The scheduler accepted the process as job `job_id` (or the executor re-attached to it).
    /// Called before the job can finish being waited for, so the id can be made durable.
    fn job_started(&self, job_id: &str) {
        let _ = job_id;
    }

    /// The process wrote `chunk` (already redacted) on `stream`. Executors that see output
    /// as it comes call this (the local one does); others may not call it at all, and
    /// callers then read [`ProcessOutcome::output`] (and [`ProcessOutcome::stdout`]) at the end.
    fn output(&self, stream: OutputStream, chunk: &[u8]) {
        let _ = (stream, chunk);
    }
}

/// Starts processes for agents.
#[async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// The executor's name (`local`, `slurm`).
    fn name(&self) -> &str;

    /// Runs `spec` to completion (or timeout) and reports how it ended. Dropping the future
    /// must stop the process and everything it started.
    async fn run(&self, spec: ProcessSpec) -> Result<ProcessOutcome, ExecError>;

    /// [`run`](Self::run), telling `observer` the job id as soon as there is one. Executors
    /// with jobs override this (and implement `run` as `run_observed(spec, None)`).
    async fn run_observed(&self, spec: ProcessSpec, observer: Option<Arc<dyn ExecObserver>>) -> Result<ProcessOutcome, ExecError> {
        let _ = observer;
        self.run(spec).await
    }

    /// A directory every process this executor starts can read, for files handed to it (the
    /// prompt file): `None` for processes on this machine, where the system temp dir will do.
    fn shared_dir(&self) -> Option<&Path> {
        None
    }

    /// Checks, before a run dispatches anything, that processes started by this executor can
    /// work in `dir` (for a cluster: that the directory is on storage its nodes can write).
    async fn preflight(&self, dir: &Path) -> Result<(), ExecError> {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_and_outcome_round_trip_through_json() {
        let mut spec = ProcessSpec::new("t1", vec!["claude".to_owned(), "-p".to_owned(), "fix it".to_owned()], "/w/t1");
        spec.env.insert("FUGUE_TASK_ID".to_owned(), "t1".to_owned());
        spec.stdin = Some(b"the prompt".to_vec());
        spec.timeout = Some(Duration::from_millis(1500));
        spec.log_file = Some(PathBuf::from("/r/.fugue/logs/t1.log"));
        spec.log_header = Some("--- run".to_owned());
        let back: ProcessSpec = serde_json::from_str(&serde_json::to_string(&spec).expect("serialise")).expect("deserialise");
        assert_eq!(back, spec);
        assert_eq!(back.program(), Some("claude"));

        let outcome = ProcessOutcome::killed_by(9).with_output("out", 12).with_duration(Duration::from_millis(42));
        let back: ProcessOutcome = serde_json::from_value(serde_json::to_value(&outcome).expect("serialise")).expect("deserialise");
        assert_eq!(back, outcome);
        assert_eq!((back.signal, back.exit_code, back.dropped_bytes, back.duration_ms), (Some(9), None, 12, 42));
    }

    #[test]
    fn only_exit_zero_without_timeout_is_success() {
        assert!(ProcessOutcome::exited(0).success());
        assert!(!ProcessOutcome::exited(3).success());
        assert!(!ProcessOutcome::killed_by(15).success());
        assert!(!ProcessOutcome::timed_out().success());
        assert!(!ProcessOutcome { exit_code: Some(0), ..ProcessOutcome::timed_out() }.success());
    }

    #[test]
    fn spawn_errors_name_program_and_directory() {
        let e = ExecError::Spawn {
            program: "claude".to_owned(),
            cwd: PathBuf::from("/w"),
            kind: std::io::ErrorKind::NotFound,
            message: "no such file".to_owned(),
        };
        assert_eq!(e.to_string(), "failed to start `claude` in /w: no such file");
    }
}
