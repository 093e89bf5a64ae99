//! The playbook state files, derived from the run view and written atomically — but not on
//! every event.
//!
//! Rewriting `PARALLEL_STATUS.json` (O(tasks)) on each of O(tasks) events would make a run
//! quadratic. The [`Snapshotter`] marks files dirty as events arrive and writes them when
//! asked to `flush`: the engine flushes after a burst of events (at most every
//! `interval`), at every synchronization point, and at the end. The journal, not these
//! files, is what a resume trusts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fugue_core::Plan;
use fugue_core::state::{BoundariesFile, BoundaryStatus, ParallelStatus, TaskEntry, WorkflowState, files, write_json_atomic};

use crate::view::RunView;

/// Writes the state files from a [`RunView`], coalescing writes.
#[derive(Debug)]
pub struct Snapshotter {
    dir: PathBuf,
    interval: Duration,
    last: Option<Instant>,
    dirty: bool,
    boundaries: Option<BoundariesFile>,
    writes: u64,
}

impl Snapshotter {
    /// Snapshots into `state_dir`, at most once per `interval` unless forced.
    pub fn new(state_dir: &Path, interval: Duration) -> Self {
        Self { dir: state_dir.to_owned(), interval, last: None, dirty: true, boundaries: None, writes: 0 }
    }

    /// Also maintain `BOUNDARIES.json` (statuses follow the tasks).
    pub fn with_boundaries(mut self, b: BoundariesFile) -> Self {
        self.boundaries = Some(b);
        self
    }

    /// Something changed.
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// How many times the files were written.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Writes if dirty and the interval has passed (or `force`).
    pub fn flush(&mut self, view: &RunView, plan: &Plan, force: bool) -> std::io::Result<bool> {
        if !self.dirty || (!force && self.last.is_some_and(|l| l.elapsed() < self.interval)) {
            return Ok(false);
        }
        self.write(view, plan)?;
        self.dirty = false;
        self.last = Some(Instant::now());
        self.writes += 1;
        Ok(true)
    }

    fn write(&mut self, view: &RunView, plan: &Plan) -> std::io::Result<()> {
        let workflow = WorkflowState {
            current_phase: view.current_phase,
            completed_phases: view.completed_phases.clone(),
            active_parallel_tasks: view.active(),
            execution_id: Some(view.execution_id.clone()),
            updated: Some(fugue_core::time::now()),
        };
        write_json_atomic(&self.dir.join(files::WORKFLOW_STATE), &workflow)?;
        let status = ParallelStatus {
            execution_id: view.execution_id.clone(),
            phase: view.current_phase,
            started: view.started.clone(),
            tasks: plan
                .tasks
                .iter()
                .map(|t| {
                    let v = view.task(&t.id);
                    TaskEntry {
                        id: t.id.clone(),
                        name: t.display_name().to_owned(),
                        agent: t.agent.clone(),
                        status: v.status,
                        paths: t.modifies.patterns().to_vec(),
                        started: v.started,
                        completed: v.completed,
                        attempts: v.attempts,
                        iterations: v.iterations,
                        branch: v.branch,
                        worktree: v.worktree,
                        qa: v.qa,
                    }
                })
                .collect(),
        };
        write_json_atomic(&self.dir.join(files::PARALLEL_STATUS), &status)?;
        if let Some(b) = &mut self.boundaries {
            for (id, boundary) in b.0.iter_mut() {
                boundary.status = match view.tasks.get(id).map(|t| t.status) {
                    Some(fugue_core::TaskStatus::Merged) => BoundaryStatus::Released,
                    Some(s) if s.is_unsuccessful() => BoundaryStatus::NeedsRecovery,
                    _ => BoundaryStatus::Active,
                };
            }
            write_json_atomic(&self.dir.join(files::BOUNDARIES), b)?;
        }
        Ok(())
    }
}
