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
    /// (predecessor, hard): hard predecessors must be merged.
    preds: Vec<(usize, bool)>,
    succs: Vec<usize>,
    /// Position in the phase's dependency-then-plan order.
    rank: usize,
}

/// The phase state machine.
#[derive(Debug, Clone)]
pub struct PhaseMachine {
    nodes: Vec<Node>,
    status: Vec<TaskStatus>,
    priority: Vec<f64>,
    current: Option<Phase>,
    completed: Vec<Phase>,
}

fn is_active(s: TaskStatus) -> bool {
    matches!(s, TaskStatus::InProgress | TaskStatus::ReadyForQa | TaskStatus::QaApproved | TaskStatus::QaRejected)
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
        let mut nodes: Vec<Node> =
            tasks.iter().map(|(id, phase)| Node { id: id.clone(), phase: *phase, preds: Vec::new(), succs: Vec::new(), rank: 0 }).collect();
        for (from, to, reason) in edges {
            if *from >= nodes.len() || *to >= nodes.len() || nodes[*from].phase > nodes[*to].phase || reason == &EdgeReason::Phase {
                continue;
            }
            nodes[*to].preds.push((*from, *reason == EdgeReason::Declared));
            nodes[*from].succs.push(*to);
        }
        // Rank: a stable topological order inside each phase (ties by plan order).
        for phase in Phase::ALL {
            let members: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].phase == phase).collect();
            let mut indeg: Vec<usize> =
                members.iter().map(|&i| nodes[i].preds.iter().filter(|(p, _)| nodes[*p].phase == phase).count()).collect();
            let mut ready: BTreeSet<usize> = members.iter().enumerate().filter(|(k, _)| indeg[*k] == 0).map(|(_, &i)| i).collect();
            let mut rank = 0;
            while let Some(i) = ready.pop_first() {
                nodes[i].rank = rank;
                rank += 1;
                for s in nodes[i].succs.clone() {
                    if let Some(k) = members.iter().position(|&m| m == s) {
                        indeg[k] -= 1;
                        if indeg[k] == 0 {
                            ready.insert(s);
                        }
                    }
                }
            }
            // Tasks left in a cycle (a planner never gives one) keep plan order after the rest.
            for &i in &members {
                if indeg[members.iter().position(|&m| m == i).unwrap_or(0)] > 0 {
                    nodes[i].rank = rank + i;
                }
            }
        }
        let n = nodes.len();
        let mut m = Self { nodes, status: vec![TaskStatus::Pending; n], priority: vec![0.0; n], current: None, completed: Vec::new() };
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
        self.status.iter().all(|s| s.is_terminal())
    }

    /// Tasks running now (started and not ended).
    pub fn active(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| is_active(self.status[i])).collect()
    }

    /// Tasks that may start now, best first (priority, then dependency and plan order).
    pub fn ready(&self) -> Vec<usize> {
        let Some(phase) = self.current else { return Vec::new() };
        let mut ready: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].phase == phase && self.status[i] == TaskStatus::Pending)
            .filter(|&i| {
                self.nodes[i]
                    .preds
                    .iter()
                    .all(|&(p, hard)| if hard { self.status[p] == TaskStatus::Merged } else { self.status[p].is_terminal() })
            })
            .collect();
        if phase.policy() == PhasePolicy::Serial {
            if (0..self.nodes.len()).any(|i| self.nodes[i].phase == phase && is_active(self.status[i])) {
                return Vec::new();
            }
            ready.sort_by_key(|&i| self.nodes[i].rank);
            ready.truncate(1);
            return ready;
        }
        ready.sort_by(|&a, &b| self.priority[b].total_cmp(&self.priority[a]).then(self.nodes[a].rank.cmp(&self.nodes[b].rank)));
        ready
    }

    /// Changes a task's status, checking the transition; returns what follows from it.
    pub fn set_status(&mut self, i: usize, to: TaskStatus) -> Result<Vec<MachineEvent>, TransitionError> {
        let from = *self.status.get(i).ok_or_else(|| TransitionError::UnknownTask(i.to_string()))?;
        if from == TaskStatus::Pending && to == TaskStatus::InProgress && !self.ready().contains(&i) {
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

    fn apply(&mut self, i: usize, to: TaskStatus) -> Vec<MachineEvent> {
        self.status[i] = to;
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
            for s in self.nodes[n].succs.clone() {
                let hard = self.nodes[s].preds.iter().any(|&(p, h)| p == n && h);
                if hard && self.status[s] == TaskStatus::Pending {
                    self.status[s] = TaskStatus::Blocked;
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
            let next = Phase::ALL.into_iter().find(|p| !self.completed.contains(p) && self.nodes.iter().any(|n| n.phase == *p));
            let Some(phase) = next else {
                self.current = None;
                return events;
            };
            if self.current != Some(phase) {
                self.current = Some(phase);
                events.push(MachineEvent::PhaseStarted(phase));
            }
            let members: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].phase == phase).collect();
            if !members.iter().all(|&i| self.status[i].is_terminal()) {
                return events;
            }
            self.completed.push(phase);
            events.push(MachineEvent::PhaseCompleted(phase));
            if members.iter().any(|&i| self.status[i] != TaskStatus::Merged) {
                let later: Vec<usize> =
                    (0..self.nodes.len()).filter(|&i| self.nodes[i].phase > phase && self.status[i] == TaskStatus::Pending).collect();
                if !later.is_empty() {
                    for &i in &later {
                        self.status[i] = TaskStatus::Blocked;
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
}
