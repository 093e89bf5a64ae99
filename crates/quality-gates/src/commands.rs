//! Running a gate's command list in the checkout: shared by the tests and docs gates.
//!
//! Commands run one after another (a later one may need an earlier one's build), each with the
//! settings' timeout and output cap and `FUGUE_TASK_ID`, `FUGUE_CHECKOUT`, `FUGUE_BASE_COMMIT`
//! and `FUGUE_HEAD_COMMIT` in its environment. A failing command does not stop the list, so
//! the agent hears about every failure at once; a command that cannot be started does, because
//! that is the environment's problem and the gate is then blocked, not failed.
//!
//! Each command is a [`ProcessSpec`] handed to the settings' [`Executor`], which owns the
//! process: no shell, its own process group, SIGTERM then SIGKILL on timeout or cancellation,
//! a head+tail capture of its output. The capture is capped, but test counts must not depend
//! on where in megabytes of output a runner printed its summary (cargo prints one per test
//! binary), so the spec also asks for a log file in the temp directory, up to [`SCAN_CAP`]
//! bytes: when the capture dropped bytes, the counts are read from that log, streamed line by
//! line, and the log is deleted. An executor that writes no log (the file stays empty) leaves
//! the counts to the capture.

use std::collections::BTreeMap;
use std::time::Duration;

use fugue_core::{CommandLine, ExecError, Executor, Finding, GateContext, ProcessOutcome, ProcessSpec, Severity, TestCounts};
use tempfile::NamedTempFile;

use crate::counts::{Scanner, add_counts};
use crate::settings::GateSettings;

/// Most bytes of one command's output written to its scan log.
const SCAN_CAP: u64 = 64 * 1024 * 1024;

/// What a command list did.
#[derive(Debug, Default)]
pub(crate) struct CommandsRun {
    pub(crate) findings: Vec<Finding>,
    /// A command could not be started; the gate is blocked.
    pub(crate) blocked: bool,
    /// Every command exited 0.
    pub(crate) all_passed: bool,
    pub(crate) counts: Option<TestCounts>,
}

/// The environment of gate commands.
pub(crate) fn command_env(ctx: &GateContext, settings: &GateSettings) -> BTreeMap<String, String> {
    let mut env = settings.env.clone();
    env.insert("FUGUE_TASK_ID".to_owned(), ctx.task_id.to_string());
    env.insert("FUGUE_CHECKOUT".to_owned(), ctx.checkout.display().to_string());
    env.insert("FUGUE_BASE_COMMIT".to_owned(), ctx.base_commit.clone());
    env.insert("FUGUE_HEAD_COMMIT".to_owned(), ctx.head_commit.clone());
    env
}

/// The last `lines` lines of `output` (at most 4 KB), indented for a finding.
pub(crate) fn quote_tail(output: &str, lines: usize) -> String {
    let trimmed = output.trim_end();
    let all: Vec<&str> = trimmed.lines().collect();
    let mut tail = all[all.len().saturating_sub(lines)..].join("\n");
    if tail.len() > 4096 {
        let mut cut = tail.len() - 4096;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    if tail.is_empty() { String::new() } else { format!("\n{}", tail.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")) }
}

/// Why a command could not be started, in words that say what to fix.
fn describe_exec_error(e: &ExecError) -> String {
    match e {
        ExecError::Spawn { program, kind: std::io::ErrorKind::NotFound, .. } => {
            format!("program `{program}` was not found: install it or put it on PATH")
        }
        ExecError::Spawn { program, kind: std::io::ErrorKind::PermissionDenied, .. } => {
            format!("program `{program}` is not executable")
        }
        ExecError::Spawn { cwd, kind: std::io::ErrorKind::NotADirectory, .. } => {
            format!("the checkout {} is not a directory", cwd.display())
        }
        other => other.to_string(),
    }
}

/// The test counts of a finished command: from its capture when that is complete, else from
/// its scan log (falling back to the capture when the executor wrote no log).
async fn counts_of(outcome: &ProcessOutcome, log: Option<NamedTempFile>) -> Option<TestCounts> {
    let from_capture = || {
        let mut scanner = Scanner::default();
        scanner.text(&outcome.output);
        scanner.counts()
    };
    let Some(log) = log.filter(|_| outcome.dropped_bytes > 0) else { return from_capture() };
    let scanned = tokio::task::spawn_blocking(move || {
        let file = log.reopen().ok()?;
        if file.metadata().ok()?.len() == 0 {
            return None;
        }
        let mut scanner = Scanner::default();
        scanner.stream(std::io::BufReader::new(file)).ok()?;
        Some(scanner.counts())
    })
    .await;
    match scanned {
        Ok(Some(counts)) => counts,
        _ => from_capture(),
    }
}

/// Runs one command through `executor`.
async fn run_one(
    executor: &dyn Executor,
    argv: &[String],
    ctx: &GateContext,
    env: &BTreeMap<String, String>,
    settings: &GateSettings,
) -> Result<(ProcessOutcome, Option<TestCounts>), ExecError> {
    let mut spec = ProcessSpec::new(ctx.task_id.to_string(), argv.to_vec(), &ctx.checkout);
    spec.env = env.clone();
    spec.timeout = Some(settings.command_timeout);
    spec.grace = settings.grace;
    spec.output_cap = settings.output_cap;
    // Without a scan log (no writable temp directory) the counts come from the capture alone.
    let log = tempfile::Builder::new().prefix(&format!("fugue-gate-{}-", ctx.task_id)).suffix(".log").tempfile().ok();
    spec.log_file = log.as_ref().map(|l| l.path().to_path_buf());
    spec.log_cap = SCAN_CAP;
    let outcome = executor.run(spec).await?;
    let counts = counts_of(&outcome, log).await;
    Ok((outcome, counts))
}

/// Runs `commands` in `ctx.checkout`.
pub(crate) async fn run_commands(commands: &[CommandLine], ctx: &GateContext, settings: &GateSettings) -> CommandsRun {
    let env = command_env(ctx, settings);
    let mut run = CommandsRun { all_passed: true, ..CommandsRun::default() };
    for command in commands {
        let (outcome, counts) = match run_one(settings.executor.as_ref(), command.argv(), ctx, &env, settings).await {
            Ok(ran) => ran,
            Err(e) => {
                run.blocked = true;
                run.all_passed = false;
                run.findings.push(Finding {
                    severity: Severity::High,
                    file: None,
                    line: None,
                    message: format!("command `{command}` could not be started: {}", describe_exec_error(&e)),
                });
                break;
            }
        };
        run.counts = add_counts(run.counts, counts);
        let secs = Duration::from_millis(outcome.duration_ms).as_secs_f64();
        let how = if outcome.timed_out {
            Some(format!("timed out after {:?} and was stopped", settings.command_timeout))
        } else {
            match (outcome.exit_code, outcome.signal) {
                (Some(0), _) => None,
                (Some(code), _) => Some(format!("exited with code {code} after {secs:.1}s")),
                (None, Some(sig)) => Some(format!("was killed by signal {sig} after {secs:.1}s")),
                (None, None) => Some("ended without an exit status".to_owned()),
            }
        };
        if let Some(how) = how {
            run.all_passed = false;
            run.findings.push(Finding {
                severity: Severity::High,
                file: None,
                line: None,
                message: format!("command `{command}` {how}:{}", quote_tail(&outcome.output, settings.quoted_lines)),
            });
        } else if let Some(c) = counts.filter(|c| c.failed > 0 && outcome.success()) {
            run.findings.push(Finding {
                severity: Severity::High,
                file: None,
                line: None,
                message: format!("command `{command}` exited 0 but reported {} failed test(s)", c.failed),
            });
        }
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_bounded_and_indented() {
        let out: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let q = quote_tail(&out, 3);
        assert_eq!(q, "\n    line 97\n    line 98\n    line 99");
        assert_eq!(quote_tail("", 3), "");
        let long = "é".repeat(5000);
        assert!(quote_tail(&long, 3).len() < 4200);
    }
}
