//! The run as the journal tells it: a fold of [`Record`]s into per-task facts.
//!
//! `RunView::apply` is O(1) per event, so the engine keeps one up to date as it journals and
//! derives the state-file snapshots from it; `resume`, `status`, `report` and `validate` build
//! one by replaying the journal.

use std::collections::HashMap;

use fugue_core::{FailureKind, GateReport, Phase, TaskId, TaskStatus, Usage};

use crate::events::{BudgetScope, Event, QaVerdict, RunOutcome};
use crate::journal::Record;

/// One interval an agent (or a gate run, or a merge) was busy, in ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start.
    pub start: u64,
    /// End (equal to start while still running).
    pub end: u64,
}

/// A scheduler job an agent iteration runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    /// Attempt.
    pub attempt: u32,
    /// QA iteration within the attempt.
    pub iteration: u32,
    /// The executor that submitted it.
    pub executor: String,
    /// The scheduler's id.
    pub job_id: String,
}

/// What the journal says about one task.
#[derive(Debug, Clone, Default)]
pub struct TaskView {
    /// Current status.
    pub status: TaskStatus,
    /// Attempts started.
    pub attempts: u32,
    /// QA iterations of the current attempt.
    pub iterations: u32,
    /// First start (RFC 3339).
    pub started: Option<String>,
    /// Terminal status time (RFC 3339).
    pub completed: Option<String>,
    /// Branch.
    pub branch: Option<String>,
    /// Checkout.
    pub worktree: Option<String>,
    /// Pool slot.
    pub slot: Option<String>,
    /// Last gate results.
    pub qa: Vec<GateReport>,
    /// Files changed (from the merge).
    pub files: Vec<String>,
    /// Merge commit.
    pub merge_commit: Option<String>,
    /// Conflicting files of a failed merge.
    pub conflict_files: Vec<String>,
    /// Busy intervals: from an attempt's start to the task's end (merged, failed, conflicted)
    /// or the attempt's failure — the whole pipeline: agent, QA iterations, merge.
    pub busy: Vec<Span>,
    /// When the task's merge happened (ms).
    pub merged_at: Option<u64>,
    /// Last failure reason.
    pub last_error: Option<String>,
    /// The scheduler job of the iteration in flight (submitted, not yet reported finished).
    pub job: Option<JobRef>,
    /// The attempt QA approved, until that attempt fails: a resume only merges it, even after
    /// an earlier resume journaled the task back to pending.
    pub approved: Option<u32>,
    /// What every agent run of the task spent, over all attempts (and resumes).
    pub usage: Usage,
    /// Agent runs that finished.
    pub agent_runs: u32,
    /// Agent runs that reported no usage at all (shown as unknown, never as zero).
    pub unreported_runs: u32,
    /// The last agent session id, for continuing it.
    pub session: Option<String>,
    /// Model turns over all runs.
    pub turns: u32,
    /// The last run's refused tool calls.
    pub denials: Vec<String>,
    /// The last run's failure kind.
    pub failure: Option<FailureKind>,
    /// The last run's final message.
    pub final_message: Option<String>,
    /// Whether the last run was confined: the paths it could write, or `None` (unconfined, or
    /// no run yet).
    pub confined: Option<Vec<String>>,
    /// What the running agent is doing now, and its usage so far (cleared when it finishes).
    pub activity: Option<(String, Usage)>,
    /// What each attempt's agent runs spent (by 1-based attempt).
    pub attempt_usage: std::collections::BTreeMap<u32, Usage>,
    /// Agent runs whose cost came from the plan's `prices`.
    pub priced_runs: u32,
    /// Agent runs that reported tokens but no cost: with any, a known cost is a lower bound.
    pub costless_runs: u32,
    /// Agent runs that ended without a report (killed, crashed, timed out): their last live
    /// reading is counted in `usage`.
    pub unfinished_runs: u32,
    /// The task's first QA verdict that judged the work (`qa_blocked` rounds left out).
    pub first_verdict: Option<QaVerdict>,
    /// Gates (besides the built-in `changes` check) of the round that approved the task.
    pub approved_gates: usize,
    /// The reading that reached the task's budget: the limit, and that reading's step plus one
    /// more step in flight (the task's overshoot bound).
    pub budget_stop: Option<(String, fugue_core::Spend)>,
    /// Open busy interval start.
    open: Option<u64>,
}

impl TaskView {
    /// A run that ended without a report spent what its last reading said: counted, not lost.
    fn settle_activity(&mut self) {
        if let Some((_, live)) = self.activity.take()
            && !live.is_unknown()
        {
            self.usage = self.usage.add(&live);
            self.costless_runs += u32::from(live.cost_usd.is_none());
            let attempt = self.attempts.max(1);
            let entry = self.attempt_usage.entry(attempt).or_default();
            *entry = entry.add(&live);
            self.unfinished_runs += 1;
        }
    }

    /// Usage including the running iteration's so far.
    pub fn usage_with_live(&self) -> Usage {
        match &self.activity {
            Some((_, live)) => self.usage.add(live),
            None => self.usage,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct RunView {
    /// The run's id.
    pub execution_id: String,
    /// Plan file.
    pub plan: String,
    /// Base branch.
    pub base: String,
    /// Base commit at start.
    pub base_commit: String,
    /// PARALLEL or SEQUENTIAL.
    pub mode: String,
    /// When the run started (RFC 3339 ms).
    pub started: String,
    /// When it last finished.
    pub finished: Option<String>,
    /// Outcome, once finished.
    pub outcome: Option<RunOutcome>,
    /// Phase running now.
    pub current_phase: Option<Phase>,
    /// Phases completed.
    pub completed_phases: Vec<Phase>,
    /// Task ids in plan order.
    pub order: Vec<TaskId>,
    /// Per task.
    pub tasks: HashMap<TaskId, TaskView>,
    /// The orchestrator's pid (latest start or resume).
    pub pid: u32,
    /// Number of events applied.
    pub events: u64,
    /// Time of the first and last event (ms).
    pub first_ms: u64,
    /// Time of the last event (ms).
    pub last_ms: u64,
    /// Every admission under the run's budget, in order.
    pub reservations: Vec<Reservation>,
    /// Every budget reached, in order.
    pub budget_events: Vec<BudgetHit>,
}

/// A task let in under the run's budget (a `budget_reserved` event).
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    /// The task.
    pub task: TaskId,
    /// What it held.
    pub reserved: fugue_core::Spend,
    /// What the run had spent and held before it.
    pub claimed: fugue_core::Spend,
    /// The run's budget in force.
    pub limit: fugue_core::Budget,
}

/// A budget reached (a `budget_exceeded` event).
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetHit {
    /// Task or run.
    pub scope: BudgetScope,
    /// The task whose reading reached it.
    pub task: TaskId,
    /// The limit.
    pub limit: String,
    /// Spent with that reading (the task's or the run's).
    pub spent: fugue_core::Spend,
    /// That reading's increment.
    pub step: fugue_core::Spend,
    /// One step per agent stopped, for the steps in flight.
    pub in_flight: fugue_core::Spend,
}

impl RunView {
    /// Replays records.
    pub fn from_records(records: &[Record]) -> Self {
        let mut v = Self::default();
        for r in records {
            v.apply(r);
        }
        v
    }

    /// Folds one record in.
    pub fn apply(&mut self, r: &Record) {
        let ms = fugue_core::time::parse_millis(&r.ts).unwrap_or(self.last_ms);
        if self.events == 0 {
            self.first_ms = ms;
        }
        self.events += 1;
        self.last_ms = ms;
        match &r.event {
            Event::RunStarted { execution_id, plan, base, base_commit, mode, tasks, pid } => {
                self.execution_id.clone_from(execution_id);
                self.plan.clone_from(plan);
                self.base.clone_from(base);
                self.base_commit.clone_from(base_commit);
                self.mode.clone_from(mode);
                self.started.clone_from(&r.ts);
                self.order.clone_from(tasks);
                self.pid = *pid;
                for t in tasks {
                    self.tasks.entry(t.clone()).or_default();
                }
            }
            Event::RunResumed { pid } => {
                self.pid = *pid;
                self.outcome = None;
                self.finished = None;
                // Attempts in flight when the orchestrator died are closed where they stopped.
                let last = self.last_ms;
                for t in self.tasks.values_mut() {
                    t.settle_activity();
                    if let Some(start) = t.open.take() {
                        t.busy.push(Span { start, end: last.max(start) });
                    }
                }
            }
            Event::PhaseStarted { phase } => self.current_phase = Some(*phase),
            Event::PhaseCompleted { phase } => {
                if !self.completed_phases.contains(phase) {
                    self.completed_phases.push(*phase);
                }
            }
            Event::Status { task, status } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.status = *status;
                if *status == TaskStatus::QaApproved {
                    t.approved = Some(t.attempts.max(1));
                }
                if status.is_terminal() {
                    t.job = None;
                    t.settle_activity();
                    t.completed = Some(r.ts.clone());
                    if let Some(start) = t.open.take() {
                        t.busy.push(Span { start, end: ms });
                    }
                }
            }
            Event::AttemptStarted { task, attempt, worktree, branch, slot } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.attempts = *attempt;
                t.iterations = 0;
                t.started.get_or_insert_with(|| r.ts.clone());
                t.worktree = Some(worktree.clone());
                t.branch.clone_from(branch);
                t.slot.clone_from(slot);
                if let Some(start) = t.open.replace(ms) {
                    t.busy.push(Span { start, end: ms });
                }
            }
            Event::JobStarted { task, attempt, iteration, executor, job_id } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.job = Some(JobRef { attempt: *attempt, iteration: *iteration, executor: executor.clone(), job_id: job_id.clone() });
            }
            Event::AgentFinished {
                task, attempt, iteration, usage, session_id, turns, denials, failure, final_message, priced, ..
            } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.iterations = *iteration;
                t.job = None;
                t.activity = None;
                t.agent_runs += 1;
                if usage.is_unknown() {
                    t.unreported_runs += 1;
                } else {
                    t.usage = t.usage.add(usage);
                    t.costless_runs += u32::from(usage.cost_usd.is_none());
                    let entry = t.attempt_usage.entry(*attempt).or_default();
                    *entry = entry.add(usage);
                }
                t.priced_runs += u32::from(*priced);
                if session_id.is_some() {
                    t.session.clone_from(session_id);
                }
                t.turns += turns.unwrap_or(0);
                t.denials.clone_from(denials);
                t.failure = *failure;
                t.final_message.clone_from(final_message);
                t.confined = None;
            }
            Event::AgentConfined { task, write, .. } => {
                self.tasks.entry(task.clone()).or_default().confined = Some(write.clone());
            }
            Event::AgentActivity { task, doing, usage, .. } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.activity = Some((doing.clone(), *usage));
            }
            Event::QaFinished { task, attempt, iteration, verdict, reports, .. } => {
                let t = self.tasks.entry(task.clone()).or_default();
                if *verdict == QaVerdict::TaskApproved {
                    t.approved = Some(*attempt);
                    t.approved_gates = reports.iter().filter(|g| g.gate != fugue_quality_gates::CHANGES_CHECK).count();
                }
                if *verdict != QaVerdict::QaBlocked && t.first_verdict.is_none() {
                    t.first_verdict = Some(*verdict);
                }
                t.iterations = *iteration + u32::from(*verdict == QaVerdict::TaskRejected);
                t.qa.clone_from(reports);
            }
            Event::Merged { task, commit, files } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.merge_commit = Some(commit.clone());
                t.files.clone_from(files);
                t.merged_at = Some(ms);
            }
            Event::MergeConflicted { task, files } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.conflict_files.clone_from(files);
            }
            Event::AttemptFailed { task, reason, .. } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.last_error = Some(reason.clone());
                t.settle_activity();
                t.job = None;
                t.approved = None;
                if let Some(start) = t.open.take() {
                    t.busy.push(Span { start, end: ms });
                }
            }
            Event::LocksGranted { .. } | Event::LocksReleased { .. } => {}
            Event::BudgetReserved { task, reserved, claimed, limit } => {
                self.reservations.push(Reservation { task: task.clone(), reserved: *reserved, claimed: *claimed, limit: *limit });
            }
            Event::BudgetExceeded { scope, task, limit, spent, step, in_flight } => {
                if *scope == BudgetScope::Task {
                    self.tasks.entry(task.clone()).or_default().budget_stop = Some((limit.clone(), step.plus(*in_flight)));
                }
                self.budget_events.push(BudgetHit {
                    scope: *scope,
                    task: task.clone(),
                    limit: limit.clone(),
                    spent: *spent,
                    step: *step,
                    in_flight: *in_flight,
                });
            }
            Event::Interrupted { .. } => {
                self.outcome = Some(RunOutcome::Interrupted);
                self.finished = Some(r.ts.clone());
            }
            Event::RunFinished { outcome } => {
                self.outcome = Some(*outcome);
                self.finished = Some(r.ts.clone());
                self.current_phase = None;
            }
        }
    }

    /// What the whole run spent so far (finished runs and the running ones' live figures),
    /// and how many agent runs reported nothing.
    pub fn usage(&self) -> (Usage, u32) {
        self.tasks.values().fold((Usage::default(), 0), |(u, n), t| (u.add(&t.usage_with_live()), n + t.unreported_runs))
    }

    /// The task's view (a default one for an unknown id).
    pub fn task(&self, id: &TaskId) -> &TaskView {
        static NOT_STARTED: std::sync::LazyLock<TaskView> = std::sync::LazyLock::new(TaskView::default);
        self.tasks.get(id).unwrap_or(&NOT_STARTED)
    }

    /// Tasks running now.
    pub fn active(&self) -> Vec<TaskId> {
        self.order
            .iter()
            .filter(|id| {
                self.tasks.get(*id).is_some_and(|t| {
                    matches!(t.status, TaskStatus::InProgress | TaskStatus::ReadyForQa | TaskStatus::QaApproved | TaskStatus::QaRejected)
                })
            })
            .cloned()
            .collect()
    }
}
