//! `fugue locks`: list the held path locks; `fugue locks release --stale`: reclaim dead ones.
//!
//! Both read `RESOURCE_LOCKS.json` in the state dir. Listing never takes a lock, so it is safe
//! next to a running `fugue run`; it marks each record live or stale by the same rule a run
//! start applies (is the holder's process alive, is its run the active one). Releasing rewrites
//! the file, so it first takes the repository's run lock: while a run is active it refuses
//! (exit 1) and names the run's pid — that run already reclaimed the stale locks when it started.

use std::path::Path;
use std::process::ExitCode;

use fugue_engine::locks::{FileStore, LockMode, LockStore, RunHolder, RunInfo, RunLock, RunLockError, reclaim_stale, stale_reason};

use crate::{CliError, CliResult, Global};

/// Arguments of `fugue locks`.
#[derive(Debug, clap::Args)]
pub(crate) struct LocksArgs {
    /// Print the RESOURCE_LOCKS.json document instead of a table.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Option<LocksCommand>,
}

#[derive(Debug, clap::Subcommand)]
enum LocksCommand {
    /// Release locks.
    Release(ReleaseArgs),
}

#[derive(Debug, clap::Args)]
struct ReleaseArgs {
    /// Release the locks whose run is over or whose process is gone.
    #[arg(long, required = true)]
    stale: bool,
}

pub(crate) fn run(global: &Global, args: LocksArgs) -> CliResult {
    let state_dir = global.state_dir();
    match args.command {
        None => list(&state_dir, args.json, global.quiet),
        Some(LocksCommand::Release(release)) => {
            if !release.stale {
                return Err(CliError::Input("say which locks to release: `fugue locks release --stale`".to_owned()));
            }
            release_stale(&state_dir, args.json, global.quiet)
        }
    }
}

fn load(state_dir: &Path) -> Result<(FileStore, fugue_engine::core::state::ResourceLocks), CliError> {
    let mut store = FileStore::new(state_dir);
    let locks = store.load().map_err(|e| CliError::Environment(e.to_string()))?;
    Ok((store, locks))
}

fn mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Read => "read",
        LockMode::Write => "write",
    }
}

fn list(state_dir: &Path, json: bool, quiet: bool) -> CliResult {
    let (_, locks) = load(state_dir)?;
    if json {
        let text = serde_json::to_string_pretty(&locks).map_err(|e| CliError::env("failed to render RESOURCE_LOCKS.json", e))?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let holder = RunLock::holder(state_dir);
    if !quiet {
        println!("{}", run_line(holder.as_ref()));
    }
    if locks.locks.is_empty() {
        if !quiet {
            println!("no locks held");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let active = holder.map(|h| RunInfo { run_id: h.run_id, pid: h.pid });
    let header = ["AGENT", "MODE", "STATE", "SINCE", "RUN", "PID", "PATHS"].map(str::to_owned);
    let mut rows = vec![header];
    for r in &locks.locks {
        let state = match stale_reason(r, active.as_ref()) {
            None => "live".to_owned(),
            Some(reason) => format!("stale: {reason}"),
        };
        rows.push([
            r.agent_id.clone(),
            mode_name(r.mode).to_owned(),
            state,
            r.lock_time.clone(),
            r.run_id.clone().unwrap_or_else(|| "-".to_owned()),
            r.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            r.locked_paths.join(", "),
        ]);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

fn run_line(holder: Option<&RunHolder>) -> String {
    match holder {
        Some(h) => format!("active run: `{}` (pid {}, since {})", h.run_id, h.pid, h.since),
        None => "no run is active".to_owned(),
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table(rows: &[[String; 7]]) -> String {
    let mut widths = [0usize; 7];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn release_stale(state_dir: &Path, json: bool, quiet: bool) -> CliResult {
    // Holding the run lock keeps a run from starting (and rewriting the file) meanwhile.
    let lock = match RunLock::acquire(state_dir, format!("locks-release-{}", std::process::id())) {
        Ok(lock) => lock,
        Err(RunLockError::Held { holder: Some(h), .. }) => {
            return Err(CliError::Failed(format!(
                "not releasing: run `{}` (pid {}) is active and owns the locks; it reclaimed stale locks when it started",
                h.run_id, h.pid
            )));
        }
        Err(e @ RunLockError::Held { .. }) => return Err(CliError::Failed(e.to_string())),
        Err(e) => return Err(CliError::Environment(e.to_string())),
    };
    let mut store = FileStore::new(state_dir);
    // We hold the run lock, so no run is active: every record left is stale.
    let reclaimed = reclaim_stale(&mut store, None).map_err(|e| CliError::Environment(e.to_string()))?;
    drop(lock);
    if json {
        let doc = fugue_engine::core::state::ResourceLocks { locks: reclaimed.into_iter().map(|s| s.record).collect() };
        let text = serde_json::to_string_pretty(&doc).map_err(|e| CliError::env("failed to render the released locks", e))?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if reclaimed.is_empty() {
        if !quiet {
            println!("no stale locks");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !quiet {
        println!("released {} stale lock(s):", reclaimed.len());
        for stale in &reclaimed {
            println!(
                "  {} ({} {}): {}",
                stale.record.agent_id,
                mode_name(stale.record.mode),
                stale.record.locked_paths.join(", "),
                stale.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fugue_engine::core::state::{LockRecord, ResourceLocks};

    fn global(repo: &Path) -> Global {
        Global { repo: repo.to_path_buf(), state_dir: None, verbose: 0, quiet: true }
    }

    fn record(agent: &str, pid: u32) -> LockRecord {
        LockRecord {
            agent_id: agent.to_owned(),
            locked_paths: vec!["src/a/**".to_owned(), "serial:manifests".to_owned()],
            lock_time: "2024-01-10T10:00:00Z".to_owned(),
            mode: LockMode::Write,
            run_id: Some("r1".to_owned()),
            pid: Some(pid),
        }
    }

    #[test]
    fn table_aligns_columns() {
        let rows = [
            ["A", "MODE", "S", "T", "R", "P", "PATHS"].map(str::to_owned),
            ["long-agent", "write", "live", "t", "r", "1", "x, y"].map(str::to_owned),
        ];
        assert_eq!(table(&rows), "A           MODE   S     T  R  P  PATHS\nlong-agent  write  live  t  r  1  x, y\n");
    }

    #[test]
    fn release_stale_empties_the_file_when_no_run_is_active() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = global(dir.path());
        let mut store = FileStore::new(&g.state_dir());
        store.save(&ResourceLocks { locks: vec![record("t", std::process::id())] }).expect("save");
        let args = LocksArgs { json: false, command: Some(LocksCommand::Release(ReleaseArgs { stale: true })) };
        assert_eq!(run(&g, args).expect("release"), ExitCode::SUCCESS);
        assert!(store.load().expect("load").locks.is_empty());
    }

    #[test]
    fn release_stale_refuses_while_a_run_is_active() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = global(dir.path());
        let _run = RunLock::acquire(&g.state_dir(), "r1").expect("run lock");
        let mut store = FileStore::new(&g.state_dir());
        store.save(&ResourceLocks { locks: vec![record("t", std::process::id())] }).expect("save");
        let args = LocksArgs { json: false, command: Some(LocksCommand::Release(ReleaseArgs { stale: true })) };
        let err = run(&g, args).expect_err("refused");
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains(&format!("pid {}", std::process::id())), "{err}");
        assert_eq!(store.load().expect("load").locks.len(), 1, "untouched");
    }

    #[test]
    fn corrupt_snapshot_is_an_environment_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = global(dir.path());
        std::fs::create_dir_all(g.state_dir()).expect("mkdir");
        std::fs::write(g.state_dir().join("RESOURCE_LOCKS.json"), "not json").expect("write");
        let err = run(&g, LocksArgs { json: true, command: None }).expect_err("corrupt");
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("RESOURCE_LOCKS.json"), "{err}");
    }
}
