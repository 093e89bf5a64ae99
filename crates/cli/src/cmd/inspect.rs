//! `fugue status`, `fugue validate` and `fugue report`: read a run back from its journal.

use std::path::PathBuf;
use std::process::ExitCode;

use fugue_core::state::{ResourceLocks, files};

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
    let state = match v.outcome {
        Some(o) => format!("{o:?}").to_lowercase(),
        None if fugue_engine::locks::pid_alive(v.pid) => format!("running (pid {})", v.pid),
        None => "stopped (resume with `fugue resume`)".to_owned(),
    };
    if args.json {
        let tasks: Vec<serde_json::Value> = v
            .order
            .iter()
            .map(|id| {
                let t = v.task(id);
                serde_json::json!({"id": id, "status": t.status, "attempts": t.attempts, "iterations": t.iterations, "branch": t.branch, "worktree": t.worktree})
            })
            .collect();
        json(
            &serde_json::json!({"execution_id": v.execution_id, "state": state, "phase": v.current_phase, "completed_phases": v.completed_phases, "running": v.active(), "tasks": tasks, "locks": locks.locks}),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("run {} — {state}", v.execution_id);
    println!(
        "phase: {}   completed: {}",
        v.current_phase.map_or("-".to_owned(), |p| p.to_string()),
        v.completed_phases.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    );
    println!("\n{:<28} {:<15} {:>8} {:>10}", "TASK", "STATUS", "ATTEMPTS", "ITERATIONS");
    for id in &v.order {
        let t = v.task(id);
        println!("{:<28} {:<15} {:>8} {:>10}", id.as_str(), t.status.as_str(), t.attempts, t.iterations);
    }
    let running = v.active();
    if !running.is_empty() {
        println!("\nrunning: {}", running.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "));
    }
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

pub(crate) fn validate(global: &Global, args: ValidateArgs) -> CliResult {
    let dir = global.state_dir();
    let run = fugue_engine::load_run(&dir).map_err(engine_error)?;
    let graph = run
        .graph
        .ok_or_else(|| CliError::Input(format!("{} has no {}: nothing to validate against", dir.display(), files::DEPENDENCY_GRAPH)))?;
    let v = fugue_engine::validate::validate(&run.view, &graph);
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
    let report = fugue_engine::report::build(&run.view, run.graph.as_ref());
    if args.json {
        json(&report)?;
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(ExitCode::SUCCESS)
}
