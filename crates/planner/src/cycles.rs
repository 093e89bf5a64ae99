//! Cycle detection over the declared edges and the phase order.
//!
//! Conflict edges follow one total order and cannot close a loop, so a cycle can only come
//! from `depends_on` — within a phase, or against the phase order when a task depends on a
//! task of a later phase. To see both at once the graph gets one *barrier* node per phase
//! boundary: every task of a phase points to the barrier after it, the barrier points to
//! every task of the next non-empty phase and to the next barrier. That keeps the phase order
//! linear in size. Barriers are only added when some declared edge runs backwards in phase
//! order; otherwise no loop can pass through them.
//!
//! petgraph's `tarjan_scc` finds the strongly connected components. For each one that is a
//! real loop, a breadth-first search from its first task (in plan order) finds a shortest
//! cycle, which is reported with barrier hops folded into "phase order" steps, and one
//! declared edge to cut: one that runs backwards in phase order if there is one, else the edge
//! that closes the loop back to the first task.

use std::collections::VecDeque;

use fugue_core::{Phase, Plan, PlanIssue};
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::index::Declared;

/// An edge of the cycle graph.
#[derive(Debug, Clone, Copy)]
enum Hop {
    /// `declared[k]`.
    Declared(usize),
    /// Into or out of a barrier.
    Phase,
}

/// Returns one error per dependency loop (empty when the declared edges are acyclic).
pub(crate) fn find_cycles(plan: &Plan, declared: &[Declared]) -> Vec<PlanIssue> {
    let n = plan.tasks.len();
    let mut g: DiGraph<(), Hop, u32> = DiGraph::with_capacity(n, declared.len());
    for _ in 0..n {
        g.add_node(());
    }
    let mut self_loop = vec![false; n];
    for (k, d) in declared.iter().enumerate() {
        g.add_edge(NodeIndex::new(d.from), NodeIndex::new(d.to), Hop::Declared(k));
        if d.from == d.to {
            self_loop[d.from] = true;
        }
    }
    let backwards = declared.iter().any(|d| plan.tasks[d.from].phase > plan.tasks[d.to].phase);
    if backwards {
        add_barriers(plan, &mut g);
    }
    let mut comp = vec![u32::MAX; g.node_count()];
    let sccs = tarjan_scc(&g);
    let mut issues: Vec<(usize, PlanIssue)> = Vec::new();
    for (c, scc) in sccs.iter().enumerate() {
        let tasks = scc.iter().map(|v| v.index()).filter(|&v| v < n);
        let Some(start) = tasks.min() else { continue };
        if scc.len() == 1 && !self_loop[start] {
            continue;
        }
        for v in scc {
            comp[v.index()] = u32::try_from(c).unwrap_or(u32::MAX);
        }
        if let Some(cycle) = shortest_cycle(&g, start, &comp) {
            issues.push((start, describe(plan, declared, &cycle)));
        }
    }
    issues.sort_by_key(|(start, _)| *start);
    issues.into_iter().map(|(_, i)| i).collect()
}

fn add_barriers(plan: &Plan, g: &mut DiGraph<(), Hop, u32>) {
    let present: Vec<Phase> = Phase::ALL.into_iter().filter(|p| plan.tasks.iter().any(|t| t.phase == *p)).collect();
    let mut prev_barrier: Option<NodeIndex> = None;
    for pair in present.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        let b = g.add_node(());
        for (i, t) in plan.tasks.iter().enumerate() {
            if t.phase == before {
                g.add_edge(NodeIndex::new(i), b, Hop::Phase);
            } else if t.phase == after {
                g.add_edge(b, NodeIndex::new(i), Hop::Phase);
            }
        }
        if let Some(p) = prev_barrier {
            g.add_edge(p, b, Hop::Phase);
        }
        prev_barrier = Some(b);
    }
}

/// A shortest cycle through `start` inside its component, as the hops taken.
fn shortest_cycle(g: &DiGraph<(), Hop, u32>, start: usize, comp: &[u32]) -> Option<Vec<(usize, Hop, usize)>> {
    let c = comp[start];
    let mut parent: Vec<Option<(usize, Hop)>> = vec![None; g.node_count()];
    let mut queue = VecDeque::from([start]);
    let mut seen = vec![false; g.node_count()];
    seen[start] = true;
    while let Some(u) = queue.pop_front() {
        for e in g.edges(NodeIndex::new(u)) {
            let v = e.target().index();
            if comp[v] != c {
                continue;
            }
            if v == start {
                let mut hops = vec![(u, *e.weight(), start)];
                let mut cur = u;
                while cur != start {
                    let (p, hop) = parent[cur]?;
                    hops.push((p, hop, cur));
                    cur = p;
                }
                hops.reverse();
                return Some(hops);
            }
            if !seen[v] {
                seen[v] = true;
                parent[v] = Some((u, *e.weight()));
                queue.push_back(v);
            }
        }
    }
    None
}

fn describe(plan: &Plan, declared: &[Declared], hops: &[(usize, Hop, usize)]) -> PlanIssue {
    let n = plan.tasks.len();
    let id = |i: usize| plan.tasks[i].id.as_str();
    // Fold barrier nodes away: the cycle as task-to-task steps, each declared or by phase order.
    let mut steps: Vec<(usize, Option<usize>, usize)> = Vec::new();
    let mut pending_from: Option<usize> = None;
    for &(u, hop, v) in hops {
        match hop {
            Hop::Declared(k) => steps.push((u, Some(k), v)),
            Hop::Phase => {
                if u < n {
                    pending_from = Some(u);
                }
                if v < n
                    && let Some(f) = pending_from.take()
                {
                    steps.push((f, None, v));
                }
            }
        }
    }
    let mut text = String::new();
    for (k, (from, _, _)) in steps.iter().enumerate() {
        if k > 0 {
            text.push_str(" → ");
        }
        text.push_str(id(*from));
    }
    if let Some((first, _, _)) = steps.first() {
        text.push_str(" → ");
        text.push_str(id(*first));
    }
    let phase_steps: Vec<String> = steps
        .iter()
        .filter(|(_, k, _)| k.is_none())
        .map(|&(f, _, t)| format!("`{}` ({}) runs before `{}` ({}) by phase order", id(f), plan.tasks[f].phase, id(t), plan.tasks[t].phase))
        .collect();
    let cut = steps
        .iter()
        .filter_map(|&(_, k, _)| k)
        .find(|&k| plan.tasks[declared[k].from].phase > plan.tasks[declared[k].to].phase)
        .or_else(|| steps.iter().rev().find_map(|&(_, k, _)| k));
    let mut message = format!("dependency cycle: {text}");
    if !phase_steps.is_empty() {
        message.push_str(&format!(" ({})", phase_steps.join("; ")));
    }
    let Some(k) = cut else {
        return PlanIssue::error("cycle", "/tasks", message);
    };
    let d = declared[k];
    let (dep, task) = (&plan.tasks[d.from], &plan.tasks[d.to]);
    let mut help = format!("remove `{}` from the depends_on of `{}`", dep.id, task.id);
    if dep.phase > task.phase {
        help.push_str(&format!(
            ": a task may only depend on tasks of its own or an earlier phase (or move `{}` to phase `{}` or later)",
            task.id, dep.phase
        ));
    }
    PlanIssue::error("cycle", format!("/tasks/{}/depends_on/{}", d.to, d.pos), message).with_help(help)
}
