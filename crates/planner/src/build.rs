//! From a plan to a sealed execution plan.
//!
//! The passes, in order:
//!
//! 1. [`crate::index`]: unique ids, known dependencies, the declared edges;
//! 2. [`crate::order`]: the total order (phases, then dependency then plan order);
//! 3. [`crate::cycles`]: loops through `depends_on` and the phase order are errors (searched
//!    for only when the sort left tasks out or a dependency points at itself or a later phase);
//! 4. [`crate::conflicts`]: conflict edges per phase through a path trie, oriented along it;
//! 5. a [`Building`] collects every edge in a petgraph `DiGraph` (node `i` is task `i`), adds
//!    the phase edges, and is sealed: groups are derived and every edge is checked to run from
//!    an earlier group to a later one (which also proves the graph acyclic); mode, strategy
//!    and the estimate ([`crate::schedule`]) follow, and all of it is frozen into a
//!    [`SealedPlan`], whose fields are private and only read.
//!
//! Phase edges are written compactly, linear in the number of tasks at a phase boundary: for
//! two consecutive non-empty phases, every *sink* of the earlier one (a task no edge inside its
//! phase leaves) points to the first *source* of the later one (a task no edge inside its phase
//! enters), and the last sink points to every other source. Each edge is a true ordering; the
//! phase barrier itself is enforced by the phase machine, which reads phases, not these edges.
//! A phase edge that repeats a declared edge is left out.

use fugue_core::state::{
    DependencyGraph, EdgeReason, EdgeRecord, Estimate, ExecutionMode, ExecutionStrategy, GraphTask, GroupTask, ParallelGroup, Strategy,
};
use fugue_core::{ExecutionPlan, OverlapPolicy, Phase, Plan, PlanError, PlanIssue, TaskId};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::conflicts::{self, PhaseTrie, SERIAL, WRITE_READ, WRITE_WRITE};
use crate::cycles::find_cycles;
use crate::index::{Csr, index};
use crate::order::{Order, total_order};
use crate::schedule::{Analysis, Dag, analyse};

/// The planner's dependency graph: node `i` is plan task `i`, edges carry their reason.
pub type TaskGraph = DiGraph<usize, EdgeReason, u32>;

/// A planned execution with the planner's working data, immutable once built.
///
/// It holds the core [`ExecutionPlan`] (the `DEPENDENCY_GRAPH.json` document) together with
/// the petgraph graph it was derived from, the dependency-then-plan order, each task's group
/// and its dispatch priority.
#[derive(Debug, Clone)]
pub struct SealedPlan {
    exec: ExecutionPlan,
    graph: TaskGraph,
    order: Vec<usize>,
    group_of: Vec<usize>,
    priority_ms: Vec<u64>,
    critical_ms: u64,
    agents: u32,
}

impl SealedPlan {
    /// The execution plan (what the `Planner` trait returns).
    pub fn execution_plan(&self) -> &ExecutionPlan {
        &self.exec
    }

    /// Gives up the planner's data and keeps the execution plan.
    pub fn into_execution_plan(self) -> ExecutionPlan {
        self.exec
    }

    /// The `DEPENDENCY_GRAPH.json` document.
    pub fn graph(&self) -> &DependencyGraph {
        self.exec.graph()
    }

    /// The petgraph graph: node `i` is task `i` of the plan.
    pub fn task_graph(&self) -> &TaskGraph {
        &self.graph
    }

    /// Warnings found while planning.
    pub fn warnings(&self) -> &[PlanIssue] {
        self.exec.warnings()
    }

    /// Task indices in execution order: phases in workflow order, then dependency then plan
    /// order (the order conflict edges follow and serial phases run in).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The index in `execution_strategy.parallel_groups` of task `i`'s group.
    pub fn group_of(&self, i: usize) -> Option<usize> {
        self.group_of.get(i).copied()
    }

    /// Dispatch priorities, in seconds, one per task in plan order: the task's remaining
    /// critical-path length (its own estimate, the longest chain after it in its phase, and
    /// the critical lengths of all later phases). Higher runs first.
    pub fn priorities(&self) -> Vec<f64> {
        self.priority_ms.iter().map(|&ms| secs(ms)).collect()
    }

    /// The critical path's length in seconds.
    pub fn critical_path_s(&self) -> f64 {
        secs(self.critical_ms)
    }

    /// Agents the estimate assumes at once: `max_agents` in PARALLEL mode, 1 in SEQUENTIAL.
    pub fn agents(&self) -> u32 {
        self.agents
    }
}

pub(crate) fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The default estimate (one minute), in milliseconds.
pub(crate) const DEFAULT_ESTIMATE_MS: u64 = fugue_core::DEFAULT_ESTIMATE.as_secs() * 1000;

pub(crate) fn estimate_ms(task: &fugue_core::TaskSpec) -> u64 {
    u64::try_from(task.estimate().as_millis()).unwrap_or(u64::MAX)
}

/// Plans `plan`.
pub(crate) fn build(plan: &Plan) -> Result<SealedPlan, PlanError> {
    if u32::try_from(plan.tasks.len()).map_or(true, |n| n == u32::MAX) {
        return Err(PlanError {
            issues: vec![
                PlanIssue::error("too-many-tasks", "/tasks", format!("the plan has {} tasks", plan.tasks.len()))
                    .with_help("split the plan into several plans"),
            ],
        });
    }
    let idx = index(plan).map_err(|issues| PlanError { issues })?;
    // A loop needs a self-dependency, a dependency on a later phase, or tasks the sort could
    // not place; only then is it worth looking for the loops to report.
    let order = total_order(plan, &idx);
    let suspicious = idx.declared.iter().any(|d| d.from == d.to || plan.tasks[d.from].phase > plan.tasks[d.to].phase);
    if suspicious || !order.complete {
        let cycles = find_cycles(plan, &idx.declared);
        if !cycles.is_empty() {
            return Err(PlanError { issues: cycles });
        }
    }
    let policy = plan.parallelization.overlap;
    let mut warnings = idx.warnings.clone();
    let mut tries: Vec<(Phase, PhaseTrie)> = Vec::new();
    let mut pairs = Vec::new();
    for phase in Phase::ALL {
        let tasks = order.phase_tasks(phase);
        if tasks.is_empty() {
            continue;
        }
        let trie = PhaseTrie::build(plan, tasks, &order);
        trie.pairs(policy, &mut pairs);
        conflicts::serial_pairs(plan, tasks, &order, &mut pairs);
        if policy == OverlapPolicy::Isolate && phase.is_parallel() {
            tries.push((phase, trie));
        }
    }
    let pairs = conflicts::settle(pairs, &order, &idx);
    conflicts::reader_first_warnings(plan, &pairs, &order, &idx, &mut warnings);
    let pairs = conflicts::drop_implied(pairs, plan, &order, &idx);
    // Phase edges are at most two per task.
    let mut b = Building::new(plan, order, idx.declared.len() + pairs.len() + 2 * plan.tasks.len());
    for d in &idx.declared {
        b.add(d.from, d.to, EdgeReason::Declared);
    }
    let classes: Vec<&String> = plan.boundaries.serial.keys().collect();
    for p in &pairs {
        let reason = match p.reason {
            WRITE_WRITE => EdgeReason::WriteWrite,
            WRITE_READ => EdgeReason::WriteRead,
            k => EdgeReason::Serial(classes.get((k - SERIAL) as usize).map_or_else(String::new, |c| (*c).clone())),
        };
        let (from, to) = (b.order.order[p.from as usize], b.order.order[p.to as usize]);
        b.add(from, to, reason);
    }
    b.add_phase_edges(&idx);
    b.seal(warnings, &tries)
}

/// A graph under construction.
#[derive(Debug)]
struct Building<'p> {
    plan: &'p Plan,
    graph: TaskGraph,
    order: Order,
    /// Edges inside phases as (predecessors, successors), fixed once the conflict edges are in
    /// (phase edges never join tasks of one phase).
    intra: (Csr, Csr),
}

impl<'p> Building<'p> {
    fn new(plan: &'p Plan, order: Order, edges: usize) -> Self {
        let mut graph = TaskGraph::with_capacity(plan.tasks.len(), edges);
        for i in 0..plan.tasks.len() {
            graph.add_node(i);
        }
        Self { plan, graph, order, intra: (Csr::default(), Csr::default()) }
    }

    fn add(&mut self, from: usize, to: usize, reason: EdgeReason) {
        self.graph.add_edge(NodeIndex::new(from), NodeIndex::new(to), reason);
    }

    fn phase(&self, i: usize) -> Phase {
        self.plan.tasks[i].phase
    }

    /// Edges between tasks of one phase, as (preds, succs).
    fn intra_phase(&self) -> (Csr, Csr) {
        let n = self.plan.tasks.len();
        let inner = || {
            self.graph
                .edge_references()
                .map(|e| (e.source().index(), e.target().index()))
                .filter(|&(a, b)| a != b && self.phase(a) == self.phase(b))
        };
        (Csr::new(n, inner().map(|(a, b)| (b, a))), Csr::new(n, inner()))
    }

    /// Records the edges inside phases, then adds the phase edges between them.
    fn add_phase_edges(&mut self, idx: &crate::index::TaskIndex) {
        self.intra = self.intra_phase();
        let (preds, succs) = &self.intra;
        let present: Vec<Phase> = Phase::ALL.into_iter().filter(|&p| !self.order.phase_tasks(p).is_empty()).collect();
        let mut extra = Vec::new();
        for pair in present.windows(2) {
            let sinks: Vec<usize> = self.order.phase_tasks(pair[0]).iter().copied().filter(|&i| succs.row(i).is_empty()).collect();
            let sources: Vec<usize> = self.order.phase_tasks(pair[1]).iter().copied().filter(|&i| preds.row(i).is_empty()).collect();
            let (Some(&first_source), Some(&last_sink)) = (sources.first(), sinks.last()) else { continue };
            for &s in &sinks {
                extra.push((s, first_source));
            }
            for &t in &sources[1..] {
                extra.push((last_sink, t));
            }
        }
        for (from, to) in extra {
            if !idx.has_declared(from, to) {
                self.add(from, to, EdgeReason::Phase);
            }
        }
    }

    /// Validates the graph and freezes everything derived from it.
    fn seal(self, warnings: Vec<PlanIssue>, isolate_tries: &[(Phase, PhaseTrie)]) -> Result<SealedPlan, PlanError> {
        let plan = self.plan;
        let internal = |what: String| PlanError {
            issues: vec![
                PlanIssue::error("internal", "", format!("the planner built an invalid graph: {what}"))
                    .with_help("this is a bug in fugue-planner; please report it with the plan"),
            ],
        };
        let (preds, succs) = self.intra;
        let n = plan.tasks.len();

        // Levels: the longest chain inside the phase, or the position in a serial phase.
        let mut level = vec![0u32; n];
        for phase in Phase::ALL {
            let tasks = self.order.phase_tasks(phase);
            for (k, &i) in tasks.iter().enumerate() {
                level[i] = if phase.is_parallel() {
                    preds.row(i).iter().map(|&p| level[p]).max().unwrap_or(0) + 1
                } else {
                    u32::try_from(k + 1).unwrap_or(u32::MAX)
                };
            }
        }

        // Groups, phase by phase, k ascending; members in plan order.
        let mut groups: Vec<ParallelGroup> = Vec::new();
        let mut group_of = vec![0usize; n];
        let mut intra_edges = false;
        for phase in Phase::ALL {
            let tasks = self.order.phase_tasks(phase);
            if tasks.is_empty() {
                continue;
            }
            intra_edges |= tasks.iter().any(|&i| !preds.row(i).is_empty());
            let depth = tasks.iter().map(|&i| level[i]).max().unwrap_or(0) as usize;
            let mut members: Vec<Vec<usize>> = vec![Vec::new(); depth];
            for &i in tasks {
                members[level[i] as usize - 1].push(i);
            }
            let conflicting = isolate_tries
                .iter()
                .find(|(p, _)| *p == phase)
                .map(|(_, trie)| trie.conflicting_levels(|rank| level[self.order.order[rank as usize]]))
                .unwrap_or_default();
            for (k, mut ids) in members.into_iter().enumerate() {
                ids.sort_unstable();
                for &i in &ids {
                    group_of[i] = groups.len();
                }
                groups.push(ParallelGroup {
                    group_id: format!("{phase}-{}", k + 1),
                    phase,
                    tasks: ids
                        .iter()
                        .map(|&i| GroupTask {
                            id: plan.tasks[i].id.clone(),
                            agent: plan.tasks[i].agent.clone(),
                            scope: plan.tasks[i].modifies.patterns().to_vec(),
                        })
                        .collect(),
                    can_conflict: conflicting.contains(&u32::try_from(k + 1).unwrap_or(u32::MAX)),
                });
            }
        }
        for e in self.graph.edge_references() {
            let (a, b) = (e.source().index(), e.target().index());
            if group_of[a] >= group_of[b] {
                return Err(internal(format!(
                    "the {} edge `{}` → `{}` does not run from an earlier group to a later one",
                    e.weight(),
                    plan.tasks[a].id,
                    plan.tasks[b].id
                )));
            }
        }

        let par = &plan.parallelization;
        let widest = groups.iter().map(|g| g.tasks.len()).max().unwrap_or(0);
        let parallel = par.enabled && widest >= (par.min_tasks as usize).max(1);
        let mode = if parallel { ExecutionMode::Parallel } else { ExecutionMode::Sequential };
        let strategy = if groups.iter().any(|g| g.can_conflict) {
            Strategy::B
        } else if groups.iter().all(|g| g.tasks.len() == 1) {
            Strategy::D
        } else if !intra_edges {
            Strategy::A
        } else {
            Strategy::C
        };
        let agents = if parallel { par.max_agents.max(1) } else { 1 };
        let dag = Dag {
            est_ms: plan.tasks.iter().map(estimate_ms).collect(),
            phase: plan.tasks.iter().map(|t| t.phase).collect(),
            order: self.order.order.clone(),
            preds,
            succs,
        };
        let Analysis { critical_path, critical_ms, priority_ms, makespan_ms, sequential_ms } = analyse(&dag, agents);
        let estimate = Estimate {
            sequential_s: secs(sequential_ms),
            parallel_s: secs(makespan_ms),
            speedup: if makespan_ms == 0 { 1.0 } else { (sequential_ms as f64 / makespan_ms as f64 * 100.0).round() / 100.0 },
        };

        let id = |i: usize| -> TaskId { plan.tasks[i].id.clone() };
        let graph = DependencyGraph {
            version: 1,
            tasks: plan
                .tasks
                .iter()
                .map(|t| GraphTask {
                    id: t.id.clone(),
                    phase: t.phase,
                    agent: t.agent.clone(),
                    modifies: t.modifies.patterns().to_vec(),
                    reads: t.reads.patterns().to_vec(),
                    depends_on: t.depends_on.clone(),
                })
                .collect(),
            edges: self
                .graph
                .edge_references()
                .map(|e| EdgeRecord { from: id(e.source().index()), to: id(e.target().index()), reason: e.weight().clone() })
                .collect(),
            execution_strategy: ExecutionStrategy {
                mode,
                strategy,
                max_agents: par.max_agents,
                parallel_groups: groups,
                critical_path: critical_path.into_iter().map(id).collect(),
                estimate,
            },
        };
        Ok(SealedPlan {
            exec: ExecutionPlan::new(graph, warnings),
            graph: self.graph,
            order: self.order.order,
            group_of,
            priority_ms,
            critical_ms,
            agents,
        })
    }
}
