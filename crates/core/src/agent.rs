//! The `Agent` trait: something that does a task's work in a checkout.
//!
//! An agent receives an [`AgentContext`] (the task, its worktree, the prompt, the QA feedback
//! of the previous iteration) and returns an [`AgentReport`]. The engine cancels an agent by
//! dropping its future, so implementations must clean up in `Drop` (the command agent kills
//! its process group there).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ExecObserver, Scope, TaskId};

/// Everything an agent gets for one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentContext {
    /// The task id.
    pub task_id: TaskId,
    /// The task's display name.
    pub task_name: String,
    /// What to do.
    pub prompt: String,
    /// The checkout to work in (the task's worktree, or the repository with `isolation: none`).
    pub worktree: PathBuf,
    /// What the task may modify.
    pub modifies: Scope,
    /// What the task reads.
    pub reads: Scope,
    /// The QA findings of the previous iteration, as text for the agent.
    pub feedback: Option<String>,
    /// 1-based attempt (retries after failures).
    pub attempt: u32,
    /// 0-based QA iteration within the attempt.
    pub iteration: u32,
    /// Plugin agents: the agent's config merged with the task's.
    pub config: serde_json::Value,
    /// Extra environment for processes the agent starts.
    pub env: BTreeMap<String, String>,
    /// Where the agent may write its log.
    pub log_file: Option<PathBuf>,
    /// Give up after this long.
    pub timeout: Option<Duration>,
    /// A job an earlier fugue process submitted for this attempt (see
    /// [`ProcessSpec::attach_job`](crate::ProcessSpec::attach_job)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_job: Option<String>,
    /// Told the job id of a process the agent starts on a scheduler.
    #[serde(skip)]
    pub job_observer: Option<Arc<dyn ExecObserver>>,
    /// The agent session of the previous iteration (a CLI's session or thread id): a driver
    /// that can continue it delivers `feedback` as the next prompt of that session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The task's own `verify` commands: the commands an agent that edits is allowed to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<String>,
    /// The agent may read but must not change anything (a reviewer).
    #[serde(default)]
    pub read_only: bool,
    /// Told what the agent is doing while it runs (the tool it calls, its tokens so far).
    #[serde(skip)]
    pub activity: Option<Arc<dyn ActivityObserver>>,
    /// A directory of fugue's own where agents may keep per-slot CLI state (config and
    /// session directories); `None` leaves the CLIs their usual places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_dir: Option<PathBuf>,
    /// What is left of the task's budget for this run. fugue enforces it from the usage the
    /// agent reports; an agent whose CLI has a limit of its own passes it on as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::Budget>,
}

impl AgentContext {
    /// A context with the given essentials and empty defaults for the rest.
    pub fn new(task_id: TaskId, prompt: impl Into<String>, worktree: impl Into<PathBuf>) -> Self {
        Self {
            task_name: task_id.to_string(),
            task_id,
            prompt: prompt.into(),
            worktree: worktree.into(),
            modifies: Scope::default(),
            reads: Scope::default(),
            feedback: None,
            attempt: 1,
            iteration: 0,
            config: serde_json::Value::Object(Default::default()),
            env: BTreeMap::new(),
            log_file: None,
            timeout: None,
            resume_job: None,
            job_observer: None,
            session: None,
            verify: Vec::new(),
            read_only: false,
            activity: None,
            sessions_dir: None,
            budget: None,
        }
    }
}

/// Tokens and money one agent run (or a sum of runs) spent. Every figure is optional: `None`
/// means the CLI did not say, which is not the same as zero and is never shown as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[non_exhaustive]
pub struct Usage {
    /// Input tokens, not counting cache reads and writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens (reasoning included where the CLI counts it there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    /// Cost in US dollars, where the CLI reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// True when no figure is known.
    pub fn is_unknown(&self) -> bool {
        *self == Self::default()
    }

    /// Every token figure added up, if any is known.
    pub fn total_tokens(&self) -> Option<u64> {
        [self.input_tokens, self.output_tokens, self.cache_read_tokens, self.cache_write_tokens]
            .into_iter()
            .flatten()
            .reduce(u64::saturating_add)
    }

    /// The sum of two usages: a figure is known when either side knows it.
    pub fn add(&self, other: &Usage) -> Usage {
        fn sum<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            }
        }
        Usage {
            input_tokens: sum(self.input_tokens, other.input_tokens),
            output_tokens: sum(self.output_tokens, other.output_tokens),
            cache_read_tokens: sum(self.cache_read_tokens, other.cache_read_tokens),
            cache_write_tokens: sum(self.cache_write_tokens, other.cache_write_tokens),
            cost_usd: sum(self.cost_usd, other.cost_usd),
        }
    }

    /// `12.3k tokens, $0.0421` — unknown figures left out; `None` when nothing is known.
    pub fn brief(&self) -> Option<String> {
        let tokens =
            self.total_tokens().map(|t| if t >= 10_000 { format!("{:.1}k tokens", t as f64 / 1000.0) } else { format!("{t} tokens") });
        let cost = self.cost_usd.map(|c| format!("${c:.4}"));
        match (tokens, cost) {
            (None, None) => None,
            (Some(t), None) => Some(t),
            (None, Some(c)) => Some(c),
            (Some(t), Some(c)) => Some(format!("{t}, {c}")),
        }
    }
}

/// Why an agent run failed, when the agent's own output says (see the CLI drivers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The CLI refused a tool call the agent needed (a write, a command).
    PermissionDenied,
    /// The session hit its turn limit.
    MaxTurns,
    /// The session hit its spending limit.
    Budget,
    /// The model API answered with an error.
    Api,
    /// The CLI reported an error result of another kind.
    Error,
    /// The process exited non-zero or was killed, and said nothing more specific.
    Exit,
}

/// What a running agent is doing, as its driver reads it from the CLI's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Activity {
    /// One line: the tool it runs (`Bash: cargo test`), or the start of its last message.
    pub doing: String,
    /// Usage so far in this run, where known.
    #[serde(default, skip_serializing_if = "Usage::is_unknown")]
    pub usage: Usage,
}

impl Activity {
    /// An activity line with the usage so far.
    pub fn new(doing: impl Into<String>, usage: Usage) -> Self {
        Self { doing: doing.into(), usage }
    }
}

/// Hears what an agent is doing while it runs.
pub trait ActivityObserver: Send + Sync + std::fmt::Debug {
    /// The agent started doing something new, or its usage grew.
    fn activity(&self, activity: &Activity);
}

/// How an agent run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentOutcome {
    /// The agent says its work is ready for QA.
    ReadyForQa,
    /// The agent says it could not do the work.
    Failed,
}

/// What an agent run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentReport {
    /// Ready for QA, or failed.
    pub outcome: AgentOutcome,
    /// A short summary for logs and reports.
    pub summary: String,
    /// Files the agent says it changed (the engine checks git anyway).
    #[serde(default)]
    pub files_modified: Vec<String>,
    /// The process exit code, for process agents.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Captured output (capped), for the task log.
    #[serde(default)]
    pub output: String,
    /// How long the run took, in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// What the run spent, where the agent says.
    #[serde(default, skip_serializing_if = "Usage::is_unknown")]
    pub usage: Usage,
    /// The agent's session (a CLI's session or thread id), for continuing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Model turns the session took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u32>,
    /// The agent's last message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_message: Option<String>,
    /// Tool calls the CLI refused, one line each (`Write src/a.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denials: Vec<String>,
    /// Why it failed, when the agent's output says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// The paths the run's confinement let it write (`None`: it ran unconfined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confined: Option<Vec<String>>,
}

impl AgentReport {
    /// A successful report.
    pub fn ready(summary: impl Into<String>) -> Self {
        Self {
            outcome: AgentOutcome::ReadyForQa,
            summary: summary.into(),
            files_modified: Vec::new(),
            exit_code: None,
            output: String::new(),
            duration_ms: 0,
            usage: Usage::default(),
            session_id: None,
            turns: None,
            final_message: None,
            denials: Vec::new(),
            failure: None,
            confined: None,
        }
    }

    /// A failed report.
    pub fn failed(summary: impl Into<String>) -> Self {
        Self { outcome: AgentOutcome::Failed, ..Self::ready(summary) }
    }
}

/// Why an agent could not run at all (as opposed to running and reporting failure).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The process could not be started.
    #[error("failed to start agent `{agent}`: {message}")]
    Spawn {
        /// Agent name.
        agent: String,
        /// Why.
        message: String,
    },
    /// The agent ran past its timeout and was killed.
    #[error("agent `{agent}` timed out after {after:?} and was killed")]
    Timeout {
        /// Agent name.
        agent: String,
        /// The timeout.
        after: Duration,
    },
    /// The agent was cancelled.
    #[error("agent `{agent}` was cancelled")]
    Cancelled {
        /// Agent name.
        agent: String,
    },
    /// A plugin call failed.
    #[error("plugin `{plugin}` failed: {message}")]
    Plugin {
        /// Plugin name.
        plugin: String,
        /// Why.
        message: String,
    },
    /// An I/O error around the agent (log files, prompt files).
    #[error("failed to {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Something that does a task's work.
#[async_trait]
pub trait Agent: Send + Sync {
    /// The agent's name (as in the plan's `agents`).
    fn name(&self) -> &str;

    /// Does the work described by `ctx` in `ctx.worktree`.
    async fn run(&self, ctx: AgentContext) -> Result<AgentReport, AgentError>;
}
