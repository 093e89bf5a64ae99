//! `fugue plan PLAN`: check a plan and show how it will execute.

use std::path::PathBuf;
use std::process::ExitCode;

use fugue_core::load::{LoadError, LoadOptions, LoadedPlan};
use fugue_core::state::{files, write_json_atomic};
use fugue_engine::planner::{DefaultPlanner, SealedPlan};

use crate::{CliError, CliResult, Global};

/// Arguments of `fugue plan`.
#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// The plan file (YAML or JSON).
    plan: PathBuf,
    /// Print `DEPENDENCY_GRAPH.json` instead of the human view.
    #[arg(long)]
    json: bool,
    /// Also write `DEPENDENCY_GRAPH.json` and `BOUNDARIES.json` into the state dir.
    #[arg(long)]
    write: bool,
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

/// Checks the agents (plugins load, configs match their schemas) and plans; every problem is
/// reported at its place in the plan file.
pub(crate) fn plan_or_diagnose(loaded: &LoadedPlan) -> Result<SealedPlan, CliError> {
    let mut issues = fugue_engine::agents::check_plan_agents(&loaded.plan, &loaded.dir);
    let sealed = match DefaultPlanner::new().plan_sealed(&loaded.plan) {
        Ok(s) => {
            issues.extend(s.warnings().iter().cloned());
            Some(s)
        }
        Err(e) => {
            issues.extend(e.issues);
            None
        }
    };
    let diagnostics = loaded.diagnostics(issues);
    match sealed {
        Some(s) if !diagnostics.has_errors() => {
            if !diagnostics.issues().is_empty() {
                eprintln!("{:?}", miette::Report::new(diagnostics));
            }
            Ok(s)
        }
        _ => Err(CliError::Diagnostic(miette::Report::new(diagnostics))),
    }
}

pub(crate) fn run(global: &Global, args: PlanArgs) -> CliResult {
    let loaded = load(global, &args.plan)?;
    print_warnings(&loaded, global);
    let sealed = plan_or_diagnose(&loaded)?;
    if args.write {
        let dir = global.state_dir();
        let boundaries = fugue_engine::planner::boundaries(&loaded.plan, sealed.execution_plan());
        write_json_atomic(&dir.join(files::DEPENDENCY_GRAPH), sealed.graph())
            .map_err(|e| CliError::env(&format!("failed to write into {}", dir.display()), e))?;
        write_json_atomic(&dir.join(files::BOUNDARIES), &boundaries)
            .map_err(|e| CliError::env(&format!("failed to write into {}", dir.display()), e))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(sealed.graph()).map_err(|e| CliError::env("failed to serialise the graph", e))?);
    } else {
        print!("{}", fugue_engine::planner::render_human(&loaded.plan, sealed.execution_plan()));
        println!("\n{}", fugue_engine::agents::confine::describe_plan(&loaded.plan));
    }
    Ok(ExitCode::SUCCESS)
}
