//! The dependency planner: petgraph DAG, conflict edges, phases, parallel groups, mode,
//! strategy, critical path.
//!
//! [`DefaultPlanner`] is fugue's built-in [`Planner`]. Given a [`Plan`] it
//!
//! 1. checks that ids are unique and dependencies exist, and refuses dependency loops —
//!    through `depends_on` or against the phase order — naming the whole loop and the
//!    declared edge to cut;
//! 2. adds the edges: `declared` (`depends_on`); `phase` (the phase order, written compactly
//!    and linear in size: each *sink* of a phase — a task no edge inside the phase leaves —
//!    points to the first *source* of the next non-empty phase, and the last sink to every
//!    other source; the phase machine enforces the barrier itself); and conflict edges between
//!    tasks of one phase — `write-write`, `write-read` and `serial:<class>` — all oriented
//!    along one total order (phases, then a stable topological sort of the declared edges with
//!    plan order breaking ties), so they never close a loop. Conflicts are found through a
//!    trie of literal path prefixes, not by comparing every pair, and edges already implied by
//!    a short path are left out. A reader ordered before a writer gets a `reader-first`
//!    warning;
//! 3. groups each phase's tasks by the longest chain of edges inside the phase (a serial phase
//!    has one task per group); picks the mode (PARALLEL when enabled and the widest group has
//!    at least `min_tasks` tasks) and the strategy (B when isolated overlapping writers share a
//!    group, else D when every group has one task, else A when no edge joins two tasks of one
//!    phase, else C); and estimates the critical path and the makespan with `max_agents`
//!    agents (one in SEQUENTIAL mode);
//! 4. seals the result: the returned [`ExecutionPlan`] (and the richer [`SealedPlan`]) cannot
//!    be changed.
//!
//! Besides the trait it offers what the CLI and engine need without printing anything:
//! [`render_human`] (the execution-mode box), [`boundaries`] (`BOUNDARIES.json`) and
//! [`priorities`] (dispatch priorities for any planner's output).

mod boundaries;
mod build;
mod conflicts;
mod cycles;
mod index;
mod order;
mod render;
mod schedule;

use fugue_core::{ExecutionPlan, Plan, PlanError, Planner};

pub use boundaries::boundaries;
pub use build::{SealedPlan, TaskGraph};
pub use render::render_human;

/// fugue's built-in planner.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPlanner;

impl DefaultPlanner {
    /// A planner.
    pub fn new() -> Self {
        Self
    }

    /// Plans `plan` and keeps the planner's data: the petgraph graph, the execution order,
    /// groups and dispatch priorities.
    pub fn plan_sealed(&self, plan: &Plan) -> Result<SealedPlan, PlanError> {
        build::build(plan)
    }
}

impl Planner for DefaultPlanner {
    fn plan(&self, plan: &Plan) -> Result<ExecutionPlan, PlanError> {
        self.plan_sealed(plan).map(SealedPlan::into_execution_plan)
    }
}

/// Dispatch priorities for any planner's execution plan, in seconds, one per task of
/// `exec.graph().tasks`: the task's remaining critical-path length, its own estimate included
/// (estimates come from `plan`, default one minute). Higher runs first; pass them to
/// `PhaseMachine::with_priorities`.
pub fn priorities(plan: &Plan, exec: &ExecutionPlan) -> Vec<f64> {
    let dag = schedule::dag_from_execution(plan, exec);
    schedule::analyse(&dag, 1).priority_ms.into_iter().map(build::secs).collect()
}
