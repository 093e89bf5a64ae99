//! The playbook state files, derived from the run view and written atomically — but not on
//! every event.
//!
//! Rewriting `PARALLEL_STATUS.json` (O(tasks)) on each of O(tasks) events would make a run
//! quadratic. The [`Snapshotter`] marks files dirty as events arrive and writes them when
//! asked to `flush`: the engine flushes after a burst of events (at most every
//! `interval`), at every synchronization point, and at the end. The journal, not these
//! files, is what a resume trusts.
//!
//! `BOUNDARIES.json` is the exception to "every flush": each task's `cannot_modify` lists the
//! other writers of its phase, so the file grows with the square of the tasks, and its only
//! moving part is each boundary's status. It is rewritten at forced flushes only — the start,
//! every synchronization point, the end — where the statuses of a whole phase settle.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fugue_core::Plan;
use fugue_core::state::{BoundariesFile, BoundaryStatus, ParallelStatus, TaskEntry, WorkflowState, files, write_json_snapshot};

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

    /// Whether [`flush`](Self::flush) would write now.
    pub fn due(&self, force: bool) -> bool {
        self.dirty && (force || self.last.is_none_or(|l| l.elapsed() >= self.interval))
    }

    /// Writes if dirty and the interval has passed (or `force`).
    pub fn flush(&mut self, view: &RunView, plan: &Plan, force: bool) -> std::io::Result<bool> {
        if !self.due(force) {
            return Ok(false);
        }
        self.write(view, plan, force)?;
        self.dirty = false;
        self.last = Some(Instant::now());
        self.writes += 1;
        Ok(true)
    }

    fn write(&mut self, view: &RunView, plan: &Plan, force: bool) -> std::io::Result<()> {
        let workflow = WorkflowState {
            current_phase: view.current_phase,
            completed_phases: view.completed_phases.clone(),
            active_parallel_tasks: view.active(),
            execution_id: Some(view.execution_id.clone()),
            updated: Some(fugue_core::time::now()),
        };
        write_json_snapshot(&self.dir.join(files::WORKFLOW_STATE), &workflow)?;
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
        write_json_snapshot(&self.dir.join(files::PARALLEL_STATUS), &status)?;
        if let Some(b) = self.boundaries.as_mut().filter(|_| force) {
            for (id, boundary) in b.0.iter_mut() {
                boundary.status = match view.tasks.get(id).map(|t| t.status) {
                    Some(fugue_core::TaskStatus::Merged) => BoundaryStatus::Released,
                    Some(s) if s.is_unsuccessful() => BoundaryStatus::NeedsRecovery,
                    _ => BoundaryStatus::Active,
                };
            }
            write_json_snapshot(&self.dir.join(files::BOUNDARIES), b)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fugue_core::state::{BoundaryStatus, TaskBoundary};

    fn plan() -> Plan {
        serde_json::from_value(serde_json::json!({
            "version": 1,
            "agents": { "a": { "command": ["true"] } },
            "tasks": [{ "id": "t", "agent": "a", "modifies": ["src/**"] }],
        }))
        .expect("plan")
    }

    #[test]
    fn boundaries_are_rewritten_at_forced_flushes_only() {
        let dir = tempfile::tempdir().expect("dir");
        let mut b = BoundariesFile::default();
        b.0.insert(
            fugue_core::TaskId::new("t").expect("id"),
            TaskBoundary {
                dependencies: vec![],
                can_modify: vec![],
                cannot_modify: vec![],
                parallel_safe: true,
                status: BoundaryStatus::Active,
            },
        );
        let mut snap = Snapshotter::new(dir.path(), Duration::ZERO).with_boundaries(b);
        let (view, plan) = (RunView::default(), plan());
        assert!(snap.due(false));
        assert!(snap.flush(&view, &plan, true).expect("flush"));
        let path = dir.path().join(files::BOUNDARIES);
        assert!(path.exists());
        std::fs::remove_file(&path).expect("rm");
        snap.touch();
        assert!(snap.flush(&view, &plan, false).expect("flush"));
        assert!(dir.path().join(files::PARALLEL_STATUS).exists());
        assert!(!path.exists(), "an interval flush leaves BOUNDARIES.json alone");
        assert!(!snap.due(false), "nothing changed since");
        snap.touch();
        assert!(snap.flush(&view, &plan, true).expect("flush"));
        assert!(path.exists());
        assert_eq!(snap.writes(), 3);
    }
}
