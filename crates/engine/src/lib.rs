//! fugue's orchestrator runtime: dispatcher, journal, state files, resume, validator, reports.
//!
//! This is the crate a custom orchestrator embeds. [`run`] executes a plan and [`resume`]
//! continues an interrupted run; [`load_run`] replays a state dir's journal for `status`,
//! [`validate`](validate::validate) and [`report`](report::build). Everything a run does is
//! first written to the journal ([`journal`]), the source of truth; the playbook state files
//! under `.claude/` are snapshots of it ([`snapshot`]).
//!
//! It re-exports the crates it is built on so that one dependency gives the whole stack.

pub mod demo;
pub mod error;
pub mod events;
mod exec;
mod gates;
mod git;
pub mod html;
pub mod journal;
mod logs;
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

/// Replays the journal in `state_dir`.
pub fn load_run(state_dir: &Path) -> Result<LoadedRun, EngineError> {
    let replay = journal::read(&journal_path(state_dir))?;
    if replay.records.is_empty() {
        return Err(EngineError::NothingToResume { state_dir: state_dir.to_owned() });
    }
    let graph_path = state_dir.join(files::DEPENDENCY_GRAPH);
    let graph = match std::fs::read_to_string(&graph_path) {
        Ok(text) => Some(serde_json::from_str(&text).map_err(|e| EngineError::Corrupt { path: graph_path, message: e.to_string() })?),
        Err(_) => None,
    };
    Ok(LoadedRun { view: RunView::from_records(&replay.records), graph, torn_tail: replay.torn_tail })
}
