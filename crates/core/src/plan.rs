//! The plan file: what the user asks fugue to run.
//!
//! These types are the plan's serde model and, through schemars, the source of
//! `schemas/plan.schema.json`. Every struct denies unknown fields so that a typo is an error
//! with a location rather than a silently ignored key. Defaults follow the playbooks'
//! `.claude/auto-context.yaml` (enabled, `min_tasks` 3, `max_agents` 5, `retry_on_failure` 3).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Budget, CommandLine, HumanDuration, Pattern, Phase, Prices, RunBudget, Scope, TaskId};

/// The version of the plan format this build reads.
pub const PLAN_VERSION: u32 = 1;

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "fugue plan", description = "A fugue plan: tasks with their scopes, dependencies, phases and agents.")]
pub struct Plan {
    /// The plan format version; must be 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// The branch the run starts from and merges into. Default: the branch checked out when the run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Parallel execution settings (the same keys as `.claude/auto-context.yaml`).
    #[serde(default)]
    pub parallelization: Parallelization,
    /// The worktree pool.
    #[serde(default)]
    pub pool: PoolSpec,
    /// Paths with special rules: read-only common code, serial resource classes.
    #[serde(default)]
    pub boundaries: Boundaries,
    /// The agents tasks can name, by name.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentSpec>,
    /// The quality gates every task passes before it is merged.
    #[serde(default)]
    pub gates: GatesSpec,
    /// Where tasks run by default: an isolated worktree, or the repository itself.
    #[serde(default)]
    pub isolation: Isolation,
    /// How agent processes are started.
    #[serde(default)]
    pub executor: ExecutorSpec,
    /// What the whole run may spend, and the default budget of each task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RunBudget>,
    /// Prices per model (US dollars per million tokens), for CLIs that report tokens but no cost.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: Prices,
    /// How agents are confined (Landlock): `strict` or `off`; agents may override it. Default:
    /// strict where the kernel supports it, else off with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confine: Option<crate::ConfineMode>,
    /// Directories confined agents may also write (build caches such as `~/.cargo`), absolute
    /// or under `~/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<String>,
    /// The tasks.
    #[schemars(length(min = 1))]
    pub tasks: Vec<TaskSpec>,
}

impl Plan {
    /// Looks a task up by id.
    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.id.as_str() == id)
    }

    /// The effective isolation of a task.
    pub fn isolation_of(&self, task: &TaskSpec) -> Isolation {
        task.isolation.unwrap_or(self.isolation)
    }

    /// A task's budget: its own limits, else its agent's, else the run's `per_task` (each
    /// limit separately); `None` when no limit applies.
    pub fn budget_of(&self, task: &TaskSpec) -> Option<Budget> {
        let own = task.budget.unwrap_or_default();
        let agent = self.agents.get(&task.agent).and_then(AgentSpec::budget).unwrap_or_default();
        let run = self.budget.and_then(|b| b.per_task).unwrap_or_default();
        Some(own.or(agent).or(run)).filter(|b| !b.is_empty())
    }
}

/// How overlapping writers inside one phase are handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverlapPolicy {
    /// Overlapping writers get a conflict edge and never run at once.
    #[default]
    Serialize,
    /// Overlapping writers run at once in separate worktrees; the merge decides (strategy B).
    Isolate,
}

/// Parallel execution settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Parallelization {
    /// Master switch: when false every phase runs sequentially.
    pub enabled: bool,
    /// Fewer independent tasks than this in the widest group: SEQUENTIAL mode.
    #[schemars(range(min = 1))]
    pub min_tasks: u32,
    /// The most agents running at once.
    #[schemars(range(min = 1, max = 1024))]
    pub max_agents: u32,
    /// Attempts after a failure before a task is marked failed.
    #[schemars(range(max = 100))]
    pub retry_on_failure: u32,
    /// Remove worktrees after a successful merge.
    pub auto_cleanup: bool,
    /// How overlapping writers in one phase are handled.
    pub overlap: OverlapPolicy,
}

impl Default for Parallelization {
    fn default() -> Self {
        Self { enabled: true, min_tasks: 3, max_agents: 5, retry_on_failure: 3, auto_cleanup: true, overlap: OverlapPolicy::Serialize }
    }
}

/// Sparse checkout of pool worktrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SparseMode {
    /// Check out only the task's modifies, reads and the common paths.
    Scope,
}

/// The worktree pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSpec {
    /// Number of slots (`wt-1` … `wt-N`).
    #[schemars(range(min = 1, max = 256))]
    pub size: u32,
    /// Where the slots live; relative paths are relative to the repository. May be outside it.
    pub dir: String,
    /// Ignored build caches kept when a slot is recycled.
    pub keep_ignored: Vec<String>,
    /// Files copied from the repository into each worktree (such as `.env`).
    pub copy: Vec<String>,
    /// Commands run in each worktree after it is set up.
    pub setup: Vec<CommandLine>,
    /// Sparse checkout mode, for very large repositories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sparse: Option<SparseMode>,
    /// How a new slot (agent worktree or QA checkout) gets each build cache of `keep_ignored`
    /// from the user's checkout, by cache path (`target/: copy`). A cache not named here
    /// starts empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub seed: BTreeMap<String, SeedMode>,
}

/// How a new slot is seeded with a build cache from the user's checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeedMode {
    /// A copy that keeps modification times: reflinks where the file system has them
    /// (`cp --reflink=auto`), else bytes. Safe for every cache, Rust `target/` included.
    Copy,
    /// Reflinks only; nothing where the file system has none (a cache too big to copy).
    Reflink,
    /// Hard links: only for caches whose files are replaced, never rewritten in place (never
    /// Rust `target/`). An agent writing through a link changes the user's copy; QA checkouts
    /// copy instead.
    Hardlink,
    /// Not seeded (a cache that is not relocatable, such as a Python `.venv`).
    None,
}

impl Default for PoolSpec {
    fn default() -> Self {
        Self {
            size: 8,
            dir: ".claude/worktrees".to_owned(),
            keep_ignored: vec!["target/".to_owned(), "node_modules/".to_owned()],
            copy: Vec::new(),
            setup: Vec::new(),
            sparse: None,
            seed: BTreeMap::new(),
        }
    }
}

/// Paths with special rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Boundaries {
    /// Read-only while any parallel phase runs.
    pub common: Scope,
    /// Serial resource classes: two tasks touching one class never run at once.
    pub serial: BTreeMap<String, Scope>,
}

impl Boundaries {
    /// The serial classes whose paths overlap `scope`.
    pub fn serial_classes_of<'a>(&'a self, scope: &'a Scope) -> impl Iterator<Item = &'a str> + 'a {
        self.serial.iter().filter(move |(_, s)| s.overlaps(scope)).map(|(name, _)| name.as_str())
    }
}

/// An agent: a coding-agent CLI fugue drives, an argv template run as a process, or a
/// dynamic plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AgentSpec {
    /// A process started from an argv template.
    Command(CommandAgentSpec),
    /// A dynamic plugin (a `cdylib`).
    Plugin(PluginAgentSpec),
    /// A coding-agent CLI run headlessly by its driver (Claude Code, Codex, …).
    Driver(DriverAgentSpec),
}

impl AgentSpec {
    /// The agent's timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            AgentSpec::Command(c) => c.timeout.map(|t| t.0),
            AgentSpec::Plugin(p) => p.timeout.map(|t| t.0),
            AgentSpec::Driver(d) => d.timeout.map(|t| t.0),
        }
    }

    /// The budget of each task the agent runs, if it has one.
    pub fn budget(&self) -> Option<Budget> {
        match self {
            AgentSpec::Driver(d) => d.budget,
            AgentSpec::Command(_) | AgentSpec::Plugin(_) => None,
        }
    }

    /// The model a driven CLI is told to use (what the plan's `prices` are looked up by).
    pub fn model(&self) -> Option<&str> {
        match self {
            AgentSpec::Driver(d) => d.model.as_deref(),
            AgentSpec::Command(_) | AgentSpec::Plugin(_) => None,
        }
    }

    /// Whether the agent reports what it spends (only driven CLIs do).
    pub fn reports_usage(&self) -> bool {
        matches!(self, AgentSpec::Driver(_))
    }
}

/// The coding-agent CLIs fugue has a driver for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// Claude Code (`claude -p --output-format stream-json`).
    Claude,
    /// OpenAI Codex CLI (`codex exec --json`).
    Codex,
    /// Google Gemini CLI (`gemini -p --output-format stream-json`).
    Gemini,
    /// Aider (`aider --message`).
    Aider,
    /// opencode (`opencode run --format json`).
    Opencode,
}

impl DriverKind {
    /// Every driver, in the order the docs list them.
    pub const ALL: [DriverKind; 5] = [DriverKind::Claude, DriverKind::Codex, DriverKind::Gemini, DriverKind::Aider, DriverKind::Opencode];

    /// The name used in plans (`claude`, …).
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Claude => "claude",
            DriverKind::Codex => "codex",
            DriverKind::Gemini => "gemini",
            DriverKind::Aider => "aider",
            DriverKind::Opencode => "opencode",
        }
    }

    /// The CLI's program name, run from `PATH` unless the agent sets `program`.
    pub fn program(self) -> &'static str {
        self.name()
    }
}

/// What a driven agent is allowed to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Permissions {
    /// The least that works: edit files in its worktree, and run the task's own `verify`
    /// commands (plus what `allowed_tools` adds).
    #[default]
    Edit,
    /// Read files only (reviewers get this whatever the plan says).
    ReadOnly,
    /// The CLI's bypass mode: every tool, every command, no sandbox. Only when asked for.
    Bypass,
}

/// How QA findings reach a driven agent on the next iteration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackMode {
    /// Continue the previous iteration's session with the findings as the next prompt where
    /// the CLI can (`claude --resume`, `codex exec resume`); else a fresh run.
    #[default]
    Continue,
    /// Always a fresh run whose prompt is the task's prompt followed by the findings.
    Fresh,
}

/// A coding-agent CLI run by its driver: fugue builds the command line (headless mode,
/// machine-readable output, permissions, model, session continuation), reads what the CLI
/// streams, and fails an iteration the CLI refused or cut short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriverAgentSpec {
    /// Which CLI.
    pub driver: DriverKind,
    /// The program to run. Default: the CLI's usual name (`claude`, `codex`, …) from `PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// The model (`--model`, or `-c model=` for Codex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The model provider, for CLIs that name one (Codex's `model_provider`, opencode's
    /// provider id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// What the agent may do. Default `edit`: edits in its worktree and the task's `verify`
    /// commands.
    #[serde(default)]
    pub permissions: Permissions,
    /// More tools or commands to allow, in the CLI's own rule syntax (Claude Code:
    /// `Bash(npm run lint)`, `WebFetch`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tools: Vec<String>,
    /// Tools or commands to refuse, in the CLI's own rule syntax.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disallowed_tools: Vec<String>,
    /// The most model turns per run (CLIs that have the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_turns: Option<u32>,
    /// Configuration overrides passed to the CLI (Codex: `-c key=value`, values as TOML).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, String>,
    /// More arguments, put before the prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables (API keys, base URLs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Kill the agent after this long (SIGTERM to its process group, then SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// How QA findings reach the next iteration.
    #[serde(default)]
    pub feedback: FeedbackMode,
    /// Give every worktree slot its own CLI config and session directory (seeded with the
    /// user's login), so that concurrent sessions do not corrupt shared state. Default true.
    #[serde(default = "default_true")]
    pub isolate_sessions: bool,
    /// What each task this agent runs may spend (over all its attempts and iterations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Overrides the plan's `confine` for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confine: Option<crate::ConfineMode>,
}

fn default_true() -> bool {
    true
}

impl DriverAgentSpec {
    /// A driver agent with every setting at its default.
    pub fn new(driver: DriverKind) -> Self {
        Self {
            driver,
            program: None,
            model: None,
            provider: None,
            permissions: Permissions::default(),
            allowed_tools: Vec::new(),
            disallowed_tools: Vec::new(),
            max_turns: None,
            overrides: BTreeMap::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            timeout: None,
            feedback: FeedbackMode::default(),
            isolate_sessions: true,
            budget: None,
            confine: None,
        }
    }
}

/// How the prompt reaches a command agent besides `{prompt}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromptInput {
    /// Only through the argv placeholders and `FUGUE_PROMPT_FILE`.
    #[default]
    Args,
    /// Also written to the process's standard input.
    Stdin,
}

/// A command agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandAgentSpec {
    /// The argv template: `{prompt}`, `{task_id}`, `{worktree}`, `{feedback}`, `{prompt_file}`
    /// are replaced; no shell is involved.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Kill the agent after this long (SIGTERM to its process group, then SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// How the prompt is given besides the placeholders.
    #[serde(default)]
    pub prompt_via: PromptInput,
    /// Overrides the plan's `confine` for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confine: Option<crate::ConfineMode>,
}

/// A plugin agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginAgentSpec {
    /// Path of the plugin library (relative to the plan's directory), or a bare name found in
    /// `FUGUE_PLUGIN_PATH`.
    pub plugin: PathBuf,
    /// Configuration, validated against the plugin's `config_schema`; tasks may override keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = "object"))]
    pub config: Option<serde_json::Value>,
    /// Give up on a call after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

/// Review finding severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A style nit.
    Info,
    /// Worth fixing.
    Low,
    /// Should be fixed.
    Medium,
    /// Blocks a merge by default.
    High,
    /// Blocks a merge by default.
    Critical,
}

/// The review gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewGateSpec {
    /// The reviewer: an agent name from `agents`. Default: the built-in heuristic reviewer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The lowest passing score (0-10).
    #[schemars(range(min = 0, max = 10))]
    pub min_score: u8,
    /// Finding severities that fail the gate whatever the score.
    pub block_on: Vec<Severity>,
}

impl Default for ReviewGateSpec {
    fn default() -> Self {
        Self { agent: None, min_score: 7, block_on: vec![Severity::Critical, Severity::High] }
    }
}

/// Coverage report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CoverageFormat {
    /// `lcov.info`.
    Lcov,
    /// Cobertura XML.
    Cobertura,
    /// `cargo llvm-cov --json --summary-only`.
    LlvmCovJson,
}

/// Coverage requirement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CoverageSpec {
    /// The report file the test commands write, relative to the checkout.
    pub report: String,
    /// Its format.
    pub format: CoverageFormat,
    /// The lowest passing line coverage, in percent.
    #[serde(default = "default_min_coverage")]
    #[schemars(range(min = 0, max = 100))]
    pub min: f64,
}

fn default_min_coverage() -> f64 {
    85.0
}

/// The tests gate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TestsGateSpec {
    /// Commands that must all exit 0 (besides each task's `verify`).
    pub commands: Vec<CommandLine>,
    /// Coverage requirement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageSpec>,
}

/// The docs gate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DocsGateSpec {
    /// Commands that must all exit 0 (e.g. `cargo doc --no-deps`).
    pub commands: Vec<CommandLine>,
}

/// A gate that can be switched off with `false`, on with its defaults with `true`, or configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toggle<T> {
    /// Off.
    Off,
    /// On with this configuration.
    On(T),
}

impl<T: Default> Default for Toggle<T> {
    fn default() -> Self {
        Toggle::On(T::default())
    }
}

impl<T> Toggle<T> {
    /// The configuration when on.
    pub fn as_on(&self) -> Option<&T> {
        match self {
            Toggle::Off => None,
            Toggle::On(t) => Some(t),
        }
    }
}

impl<T: Serialize> Serialize for Toggle<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Toggle::Off => s.serialize_bool(false),
            Toggle::On(t) => t.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::Bool(false) => Ok(Toggle::Off),
            serde_json::Value::Bool(true) => Ok(Toggle::On(T::default())),
            other => T::deserialize(other).map(Toggle::On).map_err(serde::de::Error::custom),
        }
    }
}

impl<T: JsonSchema> JsonSchema for Toggle<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Toggle_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let inner = generator.subschema_for::<T>();
        schemars::json_schema!({
            "description": "`false` turns this off, `true` keeps the defaults, an object configures it.",
            "anyOf": [ { "type": "boolean" }, inner ]
        })
    }
}

/// The quality gates. The boundary gate is always on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GatesSpec {
    /// Code review; `false` disables it. Default: the heuristic-review plugin.
    pub review: Toggle<ReviewGateSpec>,
    /// Tests and coverage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestsGateSpec>,
    /// Documentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docs: Option<DocsGateSpec>,
    /// QA fix iterations before a task fails.
    #[schemars(range(min = 1, max = 20))]
    pub max_iterations: u32,
}

impl Default for GatesSpec {
    fn default() -> Self {
        Self { review: Toggle::default(), tests: None, docs: None, max_iterations: 3 }
    }
}

/// Where a task runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A worktree from the pool, merged afterwards.
    #[default]
    Worktree,
    /// The repository itself: no pool, no merge.
    None,
}

/// Slurm settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSpec {
    /// The partition to submit to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// The account to charge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `slurmrestd` address (a unix socket path or an http URL); without it the CLI is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest: Option<String>,
    /// Extra `sbatch` arguments.
    pub extra_args: Vec<String>,
}

/// How agent processes are started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ExecutorSpec {
    /// Local child processes.
    #[default]
    Local,
    /// Jobs on a Slurm cluster.
    Slurm(SlurmSpec),
}

/// One task of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Unique id; the task's branch is `auto/<id>`.
    pub id: TaskId,
    /// A human-readable name. Default: the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The workflow phase.
    #[serde(default)]
    pub phase: Phase,
    /// The agent (a key of `agents`).
    pub agent: String,
    /// What the agent is asked to do.
    #[serde(default)]
    pub prompt: String,
    /// Paths the task may change.
    #[serde(default)]
    pub modifies: Scope,
    /// Paths the task reads and relies on.
    #[serde(default)]
    pub reads: Scope,
    /// Tasks that must be merged before this one starts.
    #[serde(default)]
    pub depends_on: Vec<TaskId>,
    /// Commands that verify the task's work (run by the tests gate).
    #[serde(default)]
    pub verify: Vec<CommandLine>,
    /// Expected duration, for the plan's estimate. Default 1m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<HumanDuration>,
    /// For a plugin agent: merged over the agent's config, task keys win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = "object"))]
    pub config: Option<serde_json::Value>,
    /// Overrides the plan's `isolation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// The task may finish without changing a file (an analysis that only reports). Without
    /// it, an iteration that changed nothing is rejected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_empty: bool,
    /// What this task may spend over all its attempts and iterations (each limit overrides
    /// its agent's and the run's `per_task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// The default task estimate.
pub const DEFAULT_ESTIMATE: Duration = Duration::from_secs(60);

impl TaskSpec {
    /// The display name.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.id.as_str())
    }

    /// The estimate, or the default of one minute.
    pub fn estimate(&self) -> Duration {
        self.estimate.map_or(DEFAULT_ESTIMATE, |d| d.0)
    }

    /// Every pattern the task touches, writes first.
    pub fn all_patterns(&self) -> impl Iterator<Item = &Pattern> {
        self.modifies.patterns().iter().chain(self.reads.patterns())
    }
}

/// Merges a plugin agent's config with a task's: objects merge key by key (recursively),
/// anything else in the task replaces the agent's value.
pub fn merge_config(base: Option<&serde_json::Value>, over: Option<&serde_json::Value>) -> serde_json::Value {
    fn merge(a: &mut serde_json::Value, b: &serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(k) {
                        Some(slot) => merge(slot, v),
                        None => {
                            a.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (a, b) => *a = b.clone(),
        }
    }
    let mut out = base.cloned().unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    if let Some(over) = over {
        merge(&mut out, over);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_the_playbook() {
        let p = Parallelization::default();
        assert!(p.enabled && p.auto_cleanup);
        assert_eq!((p.min_tasks, p.max_agents, p.retry_on_failure), (3, 5, 3));
        assert_eq!(GatesSpec::default().max_iterations, 3);
        assert_eq!(ReviewGateSpec::default().min_score, 7);
    }

    #[test]
    fn review_toggle() {
        let g: GatesSpec = serde_json::from_value(json!({"review": false})).expect("off");
        assert_eq!(g.review, Toggle::Off);
        let g: GatesSpec = serde_json::from_value(json!({"review": {"min_score": 8}})).expect("on");
        assert_eq!(g.review.as_on().map(|r| r.min_score), Some(8));
        assert_eq!(serde_json::to_value(Toggle::<ReviewGateSpec>::Off).ok(), Some(json!(false)));
    }

    #[test]
    fn config_merge_task_wins() {
        let m = merge_config(Some(&json!({"a": 1, "n": {"x": 1, "y": 2}})), Some(&json!({"n": {"y": 3}, "b": true})));
        assert_eq!(m, json!({"a": 1, "b": true, "n": {"x": 1, "y": 3}}));
    }

    #[test]
    fn executor_is_tagged() {
        let e: ExecutorSpec = serde_json::from_value(json!({"kind": "slurm", "partition": "debug"})).expect("slurm");
        assert!(matches!(e, ExecutorSpec::Slurm(SlurmSpec { partition: Some(_), .. })));
        let e: ExecutorSpec = serde_json::from_value(json!({"kind": "local"})).expect("local");
        assert_eq!(e, ExecutorSpec::Local);
    }
}
