//! fugue's orchestrator runtime: dispatcher, journal, state files, resume, validator, reports.
//!
//! This is the crate a custom orchestrator embeds. [`run`] executes a plan and [`resume`]
//! continues an interrupted run; [`load_run`] replays a state dir's journal for `status`,
//! [`validate`](validate::validate) and [`report`](report::build). Everything a run does is
//! first written to the journal ([`journal`]), the source of truth; the playbook state files
//! under `.claude/` are snapshots of it ([`snapshot`]).
//!
//! It re-exports the crates it is built on so that one dependency gives the whole stack.

mod budget;
mod confine;
pub mod demo;
pub mod disk;
pub mod error;
pub mod events;
mod exec;
mod gates;
mod git;
pub mod html;
pub mod journal;
mod logs;
pub mod metrics;
pub mod qa;
pub mod report;
mod run;
pub mod snapshot;
#[cfg(test)]
mod test_support;
pub mod validate;
pub mod view;

use std::path::Path;

pub use error::EngineError;
pub use events::{Event, RunOutcome};
pub use gates::GatesVerifier;
pub use run::{RunControl, RunOptions, RunSummary, journal_path, resume, run};
pub use view::{JobRef, RunView};

pub use fugue_agents as agents;
pub use fugue_core as core;
pub use fugue_locks as locks;
pub use fugue_planner as planner;
pub use fugue_quality_gates as quality_gates;
pub use fugue_worktrees as worktrees;

use fugue_core::state::{DependencyGraph, files};

/// Every schema fugue documents, with its file name under `schemas/`: the core file formats
/// ([`fugue_core::schema::all`]) and a journal line ([`journal::record_schema`]).
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    let mut all = fugue_core::schema::all();
    all.push((journal::RECORD_SCHEMA_FILE, journal::record_schema()));
    all
}

/// A finished or running run, read back from a state dir.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    /// The replayed journal.
    pub view: RunView,
    /// `DEPENDENCY_GRAPH.json`, when present.
    pub graph: Option<DependencyGraph>,
    /// The text of a torn last journal line, if a crash left one.
    pub torn_tail: Option<String>,
}

/// Reads the journal in `state_dir` and checks that it is the history of a run: empty (no run
/// yet), or beginning with `run_started`. A journal whose only line is torn, or that starts
/// with anything else, is named as corrupt rather than taken for "no run".
pub fn read_journal(state_dir: &Path) -> Result<journal::Replay, EngineError> {
    let path = journal_path(state_dir);
    let replay = journal::read(&path)?;
    let corrupt = |message: &str| EngineError::Corrupt { path: path.clone(), message: message.to_owned() };
    match replay.records.first() {
        None if replay.torn_tail.is_some() => Err(corrupt(
            "line 1, its only line, is cut short (fugue died writing the run's first event): nothing ran; move the file aside and start again with `fugue run PLAN`",
        )),
        Some(first) if !matches!(first.event, Event::RunStarted { .. }) => Err(corrupt(
            "line 1 is not a `run_started` event, so this is not the history of a run: restore the journal from a backup, or move .claude/fugue aside to start over",
        )),
        _ => Ok(replay),
    }
}

/// Replays the journal in `state_dir`.
pub fn load_run(state_dir: &Path) -> Result<LoadedRun, EngineError> {
    let replay = read_journal(state_dir)?;
    if replay.records.is_empty() {
        return Err(EngineError::NothingToResume { state_dir: state_dir.to_owned() });
    }
    let graph_path = state_dir.join(files::DEPENDENCY_GRAPH);
    // Only a missing graph is "no graph"; one that cannot be read or parsed is named.
    let graph = match std::fs::read(&graph_path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
            path: graph_path,
            message: format!("{e}; fugue rewrites it from the plan: move it aside and run `fugue resume` again"),
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(EngineError::io("read", &graph_path, e)),
    };
    Ok(LoadedRun { view: RunView::from_records(&replay.records), graph, torn_tail: replay.torn_tail })
}
