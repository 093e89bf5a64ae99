//! Task lookup and the declared edges.
//!
//! The planner cannot assume the loader ran (a plan may be built in code), so this first pass
//! re-checks what it relies on: task ids are unique and every `depends_on` names a task. Each
//! problem becomes a [`PlanIssue`] located by JSON pointer. What comes out is the declared edge
//! list (`from` must be merged before `to` starts) with each edge's position in `depends_on`,
//! and its adjacency in compressed rows, which later passes use for cheap "is there a direct
//! declared edge" lookups.

use std::collections::HashMap;

use fugue_core::{Plan, PlanIssue};

/// One declared edge: `plan.tasks[to].depends_on[pos]` names `plan.tasks[from]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Declared {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) pos: usize,
}

/// Adjacency in compressed-row form: the neighbours of `i` are `targets[start[i]..start[i + 1]]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Csr<T = usize> {
    start: Vec<usize>,
    targets: Vec<T>,
}

impl<T: Copy + Default> Csr<T> {
    /// Builds rows for `n` nodes from `(node, neighbour)` pairs; each row keeps input order.
    pub(crate) fn new(n: usize, pairs: impl Iterator<Item = (usize, T)> + Clone) -> Self {
        let mut start = vec![0usize; n + 1];
        for (a, _) in pairs.clone() {
            start[a + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut targets = vec![T::default(); start[n]];
        for (a, b) in pairs {
            targets[fill[a]] = b;
            fill[a] += 1;
        }
        Self { start, targets }
    }

    /// The neighbours of `i`.
    pub(crate) fn row(&self, i: usize) -> &[T] {
        match (self.start.get(i), self.start.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.targets[a..b],
            _ => &[],
        }
    }
}

/// The checked task table.
#[derive(Debug)]
pub(crate) struct TaskIndex {
    /// Declared edges, in plan order of the dependent task and then `depends_on` order,
    /// duplicates removed.
    pub(crate) declared: Vec<Declared>,
    /// Declared successors of each task (`from → to`).
    pub(crate) succ: Csr,
    /// Non-fatal findings (repeated dependencies).
    pub(crate) warnings: Vec<PlanIssue>,
}

impl TaskIndex {
    /// True when `to` directly declares `from` as a dependency.
    pub(crate) fn has_declared(&self, from: usize, to: usize) -> bool {
        self.succ.row(from).contains(&to)
    }
}

/// Checks ids and dependencies and collects the declared edges.
pub(crate) fn index(plan: &Plan) -> Result<TaskIndex, Vec<PlanIssue>> {
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(plan.tasks.len());
    let mut errors = Vec::new();
    for (i, task) in plan.tasks.iter().enumerate() {
        if let Some(&first) = ids.get(task.id.as_str()) {
            errors.push(
                PlanIssue::error(
                    "duplicate-id",
                    format!("/tasks/{i}/id"),
                    format!("task id `{}` is already used by /tasks/{first}", task.id),
                )
                .with_help("give every task a unique id"),
            );
        } else {
            ids.insert(task.id.as_str(), i);
        }
    }
    let mut declared = Vec::new();
    let mut warnings = Vec::new();
    for (to, task) in plan.tasks.iter().enumerate() {
        let first_of_edge = declared.len();
        for (pos, dep) in task.depends_on.iter().enumerate() {
            let Some(&from) = ids.get(dep.as_str()) else {
                errors.push(
                    PlanIssue::error(
                        "unknown-dependency",
                        format!("/tasks/{to}/depends_on/{pos}"),
                        format!("task `{}` depends on `{dep}`, which is not a task of this plan", task.id),
                    )
                    .with_help(format!("name the id of a task in `tasks`, or remove `{dep}`")),
                );
                continue;
            };
            if declared[first_of_edge..].iter().any(|d: &Declared| d.from == from) {
                warnings.push(
                    PlanIssue::warning(
                        "duplicate-dependency",
                        format!("/tasks/{to}/depends_on/{pos}"),
                        format!("task `{}` lists `{dep}` in depends_on more than once", task.id),
                    )
                    .with_help(format!("remove the repeated `{dep}`")),
                );
                continue;
            }
            declared.push(Declared { from, to, pos });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let succ = Csr::new(plan.tasks.len(), declared.iter().map(|d| (d.from, d.to)));
    Ok(TaskIndex { declared, succ, warnings })
}
