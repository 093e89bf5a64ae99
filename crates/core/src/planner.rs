//! The `Planner` trait and its sealed output, [`ExecutionPlan`].

use std::collections::HashMap;

use crate::state::{DependencyGraph, EdgeReason};
use crate::{Plan, PlanIssue, TaskId};

/// Why a plan could not be planned.
#[derive(Debug, Clone, thiserror::Error)]
#[error("failed to plan: {}", .issues.iter().filter(|i| i.is_error()).map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PlanError {
    /// The problems, located by JSON pointer into the plan.
    pub issues: Vec<PlanIssue>,
}

/// A validated, planned execution. It cannot be changed after it is built: the fields are
/// private and only read through accessors.
#[derive(Debug, Clone)]
pub struct ExecutionPlan {
    graph: DependencyGraph,
    warnings: Vec<PlanIssue>,
    index: HashMap<TaskId, usize>,
    preds: Vec<Vec<(usize, EdgeReason)>>,
}

impl ExecutionPlan {
    /// Seals a dependency graph. Edges naming unknown tasks are ignored (a planner never
    /// produces them).
    pub fn new(graph: DependencyGraph, warnings: Vec<PlanIssue>) -> Self {
        let index: HashMap<TaskId, usize> = graph.tasks.iter().enumerate().map(|(i, t)| (t.id.clone(), i)).collect();
        let mut preds = vec![Vec::new(); graph.tasks.len()];
        for e in &graph.edges {
            if let (Some(&from), Some(&to)) = (index.get(&e.from), index.get(&e.to)) {
                preds[to].push((from, e.reason.clone()));
            }
        }
        Self { graph, warnings, index, preds }
    }

    /// The graph in `DEPENDENCY_GRAPH.json` form.
    pub fn graph(&self) -> &DependencyGraph {
        &self.graph
    }

    /// Warnings found while planning.
    pub fn warnings(&self) -> &[PlanIssue] {
        &self.warnings
    }

    /// The position of a task in plan order.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The tasks that must be done before task `i` starts, with the edge reasons.
    pub fn predecessors(&self, i: usize) -> &[(usize, EdgeReason)] {
        self.preds.get(i).map_or(&[], Vec::as_slice)
    }
}

/// Turns a plan into an execution plan.
pub trait Planner: Send + Sync {
    /// Plans `plan`, or explains why it cannot be run.
    fn plan(&self, plan: &Plan) -> Result<ExecutionPlan, PlanError>;
}
