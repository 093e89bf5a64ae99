//! The `command` agent: a process started from an argv template.
//!
//! One run goes like this:
//!
//! 1. the prompt and the QA feedback are written to files in a private temporary directory
//!    (removed when the run ends, however it ends) so that agents that prefer files can read
//!    them (`{prompt_file}`, `FUGUE_PROMPT_FILE`, `FUGUE_FEEDBACK_FILE`);
//! 2. the argv template is expanded (see `template`) and the program is started directly —
//!    no shell — in the worktree, as the leader of a new process group, with `FUGUE_TASK_ID`,
//!    `FUGUE_WORKTREE`, `FUGUE_PROMPT_FILE` and `FUGUE_FEEDBACK_FILE` added to the inherited
//!    environment (after the spec's and the context's `env`, so they cannot be overridden);
//!    with `prompt_via: stdin` the prompt is also written to its standard input;
//! 3. stdout and stderr are pumped into the task log and a capped capture (see `output`);
//! 4. when the process exits, whatever it left running in its group is stopped (SIGTERM,
//!    grace, SIGKILL) so that nothing outlives the agent; on timeout the whole group is
//!    stopped the same way and the run is an [`AgentError::Timeout`]; if the future is dropped
//!    (cancellation) a guard does it from `Drop`.
//!
//! Exit 0 is a report ready for QA; any other exit code or a death by signal is a failed
//! report saying which.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fugue_core::{Agent, AgentContext, AgentError, AgentReport, CommandAgentSpec, PromptInput, async_trait};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::output::{Capture, LogFile, Sink};
use crate::process::{Group, GroupGuard, signal_name};
use crate::template;

/// An agent that runs a program from an argv template.
#[derive(Debug, Clone)]
pub struct CommandAgent {
    name: String,
    spec: CommandAgentSpec,
    grace: Duration,
    output_cap: usize,
    log_cap: u64,
}

impl CommandAgent {
    /// Time between SIGTERM and SIGKILL.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
    /// Bytes of output kept in the report (head and tail).
    pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;
    /// Bytes of output written to the task log.
    pub const DEFAULT_LOG_CAP: u64 = 16 * 1024 * 1024;

    /// The agent `name` (its key in the plan's `agents`) running `spec`.
    pub fn new(name: impl Into<String>, spec: CommandAgentSpec) -> Self {
        Self { name: name.into(), spec, grace: Self::DEFAULT_GRACE, output_cap: Self::DEFAULT_OUTPUT_CAP, log_cap: Self::DEFAULT_LOG_CAP }
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

    fn spawn_error(&self, message: impl Into<String>) -> AgentError {
        AgentError::Spawn { agent: self.name.clone(), message: message.into() }
    }
}

/// The prompt and feedback files of one run, deleted with it.
struct RunFiles {
    _dir: tempfile::TempDir,
    prompt: std::path::PathBuf,
    feedback: std::path::PathBuf,
}

impl RunFiles {
    fn write(ctx: &AgentContext) -> Result<Self, AgentError> {
        let io = |action: String| move |source| AgentError::Io { action, source };
        let dir = tempfile::Builder::new()
            .prefix(&format!("fugue-{}-", ctx.task_id))
            .tempdir()
            .map_err(io("create a temporary directory for the prompt files".to_owned()))?;
        let prompt = dir.path().join("prompt.md");
        let feedback = dir.path().join("feedback.md");
        std::fs::write(&prompt, &ctx.prompt).map_err(io(format!("write the prompt file {}", prompt.display())))?;
        std::fs::write(&feedback, ctx.feedback.as_deref().unwrap_or(""))
            .map_err(io(format!("write the feedback file {}", feedback.display())))?;
        Ok(Self { _dir: dir, prompt, feedback })
    }
}

/// Aborts a spawned task when dropped, so a cancelled run leaves no pump behind.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn pump(reader: Option<impl AsyncRead + Unpin + Send + 'static>, sink: Arc<Mutex<Sink>>) -> Option<AbortOnDrop<()>> {
    let mut reader = reader?;
    Some(AbortOnDrop(tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(&buf[..n]),
            }
        }
    })))
}

/// What the program did.
enum Ending {
    Exited(ExitStatus),
    TimedOut(Duration),
}

#[async_trait]
impl Agent for CommandAgent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, ctx: AgentContext) -> Result<AgentReport, AgentError> {
        let started = Instant::now();
        if self.spec.command.is_empty() {
            return Err(self.spawn_error(format!(
                "its command is empty: write `agents.{}.command` as a list, program first, e.g. [\"claude\", \"-p\", \"{{prompt}}\"]",
                self.name
            )));
        }
        if !ctx.worktree.is_dir() {
            return Err(self.spawn_error(format!("the worktree {} is not a directory", ctx.worktree.display())));
        }
        let files = RunFiles::write(&ctx)?;
        let argv = self.argv(&ctx, &files.prompt);
        let program = argv[0].clone();

        let mut log = match &ctx.log_file {
            Some(path) => Some(
                LogFile::open(path, self.log_cap)
                    .map_err(|source| AgentError::Io { action: format!("open the task log {}", path.display()), source })?,
            ),
            None => None,
        };
        if let Some(log) = &mut log {
            log.note(&format!(
                "--- fugue: agent `{}` for task `{}` (attempt {}, iteration {}): `{}` with {} argument(s) in {}",
                self.name,
                ctx.task_id,
                ctx.attempt,
                ctx.iteration,
                program.to_string_lossy(),
                argv.len() - 1,
                ctx.worktree.display()
            ));
        }

        let mut command = tokio::process::Command::new(&program);
        command
            .args(&argv[1..])
            .current_dir(&ctx.worktree)
            .envs(&self.spec.env)
            .envs(&ctx.env)
            .env("FUGUE_TASK_ID", ctx.task_id.as_str())
            .env("FUGUE_WORKTREE", &ctx.worktree)
            .env("FUGUE_PROMPT_FILE", &files.prompt)
            .env("FUGUE_FEEDBACK_FILE", &files.feedback)
            .stdin(if self.spec.prompt_via == PromptInput::Stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(|e| {
            let program = program.to_string_lossy();
            self.spawn_error(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("program `{program}` was not found: install it or put it on PATH, or fix `agents.{}.command`", self.name)
                }
                std::io::ErrorKind::PermissionDenied => format!("program `{program}` is not executable"),
                _ => format!("could not run `{program}`: {e}"),
            })
        })?;
        let group = child.id().and_then(Group::led_by);
        let mut guard = GroupGuard::new(group, self.grace);

        let sink = Arc::new(Mutex::new(Sink { capture: Capture::new(self.output_cap), log }));
        let pumps = [pump(child.stdout.take(), Arc::clone(&sink)), pump(child.stderr.take(), Arc::clone(&sink))];
        let _feeder = child.stdin.take().map(|mut stdin| {
            let prompt = ctx.prompt.clone().into_bytes();
            // A program that never reads its stdin closes the pipe; that is not an error.
            AbortOnDrop(tokio::spawn(async move {
                let _ = stdin.write_all(&prompt).await;
                let _ = stdin.shutdown().await;
            }))
        });

        let timeout = ctx.timeout.or(self.spec.timeout.map(|t| t.0));
        let waited = match timeout {
            Some(limit) => tokio::time::timeout(limit, child.wait()).await.ok(),
            None => Some(child.wait().await),
        };
        let ending = match waited {
            Some(Ok(status)) => {
                // The program is gone; anything it left in its group goes too.
                if let Some(group) = group.filter(|g| g.alive()) {
                    group.stop(self.grace).await;
                    sink.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .note("--- fugue: stopped processes the agent left running in its process group");
                }
                Ending::Exited(status)
            }
            Some(Err(e)) => {
                return Err(AgentError::Io {
                    action: format!("wait for agent `{}` (`{}`)", self.name, program.to_string_lossy()),
                    source: e,
                });
            }
            None => {
                match group {
                    Some(group) => {
                        group.signal(libc::SIGTERM);
                        let settled = tokio::time::timeout(self.grace, async {
                            let _ = child.wait().await;
                            group.gone().await;
                        })
                        .await;
                        if settled.is_err() {
                            group.signal(libc::SIGKILL);
                        }
                    }
                    None => {
                        let _ = child.start_kill();
                    }
                }
                let _ = child.wait().await;
                Ending::TimedOut(timeout.unwrap_or_default())
            }
        };
        guard.disarm();

        // The group is gone, so the pipes close; a process that escaped the group could still
        // hold them, hence the bound.
        let drained = tokio::time::timeout(self.grace, async {
            for mut handle in pumps.into_iter().flatten() {
                let _ = (&mut handle.0).await;
            }
        })
        .await;
        let mut sink = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if drained.is_err() {
            sink.note("--- fugue: stopped reading output still held open by a process outside the agent's group");
        }
        let elapsed = started.elapsed();
        let secs = elapsed.as_secs_f64();
        let (mut report, footer) = match ending {
            Ending::TimedOut(after) => {
                sink.note(&format!("--- fugue: timed out after {after:?}; the process group was stopped"));
                return Err(AgentError::Timeout { agent: self.name.clone(), after });
            }
            Ending::Exited(status) => match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                (Some(0), _) => {
                    (AgentReport::ready(format!("agent `{}` exited with code 0 after {secs:.1}s", self.name)), "exit code 0".to_owned())
                }
                (Some(code), _) => (
                    AgentReport::failed(format!("agent `{}` exited with code {code} after {secs:.1}s", self.name)),
                    format!("exit code {code}"),
                ),
                (None, Some(sig)) => {
                    let sig = signal_name(sig);
                    (AgentReport::failed(format!("agent `{}` was killed by {sig} after {secs:.1}s", self.name)), format!("killed by {sig}"))
                }
                (None, None) => {
                    (AgentReport::failed(format!("agent `{}` ended in an unknown way: {status}", self.name)), status.to_string())
                }
            },
        };
        sink.note(&format!("--- fugue: {footer} after {secs:.1}s"));
        report.exit_code = match ending {
            Ending::Exited(status) => status.code(),
            Ending::TimedOut(_) => None,
        };
        report.output = sink.capture.text();
        report.duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        drop(files);
        Ok(report)
    }
}
