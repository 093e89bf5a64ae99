//! `fugue demo`: build a sample repository, run a nine-task plan on it with live progress, and
//! print the report. Needs nothing but git: the agent (`codemod`) and the reviewer
//! (heuristic review) are built into the binary.

use std::path::PathBuf;

use crate::cmd::run::{engine_error, execute};
use crate::progress::Style;
use crate::{CliError, CliResult, Global};

/// Arguments of `fugue demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Where to create the sample repository (a new or empty directory). Default: a fresh
    /// directory under the system's temp dir, kept afterwards so you can look around.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print every event as NDJSON on stdout instead of the live view.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(global: &Global, args: DemoArgs) -> CliResult {
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("fugue-demo-{}-{}", std::process::id(), fugue_core::time::now().replace([':', '-'], ""))),
    };
    std::fs::create_dir_all(&dir).map_err(|e| CliError::env(&format!("failed to create {}", dir.display()), e))?;
    let plan_path = fugue_engine::demo::create(&dir).map_err(engine_error)?;
    let global = Global { repo: dir.clone(), state_dir: None, verbose: global.verbose, quiet: global.quiet };
    let loaded = crate::cmd::plan::load(&global, &plan_path)?;
    let sealed = crate::cmd::plan::plan_or_diagnose(&loaded)?;
    let style = Style::pick(args.json, global.quiet);
    if matches!(style, Style::Live | Style::Plain) {
        eprintln!("sample repository: {}\nplan: {}\n", dir.display(), plan_path.display());
        eprintln!("{}", fugue_engine::planner::render_human(&loaded.plan, sealed.execution_plan()));
    }
    let mut opts = fugue_engine::RunOptions::new(&dir, global.state_dir());
    opts.plan_dir = dir.clone();
    opts.plan_file = plan_path.display().to_string();
    let total = loaded.plan.tasks.len();
    let code = execute(&global, style, total, opts, |opts| fugue_engine::run(loaded.plan, opts))?;
    let html = global.state_dir().join("report.html");
    fugue_engine::html::write(&global.state_dir(), &html).map_err(engine_error)?;
    if style != Style::Json && !global.quiet {
        println!("HTML report: {}", html.display());
        println!("The sample repository is in {} (its history: `git -C {} log --graph --oneline`).", dir.display(), dir.display());
        println!("Look at the run again with `fugue --repo {} status|validate|report`.", dir.display());
    }
    Ok(code)
}
