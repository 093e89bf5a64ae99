//! The local executor: a [`ProcessSpec`] run as a process group on this machine.
//!
//! One run goes like this:
//!
//! 1. the log file (if any) is opened for appending and the spec's header line written — a log
//!    that does not exist yet is only created by the first output or an ending worth a record
//!    (see `output::LogFile`);
//! 2. with a [`ProcessSpec::confine`], the Landlock ruleset is built (see `confine`) and applied
//!    in the child before exec; one that cannot be applied is an error, never an unconfined run;
//!    the program is started directly — no shell — in the spec's working directory, as the
//!    leader of a new process group, with the spec's `env` added to the inherited environment;
//!    the spec's stdin bytes are fed to it (and the pipe closed) by a task of their own, or
//!    its stdin is empty;
//! 3. stdout and stderr are pumped into the log (up to its cap) and a capped head+tail
//!    capture (see `output`), a whole line at a time, so the two streams interleave by lines;
//! 4. when the process exits, whatever it left running in its group is stopped (SIGTERM,
//!    grace, SIGKILL) so that nothing outlives it; on timeout the whole group is stopped the
//!    same way and the outcome says `timed_out`; if the future is dropped (cancellation) a
//!    guard does it from `Drop` (see `process`);
//! 5. the log gets a footer line saying how the process ended.
//!
//! Secrets never reach the log or the outcome: the spec's secret-looking `env` entries are
//! registered with the process-wide redactor (`fugue_core::redact`) before the run, each
//! output stream goes through a stream redactor of its own before the sink (so the log, the
//! head and the tail of the capture all see redacted bytes, and a secret split across two
//! reads is still caught), and fugue's own lines and error messages are redacted as text.
//!
//! The executor reports how the process ended and does not judge it: exit codes, signals and
//! timeouts all come back as a [`ProcessOutcome`]; only a process that could not be started
//! (or waited for) is an [`ExecError`].

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fugue_core::redact::{self, Redactor, redact_str};
use fugue_core::{ExecError, ExecObserver, Executor, OutputStream, ProcessOutcome, ProcessSpec, async_trait};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::output::{Capture, LogFile, Sink};
use crate::process::{Group, GroupGuard, signal_name};

/// Runs processes as child process groups of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalExecutor;

impl LocalExecutor {
    /// The local executor.
    pub fn new() -> Self {
        Self
    }
}

/// Aborts a spawned task when dropped, so a cancelled run leaves no pump behind.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where one output stream goes besides the shared sink: the observer that hears it as it
/// comes, and a capture of its own (stdout kept apart for machine output).
struct Tap {
    stream: OutputStream,
    observer: Option<Arc<dyn ExecObserver>>,
    own: Option<Arc<Mutex<Capture>>>,
}

impl Tap {
    fn push(&self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        if let Some(own) = &self.own {
            own.lock().unwrap_or_else(PoisonError::into_inner).push(chunk);
        }
        if let Some(observer) = &self.observer {
            observer.output(self.stream, chunk);
        }
    }
}

/// Copies one output stream, redacted, into the sink (and its tap) until it closes.
fn pump(
    reader: Option<impl AsyncRead + Unpin + Send + 'static>,
    sink: Arc<Mutex<Sink>>,
    redactor: &Arc<Redactor>,
    tap: Tap,
) -> Option<AbortOnDrop<()>> {
    /// Bytes of one stream held back from the shared sink while they end no line.
    const PENDING_CAP: usize = 64 * 1024;
    let mut reader = reader?;
    let mut redact = redactor.stream();
    Some(AbortOnDrop(tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        // The sink interleaves stdout and stderr: it gets whole lines only (the redactor holds
        // back a partial tail, and without this the other stream's line would land inside
        // this one's — a JSON report cut in two by a warning on stderr).
        let mut pending: Vec<u8> = Vec::new();
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let clean = redact.push(&buf[..n]);
                    if !clean.is_empty() {
                        pending.extend_from_slice(&clean);
                        let upto = if pending.len() > PENDING_CAP {
                            pending.len()
                        } else {
                            pending.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
                        };
                        if upto > 0 {
                            sink.lock().unwrap_or_else(PoisonError::into_inner).push(&pending[..upto]);
                            pending.drain(..upto);
                        }
                        tap.push(&clean);
                    }
                }
            }
        }
        let rest = redact.finish();
        pending.extend_from_slice(&rest);
        sink.lock().unwrap_or_else(PoisonError::into_inner).push(&pending);
        tap.push(&rest);
    })))
}

/// Writes one of fugue's own lines to the log, redacted.
fn note(sink: &Mutex<Sink>, line: &str) {
    sink.lock().unwrap_or_else(PoisonError::into_inner).note(&redact_str(line));
}

/// What the program did.
enum Ending {
    Exited(ExitStatus),
    TimedOut { after: Duration, status: Option<ExitStatus> },
}

fn spawn_error(spec: &ProcessSpec, program: &str, kind: ErrorKind, message: impl Into<String>) -> ExecError {
    ExecError::Spawn {
        program: redact_str(program).into_owned(),
        cwd: spec.cwd.clone(),
        kind,
        message: redact_str(&message.into()).into_owned(),
    }
}

#[async_trait]
impl Executor for LocalExecutor {
    fn name(&self) -> &str {
        "local"
    }

    async fn run(&self, spec: ProcessSpec) -> Result<ProcessOutcome, ExecError> {
        self.run_observed(spec, None).await
    }

    async fn run_observed(&self, spec: ProcessSpec, observer: Option<Arc<dyn ExecObserver>>) -> Result<ProcessOutcome, ExecError> {
        let started = Instant::now();
        redact::register_vars(&spec.env);
        let redactor = redact::global();
        let Some((program, args)) = spec.argv.split_first() else {
            return Err(spawn_error(&spec, "", ErrorKind::InvalidInput, "the argv is empty: give at least the program"));
        };
        if !spec.cwd.is_dir() {
            let message = format!("the working directory {} is not a directory", spec.cwd.display());
            return Err(spawn_error(&spec, program, ErrorKind::NotADirectory, message));
        }
        let mut log = match &spec.log_file {
            Some(path) => Some(
                LogFile::open(path, spec.log_cap)
                    .map_err(|source| ExecError::Io { action: format!("open the task log {}", path.display()), source })?,
            ),
            None => None,
        };
        if let (Some(log), Some(header)) = (&mut log, &spec.log_header) {
            log.note(&redactor.redact(header));
        }

        // The ruleset is built here, before the fork; the child only applies it (see `confine`).
        // A confinement that cannot be applied stops the run: it never goes ahead unconfined.
        let confined = match &spec.confine {
            Some(c) => match crate::confine::prepare(c) {
                Ok(prepared) => prepared,
                Err(e) => {
                    if let Some(log) = &mut log {
                        log.note(&redactor.redact(&format!("--- fugue: could not start `{program}`: {e}")));
                        log.keep();
                    }
                    return Err(spawn_error(&spec, program, ErrorKind::Unsupported, e.to_string()));
                }
            },
            None => None,
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(&spec.cwd)
            .stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // An agent's git must work on its own checkout: fugue started from a hook or another
        // repository's shell would otherwise hand it GIT_DIR & co. (the spec may set them).
        for name in fugue_core::git::SCRUBBED_ENV {
            command.env_remove(name);
        }
        command.envs(&spec.env);
        if let Some(prepared) = &confined {
            let fd = prepared.raw_fd();
            // SAFETY: the closure runs in the child between fork and exec and only makes the two
            // async-signal-safe system calls of `restrict_in_child`; `fd` stays open in the parent
            // (and so in the child) until `spawn` returns, because `confined` lives until then.
            unsafe {
                command.pre_exec(move || crate::confine::restrict_in_child(fd));
            }
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                if let Some(log) = &mut log {
                    log.note(&redactor.redact(&format!("--- fugue: could not start `{program}`: {e}")));
                    log.keep();
                }
                return Err(spawn_error(&spec, program, e.kind(), e.to_string()));
            }
        };
        drop(confined);
        let group = child.id().and_then(Group::led_by);
        let mut guard = GroupGuard::new(group, spec.grace);

        let sink = Arc::new(Mutex::new(Sink { capture: Capture::new(spec.output_cap), log }));
        let own_stdout = spec.keep_stdout.map(|cap| Arc::new(Mutex::new(Capture::new(cap.max(4)))));
        let taps = (
            Tap { stream: OutputStream::Stdout, observer: observer.clone(), own: own_stdout.clone() },
            Tap { stream: OutputStream::Stderr, observer, own: None },
        );
        let pumps = [
            pump(child.stdout.take(), Arc::clone(&sink), &redactor, taps.0),
            pump(child.stderr.take(), Arc::clone(&sink), &redactor, taps.1),
        ];
        let _feeder = child.stdin.take().map(|mut stdin| {
            let bytes = spec.stdin.clone().unwrap_or_default();
            // A program that never reads its stdin closes the pipe; that is not an error.
            AbortOnDrop(tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
                let _ = stdin.shutdown().await;
            }))
        });

        let waited = match spec.timeout {
            Some(limit) => tokio::time::timeout(limit, child.wait()).await.ok(),
            None => Some(child.wait().await),
        };
        let ending = match waited {
            Some(Ok(status)) => {
                // The program is gone; anything it left in its group goes too.
                if let Some(group) = group.filter(|g| g.alive()) {
                    group.stop(spec.grace).await;
                    note(&sink, "--- fugue: stopped processes the agent left running in its process group");
                    sink.lock().unwrap_or_else(PoisonError::into_inner).keep_log();
                }
                Ending::Exited(status)
            }
            Some(Err(e)) => {
                // The guard (still armed) stops the group on the way out.
                let action = redact_str(&format!("wait for `{}` (`{program}`)", spec.label)).into_owned();
                return Err(ExecError::Io { action, source: e });
            }
            None => {
                match group {
                    Some(group) => {
                        group.signal(libc::SIGTERM);
                        let settled = tokio::time::timeout(spec.grace, async {
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
                let status = child.wait().await.ok();
                Ending::TimedOut { after: spec.timeout.unwrap_or_default(), status }
            }
        };
        guard.disarm();

        // The group is gone, so the pipes close; a process that escaped the group could still
        // hold them, hence the bound.
        let drained = tokio::time::timeout(spec.grace, async {
            for mut handle in pumps.into_iter().flatten() {
                let _ = (&mut handle.0).await;
            }
        })
        .await;
        let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
        if drained.is_err() {
            sink.note("--- fugue: stopped reading output still held open by a process outside the agent's group");
            sink.keep_log();
        }
        let elapsed = started.elapsed();
        let secs = elapsed.as_secs_f64();
        let outcome = match ending {
            Ending::TimedOut { after, status } => {
                sink.note(&format!("--- fugue: timed out after {after:?}; the process group was stopped"));
                sink.keep_log();
                let mut outcome = ProcessOutcome::timed_out();
                outcome.signal = status.and_then(|s| s.signal());
                outcome
            }
            Ending::Exited(status) => {
                let (outcome, footer) = match (status.code(), status.signal()) {
                    (Some(code), _) => (ProcessOutcome::exited(code), format!("exit code {code}")),
                    (None, Some(sig)) => (ProcessOutcome::killed_by(sig), format!("killed by {}", signal_name(sig))),
                    (None, None) => (ProcessOutcome::default(), status.to_string()),
                };
                sink.note(&format!("--- fugue: {footer} after {secs:.1}s"));
                if status.code() != Some(0) {
                    sink.keep_log();
                }
                outcome
            }
        };
        let mut outcome = outcome.with_output(sink.capture.text(), sink.capture.dropped()).with_duration(elapsed);
        outcome.stdout = own_stdout.map(|c| c.lock().unwrap_or_else(PoisonError::into_inner).text());
        Ok(outcome)
    }
}
