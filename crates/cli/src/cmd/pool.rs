//! `fugue pool …`: the worktree pool and merge coordinator, speaking the playbook's
//! pool-manager protocol.
//!
//! The protocol lines go to stdout exactly as the playbook's script prints them — `Pool
//! initialized: N slots available`, `wt-N|PATH|auto/TASK` as the last line of `acquire`,
//! `POOL_EXHAUSTED` (exit 1), `RELEASED:wt-N` — so scripts written for it keep working;
//! explanations go to stderr. Pool settings come from flags with `PoolSpec`'s defaults.
//!
//! The default pool dir is `.claude/worktrees` (Claude Code lets agents edit files under
//! `.claude/` only there); a pool still in the old default `.claude/worktree-pool` is moved
//! there when the command opens it without `--dir`, and what moved, or could not, is said on
//! stderr before the command's own output.

use std::process::ExitCode;

use fugue_core::{CommandLine, PoolSpec, TaskId};
use fugue_engine::worktrees::{
    AcquireRequest, BranchOutcome, CleanupOptions, CleanupReport, ErrorClass, MergeMethod, MergeRequest, Migration, Pool, PoolError,
    ReleaseMode, TargetUpdate, human_bytes,
};

use crate::{CliError, CliResult, Global};

/// Arguments of `fugue pool`.
#[derive(Debug, clap::Args)]
pub(crate) struct PoolArgs {
    /// Where the slots live (relative to the repository unless absolute) [default: .claude/worktrees].
    /// With the default, a pool still in the old default .claude/worktree-pool is moved here first.
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<String>,
    /// Number of slots when the pool is created [default: 8].
    #[arg(long, global = true, value_name = "N")]
    size: Option<u32>,
    /// An ignored path kept when a slot is recycled (repeatable) [default: target/ node_modules/].
    #[arg(long = "keep-ignored", global = true, value_name = "PATTERN")]
    keep_ignored: Vec<String>,
    /// A file copied from the repository into each acquired worktree (repeatable), e.g. `.env`.
    #[arg(long = "copy", global = true, value_name = "PATH")]
    copy: Vec<String>,
    /// A command run in each acquired worktree, split like a shell would (repeatable).
    #[arg(long = "setup", global = true, value_name = "COMMAND")]
    setup: Vec<String>,
    #[command(subcommand)]
    command: PoolCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PoolCommand {
    /// Create or resize the pool.
    Init {
        /// Number of slots.
        n: Option<u32>,
        /// Create every worktree now, so later acquires only recycle.
        #[arg(long)]
        warm: bool,
    },
    /// Acquire a worktree for a task; the last line is `wt-N|PATH|auto/TASK`.
    Acquire {
        /// The task id (the branch is `auto/<TASK>`).
        task: String,
        /// Branch, tag or commit to start from [default: HEAD].
        base: Option<String>,
    },
    /// Return a worktree to the pool (its branch is kept).
    Release {
        /// The slot, `wt-N`.
        slot: String,
        /// Also delete the slot's branch, even with unmerged commits.
        #[arg(long)]
        discard: bool,
    },
    /// Show the slots.
    Status {
        /// Print `pool-state.json`.
        #[arg(long)]
        json: bool,
    },
    /// Merge the busy slots' branches into TARGET, in dependency order.
    Merge {
        /// The branch to merge into [default: the branch checked out in the main worktree].
        target: Option<String>,
        /// Merge these branches in this order instead (repeatable).
        #[arg(long = "branch", value_name = "BRANCH")]
        branches: Vec<String>,
        /// Stop at the first conflict.
        #[arg(long)]
        stop_on_conflict: bool,
    },
    /// Remove the worktrees and the merged `auto/*` branches (unmerged ones are kept).
    Cleanup {
        /// Also remove busy slots.
        #[arg(long)]
        force: bool,
        /// The branch that decides what is merged [default: the main worktree's branch].
        #[arg(long)]
        base: Option<String>,
    },
    /// Clean everything up and initialize N slots.
    Reset {
        /// Number of slots.
        n: Option<u32>,
    },
    /// Count the pool's problems (exit 1 when there are any).
    Health {
        /// Fix them.
        #[arg(long)]
        repair: bool,
    },
}

pub(crate) fn run(global: &Global, args: PoolArgs) -> CliResult {
    let spec = spec_from(&args)?;
    let pool = Pool::open(&global.repo, &global.state_dir(), spec).map_err(cli_error)?;
    if let Some(m) = pool.migration() {
        print_migration(m, global.quiet);
    }
    match args.command {
        PoolCommand::Init { n, warm } => {
            let state = pool.init(n, warm).map_err(cli_error)?;
            let free = state.worktrees.iter().filter(|w| w.status == fugue_core::state::SlotStatus::Free).count();
            println!("Pool initialized: {free} slots available");
            Ok(ExitCode::SUCCESS)
        }
        PoolCommand::Acquire { task, base } => {
            let task = TaskId::new(task).map_err(|e| CliError::Input(e.to_string()))?;
            let mut req = AcquireRequest::new(task);
            if let Some(base) = base {
                req = req.base(base);
            }
            match pool.acquire(&req) {
                Ok(a) => {
                    if global.verbose > 0 {
                        let how = if a.already_held {
                            "already held"
                        } else if a.warm {
                            "recycled"
                        } else {
                            "created"
                        };
                        eprintln!("{} {how}{}", a.slot, if a.kept_existing_branch { ", existing branch resumed" } else { "" });
                    }
                    println!("{}", a.line());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ PoolError::Exhausted { .. }) => {
                    println!("POOL_EXHAUSTED");
                    Err(CliError::Failed(e.to_string()))
                }
                Err(e) => Err(cli_error(e)),
            }
        }
        PoolCommand::Release { slot, discard } => {
            let mode = if discard { ReleaseMode::DiscardBranch } else { ReleaseMode::KeepBranch };
            let r = pool.release(&slot, mode).map_err(cli_error)?;
            if !global.quiet {
                match (&r.branch, r.branch_deleted) {
                    (Some(b), true) => eprintln!("deleted branch {b}"),
                    (Some(b), false) => eprintln!("kept branch {b}"),
                    (None, _) if r.was_free => eprintln!("{} was already free", r.slot),
                    _ => {}
                }
            }
            println!("RELEASED:{}", r.slot);
            Ok(ExitCode::SUCCESS)
        }
        PoolCommand::Status { json } => {
            let state = pool.status().map_err(cli_error)?;
            if json {
                let text = serde_json::to_string_pretty(&state).map_err(|e| CliError::env("failed to serialize the pool state", e))?;
                println!("{text}");
                return Ok(ExitCode::SUCCESS);
            }
            let count = |s| state.worktrees.iter().filter(|w| w.status == s).count();
            use fugue_core::state::SlotStatus::{Broken, Busy, Free};
            println!(
                "Pool: {} slots ({} busy, {} free, {} broken) in {}",
                state.pool_size,
                count(Busy),
                count(Free),
                count(Broken),
                pool.dir().display()
            );
            for w in &state.worktrees {
                let status = match w.status {
                    Free => "free",
                    Busy => "busy",
                    Broken => "broken",
                };
                let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".to_owned());
                println!("{}|{status}|{}|{}|{}|{}", w.id, dash(&w.task_id), w.path, dash(&w.branch), dash(&w.acquired_at));
            }
            // After the protocol lines, indented, so a script reading `wt-N|…` lines is not
            // confused: what the slots cost on disk, their build caches apart.
            let disk = pool.disk_usage().map_err(cli_error)?;
            let total: u64 = disk.iter().map(|d| d.bytes).sum();
            let caches: u64 = disk.iter().map(|d| d.cache_bytes).sum();
            let created = disk.iter().filter(|d| !d.missing).count();
            println!("Disk: {} in {created} slot(s), of which {} build caches", human_bytes(total), human_bytes(caches));
            for d in &disk {
                if d.missing {
                    println!("  {}: no checkout", d.slot);
                } else {
                    println!("  {}: {} in {} files (caches {})", d.slot, human_bytes(d.bytes), d.files, human_bytes(d.cache_bytes));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PoolCommand::Merge { target, branches, stop_on_conflict } => {
            let branches = if branches.is_empty() { pool.busy_branches_in_merge_order().map_err(cli_error)? } else { branches };
            if branches.is_empty() {
                if !global.quiet {
                    eprintln!("nothing to merge: no busy slots");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut req = MergeRequest::new(branches).stop_on_conflict(stop_on_conflict);
            if let Some(t) = target {
                req = req.target(t);
            }
            let report = pool.merge(&req).map_err(cli_error)?;
            if report.method == MergeMethod::Checkout
                && !global.quiet
                && let (_, Some(why)) = MergeMethod::detect()
            {
                eprintln!("note: {why}");
            }
            for b in &report.branches {
                match &b.outcome {
                    BranchOutcome::Merged => println!("MERGED:{}", b.branch),
                    BranchOutcome::AlreadyMerged => println!("SKIPPED:{} (already in {})", b.branch, report.target),
                    BranchOutcome::Conflict { files } => println!("CONFLICT:{}: {}", b.branch, files.join(", ")),
                    BranchOutcome::Missing => println!("MISSING:{}", b.branch),
                    BranchOutcome::NotAttempted => println!("NOT_ATTEMPTED:{}", b.branch),
                    _ => println!("UNKNOWN:{}", b.branch),
                }
            }
            let short = |s: &str| s.get(..12).unwrap_or(s).to_owned();
            match &report.update {
                TargetUpdate::Unchanged => println!("Merge into {}: unchanged at {}", report.target, short(&report.old)),
                TargetUpdate::FastForwarded { worktree } => println!(
                    "Merge into {}: {}..{} (fast-forwarded {})",
                    report.target,
                    short(&report.old),
                    short(&report.new),
                    worktree.display()
                ),
                _ => println!("Merge into {}: {}..{}", report.target, short(&report.old), short(&report.new)),
            }
            if report.is_complete() {
                Ok(ExitCode::SUCCESS)
            } else {
                let failed =
                    report.branches.iter().filter(|b| !matches!(b.outcome, BranchOutcome::Merged | BranchOutcome::AlreadyMerged)).count();
                Err(CliError::Failed(format!(
                    "{failed} branch(es) not merged; conflicting branches are kept as they are — resolve and merge again"
                )))
            }
        }
        PoolCommand::Cleanup { force, base } => {
            let mut opts = CleanupOptions::default().force(force);
            if let Some(b) = base {
                opts = opts.base(b);
            }
            let report = pool.cleanup(&opts).map_err(cli_error)?;
            print_cleanup(&report, global.quiet);
            Ok(ExitCode::SUCCESS)
        }
        PoolCommand::Reset { n } => {
            let (report, state) = pool.reset(n).map_err(cli_error)?;
            print_cleanup(&report, global.quiet);
            println!("Pool initialized: {} slots available", state.pool_size);
            Ok(ExitCode::SUCCESS)
        }
        PoolCommand::Health { repair } => {
            if repair {
                let r = pool.repair().map_err(cli_error)?;
                for p in &r.repaired {
                    println!("REPAIRED:{p}");
                }
                for p in &r.remaining {
                    println!("PROBLEM:{p}");
                }
                println!("Health: {} repaired, {} remaining", r.repaired.len(), r.remaining.len());
                return Ok(if r.remaining.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) });
            }
            let report = pool.health().map_err(cli_error)?;
            for p in &report.problems {
                println!("PROBLEM:{p}");
            }
            if report.is_healthy() {
                println!("HEALTHY");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("Health: {} problem(s); run `fugue pool health --repair`", report.problems.len());
                Ok(ExitCode::from(1))
            }
        }
    }
}

fn spec_from(args: &PoolArgs) -> Result<PoolSpec, CliError> {
    let mut spec = PoolSpec::default();
    if let Some(size) = args.size {
        spec.size = size;
    }
    if let Some(dir) = &args.dir {
        spec.dir = dir.clone();
    }
    if !args.keep_ignored.is_empty() {
        spec.keep_ignored = args.keep_ignored.clone();
    }
    spec.copy = args.copy.clone();
    spec.setup = args
        .setup
        .iter()
        .map(|s| CommandLine::parse(s).map_err(|e| CliError::Input(format!("--setup {s:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    Ok(spec)
}

fn print_cleanup(report: &CleanupReport, quiet: bool) {
    println!("Removed {} worktree(s)", report.removed_worktrees.len());
    if !report.deleted_branches.is_empty() {
        println!("Deleted merged branches: {}", report.deleted_branches.join(", "));
    }
    if !report.kept_branches.is_empty() {
        println!("Kept unmerged branches: {}", report.kept_branches.join(", "));
    }
    if !report.skipped_busy.is_empty() && !quiet {
        eprintln!("skipped busy slots {} (use --force to remove them too)", report.skipped_busy.join(", "));
    }
}

/// What opening the pool moved out of the old default dir (stderr: the protocol lines on stdout
/// stay exactly as they are). What could not be moved is always said.
fn print_migration(m: &Migration, quiet: bool) {
    if !quiet && (!m.moved.is_empty() || !m.removed.is_empty()) {
        let mut line = format!("moved the worktree pool from {} to {}", m.from.display(), m.to.display());
        if !m.moved.is_empty() {
            line.push_str(&format!(": moved {}", m.moved.join(", ")));
        }
        if !m.removed.is_empty() {
            line.push_str(&format!(
                "{}removed {} (they could not be moved and held no work; re-created on their next acquire)",
                if m.moved.is_empty() { ": " } else { "; " },
                m.removed.join(", ")
            ));
        }
        eprintln!("{line}");
    }
    for l in &m.left {
        eprintln!("warning: {l}");
    }
    if !m.is_complete() {
        eprintln!("warning: the pool is not fully moved out of {}; the next `fugue pool` or `fugue run` tries again", m.from.display());
    }
}

fn cli_error(e: PoolError) -> CliError {
    match e.class() {
        ErrorClass::Input => CliError::Input(e.to_string()),
        ErrorClass::Failed => CliError::Failed(e.to_string()),
        _ => CliError::Environment(e.to_string()),
    }
}
