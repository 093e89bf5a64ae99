//! `BOUNDARIES.json`: what each task may and may not touch.
//!
//! Per task, from the plan and its execution plan:
//! * `dependencies`: the task's `reads` patterns, then the ids of the tasks it depends on;
//! * `can_modify`: its `modifies`;
//! * `cannot_modify`: the common paths (read-only while parallel phases run), then every
//!   pattern another task of the same phase modifies — without repeats, and without a pattern
//!   the task itself may modify;
//! * `parallel_safe`: the task is in a parallel phase, no conflict edge (`write-write`,
//!   `write-read`, `serial:*`) joins it to another task of its phase, and it shares no
//!   overlapping writes with another task of its group (possible under `overlap: isolate`);
//! * `status`: `active`.
//!
//! `cannot_modify` lists the phase's other writes for every task, so the file grows with the
//! square of a phase's size; that is its format.

use std::collections::HashSet;

use fugue_core::state::{BoundariesFile, BoundaryStatus, EdgeReason, TaskBoundary};
use fugue_core::{ExecutionPlan, Pattern, Phase, Plan};

/// Builds `BOUNDARIES.json` for `plan` as planned in `exec`.
pub fn boundaries(plan: &Plan, exec: &ExecutionPlan) -> BoundariesFile {
    let g = exec.graph();
    let n = g.tasks.len();
    let mut conflicted = vec![false; n];
    for e in &g.edges {
        if !matches!(e.reason, EdgeReason::WriteWrite | EdgeReason::WriteRead | EdgeReason::Serial(_)) {
            continue;
        }
        if let (Some(a), Some(b)) = (exec.index_of(e.from.as_str()), exec.index_of(e.to.as_str()))
            && g.tasks[a].phase == g.tasks[b].phase
        {
            conflicted[a] = true;
            conflicted[b] = true;
        }
    }
    for group in g.execution_strategy.parallel_groups.iter().filter(|gr| gr.can_conflict) {
        for (k, t) in group.tasks.iter().enumerate() {
            let overlaps =
                group.tasks.iter().enumerate().any(|(j, o)| j != k && t.scope.iter().any(|a| o.scope.iter().any(|b| a.overlaps(b))));
            if let (true, Some(i)) = (overlaps, exec.index_of(t.id.as_str())) {
                conflicted[i] = true;
            }
        }
    }
    let mut writes_by_phase: [Vec<(usize, &Pattern)>; 8] = Default::default();
    for (i, t) in g.tasks.iter().enumerate() {
        for p in &t.modifies {
            writes_by_phase[t.phase as usize].push((i, p));
        }
    }
    let common = plan.boundaries.common.patterns();
    let mut file = BoundariesFile::default();
    for (i, t) in g.tasks.iter().enumerate() {
        let own: HashSet<&Pattern> = t.modifies.iter().collect();
        let mut seen: HashSet<&Pattern> = HashSet::new();
        let cannot_modify: Vec<Pattern> = common
            .iter()
            .chain(writes_by_phase[t.phase as usize].iter().filter(|(j, _)| *j != i).map(|(_, p)| *p))
            .filter(|p| !own.contains(p) && seen.insert(p))
            .cloned()
            .collect();
        let dependencies: Vec<String> =
            t.reads.iter().map(ToString::to_string).chain(t.depends_on.iter().map(ToString::to_string)).collect();
        file.0.insert(
            t.id.clone(),
            TaskBoundary {
                dependencies,
                can_modify: t.modifies.clone(),
                cannot_modify,
                parallel_safe: Phase::is_parallel(t.phase) && !conflicted[i],
                status: BoundaryStatus::Active,
            },
        );
    }
    file
}
