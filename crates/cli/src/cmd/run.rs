//! `fugue run PLAN` and `fugue resume`: execute a plan with live progress, then print the report.

use std::path::PathBuf;
use std::process::ExitCode;

use fugue_engine::{EngineError, RunOptions, RunOutcome, RunSummary};
use tokio::sync::mpsc;

use crate::progress::{self, Style};
use crate::{CliError, CliResult, Global};

/// Arguments of `fugue run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The plan file (YAML or JSON).
    plan: PathBuf,
    /// Print every event as NDJSON on stdout instead of the live view.
    #[arg(long)]
    json: bool,
    /// Where agents run, overriding the plan's `executor.kind`: `local` processes, or `slurm`
    /// jobs (with the plan's `executor:` settings when it has a slurm block, else the sbatch CLI).
    #[arg(long, value_enum)]
    executor: Option<ExecutorKind>,
}

/// `--executor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExecutorKind {
    Local,
    Slurm,
}

/// Arguments of `fugue resume`.
#[derive(Debug, clap::Args)]
pub(crate) struct ResumeArgs {
    /// Print every event as NDJSON on stdout instead of the live view.
    #[arg(long)]
    json: bool,
    /// Set the run's budget in US dollars (raise it to continue a run whose budget is spent).
    #[arg(long, value_name = "USD", value_parser = parse_usd)]
    budget_usd: Option<f64>,
    /// Set the run's budget in tokens.
    #[arg(long, value_name = "TOKENS")]
    budget_tokens: Option<u64>,
}

fn parse_usd(s: &str) -> Result<f64, String> {
    match s.trim_start_matches('$').parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not an amount of US dollars: give a number such as 2.50")),
    }
}

pub(crate) fn engine_error(e: EngineError) -> CliError {
    if e.is_input() { CliError::Input(e.to_string()) } else { CliError::Environment(e.to_string()) }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| CliError::env("failed to start the async runtime", e))
}

pub(crate) fn run(global: &Global, args: RunArgs) -> CliResult {
    let mut loaded = crate::cmd::plan::load(global, &args.plan)?;
    match (args.executor, &loaded.plan.executor) {
        (Some(ExecutorKind::Local), _) => loaded.plan.executor = fugue_core::ExecutorSpec::Local,
        (Some(ExecutorKind::Slurm), fugue_core::ExecutorSpec::Local) => {
            loaded.plan.executor = fugue_core::ExecutorSpec::Slurm(fugue_core::SlurmSpec::default());
        }
        _ => {}
    }
    crate::cmd::plan::print_warnings(&loaded, global);
    let sealed = crate::cmd::plan::plan_or_diagnose(&loaded)?;
    let style = Style::pick(args.json, global.quiet);
    if matches!(style, Style::Live | Style::Plain) {
        eprintln!("{}", fugue_engine::planner::render_human(&loaded.plan, sealed.execution_plan()));
        eprintln!("{}", fugue_engine::agents::confine::describe_plan(&loaded.plan));
    }
    let mut opts = RunOptions::new(&global.repo, global.state_dir());
    opts.plan_dir = loaded.dir.clone();
    opts.plan_file = loaded.source.name.clone();
    let total = loaded.plan.tasks.len();
    // The checks are done: the source text, its map and this sealed plan are megabytes at
    // 10,000 tasks, and the engine seals its own.
    drop(sealed);
    let plan = loaded.into_plan();
    execute(global, style, total, opts, |opts| fugue_engine::run(plan, opts))
}

pub(crate) fn resume(global: &Global, args: ResumeArgs) -> CliResult {
    let state_dir = global.state_dir();
    // The journal alone: the derived state files (a damaged DEPENDENCY_GRAPH.json, say) are
    // rewritten by the resume, not a reason to refuse it.
    let replay = fugue_engine::read_journal(&state_dir).map_err(engine_error)?;
    let total = fugue_engine::RunView::from_records(&replay.records).order.len();
    let mut opts = RunOptions::new(&global.repo, state_dir);
    if args.budget_usd.is_some() || args.budget_tokens.is_some() {
        opts.budget = Some(fugue_engine::core::Budget { usd: args.budget_usd, tokens: args.budget_tokens });
    }
    execute(global, Style::pick(args.json, global.quiet), total, opts, fugue_engine::resume)
}

/// Runs the engine with live progress and Ctrl-C handling; prints the report.
pub(crate) fn execute<F, Fut>(global: &Global, style: Style, total: usize, mut opts: RunOptions, start: F) -> CliResult
where
    F: FnOnce(RunOptions) -> Fut,
    Fut: std::future::Future<Output = Result<RunSummary, EngineError>>,
{
    let rt = runtime()?;
    // An older git merges through a checkout of the whole repository: say so before the run,
    // where a slow merge would otherwise go unexplained.
    if !global.quiet
        && let (_, Some(why)) = fugue_engine::worktrees::MergeMethod::detect()
    {
        eprintln!("note: {why}");
    }
    let (tx, rx) = mpsc::unbounded_channel();
    opts.progress = Some(tx);
    let control = opts.control();
    let summary = rt.block_on(async move {
        let renderer = tokio::spawn(progress::render(style, total, rx));
        // First Ctrl-C: stop dispatching, stop agents, leave a resumable state. Second: exit now.
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupting: stopping agents (Ctrl-C again to exit at once)");
                control.interrupt();
                if tokio::signal::ctrl_c().await.is_ok() {
                    // Exit now: Drop handlers will not run, so stop the agents' groups and jobs here.
                    let killed = fugue_engine::agents::kill_all_agents();
                    let cancelled = fugue_engine::agents::cancel_all_jobs();
                    eprintln!(
                        "killed {killed} agent process group(s), cancelled {cancelled} cluster job(s); `fugue resume` continues the run"
                    );
                    std::process::exit(130);
                }
            }
        });
        let result = start(opts).await;
        let _ = renderer.await;
        result
    });
    let summary = summary.map_err(engine_error)?;
    if style != Style::Json && !global.quiet {
        let plan = fugue_engine::report::saved_plan(&global.state_dir());
        let report = fugue_engine::report::build_for(&summary.view, Some(&summary.graph), plan.as_ref()).with_disk(&global.state_dir());
        println!("{}", report.to_markdown());
    }
    Ok(match summary.outcome {
        RunOutcome::Success => ExitCode::SUCCESS,
        RunOutcome::Failed => ExitCode::from(1),
        RunOutcome::Interrupted => {
            eprintln!("run interrupted: continue it with `fugue resume`");
            ExitCode::from(130)
        }
        RunOutcome::BudgetExhausted => {
            eprintln!(
                "run stopped: its budget is spent; continue it with `fugue resume --budget-usd <USD>` or `--budget-tokens <N>` (a raised budget)"
            );
            ExitCode::from(4)
        }
    })
}
