//! fugue's domain model, traits and contracts.
//!
//! This crate is what everything else in fugue — and every plugin — builds on:
//!
//! * the plan model ([`Plan`], [`TaskSpec`], [`Phase`], [`Scope`] and friends), which is also
//!   the source of the JSON schemas in `schemas/` ([`schema`]);
//! * the state-file shapes kept compatible with the playbooks ([`state`]);
//! * the traits [`Agent`], [`QualityGate`] and [`Planner`] with their context and report types;
//! * the pure phase state machine ([`PhaseMachine`]);
//! * the plugin ABI ([`plugin`]);
//! * the one git runner every crate uses ([`git`]), with the environment scrub list.
//!
//! With the `load` feature it also reads plan files (the `load` module): YAML or JSON, validated against
//! the schema and then semantically, with every problem reported as a diagnostic that names
//! file, line and column.

mod agent;
mod budget;
mod command;
mod confine;
mod diag;
mod duration;
mod executor;
mod gate;
pub mod git;
mod id;
mod machine;
mod phase;
mod plan;
mod planner;
pub mod plugin;
pub mod redact;
pub mod schema;
mod scope;
pub mod state;
mod status;
pub mod time;

#[cfg(feature = "load")]
pub mod load;

pub use agent::{Activity, ActivityObserver, Agent, AgentContext, AgentError, AgentOutcome, AgentReport, FailureKind, Usage};
pub use budget::{Budget, OnExhausted, Price, Prices, RunBudget, Spend, priced};
pub use command::{CommandLine, CommandLineError};
pub use confine::{ConfineMode, ConfinePolicy, Confinement, expand_home};
pub use diag::{IssueLevel, PlanIssue, pointer_join, pointer_token};
pub use duration::{DURATION_PATTERN, DurationError, HumanDuration};
pub use executor::{ExecError, ExecObserver, Executor, OutputStream, ProcessOutcome, ProcessSpec};
pub use gate::{Finding, GateContext, GateError, GateReport, GateVerdict, QaVerdict, QualityGate, ReviewReport, TestCounts};
pub use id::{TASK_ID_PATTERN, TaskId, TaskIdError};
pub use machine::{MachineEvent, PhaseMachine, TransitionError};
pub use phase::{Phase, PhasePolicy};
pub use plan::{
    AgentSpec, Boundaries, CommandAgentSpec, CoverageFormat, CoverageSpec, DEFAULT_ESTIMATE, DocsGateSpec, DriverAgentSpec, DriverKind,
    ExecutorSpec, FeedbackMode, GatesSpec, Isolation, OverlapPolicy, PLAN_VERSION, Parallelization, Permissions, Plan, PluginAgentSpec,
    PoolSpec, PromptInput, ReviewGateSpec, SeedMode, Severity, SlurmSpec, SparseMode, TaskSpec, TestsGateSpec, Toggle, merge_config,
};
pub use planner::{ExecutionPlan, PlanError, Planner};
pub use scope::{Pattern, PatternError, Scope};
pub use status::TaskStatus;

pub use async_trait::async_trait;
