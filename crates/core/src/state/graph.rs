use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Pattern, Phase, TaskId};

/// `DEPENDENCY_GRAPH.json`: the planned execution (what `fugue plan --json` prints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "DEPENDENCY_GRAPH.json")]
pub struct DependencyGraph {
    /// Format version (1).
    pub version: u32,
    /// The tasks, in plan order.
    pub tasks: Vec<GraphTask>,
    /// Every edge: `from` must be merged before `to` starts.
    pub edges: Vec<EdgeRecord>,
    /// Mode, strategy, groups, critical path, estimate.
    pub execution_strategy: ExecutionStrategy,
}

/// A task as the graph sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GraphTask {
    /// Id.
    pub id: TaskId,
    /// Phase.
    pub phase: Phase,
    /// Agent name.
    pub agent: String,
    /// Paths it may change.
    pub modifies: Vec<Pattern>,
    /// Paths it reads.
    pub reads: Vec<Pattern>,
    /// Declared dependencies.
    pub depends_on: Vec<TaskId>,
}

/// Why an edge exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeReason {
    /// `depends_on`.
    Declared,
    /// The phase order.
    Phase,
    /// Both tasks write overlapping paths.
    WriteWrite,
    /// One writes what the other reads.
    WriteRead,
    /// Both touch a serial resource class.
    Serial(String),
}

impl EdgeReason {
    /// The reason as written in the file.
    pub fn as_string(&self) -> String {
        match self {
            EdgeReason::Declared => "declared".into(),
            EdgeReason::Phase => "phase".into(),
            EdgeReason::WriteWrite => "write-write".into(),
            EdgeReason::WriteRead => "write-read".into(),
            EdgeReason::Serial(c) => format!("serial:{c}"),
        }
    }

    /// Parses a reason string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "declared" => EdgeReason::Declared,
            "phase" => EdgeReason::Phase,
            "write-write" => EdgeReason::WriteWrite,
            "write-read" => EdgeReason::WriteRead,
            s => EdgeReason::Serial(s.strip_prefix("serial:").filter(|c| !c.is_empty())?.to_owned()),
        })
    }
}

impl fmt::Display for EdgeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl Serialize for EdgeReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for EdgeReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EdgeReason::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown edge reason `{s}`")))
    }
}

impl JsonSchema for EdgeReason {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EdgeReason".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(declared|phase|write-write|write-read|serial:.+)$"
        })
    }
}

/// One edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EdgeRecord {
    /// Runs first.
    pub from: TaskId,
    /// Runs after.
    pub to: TaskId,
    /// Why.
    pub reason: EdgeReason,
}

/// PARALLEL or SEQUENTIAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExecutionMode {
    /// Parallel phases run tasks concurrently.
    Parallel,
    /// Everything runs one task at a time.
    Sequential,
}

/// The playbook's strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Strategy {
    /// Pure parallel: no edges inside a phase, no overlaps.
    A,
    /// Parallel with worktrees: overlapping writers, merge decides (`overlap: isolate`).
    B,
    /// Phased: several groups.
    C,
    /// Sequential: every group has one task.
    D,
}

/// How the plan will execute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionStrategy {
    /// PARALLEL or SEQUENTIAL.
    pub mode: ExecutionMode,
    /// A, B, C or D.
    pub strategy: Strategy,
    /// The agent limit.
    pub max_agents: u32,
    /// Groups in execution order.
    pub parallel_groups: Vec<ParallelGroup>,
    /// The longest chain of estimates.
    pub critical_path: Vec<TaskId>,
    /// Sequential and parallel time estimates.
    pub estimate: Estimate,
}

/// One parallel group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ParallelGroup {
    /// `<phase>-<k>`.
    pub group_id: String,
    /// The group's phase.
    pub phase: Phase,
    /// Its tasks.
    pub tasks: Vec<GroupTask>,
    /// True when tasks of the group write overlapping paths (`overlap: isolate`).
    pub can_conflict: bool,
}

/// A task inside a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupTask {
    /// Id.
    pub id: TaskId,
    /// Agent name.
    pub agent: String,
    /// Its `modifies`.
    pub scope: Vec<Pattern>,
}

/// Time estimates, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Estimate {
    /// Sum of all estimates.
    pub sequential_s: f64,
    /// Estimated makespan with `max_agents` agents.
    pub parallel_s: f64,
    /// `sequential_s / parallel_s`.
    pub speedup: f64,
}
