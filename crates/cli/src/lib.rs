//! The `fugue` command-line tool: a thin clap layer over the engine.
//!
//! Each subcommand lives in `cmd/<name>.rs` with its clap `Args` and a `run` function; this
//! file parses the command line, dispatches, and turns a [`CliError`] into an exit code.

#![expect(clippy::print_stdout, clippy::print_stderr, reason = "the CLI is the one crate that prints")]

mod cmd;
mod error;
mod progress;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{CliError, CliResult};

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// The repository to work on.
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// The state directory (relative paths are inside the repository).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// More output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl Global {
    /// The state dir, resolved against the repository.
    pub fn state_dir(&self) -> PathBuf {
        match &self.state_dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => self.repo.join(d),
            None => self.repo.join(fugue_core::state::DEFAULT_STATE_DIR),
        }
    }
}

#[derive(Debug, Parser)]
#[command(name = "fugue", version, about = "Run many coding agents at once on one repository without letting them collide.")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo: a sample repository, a nine-task plan, live progress and the report.
    Demo(cmd::demo::DemoArgs),
    /// Write a commented starter plan.
    Init(cmd::init::InitArgs),
    /// Check a plan and show how it will execute.
    Plan(cmd::plan::PlanArgs),
    /// Run a plan: agents in worktrees, locks, quality gates, dependency-ordered merges.
    Run(cmd::run::RunArgs),
    /// Continue an interrupted run.
    Resume(cmd::run::ResumeArgs),
    /// Show the run's phase, tasks, running agents and locks.
    Status(cmd::inspect::StatusArgs),
    /// Prove from the journal that the run kept the rules.
    Validate(cmd::inspect::ValidateArgs),
    /// Print the execution report.
    Report(cmd::inspect::ReportArgs),
    /// The worktree pool (the playbook's pool-manager protocol).
    Pool(cmd::pool::PoolArgs),
    /// List held path locks, or reclaim stale ones.
    Locks(cmd::locks::LocksArgs),
    /// List or inspect agent and gate plugins.
    Plugins(cmd::plugins::PluginsArgs),
    /// Write the JSON schemas of every file format.
    Schema(cmd::schema::SchemaArgs),
    /// Run a program confined (Landlock) to writing beneath the given paths: what a cluster
    /// job script runs an agent through.
    #[command(hide = true)]
    ConfineExec(ConfineExecArgs),
}

/// Arguments of the hidden `fugue confine-exec`.
#[derive(Debug, clap::Args)]
struct ConfineExecArgs {
    /// A path the program may write beneath (repeatable).
    #[arg(long = "write", value_name = "PATH")]
    write: Vec<std::path::PathBuf>,
    /// Refuse to run when the kernel cannot confine it (else run it unconfined with a warning).
    #[arg(long)]
    strict: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    argv: Vec<std::ffi::OsString>,
}

/// `fugue confine-exec`: only returns when the program could not be confined or started.
fn confine_exec(args: ConfineExecArgs) -> CliResult {
    if !args.strict && !fugue_agents::confine::support().enforced() {
        eprintln!(
            "warning: fugue: the agent runs unconfined: {}; set `confine: off` to say so",
            fugue_agents::confine::support().describe()
        );
    }
    let e = fugue_agents::confine::exec_confined(args.write, args.strict, &args.argv);
    Err(CliError::Environment(format!("failed to run `{}` confined: {e}", args.argv[0].to_string_lossy())))
}

/// Makes the plugins linked into this binary available by bare name (`plugin: codemod`), so
/// they work without building their libraries. A library of the same name on disk wins.
fn register_builtins() {
    // The manifests are ours and fixed; a failure here would be a bug caught by the tests.
    let _ = fugue_agents::register_builtin(fugue_plugin_codemod::Codemod);
    let _ = fugue_agents::register_builtin(fugue_quality_gates::heuristic::HeuristicReview);
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 2,
            });
        }
    };
    render::install_hook();
    register_builtins();
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(&cli.global, args),
        Command::Init(args) => cmd::init::run(&cli.global, args),
        Command::Plan(args) => cmd::plan::run(&cli.global, args),
        Command::Run(args) => cmd::run::run(&cli.global, args),
        Command::Resume(args) => cmd::run::resume(&cli.global, args),
        Command::Status(args) => cmd::inspect::status(&cli.global, args),
        Command::Validate(args) => cmd::inspect::validate(&cli.global, args),
        Command::Report(args) => cmd::inspect::report(&cli.global, args),
        Command::Pool(args) => cmd::pool::run(&cli.global, args),
        Command::Locks(args) => cmd::locks::run(&cli.global, args),
        Command::Plugins(args) => cmd::plugins::run(&cli.global, args),
        Command::Schema(args) => cmd::schema::run(&cli.global, args),
        Command::ConfineExec(args) => confine_exec(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            match &e {
                CliError::Diagnostic(report) => eprintln!("{report:?}"),
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}
