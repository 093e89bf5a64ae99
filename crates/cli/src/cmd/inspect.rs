//! `fugue status`, `fugue validate` and `fugue report`: read a run back from its journal.

use std::path::PathBuf;
use std::process::ExitCode;

use fugue_core::Usage;
use fugue_core::redact::{redact_json_text, redact_str};
use fugue_core::state::{ResourceLocks, files};
use fugue_engine::RunView;
use fugue_engine::report::{cost_text, figure, tokens_text};
use fugue_engine::view::TaskView;

use crate::cmd::run::engine_error;
use crate::{CliError, CliResult, Global};

/// Arguments of `fugue status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `fugue validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `fugue report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Write a self-contained HTML page (timeline, concurrency, task table) to FILE instead.
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    html: Option<PathBuf>,
}

fn json<T: serde::Serialize>(v: &T) -> Result<(), CliError> {
    println!("{}", serde_json::to_string_pretty(v).map_err(|e| CliError::env("failed to serialise", e))?);
    Ok(())
}

pub(crate) fn status(global: &Global, args: StatusArgs) -> CliResult {
    let dir = global.state_dir();
    let run = fugue_engine::load_run(&dir).map_err(engine_error)?;
    // The lock table is a side view here: a damaged one is noted, not a reason to show nothing.
    let locks_path = dir.join(files::RESOURCE_LOCKS);
    let (locks, locks_note): (ResourceLocks, Option<String>) = match std::fs::read_to_string(&locks_path) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(locks) => (locks, None),
            Err(e) => (ResourceLocks::default(), Some(format!("{} is unreadable ({e}); `fugue locks` says more", locks_path.display()))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (ResourceLocks::default(), None),
        Err(e) => (ResourceLocks::default(), Some(format!("failed to read {}: {e}", locks_path.display()))),
    };
    if let Some(note) = &locks_note {
        eprintln!("note: {note}");
    }
    let v = &run.view;
    let alive = v.outcome.is_none() && fugue_engine::locks::pid_alive(v.pid);
    let state = match v.outcome {
        Some(o) => serde_json::to_value(o).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        None if alive => format!("running (pid {})", v.pid),
        None => "stopped (resume with `fugue resume`)".to_owned(),
    };
    let (total, unreported) = v.usage();
    let budget = fugue_engine::report::saved_plan(&global.state_dir()).and_then(|p| fugue_engine::report::budget_report(v, &p));
    if args.json {
        let tasks: Vec<serde_json::Value> = v
            .order
            .iter()
            .map(|id| {
                let t = v.task(id);
                let usage = t.usage_with_live();
                serde_json::json!({
                    "id": id, "status": t.status, "attempts": t.attempts, "iterations": t.iterations, "branch": t.branch, "worktree": t.worktree,
                    "usage": usage, "tokens": usage.total_tokens(), "cost_usd": usage.cost_usd,
                    "agent_runs": t.agent_runs, "unreported_runs": t.unreported_runs,
                    "activity": live(t, alive).map(|(doing, usage)| serde_json::json!({"doing": doing, "usage": usage})),
                    "session_id": t.session, "turns": (t.turns > 0).then_some(t.turns), "denials": t.denials, "failure": t.failure,
                })
            })
            .collect();
        let agent_runs: u32 = v.tasks.values().map(|t| t.agent_runs).sum();
        let status = serde_json::json!({
            "execution_id": v.execution_id, "state": state, "phase": v.current_phase, "completed_phases": v.completed_phases,
            "running": v.active(), "tasks": tasks, "locks": locks.locks,
            "usage": total, "tokens": total.total_tokens(), "cost_usd": total.cost_usd, "agent_runs": agent_runs, "unreported_runs": unreported,
            "budget": budget,
        });
        // Activity lines and denials quote agent output.
        println!("{}", redact_json_text(&serde_json::to_string_pretty(&status).map_err(|e| CliError::env("failed to serialise", e))?));
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    out.push_str(&format!("run {} — {state}\n", v.execution_id));
    out.push_str(&format!(
        "phase: {}   completed: {}\n",
        v.current_phase.map_or("-".to_owned(), |p| p.to_string()),
        v.completed_phases.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    ));
    out.push_str(&status_table(v));
    let running = v.active();
    if !running.is_empty() {
        out.push_str(&format!("\nrunning: {}\n", running.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")));
        for id in &running {
            if let Some((doing, usage)) = live(v.task(id), alive) {
                let so_far = usage.brief().map(|b| format!(" ({b} so far)")).unwrap_or_default();
                out.push_str(&format!("  {:<26} {}{so_far}\n", id.as_str(), one_line(doing)));
            }
        }
    }
    out.push_str(&format!(
        "\n{}\n",
        spent_line(
            &total,
            unreported,
            v.tasks.values().map(|t| t.costless_runs).sum(),
            v.tasks.values().any(|t| t.agent_runs > 0 || t.activity.is_some())
        )
    ));
    if let Some(b) = &budget {
        out.push_str(&format!("budget: {} (running agents' live spend included)\n", b.text()));
    }
    print!("{}", redact_str(&out));
    if !locks.locks.is_empty() {
        println!("\nlocks:");
        for l in &locks.locks {
            println!("  {:<24} {:?} {}", l.agent_id, l.mode, l.locked_paths.join(", "));
        }
    }
    if let Some(t) = run.torn_tail {
        println!("\nnote: the journal ends with a torn line (a crash while writing); it is ignored: {t}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What the task's agent is doing now: a stopped run's last activity is history, not "now".
fn live(t: &TaskView, alive: bool) -> Option<&(String, Usage)> {
    t.activity.as_ref().filter(|_| alive)
}

/// The task table of `fugue status`, with each task's spend so far (the running iteration's
/// included): "-" where no agent ran, "unknown" where none reported the figure, `≥` where
/// some runs did not.
fn status_table(v: &RunView) -> String {
    let mut s = format!("\n{:<28} {:<15} {:>8} {:>10} {:>10} {:>10}\n", "TASK", "STATUS", "ATTEMPTS", "ITERATIONS", "TOKENS", "COST");
    for id in &v.order {
        let t = v.task(id);
        let usage = t.usage_with_live();
        let ran = t.agent_runs > 0 || t.activity.is_some();
        s.push_str(&format!(
            "{:<28} {:<15} {:>8} {:>10} {:>10} {:>10}\n",
            id.as_str(),
            t.status.as_str(),
            t.attempts,
            t.iterations,
            figure(usage.total_tokens(), ran, t.unreported_runs, tokens_text),
            figure(usage.cost_usd, ran, t.unreported_runs + t.costless_runs, cost_text),
        ));
    }
    s
}

/// The run's total: `spent: tokens 45.1k, cost $0.1234 (1 run(s) reported no usage)`.
fn spent_line(total: &Usage, unreported: u32, costless: u32, any_ran: bool) -> String {
    if !any_ran {
        return "spent: nothing yet (no agent has run)".to_owned();
    }
    let ge = |known: bool, missing: u32| if known && missing > 0 { "≥ " } else { "" };
    let mut line = format!(
        "spent: tokens {}{}, cost {}{}",
        ge(total.total_tokens().is_some(), unreported),
        tokens_text(total.total_tokens()),
        ge(total.cost_usd.is_some(), unreported + costless),
        cost_text(total.cost_usd)
    );
    if unreported > 0 {
        line.push_str(&format!(" ({unreported} run(s) reported no usage)"));
    }
    line
}

/// The first non-empty line of `text`, clipped.
fn one_line(text: &str) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    if first.chars().count() > 100 { format!("{}…", first.chars().take(99).collect::<String>()) } else { first.to_owned() }
}

pub(crate) fn validate(global: &Global, args: ValidateArgs) -> CliResult {
    let dir = global.state_dir();
    let run = fugue_engine::load_run(&dir).map_err(engine_error)?;
    let graph = run
        .graph
        .ok_or_else(|| CliError::Input(format!("{} has no {}: nothing to validate against", dir.display(), files::DEPENDENCY_GRAPH)))?;
    // The saved plan holds the budgets to check the journal's spend against.
    let plan = fugue_engine::report::saved_plan(&dir);
    let v = fugue_engine::validate::validate_with_plan(&run.view, &graph, plan.as_ref());
    if args.json {
        json(&v)?;
    } else {
        println!("run {}: {} checks, concurrency max {} mean {:.2}", v.execution_id, v.checks, v.concurrency.max, v.concurrency.mean);
        for (phase, c) in &v.phases {
            println!("  {phase}: max {} mean {:.2}", c.max, c.mean);
        }
        if v.ok() {
            println!("✔ the run kept every rule");
        }
        for f in &v.findings {
            println!("✘ [{}] {}", f.rule, f.message);
        }
    }
    Ok(if v.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub(crate) fn report(global: &Global, args: ReportArgs) -> CliResult {
    if let Some(out) = &args.html {
        fugue_engine::html::write(&global.state_dir(), out).map_err(engine_error)?;
        println!("HTML report written to {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let run = fugue_engine::load_run(&global.state_dir()).map_err(engine_error)?;
    // The saved plan says which tasks may change nothing (`allow_empty`); without it the
    // report does not claim either way.
    let plan = fugue_engine::report::saved_plan(&global.state_dir());
    let report = fugue_engine::report::build_for(&run.view, run.graph.as_ref(), plan.as_ref()).with_disk(&global.state_dir());
    if args.json {
        json(&report)?;
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fugue_core::{AgentOutcome, TaskId, TaskStatus};
    use fugue_engine::Event;
    use fugue_engine::journal::Record;

    fn id(s: &str) -> TaskId {
        TaskId::new(s).expect("id")
    }

    fn usage(tokens: Option<u64>, cost: Option<f64>) -> Usage {
        let mut u = Usage::default();
        u.output_tokens = tokens;
        u.cost_usd = cost;
        u
    }

    fn finished(task: &str, usage: Usage) -> Event {
        Event::AgentFinished {
            task: id(task),
            attempt: 1,
            iteration: 0,
            outcome: AgentOutcome::ReadyForQa,
            summary: "s".into(),
            duration_ms: 1,
            usage,
            session_id: None,
            turns: None,
            denials: vec![],
            failure: None,
            final_message: None,
            priced: false,
        }
    }

    fn view(events: Vec<Event>) -> RunView {
        let records: Vec<Record> = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| Record { seq: i as u64 + 1, ts: format!("2026-01-01T00:00:{:02}.000Z", i), event })
            .collect();
        RunView::from_records(&records)
    }

    /// `known` reported tokens and cost; `partly` ran twice, once reporting nothing; `silent`
    /// reported nothing; `live` is running with figures so far; `idle` has not run.
    fn run() -> RunView {
        view(vec![
            Event::RunStarted {
                execution_id: "exec-1".into(),
                plan: "plan.yaml".into(),
                base: "main".into(),
                base_commit: "abc".into(),
                mode: "PARALLEL".into(),
                tasks: vec![id("known"), id("partly"), id("silent"), id("live"), id("idle")],
                pid: 1,
            },
            finished("known", usage(Some(12_345), Some(0.0421))),
            Event::Status { task: id("known"), status: TaskStatus::Merged },
            finished("partly", usage(Some(800), None)),
            finished("partly", Usage::default()),
            finished("silent", Usage::default()),
            Event::Status { task: id("live"), status: TaskStatus::InProgress },
            Event::AgentActivity {
                task: id("live"),
                attempt: 1,
                iteration: 0,
                doing: "Bash: cargo test".into(),
                usage: usage(Some(3_200), Some(0.011)),
            },
        ])
    }

    #[test]
    fn the_status_table_shows_spend_and_unknown_is_never_zero() {
        let v = run();
        let (total, unreported) = v.usage();
        insta::assert_snapshot!(format!("{}\n{}", status_table(&v), spent_line(&total, unreported, 0, true)));
    }

    #[test]
    fn the_total_line_says_what_is_unknown() {
        assert_eq!(spent_line(&Usage::default(), 0, 0, false), "spent: nothing yet (no agent has run)");
        assert_eq!(spent_line(&Usage::default(), 3, 0, true), "spent: tokens unknown, cost unknown (3 run(s) reported no usage)");
        assert_eq!(spent_line(&usage(Some(50), Some(0.5)), 0, 0, true), "spent: tokens 50, cost $0.5000");
        assert_eq!(spent_line(&usage(Some(50), None), 1, 0, true), "spent: tokens ≥ 50, cost unknown (1 run(s) reported no usage)");
        // A run stopped before its result reported tokens but no cost: the cost is a lower bound.
        assert_eq!(spent_line(&usage(Some(50), Some(0.5)), 0, 1, true), "spent: tokens 50, cost ≥ $0.5000");
        assert_eq!(one_line("\n  first line  \nsecond"), "first line");
    }
}
