//! The events of a run, as the journal records them.
//!
//! Events are facts, in the past tense, small and self-contained: replaying them in order
//! rebuilds everything the engine knows (task statuses, attempts, branches, timings), which is
//! what `resume`, `status`, `validate` and `report` do.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use fugue_core::QaVerdict;
use fugue_core::{AgentOutcome, Budget, FailureKind, GateReport, Phase, Spend, TaskId, TaskStatus, Usage};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every task merged.
    Success,
    /// Some tasks failed, were blocked or conflicted.
    Failed,
    /// Stopped by a signal or an error; resumable.
    Interrupted,
    /// The run's budget is spent: tasks are left to do; `fugue resume` with a raised budget
    /// continues.
    BudgetExhausted,
}

fn is_zero(s: &Spend) -> bool {
    *s == Spend::default()
}

/// Which budget a `budget_exceeded` event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// One task's budget.
    Task,
    /// The whole run's.
    Run,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A run began.
    RunStarted {
        /// The run's id.
        execution_id: String,
        /// The plan file.
        plan: String,
        /// The base branch.
        base: String,
        /// The base commit when the run started.
        base_commit: String,
        /// PARALLEL or SEQUENTIAL.
        mode: String,
        /// The tasks, in plan order.
        tasks: Vec<TaskId>,
        /// The orchestrator's pid.
        pid: u32,
    },
    /// A stopped run was picked up again.
    RunResumed {
        /// The orchestrator's pid.
        pid: u32,
    },
    /// A phase began.
    PhaseStarted {
        /// The phase.
        phase: Phase,
    },
    /// Every task of a phase ended (a synchronization point).
    PhaseCompleted {
        /// The phase.
        phase: Phase,
    },
    /// A task's status changed.
    Status {
        /// The task.
        task: TaskId,
        /// The new status.
        status: TaskStatus,
    },
    /// An agent attempt started in a checkout.
    AttemptStarted {
        /// The task.
        task: TaskId,
        /// 1-based attempt.
        attempt: u32,
        /// The checkout.
        worktree: String,
        /// The task branch (absent with `isolation: none`).
        branch: Option<String>,
        /// The pool slot.
        slot: Option<String>,
    },
    /// A scheduler accepted the agent process of one iteration as a job (or a resumed run
    /// re-attached to it). Until the matching `agent_finished`, the job may still be running
    /// on the cluster: `fugue resume` waits for it instead of submitting the work again.
    JobStarted {
        /// The task.
        task: TaskId,
        /// Attempt.
        attempt: u32,
        /// QA iteration within the attempt.
        iteration: u32,
        /// The executor (`slurm`).
        executor: String,
        /// The scheduler's job id.
        job_id: String,
    },
    /// The agent of one iteration finished.
    AgentFinished {
        /// The task.
        task: TaskId,
        /// Attempt.
        attempt: u32,
        /// QA iteration within the attempt.
        iteration: u32,
        /// Ready for QA, or failed.
        outcome: AgentOutcome,
        /// A short summary.
        summary: String,
        /// Wall time of the agent.
        duration_ms: u64,
        /// Tokens and cost of this iteration, where the agent reported them.
        #[serde(default, skip_serializing_if = "Usage::is_unknown")]
        usage: Usage,
        /// The agent's session id (a CLI's session or thread), for continuing it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        /// Model turns.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turns: Option<u32>,
        /// Tool calls the CLI refused.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        denials: Vec<String>,
        /// Why it failed, when the agent's output says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<FailureKind>,
        /// The agent's last message (clipped).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        final_message: Option<String>,
        /// `usage.cost_usd` was computed from the plan's `prices` (the CLI reported no cost).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        priced: bool,
    },
    /// A task was let in under the run's budget, holding a reservation of what it may still
    /// spend (its budget left) until it ends.
    BudgetReserved {
        /// The task.
        task: TaskId,
        /// What it holds: its budget left, in the limits the run has (0 for an uncapped task).
        reserved: Spend,
        /// What the run had spent and held for the tasks in flight before it (the admission
        /// check is `claimed + reserved <= limit`).
        claimed: Spend,
        /// The run's budget in force.
        limit: Budget,
    },
    /// A budget was reached: the task's (its agent is stopped and the attempt fails) or the
    /// run's (nothing more is dispatched; running agents stop or finish, as the plan says).
    BudgetExceeded {
        /// `task` or `run`.
        scope: BudgetScope,
        /// The task whose reading reached it.
        task: TaskId,
        /// The limit reached (`$0.5000`, `8000 tokens`).
        limit: String,
        /// What the task (scope `task`) or the run (scope `run`) had spent with that reading.
        spent: Spend,
        /// The reading's own increment: how far one step of the agent went.
        step: Spend,
        /// What may still come from steps in flight when the agents are stopped: one step (the
        /// largest each has taken) per agent stopped. With `step`, the documented overshoot bound.
        #[serde(default, skip_serializing_if = "is_zero")]
        in_flight: Spend,
    },
    /// The agent run just finished was confined (Landlock) to writing beneath these paths. A
    /// run without this record after its `agent_finished` ran unconfined.
    AgentConfined {
        /// The task.
        task: TaskId,
        /// Attempt.
        attempt: u32,
        /// QA iteration within the attempt.
        iteration: u32,
        /// The paths it could write.
        write: Vec<String>,
    },
    /// What a running agent is doing (the tool it runs, its last message) and what it has
    /// spent so far. Live information: nothing replays it but progress and status.
    AgentActivity {
        /// The task.
        task: TaskId,
        /// Attempt.
        attempt: u32,
        /// QA iteration within the attempt.
        iteration: u32,
        /// One line.
        doing: String,
        /// Usage of the running iteration so far.
        #[serde(default, skip_serializing_if = "Usage::is_unknown")]
        usage: Usage,
    },
    /// The gates of one iteration ran.
    QaFinished {
        /// The task.
        task: TaskId,
        /// Attempt.
        attempt: u32,
        /// Iteration.
        iteration: u32,
        /// The verdict.
        verdict: QaVerdict,
        /// Every gate's report.
        reports: Vec<GateReport>,
        /// Wall time of the gates.
        duration_ms: u64,
    },
    /// A task's branch was merged into the base.
    Merged {
        /// The task.
        task: TaskId,
        /// The merge commit (or the task's commit with `isolation: none`).
        commit: String,
        /// Files the task changed.
        files: Vec<String>,
    },
    /// A task's merge conflicted.
    MergeConflicted {
        /// The task.
        task: TaskId,
        /// The conflicting files.
        files: Vec<String>,
    },
    /// An attempt failed (the task may retry).
    AttemptFailed {
        /// The task.
        task: TaskId,
        /// Attempt.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// Path locks were granted.
    LocksGranted {
        /// The task.
        task: TaskId,
        /// Write claims.
        writes: Vec<String>,
        /// Read claims.
        reads: Vec<String>,
    },
    /// Path locks were released.
    LocksReleased {
        /// The task.
        task: TaskId,
    },
    /// The run was interrupted (Ctrl-C, error); it can be resumed.
    Interrupted {
        /// Why.
        reason: String,
    },
    /// The run ended.
    RunFinished {
        /// How.
        outcome: RunOutcome,
    },
}

impl Event {
    /// The task the event is about, if any.
    pub fn task(&self) -> Option<&TaskId> {
        match self {
            Event::Status { task, .. }
            | Event::AttemptStarted { task, .. }
            | Event::JobStarted { task, .. }
            | Event::AgentFinished { task, .. }
            | Event::AgentConfined { task, .. }
            | Event::AgentActivity { task, .. }
            | Event::QaFinished { task, .. }
            | Event::Merged { task, .. }
            | Event::MergeConflicted { task, .. }
            | Event::AttemptFailed { task, .. }
            | Event::LocksGranted { task, .. }
            | Event::LocksReleased { task } => Some(task),
            _ => None,
        }
    }
}
