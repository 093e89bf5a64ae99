//! `fugue plan PLAN`: check a plan and show how it will execute.

use std::path::PathBuf;
use std::process::ExitCode;

use fugue_core::load::{LoadError, LoadOptions, LoadedPlan};

use crate::{CliError, CliResult, Global};

/// Arguments of `fugue plan`.
#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// The plan file (YAML or JSON).
    plan: PathBuf,
    /// Print `DEPENDENCY_GRAPH.json` instead of the human view.
    #[arg(long)]
    json: bool,
}

/// Loads a plan, taking `parallelization` defaults from the state dir's `auto-context.yaml`.
pub(crate) fn load(global: &Global, path: &std::path::Path) -> Result<LoadedPlan, CliError> {
    let opts = LoadOptions { auto_context: Some(global.state_dir().join("auto-context.yaml")) };
    fugue_core::load::load_file(path, &opts).map_err(|e| match e {
        LoadError::Io { .. } => CliError::Input(e.to_string()),
        other => CliError::Diagnostic(miette::Report::new(other)),
    })
}

/// Prints warnings (if any) as a located diagnostic on stderr.
pub(crate) fn print_warnings(loaded: &LoadedPlan, global: &Global) {
    if !loaded.warnings.is_empty() && !global.quiet {
        eprintln!("{:?}", miette::Report::new(loaded.diagnostics(loaded.warnings.clone())));
    }
}

pub(crate) fn run(global: &Global, args: PlanArgs) -> CliResult {
    let loaded = load(global, &args.plan)?;
    print_warnings(&loaded, global);
    let plan = &loaded.plan;
    if args.json {
        println!("{}", serde_json::to_string_pretty(plan).map_err(|e| CliError::env("failed to serialise the plan", e))?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: valid plan with {} task(s)", loaded.source.name, plan.tasks.len());
    for phase in fugue_core::Phase::ALL {
        let ids: Vec<&str> = plan.tasks.iter().filter(|t| t.phase == phase).map(|t| t.id.as_str()).collect();
        if !ids.is_empty() {
            println!("  {phase} ({:?}): {}", phase.policy(), ids.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
