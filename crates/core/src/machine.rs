//! The phase state machine: which tasks may start, when a phase is over, what a failure blocks.
//!
//! It is pure — no I/O, no clock, no async — so the engine drives it from events and a resume
//! rebuilds it by replaying the journal. It knows tasks, their phases and the edges the
//! planner produced, and keeps one [`TaskStatus`] per task.
//!
//! The rules, from the design:
//! * Phases run in order; the end of every phase is a synchronization point: no task of a
//!   later phase starts before every task of the earlier phases has ended.
//! * A task is *ready* when it is pending, in the current phase, and every predecessor has
//!   ended: a `declared` predecessor must be merged, an ordering predecessor (a conflict edge)
//!   only has to be finished. A failed declared dependency blocks the task, transitively.
//! * A serial phase runs one task at a time, in dependency then plan order.
//! * When a phase ends with any task not merged, every later task is blocked.
//! * Empty phases are skipped.
//!
//! The engine asks what is ready on every dispatch and changes a status several times per
//! task, so the machine answers both from state it keeps up to date instead of scanning the
//! tasks: per task, how many incoming edges are still unmet; per phase, the ready tasks in
//! dispatch order (a sorted set) and counts of active, ended and merged tasks. A status change
//! costs O(edges of the task · log ready); asking for the next `k` ready tasks costs O(k).
//! Every status write — checked, restored, or a consequence such as blocking — goes through
//! one function that keeps those in step.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use crate::state::EdgeReason;
use crate::{ExecutionPlan, Phase, PhasePolicy, TaskId, TaskStatus};
/// A refused status change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The task is not in the machine.
    #[error("failed to change status: no task `{0}`")]
    UnknownTask(String),
    /// The change is not allowed from the current status.
    #[error("failed to move task `{task}` from {from} to {to}")]
    Invalid {
        /// Task id.
        task: String,
        /// Current status.
        from: TaskStatus,
        /// Requested status.
        to: TaskStatus,
    },
    /// The task may not start yet.
    #[error("failed to start task `{0}`: it is not ready")]
    NotReady(String),
}

/// Something the machine decided as a consequence of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MachineEvent {
    /// These tasks can never run: a dependency or an earlier phase failed.
    Blocked(Vec<TaskId>),
    /// Every task of the phase has ended (a synchronization point).
    PhaseCompleted(Phase),
    /// The next non-empty phase begins.
    PhaseStarted(Phase),
}

#[derive(Debug, Clone)]
struct Node {
    id: TaskId,
    phase: Phase,
    /// Index of `phase` in [`Phase::ALL`].
    slot: usize,
    /// (predecessor, hard): hard predecessors must be merged.
    preds: Vec<(usize, bool)>,
    /// (successor, hard): the same edges seen from the other end.
    succs: Vec<(usize, bool)>,
    /// Position in the phase's dependency-then-plan order.
    rank: usize,
}

/// A ready task's place in the dispatch order: priority (higher first), then rank, then plan
/// order. Tasks of serial phases carry priority 0, so they go by rank alone.
#[derive(Debug, Clone, Copy)]
struct ReadyKey {
    priority: f64,
    rank: usize,
    index: usize,
}

impl Ord for ReadyKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other.priority.total_cmp(&self.priority).then(self.rank.cmp(&other.rank)).then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for ReadyKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ReadyKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ReadyKey {}

/// What the machine keeps per phase.
#[derive(Debug, Clone, Default)]
struct PhaseState {
    tasks: usize,
    active: usize,
    ended: usize,
    merged: usize,
    /// Pending tasks with every incoming edge met, in dispatch order.
    ready: BTreeSet<ReadyKey>,
}

/// The phase state machine.
#[derive(Debug, Clone)]
pub struct PhaseMachine {
    nodes: Vec<Node>,
    status: Vec<TaskStatus>,
    priority: Vec<f64>,
    /// Per task: incoming edges whose predecessor does not allow the start yet.
    unmet: Vec<usize>,
    /// Per phase, indexed like [`Phase::ALL`].
    phases: Vec<PhaseState>,
    current: Option<Phase>,
    completed: Vec<Phase>,
}

fn is_active(s: TaskStatus) -> bool {
    matches!(s, TaskStatus::InProgress | TaskStatus::ReadyForQa | TaskStatus::QaApproved | TaskStatus::QaRejected)
}

/// Does a predecessor in status `s` let its successor start, over an edge of this hardness?
fn meets(s: TaskStatus, hard: bool) -> bool {
    if hard { s == TaskStatus::Merged } else { s.is_terminal() }
}

fn slot_of(phase: Phase) -> usize {
    Phase::ALL.iter().position(|p| *p == phase).unwrap_or(0)
}

fn allowed(from: TaskStatus, to: TaskStatus) -> bool {
    use TaskStatus::*;
    matches!(
        (from, to),
        (Pending, InProgress)
            | (InProgress, ReadyForQa | Failed | InProgress)
            | (ReadyForQa, QaApproved | QaRejected | Failed | InProgress)
            | (QaRejected, InProgress | Failed)
            | (QaApproved, Merged | MergeConflict | Failed | InProgress)
            | (Pending, Blocked)
    )
}

impl PhaseMachine {
    /// Builds the machine from tasks (in plan order) and edges `(from, to, reason)`.
    pub fn new(tasks: &[(TaskId, Phase)], edges: &[(usize, usize, EdgeReason)]) -> Self {
        let mut nodes: Vec<Node> = tasks
            .iter()
            .map(|(id, phase)| Node { id: id.clone(), phase: *phase, slot: slot_of(*phase), preds: Vec::new(), succs: Vec::new(), rank: 0 })
            .collect();
        for (from, to, reason) in edges {
            if *from >= nodes.len() || *to >= nodes.len() || nodes[*from].phase > nodes[*to].phase || reason == &EdgeReason::Phase {
                continue;
            }
            let hard = *reason == EdgeReason::Declared;
            nodes[*to].preds.push((*from, hard));
            nodes[*from].succs.push((*to, hard));
        }
        // Rank: a stable topological order inside each phase (ties by plan order).
        let mut local = vec![usize::MAX; nodes.len()];
        for phase in Phase::ALL {
            let members: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].phase == phase).collect();
            for (k, &i) in members.iter().enumerate() {
                local[i] = k;
            }
            let mut indeg: Vec<usize> =
                members.iter().map(|&i| nodes[i].preds.iter().filter(|(p, _)| nodes[*p].phase == phase).count()).collect();
            let mut ready: BTreeSet<usize> = members.iter().enumerate().filter(|(k, _)| indeg[*k] == 0).map(|(_, &i)| i).collect();
            let mut rank = 0;
            while let Some(i) = ready.pop_first() {
                nodes[i].rank = rank;
                rank += 1;
                for k in 0..nodes[i].succs.len() {
                    let s = nodes[i].succs[k].0;
                    if nodes[s].phase == phase {
                        indeg[local[s]] -= 1;
                        if indeg[local[s]] == 0 {
                            ready.insert(s);
                        }
                    }
                }
            }
            // Tasks left in a cycle (a planner never gives one) keep plan order after the rest.
            for &i in &members {
                if indeg[local[i]] > 0 {
                    nodes[i].rank = rank + i;
                }
            }
        }
        let n = nodes.len();
        let mut phases = vec![PhaseState::default(); Phase::ALL.len()];
        for node in &nodes {
            phases[node.slot].tasks += 1;
        }
        let unmet = nodes.iter().map(|node| node.preds.len()).collect();
        let mut m = Self {
            nodes,
            status: vec![TaskStatus::Pending; n],
            priority: vec![0.0; n],
            unmet,
            phases,
            current: None,
            completed: Vec::new(),
        };
        m.rebuild_ready();
        m.advance();
        m
    }

    /// Builds the machine from a sealed execution plan.
    pub fn from_plan(plan: &ExecutionPlan) -> Self {
        let g = plan.graph();
        let tasks: Vec<(TaskId, Phase)> = g.tasks.iter().map(|t| (t.id.clone(), t.phase)).collect();
        let edges: Vec<(usize, usize, EdgeReason)> = g
            .edges
            .iter()
            .filter_map(|e| Some((plan.index_of(e.from.as_str())?, plan.index_of(e.to.as_str())?, e.reason.clone())))
            .collect();
        Self::new(&tasks, &edges)
    }

    /// Sets dispatch priorities (higher first, e.g. the remaining critical-path length).
    pub fn with_priorities(mut self, priority: Vec<f64>) -> Self {
        if priority.len() == self.nodes.len() {
            self.priority = priority;
            self.rebuild_ready();
        }
        self
    }

    /// The phase running now; `None` when every task has ended.
    pub fn current_phase(&self) -> Option<Phase> {
        self.current
    }

    /// Phases whose tasks have all ended, in order.
    pub fn completed_phases(&self) -> &[Phase] {
        &self.completed
    }

    /// The status of task `i`.
    pub fn status(&self, i: usize) -> TaskStatus {
        self.status[i]
    }

    /// The id of task `i`.
    pub fn id(&self, i: usize) -> &TaskId {
        &self.nodes[i].id
    }

    /// The number of tasks.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Finds a task's index by id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id.as_str() == id)
    }

    /// True when every task has ended.
    pub fn is_finished(&self) -> bool {
        self.phases.iter().all(|p| p.ended == p.tasks)
    }

    /// Tasks running now (started and not ended).
    pub fn active(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| is_active(self.status[i])).collect()
    }

    /// How many tasks run now: `active().len()` without the scan.
    pub fn active_count(&self) -> usize {
        self.phases.iter().map(|p| p.active).sum()
    }

    /// Tasks that may start now, best first (priority, then dependency and plan order).
    pub fn ready(&self) -> Vec<usize> {
        self.next_ready(usize::MAX)
    }

    /// The first `limit` tasks of [`ready`](Self::ready), in O(`limit`).
    pub fn next_ready(&self, limit: usize) -> Vec<usize> {
        let Some(phase) = self.current else { return Vec::new() };
        let state = &self.phases[slot_of(phase)];
        let limit = if phase.policy() == PhasePolicy::Serial {
            if state.active > 0 {
                return Vec::new();
            }
            limit.min(1)
        } else {
            limit
        };
        state.ready.iter().take(limit).map(|k| k.index).collect()
    }

    /// Changes a task's status, checking the transition; returns what follows from it.
    pub fn set_status(&mut self, i: usize, to: TaskStatus) -> Result<Vec<MachineEvent>, TransitionError> {
        let from = *self.status.get(i).ok_or_else(|| TransitionError::UnknownTask(i.to_string()))?;
        if from == TaskStatus::Pending && to == TaskStatus::InProgress && !self.may_start(i) {
            return Err(TransitionError::NotReady(self.nodes[i].id.to_string()));
        }
        if !allowed(from, to) {
            return Err(TransitionError::Invalid { task: self.nodes[i].id.to_string(), from, to });
        }
        Ok(self.apply(i, to))
    }

    /// Sets a status without checking the transition: for rebuilding from a journal.
    pub fn restore(&mut self, i: usize, to: TaskStatus) -> Vec<MachineEvent> {
        if i >= self.status.len() {
            return Vec::new();
        }
        self.apply(i, to)
    }

    /// Is `i` among [`ready`](Self::ready)?
    fn may_start(&self, i: usize) -> bool {
        let node = &self.nodes[i];
        if self.current != Some(node.phase) || !self.is_ready(i) {
            return false;
        }
        node.phase.policy() != PhasePolicy::Serial || self.next_ready(1).first() == Some(&i)
    }

    /// Pending with every incoming edge met (the phase is not considered).
    fn is_ready(&self, i: usize) -> bool {
        self.status[i] == TaskStatus::Pending && self.unmet[i] == 0
    }

    fn key(&self, i: usize) -> ReadyKey {
        let node = &self.nodes[i];
        let priority = if node.phase.policy() == PhasePolicy::Serial { 0.0 } else { self.priority[i] };
        ReadyKey { priority, rank: node.rank, index: i }
    }

    fn rebuild_ready(&mut self) {
        for p in &mut self.phases {
            p.ready.clear();
        }
        for i in 0..self.nodes.len() {
            if self.is_ready(i) {
                let key = self.key(i);
                self.phases[self.nodes[i].slot].ready.insert(key);
            }
        }
    }

    /// The one place a status is written: keeps the counts, the unmet edges of the successors
    /// and the ready sets in step with it.
    fn put(&mut self, i: usize, to: TaskStatus) {
        let from = self.status[i];
        if from == to {
            return;
        }
        let slot = self.nodes[i].slot;
        let was_ready = self.is_ready(i);
        self.status[i] = to;
        let phase = &mut self.phases[slot];
        phase.active = phase.active + usize::from(is_active(to)) - usize::from(is_active(from));
        phase.ended = phase.ended + usize::from(to.is_terminal()) - usize::from(from.is_terminal());
        phase.merged = phase.merged + usize::from(to == TaskStatus::Merged) - usize::from(from == TaskStatus::Merged);
        if was_ready != self.is_ready(i) {
            self.set_ready(i, !was_ready);
        }
        for k in 0..self.nodes[i].succs.len() {
            let (s, hard) = self.nodes[i].succs[k];
            let (before, after) = (meets(from, hard), meets(to, hard));
            if before == after {
                continue;
            }
            let was_ready = self.is_ready(s);
            if after {
                self.unmet[s] -= 1;
            } else {
                self.unmet[s] += 1;
            }
            if was_ready != self.is_ready(s) {
                self.set_ready(s, !was_ready);
            }
        }
    }

    fn set_ready(&mut self, i: usize, ready: bool) {
        let key = self.key(i);
        let set = &mut self.phases[self.nodes[i].slot].ready;
        if ready {
            set.insert(key);
        } else {
            set.remove(&key);
        }
    }

    fn apply(&mut self, i: usize, to: TaskStatus) -> Vec<MachineEvent> {
        self.put(i, to);
        let mut events = Vec::new();
        if to.is_unsuccessful() {
            let blocked = self.block_dependents(i);
            if !blocked.is_empty() {
                events.push(MachineEvent::Blocked(blocked));
            }
        }
        events.extend(self.advance());
        events
    }

    fn block_dependents(&mut self, i: usize) -> Vec<TaskId> {
        let mut out = Vec::new();
        let mut stack = vec![i];
        while let Some(n) = stack.pop() {
            for k in 0..self.nodes[n].succs.len() {
                let (s, hard) = self.nodes[n].succs[k];
                if hard && self.status[s] == TaskStatus::Pending {
                    self.put(s, TaskStatus::Blocked);
                    out.push(self.nodes[s].id.clone());
                    stack.push(s);
                }
            }
        }
        out
    }

    /// Moves `current` past finished phases, blocking later phases after a failure.
    fn advance(&mut self) -> Vec<MachineEvent> {
        let mut events = Vec::new();
        loop {
            let next = Phase::ALL.into_iter().enumerate().find(|(k, p)| !self.completed.contains(p) && self.phases[*k].tasks > 0);
            let Some((slot, phase)) = next else {
                self.current = None;
                return events;
            };
            if self.current != Some(phase) {
                self.current = Some(phase);
                events.push(MachineEvent::PhaseStarted(phase));
            }
            let state = &self.phases[slot];
            if state.ended < state.tasks {
                return events;
            }
            let failed = state.merged < state.tasks;
            self.completed.push(phase);
            events.push(MachineEvent::PhaseCompleted(phase));
            if failed {
                let later: Vec<usize> =
                    (0..self.nodes.len()).filter(|&i| self.nodes[i].phase > phase && self.status[i] == TaskStatus::Pending).collect();
                if !later.is_empty() {
                    for &i in &later {
                        self.put(i, TaskStatus::Blocked);
                    }
                    events.push(MachineEvent::Blocked(later.iter().map(|&i| self.nodes[i].id.clone()).collect()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    fn id(s: &str) -> TaskId {
        TaskId::new(s).expect("id")
    }

    fn machine(tasks: &[(&str, Phase)], edges: &[(usize, usize, EdgeReason)]) -> PhaseMachine {
        let tasks: Vec<_> = tasks.iter().map(|(t, p)| (id(t), *p)).collect();
        PhaseMachine::new(&tasks, edges)
    }

    fn finish(m: &mut PhaseMachine, i: usize) -> Vec<MachineEvent> {
        let mut ev = Vec::new();
        for s in [InProgress, ReadyForQa, QaApproved, Merged] {
            ev.extend(m.set_status(i, s).expect("transition"));
        }
        ev
    }

    #[test]
    fn empty_phases_are_skipped_and_phases_are_sync_points() {
        let mut m = machine(&[("arch", Phase::Architecture), ("a", Phase::Implementation), ("b", Phase::Implementation)], &[]);
        assert_eq!(m.current_phase(), Some(Phase::Architecture));
        assert_eq!(m.ready(), [0]);
        assert!(m.set_status(1, InProgress).is_err(), "later phase cannot start");
        let ev = finish(&mut m, 0);
        assert!(ev.contains(&MachineEvent::PhaseCompleted(Phase::Architecture)));
        assert!(ev.contains(&MachineEvent::PhaseStarted(Phase::Implementation)));
        assert_eq!(m.ready(), [1, 2]);
        finish(&mut m, 1);
        finish(&mut m, 2);
        assert!(m.is_finished());
        assert_eq!(m.current_phase(), None);
        assert_eq!(m.completed_phases(), [Phase::Architecture, Phase::Implementation]);
    }

    #[test]
    fn serial_phase_runs_one_at_a_time_in_dependency_then_plan_order() {
        // c depends on b (declared), so the order is a, b, c even though plan order is a, c, b.
        let mut m =
            machine(&[("a", Phase::Architecture), ("c", Phase::Architecture), ("b", Phase::Architecture)], &[(2, 1, EdgeReason::Declared)]);
        assert_eq!(m.ready(), [0]);
        m.set_status(0, InProgress).expect("start");
        assert!(m.ready().is_empty(), "serial: nothing else while one runs");
        m.set_status(0, ReadyForQa).expect("qa");
        m.set_status(0, QaApproved).expect("ok");
        m.set_status(0, Merged).expect("merged");
        assert_eq!(m.ready(), [2]);
        finish(&mut m, 2);
        assert_eq!(m.ready(), [1]);
    }

    #[test]
    fn failure_blocks_dependents_and_next_phase_but_not_siblings() {
        let mut m = machine(
            &[("a", Phase::Implementation), ("b", Phase::Implementation), ("c", Phase::Implementation), ("d", Phase::Validation)],
            &[(0, 1, EdgeReason::Declared)],
        );
        assert_eq!(m.ready(), [0, 2]);
        m.set_status(0, InProgress).expect("start");
        let ev = m.set_status(0, Failed).expect("fail");
        assert_eq!(ev, [MachineEvent::Blocked(vec![id("b")])]);
        assert_eq!(m.ready(), [2], "independent sibling goes on");
        let ev = finish(&mut m, 2);
        assert!(ev.contains(&MachineEvent::Blocked(vec![id("d")])), "next phase blocked: {ev:?}");
        assert!(m.is_finished());
        assert_eq!(m.status(3), Blocked);
    }

    #[test]
    fn ordering_edges_only_need_the_predecessor_to_end() {
        let mut m = machine(&[("a", Phase::Implementation), ("b", Phase::Implementation)], &[(0, 1, EdgeReason::WriteWrite)]);
        assert_eq!(m.ready(), [0]);
        m.set_status(0, InProgress).expect("start");
        m.set_status(0, Failed).expect("fail");
        assert_eq!(m.ready(), [1], "a conflict edge orders, it does not block");
    }

    #[test]
    fn priorities_order_ready_tasks() {
        let m = machine(&[("a", Phase::Implementation), ("b", Phase::Implementation), ("c", Phase::Implementation)], &[])
            .with_priorities(vec![1.0, 5.0, 3.0]);
        assert_eq!(m.ready(), [1, 2, 0]);
    }

    #[test]
    fn invalid_transitions_are_refused() {
        let mut m = machine(&[("a", Phase::Implementation)], &[]);
        assert!(matches!(m.set_status(0, Merged), Err(TransitionError::Invalid { .. })));
        m.set_status(0, InProgress).expect("start");
        m.set_status(0, ReadyForQa).expect("qa");
        m.set_status(0, QaRejected).expect("rejected");
        m.set_status(0, InProgress).expect("fix iteration");
        assert!(m.set_status(9, InProgress).is_err());
    }

    #[test]
    fn restore_rebuilds_from_a_journal() {
        let mut m = machine(&[("a", Phase::Architecture), ("b", Phase::Implementation)], &[]);
        m.restore(0, Merged);
        assert_eq!(m.current_phase(), Some(Phase::Implementation));
        assert_eq!(m.ready(), [1]);
    }

    /// The ready set by brute force, as the rules state it.
    fn ready_by_scan(m: &PhaseMachine) -> Vec<usize> {
        let Some(phase) = m.current_phase() else { return Vec::new() };
        let mut ready: Vec<usize> = (0..m.len())
            .filter(|&i| m.nodes[i].phase == phase && m.status(i) == Pending)
            .filter(|&i| m.nodes[i].preds.iter().all(|&(p, hard)| meets(m.status(p), hard)))
            .collect();
        if phase.policy() == PhasePolicy::Serial {
            if (0..m.len()).any(|i| m.nodes[i].phase == phase && is_active(m.status(i))) {
                return Vec::new();
            }
            ready.sort_by_key(|&i| m.nodes[i].rank);
            ready.truncate(1);
            return ready;
        }
        ready.sort_by(|&a, &b| m.priority[b].total_cmp(&m.priority[a]).then(m.nodes[a].rank.cmp(&m.nodes[b].rank)));
        ready
    }

    #[test]
    fn incremental_ready_set_matches_a_full_scan() {
        let phases = [Phase::Architecture, Phase::Implementation, Phase::Implementation, Phase::Validation];
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n.max(1)
        };
        for _ in 0..40 {
            let n = 2 + next(30) as usize;
            let tasks: Vec<(TaskId, Phase)> = (0..n).map(|i| (id(&format!("t{i}")), phases[next(4) as usize])).collect();
            let mut edges = Vec::new();
            for to in 1..n {
                for _ in 0..next(3) {
                    let from = next(to as u64) as usize;
                    let reason = if next(3) == 0 { EdgeReason::WriteWrite } else { EdgeReason::Declared };
                    edges.push((from, to, reason));
                }
            }
            let priority: Vec<f64> = (0..n).map(|_| next(5) as f64).collect();
            let mut m = PhaseMachine::new(&tasks, &edges).with_priorities(priority);
            for _ in 0..200 {
                assert_eq!(m.ready(), ready_by_scan(&m));
                assert_eq!(m.active_count(), m.active().len());
                assert_eq!(m.is_finished(), (0..n).all(|i| m.status(i).is_terminal()));
                if m.is_finished() {
                    break;
                }
                let ready = m.ready();
                let active = m.active();
                if !ready.is_empty() && (active.is_empty() || next(2) == 0) {
                    let i = ready[next(ready.len() as u64) as usize];
                    assert_eq!(m.next_ready(1).first(), ready.first());
                    m.set_status(i, InProgress).expect("a ready task starts");
                } else if let Some(&i) = active.get(next(active.len() as u64) as usize) {
                    let to = [ReadyForQa, QaApproved, Merged, Merged, Failed, MergeConflict][next(6) as usize];
                    let _ = m.set_status(i, to);
                } else {
                    // Nothing ready and nothing running: only a restore moves on (as a resume would).
                    let pending: Vec<usize> = (0..n).filter(|&i| m.status(i) == Pending).collect();
                    let Some(&i) = pending.first() else { break };
                    m.restore(i, Merged);
                }
            }
        }
    }
}
