//! Limits and environment shared by every gate: how long a command may run, how much of its
//! output is kept, what extra environment it gets, and which [`Executor`] starts it.
//!
//! The plan does not carry these (they are the host's policy, not the project's), so the
//! engine builds one [`GateSettings`] for the run and every gate holds it behind an `Arc`.
//! Gate commands and command reviewers never spawn processes themselves: they describe them
//! and hand them to the executor — [`LocalExecutor`] by default, the run's cluster executor
//! when the host sets one — so a QA check runs where the agents run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fugue_agents::LocalExecutor;
use fugue_core::Executor;

/// Limits for gate commands, reviewers and QA checkouts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GateSettings {
    /// Starts test and docs commands and command reviewers.
    pub executor: Arc<dyn Executor>,
    /// Stop a test or docs command after this long (SIGTERM to its process group, then SIGKILL).
    pub command_timeout: Duration,
    /// Stop a reviewer agent after this long when its spec sets no timeout.
    pub review_timeout: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Bytes of a command's output kept (head and tail) for findings.
    pub output_cap: usize,
    /// Lines of a failing command's output quoted in its finding.
    pub quoted_lines: usize,
    /// Bytes of the task's diff given to reviewers; a longer diff is cut at a file boundary.
    pub diff_cap: usize,
    /// Extra environment for gate commands and reviewers.
    pub env: BTreeMap<String, String>,
    /// Ignored paths (e.g. `target/`) kept when a QA checkout is recycled for the next round
    /// (of any task, in this run or a later one). Empty (the default): every QA checkout is
    /// removed after use.
    pub keep_ignored: Vec<String>,
    /// The plan's `confine` for reviewer agents (which may override it); they always run
    /// read-only confined (their CLI state and a temp dir) unless it is `off`.
    pub confine: Option<fugue_core::ConfineMode>,
    /// How a new QA checkout is seeded with each cache (the plan's `pool.seed` over
    /// `keep_ignored`); hard links are copied instead.
    pub seed: Vec<(String, fugue_core::SeedMode)>,
}

impl GateSettings {
    /// The default command timeout: 10 minutes.
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

    /// Runs gate commands and command reviewers through `executor` instead of locally.
    pub fn with_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = executor;
        self
    }

    /// Sets the command timeout.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets the reviewer timeout.
    pub fn with_review_timeout(mut self, timeout: Duration) -> Self {
        self.review_timeout = timeout;
        self
    }

    /// Sets the output cap (at least 256 bytes).
    pub fn with_output_cap(mut self, bytes: usize) -> Self {
        self.output_cap = bytes.max(256);
        self
    }

    /// Sets the grace period between SIGTERM and SIGKILL.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Adds an environment variable for gate commands and reviewers.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Recycles QA checkouts, keeping these ignored paths between iterations.
    pub fn with_keep_ignored(mut self, paths: Vec<String>) -> Self {
        self.keep_ignored = paths;
        self
    }

    /// Seeds new QA checkouts with these caches (path, mode).
    pub fn with_seed(mut self, caches: Vec<(String, fugue_core::SeedMode)>) -> Self {
        self.seed = caches;
        self
    }
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            executor: Arc::new(LocalExecutor::new()),
            command_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            review_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            grace: Duration::from_secs(2),
            output_cap: 64 * 1024,
            quoted_lines: 30,
            diff_cap: 8 * 1024 * 1024,
            env: BTreeMap::new(),
            keep_ignored: Vec::new(),
            confine: None,
            seed: Vec::new(),
        }
    }
}
