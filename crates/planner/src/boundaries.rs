//! `BOUNDARIES.json`: what each task may and may not touch.
//!
//! Per task, from the plan and its execution plan:
//! * `dependencies`: the task's `reads` patterns, then the ids of the tasks it depends on;
//! * `can_modify`: its `modifies`;
//! * `cannot_modify`: the common paths (read-only while parallel phases run), then the
//!   patterns other tasks of the same phase modify *that overlap this task's `modifies` or
//!   `reads`* — the writes it could collide with — without repeats and without a pattern the
//!   task itself may modify;
//! * `parallel_safe`: the task is in a parallel phase, no conflict edge (`write-write`,
//!   `write-read`, `serial:*`) joins it to another task of its phase, and it shares no
//!   overlapping writes with another task of its group (possible under `overlap: isolate`);
//! * `status`: `active`.
//!
//! DESIGN first said "other tasks' writes in its phase": listing all of them made the file (and
//! the engine's memory) grow with the square of a phase — 8 GB at 10,000 tasks. Anything
//! outside `can_modify` is refused by the boundary gate anyway, so the overlapping writes are
//! the ones worth naming. They are found through an index keyed by literal path prefix (the
//! overlap rule only looks at prefixes), so the cost follows the overlaps, not the pairs.

use std::collections::{HashMap, HashSet};

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
    let writes = WriteIndex::build(g);
    let common = plan.boundaries.common.patterns();
    let mut file = BoundariesFile::default();
    for (i, t) in g.tasks.iter().enumerate() {
        let own: HashSet<&Pattern> = t.modifies.iter().collect();
        let mut seen: HashSet<&Pattern> = HashSet::new();
        let mut overlapping: Vec<(usize, &Pattern)> =
            t.modifies.iter().chain(&t.reads).flat_map(|p| writes.overlapping(t.phase, p)).collect();
        overlapping.sort_unstable_by_key(|&(j, p)| (j, p.as_str()));
        let cannot_modify: Vec<Pattern> = common
            .iter()
            .chain(overlapping.into_iter().filter(|(j, _)| *j != i).map(|(_, p)| p))
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

/// The writes of every task, keyed by phase and literal path prefix, to find the writes that
/// overlap a pattern without comparing every pair.
struct WriteIndex<'a> {
    /// Patterns whose literal prefix is exactly the key.
    exact: HashMap<(Phase, String), Vec<(usize, &'a Pattern)>>,
    /// Patterns whose literal prefix starts with the key (component-wise), the key included.
    below: HashMap<(Phase, String), Vec<(usize, &'a Pattern)>>,
}

impl<'a> WriteIndex<'a> {
    fn build(g: &'a fugue_core::state::DependencyGraph) -> Self {
        let mut exact: HashMap<(Phase, String), Vec<(usize, &'a Pattern)>> = HashMap::new();
        let mut below: HashMap<(Phase, String), Vec<(usize, &'a Pattern)>> = HashMap::new();
        for (i, t) in g.tasks.iter().enumerate() {
            for p in &t.modifies {
                exact.entry((t.phase, p.literal_prefix().to_owned())).or_default().push((i, p));
                for key in prefixes(p) {
                    below.entry((t.phase, key)).or_default().push((i, p));
                }
            }
        }
        Self { exact, below }
    }

    /// Writes in `phase` that overlap `p`: those whose prefix is an ancestor of `p`'s, and those
    /// at or below `p`'s prefix.
    fn overlapping(&self, phase: Phase, p: &Pattern) -> impl Iterator<Item = (usize, &'a Pattern)> + '_ {
        let mut keys = prefixes(p);
        let own = keys.pop().unwrap_or_default();
        let ancestors = keys.into_iter().flat_map(move |k| self.exact.get(&(phase, k)).into_iter().flatten().copied());
        let below = self.below.get(&(phase, own)).into_iter().flatten().copied();
        ancestors.chain(below)
    }
}

/// The component-wise prefixes of a pattern's literal prefix, shortest (`""`) first, the whole
/// literal prefix last.
fn prefixes(p: &Pattern) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut acc = String::new();
    for c in p.literal_components() {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(c);
        out.push(acc.clone());
    }
    out
}
