//! Invariants of the planner over random plans (proptest).
//!
//! Random plans use a tiny path alphabet so that scopes overlap often, random phases,
//! dependencies only on earlier tasks of the same or an earlier phase (so they are valid),
//! random serial classes, overlap policies, agent limits and estimates. Every property is
//! checked against a brute-force reading of the plan, not against the planner's own data.

use std::collections::HashMap;

use fugue_core::state::{DependencyGraph, ExecutionMode};
use fugue_core::{OverlapPolicy, Phase, Plan, Planner, Scope};
use fugue_planner::DefaultPlanner;
use proptest::prelude::*;
use serde_json::json;

const PHASES: [&str; 5] = ["architecture", "test-implementation", "implementation", "analysis", "validation"];

fn pattern() -> impl Strategy<Value = String> {
    (prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=3), prop::sample::select(vec!["", "/**", "/*.rs", "/"]))
        .prop_map(|(comps, tail)| format!("{}{tail}", comps.join("/")))
}

#[derive(Debug, Clone)]
struct RandomTask {
    phase: usize,
    modifies: Vec<String>,
    reads: Vec<String>,
    deps: Vec<prop::sample::Index>,
    estimate: u64,
}

fn task() -> impl Strategy<Value = RandomTask> {
    (
        0..PHASES.len(),
        prop::collection::vec(pattern(), 0..=3),
        prop::collection::vec(pattern(), 0..=2),
        prop::collection::vec(any::<prop::sample::Index>(), 0..=2),
        0u64..=600,
    )
        .prop_map(|(phase, modifies, reads, deps, estimate)| RandomTask { phase, modifies, reads, deps, estimate })
}

fn random_plan() -> impl Strategy<Value = Plan> {
    (prop::collection::vec(task(), 1..=24), any::<bool>(), 1u32..=4, 1u32..=4, any::<bool>(), prop::option::of(pattern()), any::<bool>())
        .prop_map(|(mut tasks, enabled, min_tasks, max_agents, isolate, serial, shuffle_phases)| {
            if !shuffle_phases {
                tasks.sort_by_key(|t| t.phase);
            }
            let mut list = Vec::new();
            for (i, t) in tasks.iter().enumerate() {
                // Dependencies on earlier tasks whose phase is not later than this one's.
                let allowed: Vec<usize> = (0..i).filter(|&j| tasks[j].phase <= t.phase).collect();
                let mut deps: Vec<String> = Vec::new();
                if !allowed.is_empty() {
                    for d in &t.deps {
                        let name = format!("t{}", allowed[d.index(allowed.len())]);
                        if !deps.contains(&name) {
                            deps.push(name);
                        }
                    }
                }
                list.push(json!({
                    "id": format!("t{i}"), "agent": "x", "phase": PHASES[t.phase],
                    "modifies": t.modifies, "reads": t.reads, "depends_on": deps, "estimate": t.estimate,
                }));
            }
            let serial = serial.map_or_else(|| json!({}), |p| json!({ "class": [p] }));
            serde_json::from_value(json!({
                "version": 1,
                "parallelization": { "enabled": enabled, "min_tasks": min_tasks, "max_agents": max_agents,
                                     "overlap": if isolate { "isolate" } else { "serialize" } },
                "boundaries": { "serial": serial },
                "agents": { "x": { "command": ["x"] } },
                "tasks": list,
            }))
            .expect("generated plan is valid")
        })
}

/// Brute force: do tasks `i` and `j` (same phase) need to be ordered? And is it only because
/// of overlapping writes?
fn conflict(plan: &Plan, i: usize, j: usize) -> (bool, bool) {
    let (a, b) = (&plan.tasks[i], &plan.tasks[j]);
    let ww = a.modifies.overlaps(&b.modifies);
    let wr = a.modifies.overlaps(&b.reads) || a.reads.overlaps(&b.modifies);
    let serial = plan.boundaries.serial.values().any(|c: &Scope| c.overlaps(&a.modifies) && c.overlaps(&b.modifies));
    let isolate = plan.parallelization.overlap == OverlapPolicy::Isolate;
    let ordered = wr || serial || (ww && !isolate);
    (ordered, ww && isolate && !wr && !serial)
}

/// Group position of every task, checking each appears exactly once.
fn group_positions(g: &DependencyGraph) -> Result<HashMap<String, usize>, TestCaseError> {
    let mut pos = HashMap::new();
    for (k, group) in g.execution_strategy.parallel_groups.iter().enumerate() {
        for t in &group.tasks {
            prop_assert!(pos.insert(t.id.to_string(), k).is_none(), "task {} is in two groups", t.id);
            prop_assert_eq!(t.id.as_str(), g.tasks.iter().find(|x| x.id == t.id).map(|x| x.id.as_str()).unwrap_or(""));
        }
    }
    prop_assert_eq!(pos.len(), g.tasks.len(), "every task is in a group");
    Ok(pos)
}

/// Critical length by brute force: phases end to end; a serial phase is its sum, a parallel
/// phase its longest chain over the edges inside it.
fn critical_ms(plan: &Plan, g: &DependencyGraph) -> u64 {
    let idx: HashMap<&str, usize> = plan.tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
    let est = |i: usize| plan.tasks[i].estimate().as_millis() as u64;
    let mut total = 0;
    for phase in Phase::ALL {
        let members: Vec<usize> = (0..plan.tasks.len()).filter(|&i| plan.tasks[i].phase == phase).collect();
        if phase.is_parallel() {
            // Longest path by relaxation (n is small).
            let mut best: HashMap<usize, u64> = members.iter().map(|&i| (i, est(i))).collect();
            for _ in 0..members.len() {
                for e in &g.edges {
                    let (a, b) = (idx[e.from.as_str()], idx[e.to.as_str()]);
                    if plan.tasks[a].phase == phase && plan.tasks[b].phase == phase {
                        let cand = best[&a] + est(b);
                        if cand > best[&b] {
                            best.insert(b, cand);
                        }
                    }
                }
            }
            total += best.values().copied().max().unwrap_or(0);
        } else {
            total += members.iter().map(|&i| est(i)).sum::<u64>();
        }
    }
    total
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn planned_graphs_keep_their_promises(plan in random_plan()) {
        let x = match DefaultPlanner.plan(&plan) {
            Ok(x) => x,
            Err(e) => return Err(TestCaseError::fail(format!("a valid plan failed: {:?}", e.issues))),
        };
        let g = x.graph();
        let pos = group_positions(g)?;
        let idx: HashMap<&str, usize> = plan.tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();

        // Every edge runs from an earlier group to a later one (so the graph is acyclic too).
        for e in &g.edges {
            prop_assert!(pos[e.from.as_str()] < pos[e.to.as_str()], "edge {} → {} ({}) goes backwards", e.from, e.to, e.reason);
        }
        // Every declared dependency is an edge.
        for (i, t) in plan.tasks.iter().enumerate() {
            for d in &t.depends_on {
                prop_assert!(g.edges.iter().any(|e| e.from == *d && idx[e.to.as_str()] == i), "missing declared {} → {}", d, t.id);
            }
        }
        // No two tasks of a group conflict, unless overlapping writers are isolated (and then
        // the group says so).
        for group in &g.execution_strategy.parallel_groups {
            prop_assert!(group.tasks.iter().all(|t| plan.tasks[idx[t.id.as_str()]].phase == group.phase));
            let mut isolated_overlap = false;
            for (k, a) in group.tasks.iter().enumerate() {
                for b in &group.tasks[k + 1..] {
                    let (ordered, isolated) = conflict(&plan, idx[a.id.as_str()], idx[b.id.as_str()]);
                    prop_assert!(!ordered, "{} and {} conflict but share group {}", a.id, b.id, group.group_id);
                    isolated_overlap |= isolated;
                }
            }
            prop_assert_eq!(group.can_conflict, isolated_overlap, "can_conflict of {}", &group.group_id);
            if !group.phase.is_parallel() {
                prop_assert_eq!(group.tasks.len(), 1, "serial group {} holds one task", &group.group_id);
            }
        }
        // The estimate lies between the lower bounds and Graham's bound.
        let es = &g.execution_strategy;
        let agents = if es.mode == ExecutionMode::Parallel { f64::from(plan.parallelization.max_agents) } else { 1.0 };
        let work: f64 = plan.tasks.iter().map(|t| t.estimate().as_secs_f64()).sum();
        let cp = critical_ms(&plan, g) as f64 / 1000.0;
        let reported_cp: f64 = es.critical_path.iter().map(|id| plan.tasks[idx[id.as_str()]].estimate().as_secs_f64()).sum();
        prop_assert!((reported_cp - cp).abs() < 1e-6, "critical path {:?} sums to {} but the longest chain is {}", es.critical_path, reported_cp, cp);
        let par = es.estimate.parallel_s;
        prop_assert!((es.estimate.sequential_s - work).abs() < 1e-6);
        prop_assert!(par + 1e-6 >= cp.max(work / agents), "{} below max({}, {}/{})", par, cp, work, agents);
        prop_assert!(par <= work / agents + cp + 1e-6, "{} above Graham's bound {}/{} + {}", par, work, agents, cp);
        // Priorities are remaining critical lengths: the first task of the path has the whole.
        let pr = fugue_planner::priorities(&plan, &x);
        if let Some(first) = es.critical_path.first() {
            prop_assert!((pr[idx[first.as_str()]] - cp).abs() < 1e-6);
        }
        prop_assert!(pr.iter().all(|&p| p <= cp + 1e-6));
    }

    /// Plans with arbitrary dependencies either plan or fail with cycle errors only, and a
    /// cycle error names a dependency that really exists.
    #[test]
    fn arbitrary_dependencies_plan_or_report_cycles(plan in random_plan(), extra in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..4)) {
        let mut plan = plan;
        let n = plan.tasks.len();
        for (a, b) in extra {
            let (a, b) = (a.index(n), b.index(n));
            let dep = plan.tasks[b].id.clone();
            if !plan.tasks[a].depends_on.contains(&dep) {
                plan.tasks[a].depends_on.push(dep);
            }
        }
        match DefaultPlanner.plan(&plan) {
            Ok(x) => {
                let pos = group_positions(x.graph())?;
                for e in &x.graph().edges {
                    prop_assert!(pos[e.from.as_str()] < pos[e.to.as_str()]);
                }
            }
            Err(e) => {
                prop_assert!(!e.issues.is_empty());
                for issue in &e.issues {
                    prop_assert_eq!(issue.code.as_str(), "cycle");
                    let parts: Vec<&str> = issue.pointer.split('/').collect();
                    prop_assert_eq!(parts.len(), 5, "pointer {}", &issue.pointer);
                    let (t, d): (usize, usize) = (parts[2].parse().unwrap_or(usize::MAX), parts[4].parse().unwrap_or(usize::MAX));
                    prop_assert!(plan.tasks.get(t).and_then(|t| t.depends_on.get(d)).is_some(), "pointer {} names no dependency", &issue.pointer);
                }
            }
        }
    }
}
