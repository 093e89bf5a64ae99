//! The one total order every conflict edge follows.
//!
//! Phases come in workflow order; inside a phase, tasks follow a stable topological sort of
//! the declared edges between tasks of that phase, ties broken by plan order (Kahn's algorithm
//! with a min-heap on the plan index). This is also the order a serial phase runs its tasks
//! in ("dependency then plan order"). Orienting every conflict edge from the earlier to the
//! later task of this order means conflict edges agree with each other and with the declared
//! edges, so they can never close a cycle.
//!
//! A declared path between two tasks of one phase can only run inside that phase (leaving it
//! would need an edge against the phase order, which the cycle check refuses), so sorting each
//! phase on its own edges is enough.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use fugue_core::{Phase, Plan};

use crate::index::TaskIndex;

/// The total order.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    /// Task indices in order.
    pub(crate) order: Vec<usize>,
    /// Position of each task in `order`.
    pub(crate) rank: Vec<u32>,
    /// For each phase (by `Phase as usize`), the range of `order` it occupies.
    pub(crate) phase_range: [(usize, usize); 8],
    /// False when some tasks could not be sorted (their declared edges form a loop).
    pub(crate) complete: bool,
}

impl Order {
    /// The tasks of `phase`, in order.
    pub(crate) fn phase_tasks(&self, phase: Phase) -> &[usize] {
        let (a, b) = self.phase_range[phase as usize];
        &self.order[a..b]
    }
}

/// Sorts the tasks. The declared edges must be acyclic; tasks left in a loop (a bug upstream)
/// are appended in plan order rather than dropped.
pub(crate) fn total_order(plan: &Plan, index: &TaskIndex) -> Order {
    let n = plan.tasks.len();
    let mut indeg = vec![0u32; n];
    for d in &index.declared {
        if plan.tasks[d.from].phase == plan.tasks[d.to].phase && d.from != d.to {
            indeg[d.to] += 1;
        }
    }
    let mut by_phase: [Vec<usize>; 8] = Default::default();
    for (i, t) in plan.tasks.iter().enumerate() {
        by_phase[t.phase as usize].push(i);
    }
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    let mut phase_range = [(0, 0); 8];
    for (p, members) in by_phase.iter().enumerate() {
        let begin = order.len();
        let mut heap: BinaryHeap<Reverse<usize>> = members.iter().copied().filter(|&i| indeg[i] == 0).map(Reverse).collect();
        while let Some(Reverse(i)) = heap.pop() {
            order.push(i);
            placed[i] = true;
            for &s in index.succ.row(i) {
                if s != i && plan.tasks[s].phase == plan.tasks[i].phase {
                    indeg[s] -= 1;
                    if indeg[s] == 0 {
                        heap.push(Reverse(s));
                    }
                }
            }
        }
        order.extend(members.iter().copied().filter(|&i| !placed[i]));
        phase_range[p] = (begin, order.len());
    }
    let complete = placed.iter().all(|&p| p);
    let mut rank = vec![0u32; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = u32::try_from(r).unwrap_or(u32::MAX);
    }
    Order { order, rank, phase_range, complete }
}
