//! Critical path, dispatch priorities and the makespan estimate.
//!
//! Phases are synchronization points, so the plan's timeline is the phases' timelines laid end
//! to end and every figure is computed phase by phase:
//!
//! * a serial phase runs its tasks one at a time in order: its length is their sum, its
//!   critical path all of them;
//! * a parallel phase's critical path is its longest chain of estimates over the edges inside
//!   it; its makespan comes from critical-path-first list scheduling with the agents
//!   available — whenever an agent is free it takes the ready task with the longest remaining
//!   chain (ties in dependency then plan order).
//!
//! A task's priority is its remaining critical-path length: its own chain to the end of its
//! phase plus the critical lengths of all later phases. List scheduling is within Graham's
//! bound of the optimum per phase, so the estimate lies between `max(critical path,
//! work / agents)` and `work / agents + critical path`. Times are whole milliseconds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use fugue_core::{ExecutionPlan, Phase, Plan, TaskSpec};

use crate::build::{DEFAULT_ESTIMATE_MS, estimate_ms};
use crate::index::Csr;

/// What the analysis needs to know of a planned graph.
#[derive(Debug)]
pub(crate) struct Dag {
    /// Estimate of each task, in milliseconds.
    pub(crate) est_ms: Vec<u64>,
    /// Phase of each task.
    pub(crate) phase: Vec<Phase>,
    /// Every task once: phases in workflow order, each in a topological order of its edges.
    pub(crate) order: Vec<usize>,
    /// Predecessors and successors through edges inside a phase.
    pub(crate) preds: Csr,
    pub(crate) succs: Csr,
}

/// The results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Analysis {
    /// The critical path, task indices in execution order.
    pub(crate) critical_path: Vec<usize>,
    /// Its length.
    pub(crate) critical_ms: u64,
    /// Remaining critical-path length of each task, itself included.
    pub(crate) priority_ms: Vec<u64>,
    /// Estimated makespan with the given agents.
    pub(crate) makespan_ms: u64,
    /// Sum of all estimates.
    pub(crate) sequential_ms: u64,
}

/// Analyses `dag` for `agents` agents working at once in parallel phases (at least one).
pub(crate) fn analyse(dag: &Dag, agents: u32) -> Analysis {
    let n = dag.order.len();
    let mut pos = vec![0usize; dag.est_ms.len()];
    for (k, &i) in dag.order.iter().enumerate() {
        pos[i] = k;
    }
    let mut finish = vec![0u64; dag.est_ms.len()];
    let mut bottom = vec![0u64; dag.est_ms.len()];
    let mut segments: Vec<&[usize]> = Vec::new();
    let mut start = 0;
    for k in 1..=n {
        if k == n || dag.phase[dag.order[k]] != dag.phase[dag.order[start]] {
            segments.push(&dag.order[start..k]);
            start = k;
        }
    }
    let mut critical_path = Vec::new();
    let mut lengths = Vec::with_capacity(segments.len());
    let mut makespan_ms = 0u64;
    for seg in &segments {
        let serial = !dag.phase[seg[0]].is_parallel();
        let length = if serial {
            let mut t = 0u64;
            for &i in *seg {
                t = t.saturating_add(dag.est_ms[i]);
                finish[i] = t;
            }
            let mut rest = 0u64;
            for &i in seg.iter().rev() {
                rest = rest.saturating_add(dag.est_ms[i]);
                bottom[i] = rest;
            }
            critical_path.extend_from_slice(seg);
            makespan_ms = makespan_ms.saturating_add(t);
            t
        } else {
            for &i in *seg {
                let ready = dag.preds.row(i).iter().map(|&p| finish[p]).max().unwrap_or(0);
                finish[i] = ready.saturating_add(dag.est_ms[i]);
            }
            for &i in seg.iter().rev() {
                let tail = dag.succs.row(i).iter().map(|&s| bottom[s]).max().unwrap_or(0);
                bottom[i] = tail.saturating_add(dag.est_ms[i]);
            }
            critical_path.extend(longest_chain(dag, seg, &finish, &pos));
            makespan_ms = makespan_ms.saturating_add(list_schedule(dag, seg, &bottom, &pos, agents.max(1)));
            seg.iter().map(|&i| finish[i]).max().unwrap_or(0)
        };
        lengths.push(length);
    }
    // Add the critical lengths of the later phases to each task's own chain.
    let mut priority_ms = bottom;
    let mut later = 0u64;
    for (seg, length) in segments.iter().zip(&lengths).rev() {
        for &i in *seg {
            priority_ms[i] = priority_ms[i].saturating_add(later);
        }
        later = later.saturating_add(*length);
    }
    let sequential_ms = dag.est_ms.iter().fold(0u64, |a, &b| a.saturating_add(b));
    Analysis { critical_path, critical_ms: later, priority_ms, makespan_ms, sequential_ms }
}

/// The longest chain of one parallel phase, first in order among equals.
fn longest_chain(dag: &Dag, seg: &[usize], finish: &[u64], pos: &[usize]) -> Vec<usize> {
    let Some(mut cur) = seg.iter().copied().reduce(|best, i| if finish[i] > finish[best] { i } else { best }) else {
        return Vec::new();
    };
    let mut chain = vec![cur];
    while let Some(prev) = dag
        .preds
        .row(cur)
        .iter()
        .copied()
        .reduce(|best, p| if finish[p] > finish[best] || (finish[p] == finish[best] && pos[p] < pos[best]) { p } else { best })
    {
        chain.push(prev);
        cur = prev;
    }
    chain.reverse();
    chain
}

/// Critical-path-first list scheduling of one parallel phase; returns its makespan.
fn list_schedule(dag: &Dag, seg: &[usize], bottom: &[u64], pos: &[usize], agents: u32) -> u64 {
    let mut waiting: Vec<u32> = vec![0; dag.est_ms.len()];
    let mut ready: BinaryHeap<(u64, Reverse<usize>)> = BinaryHeap::new();
    for &i in seg {
        let k = dag.preds.row(i).len();
        waiting[i] = u32::try_from(k).unwrap_or(u32::MAX);
        if k == 0 {
            ready.push((bottom[i], Reverse(pos[i])));
        }
    }
    let mut running: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut now = 0u64;
    let agents = agents as usize;
    loop {
        while running.len() < agents {
            let Some((_, Reverse(p))) = ready.pop() else { break };
            let i = dag.order[p];
            running.push(Reverse((now.saturating_add(dag.est_ms[i]), i)));
        }
        let Some(Reverse((t, i))) = running.pop() else { break };
        now = t;
        let mut done = vec![i];
        while let Some(&Reverse((t2, j))) = running.peek() {
            if t2 != now {
                break;
            }
            running.pop();
            done.push(j);
        }
        for j in done {
            for &s in dag.succs.row(j) {
                waiting[s] = waiting[s].saturating_sub(1);
                if waiting[s] == 0 {
                    ready.push((bottom[s], Reverse(pos[s])));
                }
            }
        }
    }
    now
}

/// Builds the analysis input from any planner's execution plan: estimates come from `plan`
/// (matched by id, default one minute), edges inside a phase from the graph, and the order
/// from a stable topological sort of those edges per phase (tasks caught in a loop, which a
/// correct planner never produces, follow in plan order).
pub(crate) fn dag_from_execution(plan: &Plan, exec: &ExecutionPlan) -> Dag {
    let g = exec.graph();
    let by_id: HashMap<&str, &TaskSpec> = plan.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let n = g.tasks.len();
    let est_ms: Vec<u64> = g.tasks.iter().map(|t| by_id.get(t.id.as_str()).map_or(DEFAULT_ESTIMATE_MS, |s| estimate_ms(s))).collect();
    let phase: Vec<Phase> = g.tasks.iter().map(|t| t.phase).collect();
    let mut pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|to| exec.predecessors(to).iter().map(move |(from, _)| (*from, to)))
        .filter(|&(a, b)| a != b && a < n && phase[a] == phase[b])
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let preds = Csr::new(n, pairs.iter().map(|&(a, b)| (b, a)));
    let succs = Csr::new(n, pairs.iter().copied());
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    let mut waiting: Vec<usize> = (0..n).map(|i| preds.row(i).len()).collect();
    for p in Phase::ALL {
        let mut heap: BinaryHeap<Reverse<usize>> = (0..n).filter(|&i| phase[i] == p && waiting[i] == 0).map(Reverse).collect();
        while let Some(Reverse(i)) = heap.pop() {
            order.push(i);
            placed[i] = true;
            for &s in succs.row(i) {
                waiting[s] -= 1;
                if waiting[s] == 0 {
                    heap.push(Reverse(s));
                }
            }
        }
        order.extend((0..n).filter(|&i| phase[i] == p && !placed[i]));
    }
    // Keep analysis from following edges of a loop: only edges that agree with the order.
    let mut pos = vec![0usize; n];
    for (k, &i) in order.iter().enumerate() {
        pos[i] = k;
    }
    pairs.retain(|&(a, b)| pos[a] < pos[b]);
    let preds = Csr::new(n, pairs.iter().map(|&(a, b)| (b, a)));
    let succs = Csr::new(n, pairs.iter().copied());
    Dag { est_ms, phase, order, preds, succs }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(est: &[u64], phase: Phase, edges: &[(usize, usize)]) -> Dag {
        let n = est.len();
        Dag {
            est_ms: est.to_vec(),
            phase: vec![phase; n],
            order: (0..n).collect(),
            preds: Csr::new(n, edges.iter().map(|&(a, b)| (b, a))),
            succs: Csr::new(n, edges.iter().copied()),
        }
    }

    #[test]
    fn chain_and_fork() {
        // a(3) → b(2); c(4) alone. Two agents: a and c start at 0, b at 3, end at 5.
        let d = dag(&[3, 2, 4], Phase::Implementation, &[(0, 1)]);
        let a = analyse(&d, 2);
        assert_eq!(a.critical_path, [0, 1]);
        assert_eq!((a.critical_ms, a.makespan_ms, a.sequential_ms), (5, 5, 9));
        assert_eq!(a.priority_ms, [5, 2, 4]);
        // One agent: everything in a row.
        assert_eq!(analyse(&d, 1).makespan_ms, 9);
    }

    #[test]
    fn critical_path_first_beats_plan_order() {
        // Plan order would run the two short tasks first; the long chain should go first.
        let d = dag(&[1, 1, 5, 5], Phase::Implementation, &[(2, 3)]);
        assert_eq!(analyse(&d, 2).makespan_ms, 10);
        assert_eq!(analyse(&d, 2).critical_path, [2, 3]);
    }

    #[test]
    fn serial_phase_is_a_sum() {
        let d = dag(&[1, 2, 3], Phase::Architecture, &[]);
        let a = analyse(&d, 5);
        assert_eq!((a.critical_ms, a.makespan_ms), (6, 6));
        assert_eq!(a.critical_path, [0, 1, 2]);
        assert_eq!(a.priority_ms, [6, 5, 3]);
    }

    #[test]
    fn phases_add_up() {
        let mut d = dag(&[2, 3, 4], Phase::Implementation, &[]);
        d.phase[0] = Phase::Architecture;
        let a = analyse(&d, 4);
        assert_eq!((a.critical_ms, a.makespan_ms), (6, 6));
        assert_eq!(a.critical_path, [0, 2]);
        assert_eq!(a.priority_ms, [6, 3, 4]);
    }
}
