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
        }
    }
}

/// How an agent run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
