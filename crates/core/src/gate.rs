//! The `QualityGate` trait and the reports gates and reviewers produce.

use std::path::PathBuf;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Phase, Scope, Severity, TaskId};

/// One finding of a gate or a reviewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Repo-relative file, when the finding is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub line: Option<u32>,
    /// What is wrong.
    #[schemars(length(min = 1))]
    pub message: String,
}

/// A reviewer's report: what `schemas/review-report.schema.json` describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "fugue review report")]
pub struct ReviewReport {
    /// 0 (reject) to 10 (perfect).
    #[schemars(range(min = 0, max = 10))]
    pub score: f64,
    /// The findings.
    pub findings: Vec<Finding>,
    /// A short summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// Test counts parsed from runner output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TestCounts {
    /// Passed tests.
    pub passed: u64,
    /// Failed tests.
    pub failed: u64,
    /// Skipped or ignored tests.
    pub skipped: u64,
}

/// The verdict of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateVerdict {
    /// The work passes.
    Pass,
    /// The work fails; the findings go back to the agent.
    Fail,
    /// The gate could not judge because of the environment (not the agent's fault).
    Blocked,
}

/// One gate's result for one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateReport {
    /// The gate (`review`, `tests`, `docs`, `boundary`, or a plugin's name).
    pub gate: String,
    /// Pass, fail or blocked.
    pub verdict: GateVerdict,
    /// Review score, when the gate scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Test counts, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<TestCounts>,
    /// Line coverage in percent, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    /// What it found.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// How long the gate took.
    #[serde(default)]
    pub duration_ms: u64,
}

impl GateReport {
    /// A passing report with no findings.
    pub fn pass(gate: impl Into<String>) -> Self {
        Self {
            gate: gate.into(),
            verdict: GateVerdict::Pass,
            score: None,
            counts: None,
            coverage: None,
            findings: Vec::new(),
            duration_ms: 0,
        }
    }

    /// A failing report with these findings.
    pub fn fail(gate: impl Into<String>, findings: Vec<Finding>) -> Self {
        Self { verdict: GateVerdict::Fail, findings, ..Self::pass(gate) }
    }

    /// True when the verdict is pass.
    pub fn passed(&self) -> bool {
        self.verdict == GateVerdict::Pass
    }
}

/// How the QA of one iteration ended (the playbook's signals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QaVerdict {
    /// Every gate passed: the task may merge.
    TaskApproved,
    /// A gate failed; its findings go back to the agent as feedback.
    TaskRejected,
    /// The environment kept a gate from judging (not the agent's fault); no iteration is burnt.
    QaBlocked,
}

/// What a gate looks at.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GateContext {
    /// The task.
    pub task_id: TaskId,
    /// Its phase.
    pub phase: Phase,
    /// A clean checkout of the task branch to judge.
    pub checkout: PathBuf,
    /// The commit the task branched from.
    pub base_commit: String,
    /// The task branch's head commit.
    pub head_commit: String,
    /// Repo-relative paths changed between base and head.
    pub changed_files: Vec<String>,
    /// The unified diff between base and head.
    pub diff: String,
    /// What the task may modify.
    pub modifies: Scope,
    /// Read-only common paths.
    pub common: Scope,
    /// Gate-specific configuration.
    pub config: serde_json::Value,
}

impl GateContext {
    /// A context for judging `checkout`; the commits, diff and scopes start empty.
    pub fn new(task_id: TaskId, phase: Phase, checkout: impl Into<PathBuf>) -> Self {
        Self {
            task_id,
            phase,
            checkout: checkout.into(),
            base_commit: String::new(),
            head_commit: String::new(),
            changed_files: Vec::new(),
            diff: String::new(),
            modifies: Scope::default(),
            common: Scope::default(),
            config: serde_json::Value::Object(Default::default()),
        }
    }
}

/// Why a gate could not produce a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The environment stopped the gate (command not found, unreadable report): `QA_BLOCKED`.
    #[error("gate `{gate}` is blocked: {message}")]
    Environment {
        /// Gate name.
        gate: String,
        /// Why.
        message: String,
    },
    /// Any other failure.
    #[error("gate `{gate}` failed to run: {message}")]
    Internal {
        /// Gate name.
        gate: String,
        /// Why.
        message: String,
    },
}

/// A check a task's work must pass before it is merged.
#[async_trait]
pub trait QualityGate: Send + Sync {
    /// The gate's name.
    fn name(&self) -> &str;

    /// Judges the work in `ctx.checkout`.
    async fn check(&self, ctx: &GateContext) -> Result<GateReport, GateError>;

    /// Whether the gate needs a fresh checkout of the committed work (it runs commands or reads
    /// files beyond the change). A gate that judges only the change — its paths, its diff —
    /// answers `false`; when every gate of a QA round does, the round judges the agent's own
    /// worktree after committing it, and saves a checkout of the whole repository per task.
    fn needs_fresh_checkout(&self) -> bool {
        true
    }
}
