//! The Slurm executor: each [`ProcessSpec`] becomes a batch job on a Slurm cluster.
//!
//! One run goes like this:
//!
//! 1. a job directory is made under the jobs directory (which, like the worktree pool, must be
//!    on storage every node mounts at the same path) holding the job script (see `script`),
//!    the stdin bytes, and later the job's combined stdout/stderr (`out`) and its `status`;
//! 2. the job is submitted — through `slurmrestd` (OpenAPI [`SlurmExecutor::OPENAPI_VERSION`])
//!    when the plan names one, else with `sbatch` (see `backend`) — with the spec's label as
//!    the job name and a time limit of the spec's timeout rounded up to minutes plus room; a
//!    `job-<id>` link to the directory is made and the id reported to the observer (the engine
//!    journals it) and written to the task log;
//! 3. the executor polls: the status file at a short interval (a `stat` on shared storage),
//!    the scheduler at an interval that starts short and grows ×1.5 up to a ceiling, so a long
//!    agent costs the controller one query every few seconds. Slurm has no event API a client
//!    could subscribe to (`strigger` is for administrators), so polling it is; the status
//!    file makes the common case — the job ends normally — fast without asking Slurm at all;
//! 4. fugue's timeout counts from the job's start (the scheduler's run time, so queueing does
//!    not count and a restarted orchestrator keeps the original deadline); when it runs out
//!    the job is cancelled and the outcome says `timed_out`. Slurm's own limit, a minute or
//!    more later, only matters when the orchestrator is gone;
//! 5. a spec with a confinement runs its program through `fugue confine-exec` on the node (see
//!    `script`), which applies the same Landlock ruleset there before it execs the agent; where
//!    there is no `fugue` binary to do it, the run is refused, never run unconfined;
//! 6. the output file is read into the capped head+tail capture and appended to the task log
//!    (up to its cap) with a footer saying how the job ended; the job directory is removed.
//!
//! Dropping the run future cancels the job from `Drop` (a blocking `DELETE` or `scancel`,
//! bounded to a few seconds, so that a host exiting right after still leaves nothing behind).
//!
//! A spec with [`ProcessSpec::attach_job`] (a resumed run) first looks for that job: still
//! pending or running → the observer hears of it again and it is waited for; ended with a
//! status file → its result is collected without running anything; ended by Slurm's time
//! limit → timed out; unknown, cancelled or ended without a result → submitted afresh.
//!
//! When `executor.rest` is set but `slurmrestd` cannot be reached, runs fail with an error
//! naming the address and how to start it, rather than silently switching to the CLI: the two
//! may act as different users on a real cluster, and a silent switch would hide a broken setup.

mod backend;
mod http;
mod script;

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fugue_core::{ExecError, ExecObserver, Executor, ExecutorSpec, ProcessOutcome, ProcessSpec, SlurmSpec, async_trait};

use self::backend::{Backend, JobInfo, JobState, Site, Submission};
use self::script::{OUTPUT, SCRIPT, STATUS, STDIN, Status};
use crate::local::LocalExecutor;
use crate::output::{Capture, LogFile, Sink};
use crate::process::signal_name;

/// Why a Slurm executor could not be built from a plan's settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlurmError {
    /// `executor.rest` is not an address this executor can use.
    #[error("failed to use `executor.rest: {address}`: {message}")]
    RestAddress {
        /// The address as written.
        address: String,
        /// Why, and what to write instead.
        message: String,
    },
    /// An `executor.extra_args` entry cannot be sent through `slurmrestd`.
    #[error("failed to use `executor.extra_args` with slurmrestd: {message}")]
    ExtraArgs {
        /// Which argument, and what to do.
        message: String,
    },
    /// The jobs directory cannot be made absolute.
    #[error("failed to use {} as the Slurm jobs directory: {source}", path.display())]
    JobsDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs processes as Slurm batch jobs.
#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    backend: Arc<Backend>,
    jobs_dir: PathBuf,
    poll_min: Duration,
    poll_max: Duration,
    preflight_timeout: Duration,
    /// The `fugue` binary a confined job runs its program through (`fugue confine-exec`).
    confine_helper: Option<PathBuf>,
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// `FUGUE_CONFINE_HELPER`, else this process's binary when it is `fugue` (a host that embeds
/// the engine has no `confine-exec` subcommand, and says where one is).
fn default_confine_helper() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FUGUE_CONFINE_HELPER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::current_exe().ok().filter(|exe| exe.file_name().is_some_and(|n| n == "fugue"))
}

/// How a job ended, as far as the executor could tell.
enum Ending {
    /// The job script recorded it.
    Status(Status),
    /// fugue's timeout ran out and the job was cancelled.
    TimedOut,
    /// Slurm says the job is over, and it recorded nothing (`TIMEOUT`, `CANCELLED`, …).
    Ended { state: String, reason: Option<String> },
    /// The scheduler no longer knows the job, and it recorded nothing.
    Lost,
}

/// A submitted job: its id and directory.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    dir: PathBuf,
}

/// Jobs submitted or re-attached by this process and not yet dealt with: what
/// [`cancel_all_jobs`] cancels when the host must exit at once.
static LIVE: Mutex<Vec<(u64, Arc<Backend>, String)>> = Mutex::new(Vec::new());
static NEXT_GUARD: AtomicU64 = AtomicU64::new(0);

fn live() -> std::sync::MutexGuard<'static, Vec<(u64, Arc<Backend>, String)>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Cancels every Slurm job this process submitted (or re-attached to) that may still run,
/// and returns how many there were: for a host that must exit now (a second Ctrl-C), when
/// `Drop` handlers will not run. Blocks for at most a few seconds per job.
pub fn cancel_all_jobs() -> usize {
    let jobs = std::mem::take(&mut *live());
    for (_, backend, id) in &jobs {
        if let Err(e) = backend.cancel_blocking(id) {
            tracing::warn!("failed to cancel Slurm job {id} through {}: {e}", backend.describe());
        }
    }
    jobs.len()
}

/// Cancels the job when dropped, unless disarmed: the cancellation path.
#[derive(Debug)]
struct CancelGuard {
    key: u64,
    backend: Arc<Backend>,
    id: Option<String>,
}

impl CancelGuard {
    fn new(backend: &Arc<Backend>, id: &str) -> Self {
        let key = NEXT_GUARD.fetch_add(1, Ordering::Relaxed);
        live().push((key, Arc::clone(backend), id.to_owned()));
        Self { key, backend: Arc::clone(backend), id: Some(id.to_owned()) }
    }

    /// The job has been dealt with; dropping the guard does nothing.
    fn disarm(&mut self) {
        self.id = None;
        live().retain(|(key, _, _)| *key != self.key);
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let key = self.key;
        let registered = {
            let mut live = live();
            let before = live.len();
            live.retain(|(k, _, _)| *k != key);
            live.len() != before
        };
        // cancel_all_jobs may have got there first.
        if registered && let Err(e) = self.backend.cancel_blocking(&id) {
            tracing::warn!("failed to cancel Slurm job {id} through {}: {e}", self.backend.describe());
        }
    }
}

impl SlurmExecutor {
    /// The `slurmrestd` OpenAPI version spoken (Slurm 22.05's).
    pub const OPENAPI_VERSION: &'static str = backend::OPENAPI_VERSION;
    /// How long preflight's test job may run once started.
    pub const DEFAULT_PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(120);

    /// An executor for the plan's Slurm settings, keeping job scripts and output in
    /// `jobs_dir` (made absolute; it must be on storage every node can reach, e.g. under the
    /// state directory of a repository on a shared filesystem). Does no I/O.
    pub fn new(spec: &SlurmSpec, jobs_dir: impl Into<PathBuf>) -> Result<Self, SlurmError> {
        let jobs_dir = jobs_dir.into();
        let jobs_dir = std::path::absolute(&jobs_dir).map_err(|source| SlurmError::JobsDir { path: jobs_dir.clone(), source })?;
        let site = Site { partition: spec.partition.clone(), account: spec.account.clone(), extra_args: spec.extra_args.clone() };
        let backend = match &spec.rest {
            Some(address) => {
                let parsed =
                    http::Address::parse(address).map_err(|message| SlurmError::RestAddress { address: address.clone(), message })?;
                Backend::rest(parsed, site).map_err(|message| SlurmError::ExtraArgs { message })?
            }
            None => Backend::Cli { site },
        };
        Ok(Self {
            backend: Arc::new(backend),
            jobs_dir,
            poll_min: Duration::from_millis(250),
            poll_max: Duration::from_secs(10),
            preflight_timeout: Self::DEFAULT_PREFLIGHT_TIMEOUT,
            confine_helper: default_confine_helper(),
        })
    }

    /// Sets the `fugue` binary that confined jobs run their program through (`fugue
    /// confine-exec`, which applies the Landlock ruleset on the node); it must be on storage
    /// every node reaches. Default: `FUGUE_CONFINE_HELPER`, else this process's own binary when
    /// it is `fugue`.
    pub fn with_confine_helper(mut self, helper: impl Into<PathBuf>) -> Self {
        self.confine_helper = Some(helper.into());
        self
    }

    /// Sets the polling intervals: the status file every `min`, the scheduler from `min`
    /// growing to `max`.
    pub fn with_poll_interval(mut self, min: Duration, max: Duration) -> Self {
        self.poll_min = min.max(Duration::from_millis(10));
        self.poll_max = max.max(self.poll_min);
        self
    }

    /// Sets how long preflight's test job may run.
    pub fn with_preflight_timeout(mut self, timeout: Duration) -> Self {
        self.preflight_timeout = timeout;
        self
    }

    /// Where job scripts and output live.
    pub fn jobs_dir(&self) -> &Path {
        &self.jobs_dir
    }

    /// True when jobs go through `slurmrestd`, false for the CLI.
    pub fn uses_rest(&self) -> bool {
        matches!(*self.backend, Backend::Rest { .. })
    }

    fn scheduler_error(&self, label: &str, message: impl Into<String>) -> ExecError {
        ExecError::Scheduler { executor: "slurm".to_owned(), label: label.to_owned(), message: message.into() }
    }

    /// What to do when the scheduler cannot be reached.
    fn reach_hint(&self) -> String {
        match &*self.backend {
            Backend::Rest { address, .. } => format!(
                "is slurmrestd running at {address}? Start it (e.g. `slurmrestd -a rest_auth/local unix:/path/to/socket`; scripts/slurm-dev.sh does it for the dev cluster) or remove `executor.rest` to use sbatch"
            ),
            Backend::Cli { .. } => "are Slurm's commands installed and is slurmctld reachable (`sinfo`)? SLURM_CONF must point at the cluster's slurm.conf when it is not in /etc/slurm".to_owned(),
        }
    }

    fn link(&self, id: &str) -> PathBuf {
        self.jobs_dir.join(format!("job-{id}"))
    }

    /// Writes the job's files and submits it.
    async fn submit(&self, spec: &ProcessSpec, sink: &mut Sink) -> Result<(Job, CancelGuard), ExecError> {
        let program = spec.program().unwrap_or_default().to_owned();
        let io = |action: String| move |source| ExecError::Io { action, source };
        std::fs::create_dir_all(&self.jobs_dir).map_err(io(format!("create the Slurm jobs directory {}", self.jobs_dir.display())))?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let name = format!("{}-{}-{nanos}-{}", script::dir_stem(&spec.label), std::process::id(), NEXT_DIR.fetch_add(1, Ordering::Relaxed));
        let dir = self.jobs_dir.join(name);
        let text = script::job_script(spec, &dir, self.confine_helper.as_deref()).map_err(|e| ExecError::Spawn {
            program: program.clone(),
            cwd: spec.cwd.clone(),
            kind: match e {
                script::ScriptError::EmptyArgv => ErrorKind::InvalidInput,
                script::ScriptError::NoConfineHelper => ErrorKind::Unsupported,
                _ => ErrorKind::Other,
            },
            message: e.to_string(),
        })?;
        std::fs::create_dir(&dir).map_err(io(format!("create the job directory {}", dir.display())))?;
        let script_path = dir.join(SCRIPT);
        std::fs::write(&script_path, &text).map_err(io(format!("write the job script {}", script_path.display())))?;
        if let Some(stdin) = &spec.stdin {
            let path = dir.join(STDIN);
            std::fs::write(&path, stdin).map_err(io(format!("write the job's stdin {}", path.display())))?;
        }
        let output = dir.join(OUTPUT);
        let submission = Submission {
            name: &script::job_name(&spec.label),
            script: &text,
            script_path: &script_path,
            dir: &dir,
            output: &output,
            time_limit_minutes: spec.timeout.map(|t| script::time_limit_minutes(t, spec.grace)),
        };
        let id = match self.backend.submit(&submission).await {
            Ok(id) => id,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                sink.note(&format!("--- fugue: could not submit the Slurm job: {e}"));
                return Err(self.scheduler_error(
                    &spec.label,
                    format!("failed to submit the job through {}: {e}; {}", self.backend.describe(), self.reach_hint()),
                ));
            }
        };
        let guard = CancelGuard::new(&self.backend, &id);
        let link = self.link(&id);
        let _ = std::fs::remove_file(&link);
        if let Some(name) = dir.file_name() {
            std::os::unix::fs::symlink(name, &link).map_err(io(format!("link {} to the job directory", link.display())))?;
        }
        sink.note(&format!("--- fugue: submitted as Slurm job {id} through {}; job directory {}", self.backend.describe(), dir.display()));
        Ok((Job { id, dir }, guard))
    }

    /// Polls until the job ends or `timeout` (counted from its start) runs out.
    async fn wait(&self, label: &str, job: &Job, timeout: Option<Duration>, grace: Duration) -> Result<Ending, ExecError> {
        let status_path = job.dir.join(STATUS);
        let mut interval = self.poll_min;
        let mut next_query = Instant::now();
        let mut deadline: Option<Instant> = None;
        let mut failures = 0u32;
        let mut unknown = 0u32;
        loop {
            if let Some(status) = read_status(&status_path) {
                return Ok(Ending::Status(status));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                if let Err(e) = self.backend.cancel(&job.id).await {
                    tracing::warn!("failed to cancel timed-out Slurm job {}: {e}", job.id);
                }
                self.wait_gone(job, grace + Duration::from_secs(10)).await;
                return Ok(Ending::TimedOut);
            }
            if now >= next_query {
                match self.backend.query(&job.id).await {
                    Ok(Some(info)) => {
                        failures = 0;
                        unknown = 0;
                        match info.state {
                            JobState::Pending => {}
                            JobState::Running => {
                                if let (None, Some(limit)) = (deadline, timeout) {
                                    let start = info.elapsed.and_then(|e| Instant::now().checked_sub(e)).unwrap_or_else(Instant::now);
                                    deadline = Some(start + limit);
                                }
                            }
                            JobState::Ended(state) => {
                                // The status file may trail the scheduler on shared storage.
                                tokio::time::sleep(self.poll_min).await;
                                return Ok(match read_status(&status_path) {
                                    Some(status) => Ending::Status(status),
                                    None => Ending::Ended { state, reason: info.reason },
                                });
                            }
                        }
                    }
                    Ok(None) => {
                        unknown += 1;
                        if unknown >= 2 {
                            return Ok(read_status(&status_path).map_or(Ending::Lost, Ending::Status));
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        if failures >= 5 {
                            return Err(self.scheduler_error(
                                label,
                                format!(
                                    "failed to ask {} about job {} ({failures} times): {e}; {}",
                                    self.backend.describe(),
                                    job.id,
                                    self.reach_hint()
                                ),
                            ));
                        }
                    }
                }
                interval = (interval * 3 / 2).min(self.poll_max);
                next_query = Instant::now() + interval;
            }
            let mut nap = self.poll_min.min(next_query.saturating_duration_since(Instant::now()));
            if let Some(d) = deadline {
                nap = nap.min(d.saturating_duration_since(Instant::now()));
            }
            tokio::time::sleep(nap.max(Duration::from_millis(5))).await;
        }
    }

    /// Waits (bounded) until the scheduler no longer runs a cancelled job.
    async fn wait_gone(&self, job: &Job, limit: Duration) {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            match self.backend.query(&job.id).await {
                Ok(Some(info)) if !matches!(info.state, JobState::Ended(_)) => tokio::time::sleep(self.poll_min).await,
                _ => return,
            }
        }
    }

    /// Finds the job a spec asks to re-attach to: `Ok(Some(job))` when it can be waited for
    /// or collected, `Ok(None)` when it must run afresh.
    async fn attach(&self, id: &str, label: &str, sink: &mut Sink) -> Result<Option<(Job, Option<JobState>)>, ExecError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            sink.note(&format!("--- fugue: `{id}` is not a Slurm job id; submitting afresh"));
            return Ok(None);
        }
        let link = self.link(id);
        let dir = std::fs::read_link(&link).ok().map(|target| self.jobs_dir.join(target));
        let Some(dir) = dir.filter(|d| d.is_dir()) else {
            // Without its directory the job's result cannot be collected; do not let it run on.
            if let Ok(Some(info)) = self.backend.query(id).await
                && !matches!(info.state, JobState::Ended(_))
            {
                let _ = self.backend.cancel(id).await;
            }
            let _ = std::fs::remove_file(&link);
            sink.note(&format!("--- fugue: Slurm job {id} left no job directory; submitting afresh"));
            return Ok(None);
        };
        let job = Job { id: id.to_owned(), dir };
        if let Some(status) = read_status(&job.dir.join(STATUS)) {
            // A job cancelled (or stopped by its time limit) can still record the signal that
            // killed its program; the scheduler says which it was.
            let state = match self.backend.query(id).await {
                Ok(Some(JobInfo { state: JobState::Ended(state), .. })) if matches!(status, Status::Signalled(_)) => Some(state),
                _ => None,
            };
            match state.as_deref() {
                Some("CANCELLED") => {
                    sink.note(&format!("--- fugue: Slurm job {id} was cancelled; submitting afresh"));
                    remove_job(&self.link(id), &job.dir);
                    return Ok(None);
                }
                Some("TIMEOUT") => {
                    sink.note(&format!("--- fugue: Slurm job {id} ran out of its time limit while fugue was away"));
                    return Ok(Some((job, Some(JobState::Ended("TIMEOUT".to_owned())))));
                }
                _ => {
                    sink.note(&format!("--- fugue: Slurm job {id} has ended; collecting its result"));
                    return Ok(Some((job, None)));
                }
            }
        }
        let info = self.backend.query(id).await.map_err(|e| {
            self.scheduler_error(label, format!("failed to ask {} about job {id}: {e}; {}", self.backend.describe(), self.reach_hint()))
        })?;
        match info.map(|i| i.state) {
            Some(state @ (JobState::Pending | JobState::Running)) => {
                sink.note(&format!("--- fugue: re-attached to Slurm job {id}"));
                Ok(Some((job, Some(state))))
            }
            Some(JobState::Ended(state)) if state == "TIMEOUT" => {
                sink.note(&format!("--- fugue: Slurm job {id} ran out of its time limit while fugue was away"));
                Ok(Some((job, Some(JobState::Ended(state)))))
            }
            other => {
                if read_status(&job.dir.join(STATUS)).is_some() {
                    return Ok(Some((job, None)));
                }
                let how = match other {
                    Some(JobState::Ended(state)) => format!("ended as {state}"),
                    _ => "is unknown to the scheduler".to_owned(),
                };
                sink.note(&format!("--- fugue: Slurm job {id} {how} without a result; submitting afresh"));
                remove_job(&self.link(id), &job.dir);
                Ok(None)
            }
        }
    }
}

fn read_status(path: &Path) -> Option<Status> {
    std::fs::read_to_string(path).ok().as_deref().and_then(script::parse_status)
}

fn remove_job(link: &Path, dir: &Path) {
    let _ = std::fs::remove_file(link);
    let _ = std::fs::remove_dir_all(dir);
}

/// Reads the job's output file into the sink, on a blocking thread.
async fn collect_output(path: PathBuf, sink: Sink) -> Result<Sink, ExecError> {
    let action = format!("read the job output {}", path.display());
    tokio::task::spawn_blocking(move || {
        let mut sink = sink;
        match std::fs::File::open(&path) {
            Ok(mut file) => {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => sink.push(&buf[..n]),
                        Err(e) => {
                            sink.note(&format!("--- fugue: failed to read the job output {}: {e}", path.display()));
                            break;
                        }
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => sink.note(&format!("--- fugue: the job left no output file {}", path.display())),
            Err(e) => sink.note(&format!("--- fugue: failed to open the job output {}: {e}", path.display())),
        }
        sink
    })
    .await
    .map_err(|e| ExecError::Io { action, source: std::io::Error::other(e.to_string()) })
}

#[async_trait]
impl Executor for SlurmExecutor {
    fn name(&self) -> &str {
        "slurm"
    }

    fn shared_dir(&self) -> Option<&Path> {
        Some(&self.jobs_dir)
    }

    async fn run(&self, spec: ProcessSpec) -> Result<ProcessOutcome, ExecError> {
        self.run_observed(spec, None).await
    }

    async fn run_observed(&self, spec: ProcessSpec, observer: Option<Arc<dyn ExecObserver>>) -> Result<ProcessOutcome, ExecError> {
        let started = Instant::now();
        let program = spec.program().unwrap_or_default().to_owned();
        if program.is_empty() {
            return Err(ExecError::Spawn {
                program,
                cwd: spec.cwd.clone(),
                kind: ErrorKind::InvalidInput,
                message: "the argv is empty: give at least the program".to_owned(),
            });
        }
        if !spec.cwd.is_dir() {
            return Err(ExecError::Spawn {
                message: format!("the working directory {} is not a directory", spec.cwd.display()),
                program,
                cwd: spec.cwd.clone(),
                kind: ErrorKind::NotADirectory,
            });
        }
        let log = match &spec.log_file {
            Some(path) => Some(
                LogFile::open(path, spec.log_cap)
                    .map_err(|source| ExecError::Io { action: format!("open the task log {}", path.display()), source })?,
            ),
            None => None,
        };
        let mut sink = Sink { capture: Capture::new(spec.output_cap), log };
        if let Some(header) = &spec.log_header {
            sink.note(header);
        }
        // A job is worth a record whatever it prints (its id, where it ran); a file more is
        // nothing next to a scheduler round trip.
        sink.keep_log();

        let attached = match &spec.attach_job {
            Some(id) => self.attach(id, &spec.label, &mut sink).await?,
            None => None,
        };
        let (job, mut guard, ending) = match attached {
            Some((job, None)) => {
                let ending = read_status(&job.dir.join(STATUS)).map_or(Ending::Lost, Ending::Status);
                (job, None, Some(ending))
            }
            Some((job, Some(JobState::Ended(state)))) => (job, None, Some(Ending::Ended { state, reason: None })),
            Some((job, Some(_))) => {
                if let Some(observer) = &observer {
                    observer.job_started(&job.id);
                }
                let guard = CancelGuard::new(&self.backend, &job.id);
                (job, Some(guard), None)
            }
            None => {
                let (job, guard) = self.submit(&spec, &mut sink).await?;
                if let Some(observer) = &observer {
                    observer.job_started(&job.id);
                }
                (job, Some(guard), None)
            }
        };
        let ending = match ending {
            Some(ending) => ending,
            None => self.wait(&spec.label, &job, spec.timeout, spec.grace).await?,
        };
        if let Some(guard) = &mut guard {
            guard.disarm();
        }

        let mut sink = collect_output(job.dir.join(OUTPUT), sink).await?;
        let secs = started.elapsed().as_secs_f64();
        let id = &job.id;
        let mut outcome = match ending {
            Ending::Status(Status::Exited(code)) => {
                sink.note(&format!("--- fugue: exit code {code} after {secs:.1}s (Slurm job {id})"));
                ProcessOutcome::exited(code)
            }
            Ending::Status(Status::Signalled(sig)) => {
                sink.note(&format!("--- fugue: killed by {} after {secs:.1}s (Slurm job {id})", signal_name(sig)));
                ProcessOutcome::killed_by(sig)
            }
            Ending::Status(Status::Spawn(kind)) => {
                let message = sink.capture.text().lines().find(|l| l.starts_with("fugue: ")).unwrap_or("could not start").to_owned();
                sink.note(&format!("--- fugue: could not start `{program}` (Slurm job {id}): {message}"));
                remove_job(&self.link(id), &job.dir);
                return Err(ExecError::Spawn { program, cwd: spec.cwd.clone(), kind, message });
            }
            Ending::TimedOut => {
                let after = spec.timeout.unwrap_or_default();
                sink.note(&format!("--- fugue: timed out after {after:?}; Slurm job {id} was cancelled"));
                ProcessOutcome::timed_out()
            }
            Ending::Ended { state, .. } if state == "TIMEOUT" => {
                sink.note(&format!("--- fugue: Slurm job {id} reached its time limit and was stopped by Slurm"));
                ProcessOutcome::timed_out()
            }
            Ending::Ended { state, reason } => {
                let reason = reason.map(|r| format!(" (reason {r})")).unwrap_or_default();
                let message = format!(
                    "Slurm job {id} ended as {state}{reason} without recording a result; its files are in {}; if it could not even write its output there, the jobs directory is not on storage the node can reach",
                    job.dir.display()
                );
                sink.note(&format!("--- fugue: {message}"));
                return Err(self.scheduler_error(&spec.label, message));
            }
            Ending::Lost => {
                let message = format!(
                    "Slurm job {id} is gone from the scheduler without recording a result in {}; was it cancelled or purged, or is the jobs directory not shared with the nodes?",
                    job.dir.display()
                );
                sink.note(&format!("--- fugue: {message}"));
                return Err(self.scheduler_error(&spec.label, message));
            }
        };
        remove_job(&self.link(id), &job.dir);
        outcome.job_id = Some(job.id.clone());
        Ok(outcome.with_output(sink.capture.text(), sink.capture.dropped()).with_duration(started.elapsed()))
    }

    async fn preflight(&self, dir: &Path) -> Result<(), ExecError> {
        let fail = |why: String| {
            self.scheduler_error(
                "preflight",
                format!(
                    "a Slurm job could not use {} ({why}): pool.dir must be on storage every node can write, mounted at the same path on every node",
                    dir.display()
                ),
            )
        };
        if !dir.is_dir() {
            return Err(fail("it is not a directory on this machine".to_owned()));
        }
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let token = format!("{}-{nanos}", std::process::id());
        let marker_name = format!(".fugue-preflight-{token}");
        let marker = dir.join(&marker_name);
        std::fs::write(&marker, &token).map_err(|e| fail(format!("this machine cannot write {}: {e}", marker.display())))?;
        // The job must see the marker (same storage) and create and remove a file of its own.
        let check = r#"[ "$(cat -- "$1" 2>/dev/null)" = "$2" ] || { echo "fugue preflight: $PWD/$1, written by the orchestrator, is not visible on $(hostname)"; exit 3; }
f=".fugue-preflight-job-${SLURM_JOB_ID:-$$}"
( echo ok > "$f" ) 2>/dev/null || { echo "fugue preflight: cannot create a file in $PWD on $(hostname)"; exit 4; }
rm -f -- "$f" || { echo "fugue preflight: cannot remove $PWD/$f on $(hostname)"; exit 5; }"#;
        let argv = ["sh", "-c", check, "fugue-preflight", &marker_name, &token].map(str::to_owned).to_vec();
        let mut spec = ProcessSpec::new("fugue-preflight", argv, dir);
        spec.timeout = Some(self.preflight_timeout);
        spec.output_cap = 4096;
        let result = self.run(spec).await;
        let _ = std::fs::remove_file(&marker);
        match result {
            Ok(outcome) if outcome.success() => Ok(()),
            Ok(outcome) => {
                let job = outcome.job_id.as_deref().unwrap_or("?");
                let how = match (outcome.timed_out, outcome.exit_code, outcome.signal) {
                    (true, _, _) => format!("test job {job} did not finish within {:?}", self.preflight_timeout),
                    (_, Some(code), _) => format!("test job {job} exited with code {code}"),
                    (_, _, Some(sig)) => format!("test job {job} was killed by {}", signal_name(sig)),
                    _ => format!("test job {job} failed"),
                };
                Err(fail(format!("{how}: {}", outcome.output.trim())))
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

/// The executor a plan's `executor:` block asks for; Slurm job files go to `jobs_dir`.
pub fn executor_from_spec(spec: &ExecutorSpec, jobs_dir: &Path) -> Result<Arc<dyn Executor>, SlurmError> {
    Ok(match spec {
        ExecutorSpec::Local => Arc::new(LocalExecutor::new()),
        ExecutorSpec::Slurm(slurm) => Arc::new(SlurmExecutor::new(slurm, jobs_dir)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_from_specs() {
        let local = executor_from_spec(&ExecutorSpec::Local, Path::new("/j")).expect("local");
        assert_eq!(local.name(), "local");
        let cli = SlurmExecutor::new(&SlurmSpec::default(), "rel/jobs").expect("cli");
        assert!(!cli.uses_rest() && cli.jobs_dir().is_absolute());
        let rest = SlurmSpec { rest: Some("unix:/run/slurmrestd.sock".to_owned()), ..SlurmSpec::default() };
        let e = executor_from_spec(&ExecutorSpec::Slurm(rest), Path::new("/j")).expect("rest");
        assert_eq!(e.name(), "slurm");
        let bad = SlurmSpec { rest: Some("https://head".to_owned()), ..SlurmSpec::default() };
        let err = SlurmExecutor::new(&bad, "/j").expect_err("https");
        assert!(err.to_string().starts_with("failed to use `executor.rest: https://head`: https is not supported"), "{err}");
        let extra = SlurmSpec { rest: Some("/s".to_owned()), extra_args: vec!["--mail-type=ALL".to_owned()], ..SlurmSpec::default() };
        let err = SlurmExecutor::new(&extra, "/j").expect_err("extra");
        assert!(err.to_string().contains("remove `executor.rest`"), "{err}");
        // The CLI takes any sbatch argument.
        let extra = SlurmSpec { extra_args: vec!["--mail-type=ALL".to_owned()], ..SlurmSpec::default() };
        assert!(SlurmExecutor::new(&extra, "/j").is_ok());
    }

    #[test]
    fn guards_register_until_disarmed() {
        let backend = Arc::new(Backend::Cli { site: Site::default() });
        let registered = |id: &str| live().iter().any(|(_, _, j)| j == id);
        let mut guard = CancelGuard::new(&backend, "fugue-test-4242");
        assert!(registered("fugue-test-4242"));
        guard.disarm();
        assert!(!registered("fugue-test-4242"));
        drop(guard);
    }

    #[tokio::test]
    async fn unreachable_rest_names_the_socket_and_the_fix() {
        let jobs = tempfile::tempdir().expect("tempdir");
        let spec = SlurmSpec { rest: Some("unix:/nonexistent/fugue-slurmrestd.sock".to_owned()), ..SlurmSpec::default() };
        let executor = SlurmExecutor::new(&spec, jobs.path()).expect("build");
        let err = executor.run(ProcessSpec::new("t1", vec!["true".to_owned()], jobs.path())).await.expect_err("unreachable");
        let text = err.to_string();
        assert!(
            text.contains("unix:/nonexistent/fugue-slurmrestd.sock") && text.contains("slurmrestd") && text.contains("executor.rest"),
            "{text}"
        );
        // Nothing is left behind for a job that was never submitted.
        assert_eq!(std::fs::read_dir(jobs.path()).expect("read").count(), 0);
    }
}
