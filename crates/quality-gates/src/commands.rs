//! Running a gate's command list in the checkout: shared by the tests and docs gates.
//!
//! Commands run one after another (a later one may need an earlier one's build), each with the
//! settings' timeout and output cap and `FUGUE_TASK_ID`, `FUGUE_CHECKOUT`, `FUGUE_BASE_COMMIT`
//! and `FUGUE_HEAD_COMMIT` in its environment. A failing command does not stop the list, so
//! the agent hears about every failure at once; a command that cannot be started does, because
//! that is the environment's problem and the gate is then blocked, not failed.

use std::collections::BTreeMap;

use fugue_core::{CommandLine, Finding, GateContext, Severity, TestCounts};

use crate::counts::add_counts;
use crate::process::{self, Invocation};
use crate::settings::GateSettings;

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

/// Runs `commands` in `ctx.checkout`.
pub(crate) async fn run_commands(commands: &[CommandLine], ctx: &GateContext, settings: &GateSettings) -> CommandsRun {
    let env = command_env(ctx, settings);
    let mut run = CommandsRun { all_passed: true, ..CommandsRun::default() };
    for command in commands {
        let inv = Invocation {
            argv: command.argv(),
            cwd: &ctx.checkout,
            env: &env,
            timeout: settings.command_timeout,
            grace: settings.grace,
            output_cap: settings.output_cap,
        };
        let finished = match process::run(&inv).await {
            Ok(f) => f,
            Err(e) => {
                run.blocked = true;
                run.all_passed = false;
                run.findings.push(Finding {
                    severity: Severity::High,
                    file: None,
                    line: None,
                    message: format!("command `{command}` could not be started: {}", e.describe(command.program(), &ctx.checkout)),
                });
                break;
            }
        };
        run.counts = add_counts(run.counts, finished.counts);
        let secs = finished.duration.as_secs_f64();
        let how = if finished.timed_out {
            Some(format!("timed out after {:?} and was stopped", settings.command_timeout))
        } else {
            match (finished.exit_code, finished.signal) {
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
                message: format!("command `{command}` {how}:{}", quote_tail(&finished.output, settings.quoted_lines)),
            });
        } else if let Some(c) = finished.counts.filter(|c| c.failed > 0 && finished.success()) {
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
