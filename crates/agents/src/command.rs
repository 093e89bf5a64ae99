//! The `command` agent: a process started from an argv template, through an [`Executor`].
//!
//! One run goes like this:
//!
//! 1. the prompt and the QA feedback are written to owner-only files (removed when the run
//!    ends, however it ends; empty text is `/dev/null`) so that agents that prefer files can
//!    read them (`{prompt_file}`, `FUGUE_PROMPT_FILE`, `FUGUE_FEEDBACK_FILE`);
//! 2. the run is described as a [`ProcessSpec`]: the argv template expanded (see `template`),
//!    the worktree as working directory, the spec's and the context's `env` with
//!    `FUGUE_TASK_ID`, `FUGUE_WORKTREE`, `FUGUE_PROMPT_FILE` and `FUGUE_FEEDBACK_FILE` on top
//!    (so they cannot be overridden), the prompt as stdin with `prompt_via: stdin`, the
//!    context's timeout (else the spec's), the grace period, the output cap, and the task log
//!    with a header line naming the run;
//! 3. unless the plan turned confinement off, the spec carries a [`Confinement`] (see
//!    `confine`): writes only in the worktree and its git internals, the plan's caches and a
//!    private `TMPDIR` made for the run; the log header says so and names the roots;
//! 4. the executor runs it — [`LocalExecutor`](crate::LocalExecutor) by default: no shell, a
//!    process group of its own, everything it started stopped on exit, on timeout and when
//!    the future is dropped (cancellation);
//! 5. the outcome becomes the report: exit 0 is ready for QA (unless a confined run's output
//!    shows refused writes: then it failed, and the summary names them); any other exit code or a death
//!    by signal is a failed report saying which; a timeout is an [`AgentError::Timeout`], and
//!    a program that could not be started an [`AgentError::Spawn`] saying what to fix.
//!
//! Nothing it writes or reports shows a secret: the secret-looking names of the spec's and
//! the context's `env` are registered with the process-wide redactor (`fugue_core::redact`)
//! before the run — so any executor, local or not, redacts them — and the log header, the
//! report's output and every error message are redacted as text.
//!
//! Going through the [`Executor`] trait is what lets a host run the same agents as cluster
//! jobs: the agent never touches a process itself.

use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fugue_core::redact::{self, redact_str};
use fugue_core::{
    Agent, AgentContext, AgentError, AgentReport, CommandAgentSpec, ExecError, Executor, ProcessOutcome, ProcessSpec, PromptInput,
    async_trait,
};

use fugue_core::{ConfinePolicy, Confinement};

use crate::confine;
use crate::local::LocalExecutor;
use crate::process::signal_name;
use crate::template;

/// An agent that runs a program from an argv template.
#[derive(Debug, Clone)]
pub struct CommandAgent {
    name: String,
    spec: CommandAgentSpec,
    grace: Duration,
    output_cap: usize,
    log_cap: u64,
    executor: Arc<dyn Executor>,
    confine: ConfinePolicy,
}

impl CommandAgent {
    /// Time between SIGTERM and SIGKILL.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
    /// Bytes of output kept in the report (head and tail).
    pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;
    /// Bytes of output written to the task log.
    pub const DEFAULT_LOG_CAP: u64 = 16 * 1024 * 1024;

    /// The agent `name` (its key in the plan's `agents`) running `spec` as a local process.
    pub fn new(name: impl Into<String>, spec: CommandAgentSpec) -> Self {
        Self {
            name: name.into(),
            grace: Self::DEFAULT_GRACE,
            output_cap: Self::DEFAULT_OUTPUT_CAP,
            log_cap: Self::DEFAULT_LOG_CAP,
            executor: Arc::new(LocalExecutor),
            confine: ConfinePolicy::new(spec.confine),
            spec,
        }
    }

    /// Confines the agent's processes as `policy` says (the plan's `confine` and `caches`;
    /// without this, the spec's own `confine`, strict by default where the kernel supports it).
    pub fn with_confinement(mut self, policy: ConfinePolicy) -> Self {
        self.confine = policy;
        self
    }

    /// Runs the agent's processes through `executor` instead of locally.
    pub fn with_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = executor;
        self
    }

    /// Sets the time between SIGTERM and SIGKILL.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets how many bytes of output the report keeps (at least 4).
    pub fn with_output_cap(mut self, bytes: usize) -> Self {
        self.output_cap = bytes.max(4);
        self
    }

    /// Sets how many bytes of output go to the task log.
    pub fn with_log_cap(mut self, bytes: u64) -> Self {
        self.log_cap = bytes;
        self
    }

    /// The spec this agent runs.
    pub fn spec(&self) -> &CommandAgentSpec {
        &self.spec
    }

    /// The executor that starts this agent's processes.
    pub fn executor(&self) -> &dyn Executor {
        self.executor.as_ref()
    }

    /// The argv for `ctx`, with `prompt_file` standing for the prompt file's path: what the
    /// run would start (for dry runs and logs).
    pub fn argv(&self, ctx: &AgentContext, prompt_file: &Path) -> Vec<OsString> {
        let feedback = ctx.feedback.as_deref().unwrap_or("");
        let task_id = ctx.task_id.as_str();
        let lookup = |name: &str| -> Option<&OsStr> {
            match name {
                "prompt" => Some(OsStr::new(ctx.prompt.as_str())),
                "task_id" => Some(OsStr::new(task_id)),
                "worktree" => Some(ctx.worktree.as_os_str()),
                "feedback" => Some(OsStr::new(feedback)),
                "prompt_file" => Some(prompt_file.as_os_str()),
                _ => None,
            }
        };
        self.spec.command.iter().map(|word| template::expand(word, lookup)).collect()
    }

    /// What the executor is asked to run for `ctx`, with the prompt files of `files`.
    fn process_spec(&self, ctx: &AgentContext, files: &RunFiles, tmp: Option<&confine::RunTmp>) -> Result<ProcessSpec, AgentError> {
        let argv = self
            .argv(ctx, &files.prompt)
            .into_iter()
            .enumerate()
            .map(|(i, word)| self.utf8(&word, &format!("argument {i} of the command")))
            .collect::<Result<Vec<_>, _>>()?;
        redact::register_vars(&self.spec.env);
        redact::register_vars(&ctx.env);
        let mut env = self.spec.env.clone();
        env.extend(ctx.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.insert("FUGUE_TASK_ID".to_owned(), ctx.task_id.to_string());
        env.insert("FUGUE_WORKTREE".to_owned(), self.utf8(ctx.worktree.as_os_str(), "the worktree path")?);
        env.insert("FUGUE_PROMPT_FILE".to_owned(), self.utf8(files.prompt.as_os_str(), "the prompt file path")?);
        env.insert("FUGUE_FEEDBACK_FILE".to_owned(), self.utf8(files.feedback.as_os_str(), "the feedback file path")?);
        let confinement = confine::decide(&self.confine).zip(tmp).map(|(strict, tmp)| {
            confine::env_for(&mut env, tmp.path());
            Confinement::new(confine::writable_roots(ctx, &self.confine, &[], tmp.path()), strict)
        });

        let header = format!(
            "--- fugue: agent `{}` for task `{}` (attempt {}, iteration {}): `{}` with {} argument(s) in {}",
            self.name,
            ctx.task_id,
            ctx.attempt,
            ctx.iteration,
            argv[0],
            argv.len() - 1,
            ctx.worktree.display()
        );
        let mut spec = ProcessSpec::new(ctx.task_id.as_str(), argv, &ctx.worktree);
        spec.env = env;
        spec.stdin = (self.spec.prompt_via == PromptInput::Stdin).then(|| ctx.prompt.clone().into_bytes());
        spec.timeout = ctx.timeout.or(self.spec.timeout.map(|t| t.0));
        spec.grace = self.grace;
        spec.output_cap = self.output_cap;
        spec.log_file = ctx.log_file.clone();
        spec.log_cap = self.log_cap;
        spec.log_header = Some(redact_str(&format!("{header}\n{}", confine::log_line(confinement.as_ref()))).into_owned());
        spec.attach_job = ctx.resume_job.clone();
        spec.confine = confinement;
        Ok(spec)
    }

    /// `value` as UTF-8, which executors need (a job script is text); `what` names it.
    fn utf8(&self, value: &OsStr, what: &str) -> Result<String, AgentError> {
        value.to_str().map(str::to_owned).ok_or_else(|| {
            self.spawn_error(format!(
                "{what} `{}` is not valid UTF-8, and processes are started with UTF-8 arguments and environment: use a UTF-8 path",
                value.to_string_lossy()
            ))
        })
    }

    fn spawn_error(&self, message: impl Into<String>) -> AgentError {
        AgentError::Spawn { agent: self.name.clone(), message: redact_str(&message.into()).into_owned() }
    }

    /// The agent's error for an executor's.
    fn exec_error(&self, error: ExecError) -> AgentError {
        match error {
            ExecError::Spawn { program, cwd, kind, message } => self.spawn_error(match kind {
                ErrorKind::NotFound => {
                    format!("program `{program}` was not found: install it or put it on PATH, or fix `agents.{}.command`", self.name)
                }
                ErrorKind::PermissionDenied => format!("program `{program}` is not executable"),
                ErrorKind::NotADirectory => format!("the worktree {} is not a directory", cwd.display()),
                ErrorKind::InvalidInput if program.is_empty() => self.empty_command(),
                _ => format!("could not run `{program}`: {message}"),
            }),
            ExecError::Io { action, source } => AgentError::Io { action: redact_str(&action).into_owned(), source },
            other => self.spawn_error(other.to_string()),
        }
    }

    fn empty_command(&self) -> String {
        format!(
            "its command is empty: write `agents.{}.command` as a list, program first, e.g. [\"claude\", \"-p\", \"{{prompt}}\"]",
            self.name
        )
    }

    /// The report for how the process ended; `timeout` is the one the spec asked for. A
    /// confined run whose output shows refused writes failed, whatever its exit code, with
    /// the refusals named: what it meant to write did not happen.
    fn report(
        &self,
        outcome: ProcessOutcome,
        timeout: Option<Duration>,
        elapsed: Duration,
        confined: bool,
        read_only: bool,
    ) -> Result<AgentReport, AgentError> {
        if outcome.timed_out {
            return Err(AgentError::Timeout { agent: self.name.clone(), after: timeout.unwrap_or_default() });
        }
        let name = &self.name;
        let secs = elapsed.as_secs_f64();
        let mut report = match (outcome.exit_code, outcome.signal) {
            (Some(0), _) => AgentReport::ready(format!("agent `{name}` exited with code 0 after {secs:.1}s")),
            (Some(code), _) => AgentReport::failed(format!("agent `{name}` exited with code {code} after {secs:.1}s")),
            (None, Some(sig)) => AgentReport::failed(format!("agent `{name}` was killed by {} after {secs:.1}s", signal_name(sig))),
            (None, None) => {
                AgentReport::failed(format!("agent `{name}` ended in an unknown way (no exit code, no signal) after {secs:.1}s"))
            }
        };
        let refused = if confined { confine::refused_writes(&outcome.output) } else { Vec::new() };
        if !refused.is_empty() {
            report.outcome = fugue_core::AgentOutcome::Failed;
            report.failure = Some(fugue_core::FailureKind::PermissionDenied);
            let shown = refused.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ");
            report.summary = if read_only {
                format!(
                    "{}; confinement refused its writes: {shown} (a reviewer is confined read-only: it writes only its TMPDIR)",
                    report.summary
                )
            } else {
                format!(
                    "{}; confinement refused its writes outside the worktree: {shown} (a confined agent writes only in its worktree, the plan's `caches`, its TMPDIR and its CLI's state: add a cache, or set `agents.{name}.confine: off`)",
                    report.summary
                )
            };
        }
        report.exit_code = outcome.exit_code;
        report.output = match redact_str(&outcome.output) {
            std::borrow::Cow::Borrowed(_) => outcome.output,
            std::borrow::Cow::Owned(clean) => clean,
        };
        report.duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }
}

/// The prompt and feedback files of one run, deleted with it. Empty text needs no file: its
/// path is `/dev/null`, which reads as empty (the first iteration has no feedback). The files
/// go into a directory fugue already owns — the executor's shared dir, else the task log's
/// directory — under names unique to the run and readable by the owner only, so a run costs no
/// directory of its own; without either, into a private temporary directory.
struct RunFiles {
    prompt: PathBuf,
    feedback: PathBuf,
    written: Vec<PathBuf>,
    _private: Option<tempfile::TempDir>,
}

impl RunFiles {
    fn write(ctx: &AgentContext, shared: Option<&Path>) -> Result<Self, AgentError> {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let io = |action: String| move |source| AgentError::Io { action, source };
        let texts = [("prompt", ctx.prompt.as_str()), ("feedback", ctx.feedback.as_deref().unwrap_or(""))];
        let mut files =
            Self { prompt: PathBuf::from("/dev/null"), feedback: PathBuf::from("/dev/null"), written: Vec::new(), _private: None };
        if texts.iter().all(|(_, text)| text.is_empty()) {
            return Ok(files);
        }
        let dir = match shared.or(ctx.log_file.as_deref().and_then(Path::parent)) {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(io(format!("create {} for the prompt files", dir.display())))?;
                // The agent runs in its worktree: a relative path would name a file there.
                std::path::absolute(dir).map_err(io(format!("resolve {} for the prompt files", dir.display())))?
            }
            None => {
                let private = tempfile::Builder::new()
                    .prefix(&format!("fugue-{}-", ctx.task_id))
                    .tempdir()
                    .map_err(io("create a temporary directory for the prompt files".to_owned()))?;
                let dir = private.path().to_path_buf();
                files._private = Some(private);
                dir
            }
        };
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (kind, text) in texts {
            if text.is_empty() {
                continue;
            }
            let path = dir.join(format!(".fugue-{}-{}-{run}.{kind}.md", ctx.task_id, std::process::id()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(format!("create the {kind} file {}", path.display())))?;
            file.write_all(text.as_bytes()).map_err(io(format!("write the {kind} file {}", path.display())))?;
            files.written.push(path.clone());
            match kind {
                "prompt" => files.prompt = path,
                _ => files.feedback = path,
            }
        }
        Ok(files)
    }
}

impl Drop for RunFiles {
    fn drop(&mut self) {
        for path in &self.written {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[async_trait]
impl Agent for CommandAgent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, ctx: AgentContext) -> Result<AgentReport, AgentError> {
        let started = Instant::now();
        if self.spec.command.is_empty() {
            return Err(self.spawn_error(self.empty_command()));
        }
        if !ctx.worktree.is_dir() {
            return Err(self.spawn_error(format!("the worktree {} is not a directory", ctx.worktree.display())));
        }
        let files = RunFiles::write(&ctx, self.executor.shared_dir())?;
        let tmp = match confine::decide(&self.confine) {
            Some(_) => Some(
                confine::RunTmp::create(ctx.task_id.as_str(), self.executor.shared_dir())
                    .map_err(|source| AgentError::Io { action: "create the agent's private temp dir".to_owned(), source })?,
            ),
            None => None,
        };
        let spec = self.process_spec(&ctx, &files, tmp.as_ref())?;
        let timeout = spec.timeout;
        let roots = spec.confine.as_ref().map(|c| c.write.iter().map(|p| p.display().to_string()).collect::<Vec<_>>());
        let outcome = self.executor.run_observed(spec, ctx.job_observer.clone()).await.map_err(|e| self.exec_error(e))?;
        // The files lived until the process ended; now they go.
        drop(files);
        drop(tmp);
        let mut report = self.report(outcome, timeout, started.elapsed(), roots.is_some(), ctx.read_only)?;
        report.confined = roots;
        Ok(report)
    }
}
