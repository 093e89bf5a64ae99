//! From a plan's `agents` to running agents, and the plan checks that need a plugin's manifest.
//!
//! [`check_plan_plugins`] is what `fugue plan` calls: for every plugin agent it resolves and
//! loads the library (loading runs no task code) or, for a bare name no library matches, takes
//! the built-in plugin of that name (see `register_builtin`); it checks that the plugin serves
//! agents, and validates
//! the agent's `config` merged with each task's `config` against the plugin's `config_schema`.
//! A rejection is reported at the JSON pointer of the value *in the plan*: inside the task's
//! `config` when the task set that value, otherwise inside the agent's. An agent no task uses
//! (a reviewer, say) has its own config validated alone.
//!
//! Turning a spec into an agent, and checking a plan, both register the agent's secrets with
//! the process-wide redactor (`fugue_core::redact`): `env` entries of command agents whose
//! names look secret, and string values under secret-looking keys of plugin agents' `config`.
//! Both run before any task does, so the values are hidden from the first log line on.

use std::path::Path;
use std::sync::Arc;

use fugue_core::plugin::PluginKind;
use fugue_core::redact::{self, looks_secret};
use fugue_core::{Agent, AgentSpec, ConfineMode, ConfinePolicy, DriverKind, Executor, Plan, PlanIssue, merge_config, pointer_join};

use crate::plugin::{PluginError, PluginHandle, open_plugin};
use crate::{CommandAgent, DriverAgent, LocalExecutor, driver_refuses, template};

/// Builds the agent `name` of a plan from its spec; plugin paths are resolved against
/// `plan_dir` (or found in `FUGUE_PLUGIN_PATH`) and loaded, and a bare name no library
/// matches is the registered built-in plugin of that name ([`open_plugin`]). Command agents run
/// as local processes ([`LocalExecutor`]).
pub fn agent_from_spec(name: &str, spec: &AgentSpec, plan_dir: &Path) -> Result<Arc<dyn Agent>, PluginError> {
    agent_from_spec_with(name, spec, plan_dir, Arc::new(LocalExecutor))
}

/// [`agent_from_spec`] with command agents' processes started by `executor` (a plan's
/// `executor: slurm`, say). Plugin agents run in this process whatever the executor.
pub fn agent_from_spec_with(
    name: &str,
    spec: &AgentSpec,
    plan_dir: &Path,
    executor: Arc<dyn Executor>,
) -> Result<Arc<dyn Agent>, PluginError> {
    let own = match spec {
        AgentSpec::Command(c) => c.confine,
        AgentSpec::Driver(d) => d.confine,
        AgentSpec::Plugin(_) => None,
    };
    agent_from_spec_confined(name, spec, plan_dir, executor, ConfinePolicy::new(own))
}

/// [`agent_from_spec_with`] with the agent's processes confined as `policy` says (the plan's
/// [`Plan::confine_of`]: its `confine` and `caches`). Plugin agents run in this process and
/// are not confined.
pub fn agent_from_spec_confined(
    name: &str,
    spec: &AgentSpec,
    plan_dir: &Path,
    executor: Arc<dyn Executor>,
    policy: ConfinePolicy,
) -> Result<Arc<dyn Agent>, PluginError> {
    register_agent_secrets(spec);
    match spec {
        AgentSpec::Command(command) => {
            Ok(Arc::new(CommandAgent::new(name, command.clone()).with_executor(executor).with_confinement(policy)))
        }
        AgentSpec::Plugin(p) => open_plugin(&p.plugin, plan_dir)?.agent(name, p.timeout.map(|t| t.0)),
        AgentSpec::Driver(d) => Ok(Arc::new(DriverAgent::new(name, d.clone()).with_executor(executor).with_confinement(policy))),
    }
}

/// The plan's confinement problems on this machine: an explicit `confine: strict` the kernel
/// cannot enforce is an error (the run would refuse every agent); the default on such a kernel
/// is a warning that names the setting, said once for the plan.
fn confine_issues(plan: &Plan, plan_dir: &Path, support: &crate::confine::Support) -> Vec<PlanIssue> {
    let mut issues = Vec::new();
    // A cache that holds the repository would open all of it (the state dir, the user's
    // checkout, every slot) to confined agents.
    let dir = if plan_dir.as_os_str().is_empty() { Path::new(".") } else { plan_dir };
    let repo = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    for (i, cache) in plan.caches.iter().enumerate() {
        let path = fugue_core::expand_home(cache);
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        if path.is_absolute() && repo.starts_with(&path) {
            issues.push(
                PlanIssue::error(
                    "confine/cache",
                    format!("/caches/{i}"),
                    format!("cache `{cache}` holds the repository {}: confined agents could write all of it", repo.display()),
                )
                .with_help("name the build cache's own directory, outside the repository, e.g. `~/.cargo`"),
            );
        }
    }
    if support.enforced() {
        return issues;
    }
    let used =
        |name: &str| plan.tasks.iter().any(|t| t.agent == name) || plan.gates.review.as_on().and_then(|r| r.agent.as_deref()) == Some(name);
    let mut defaulted = false;
    for (name, spec) in &plan.agents {
        if matches!(spec, AgentSpec::Plugin(_)) || !used(name) {
            continue;
        }
        let own = match spec {
            AgentSpec::Command(c) => c.confine,
            AgentSpec::Driver(d) => d.confine,
            AgentSpec::Plugin(_) => None,
        };
        match own.or(plan.confine) {
            Some(ConfineMode::Strict) => {
                let pointer = if own.is_some() { pointer_join(&pointer_join("/agents", name), "confine") } else { "/confine".to_owned() };
                issues.push(
                    PlanIssue::error(
                        "confine/unsupported",
                        pointer,
                        format!("agent `{name}` must run confined, and {}", support.describe()),
                    )
                    .with_help("run fugue on Linux 6.2 or later with Landlock enabled, or set `confine: off` to run agents unconfined"),
                );
            }
            None => defaulted = true,
            Some(ConfineMode::Off) => {}
        }
    }
    if defaulted {
        issues.push(PlanIssue::warning("confine/off", "", format!("agents will run unconfined: {}", support.describe())).with_help(
            "agents are confined to their worktrees where the kernel has Landlock (Linux 6.2+); set `confine: off` to say you know",
        ));
    }
    issues
}

/// Every agent problem of `plan` that the plan's schema cannot see: the plugin problems of
/// [`check_plan_plugins`], plus a `command/placeholder` warning for each `{word}` in a command
/// template that is not a known placeholder (a typo like `{promt}` would reach the agent
/// verbatim).
pub fn check_plan_agents(plan: &Plan, plan_dir: &Path) -> Vec<PlanIssue> {
    let mut issues = Vec::new();
    for (name, spec) in &plan.agents {
        register_agent_secrets(spec);
        if let AgentSpec::Driver(d) = spec
            && let Some(why) = driver_refuses(d)
        {
            issues.push(
                PlanIssue::error("driver/refused", pointer_join(&pointer_join("/agents", name), "permissions"), why)
                    .with_help("the CLI would refuse to start this way, so the run would do nothing"),
            );
        }
        let used = plan.tasks.iter().any(|t| t.agent == *name)
            || plan.gates.review.as_on().and_then(|r| r.agent.as_deref()) == Some(name.as_str());
        if let AgentSpec::Driver(d) = spec {
            for (key, set, supported) in [
                ("max_turns", d.max_turns.is_some(), matches!(d.driver, DriverKind::Claude)),
                ("overrides", !d.overrides.is_empty(), matches!(d.driver, DriverKind::Codex)),
                ("provider", d.provider.is_some(), matches!(d.driver, DriverKind::Codex | DriverKind::Opencode)),
                ("disallowed_tools", !d.disallowed_tools.is_empty(), matches!(d.driver, DriverKind::Claude)),
                ("allowed_tools", !d.allowed_tools.is_empty(), !matches!(d.driver, DriverKind::Aider)),
            ] {
                if set && !supported {
                    issues.push(
                        PlanIssue::warning(
                            "driver/setting",
                            pointer_join(&pointer_join("/agents", name), key),
                            format!("the {} driver has no `{key}`: it is ignored", d.driver.name()),
                        )
                        .with_help("see the README's driver table for what each CLI supports; pass CLI flags with `args`"),
                    );
                }
            }
        }
        if let AgentSpec::Driver(d) = spec
            && used
        {
            let program = d.program.clone().unwrap_or_else(|| d.driver.program().to_owned());
            if !program.contains('/') && !on_path(&program) {
                issues.push(
                    PlanIssue::warning(
                        "driver/program",
                        pointer_join(&pointer_join("/agents", name), "driver"),
                        format!("`{program}` ({}) is not on PATH here: the agent's tasks would fail to start", d.driver.name()),
                    )
                    .with_help(format!("install it (see the README's driver table), or set `agents.{name}.program` to its path")),
                );
            }
        }
        let AgentSpec::Command(c) = spec else { continue };
        for (i, word) in c.command.iter().enumerate() {
            for unknown in template::unknown_placeholders(word) {
                issues.push(
                    PlanIssue::warning(
                        "command/placeholder",
                        format!("{}/{i}", pointer_join(&pointer_join("/agents", name), "command")),
                        format!("`{{{unknown}}}` is not a placeholder and is passed to the agent as written"),
                    )
                    .with_help(format!("placeholders are {}", template::PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", "))),
                );
            }
        }
    }
    issues.extend(check_plan_budgets(plan));
    issues.extend(confine_issues(plan, plan_dir, crate::confine::support()));
    issues.extend(check_plan_plugins(plan, plan_dir));
    issues
}

/// Budgets that cannot hold as written: a budget on a task whose agent reports no spend, a
/// dollar budget over a CLI that reports no cost with no price for its model, and a run that
/// lets agents without a budget of their own `finish` after its budget is spent.
fn check_plan_budgets(plan: &Plan) -> Vec<PlanIssue> {
    let mut issues = Vec::new();
    let run_usd = plan.budget.is_some_and(|b| b.usd.is_some());
    for (i, task) in plan.tasks.iter().enumerate() {
        let Some(spec) = plan.agents.get(&task.agent) else { continue };
        let budget = plan.budget_of(task);
        let at = format!("/tasks/{i}");
        if (budget.is_some() || plan.budget.is_some()) && !spec.reports_usage() {
            issues.push(
                PlanIssue::warning(
                    "budget/unmetered",
                    pointer_join(&at, "agent"),
                    format!("agent `{}` reports no tokens or cost: the budget cannot see what this task spends", task.agent),
                )
                .with_help("budgets are enforced from what driven CLIs report (`driver: claude|codex|gemini|aider|opencode`)"),
            );
            continue;
        }
        let AgentSpec::Driver(d) = spec else { continue };
        let wants_usd = run_usd || budget.is_some_and(|b| b.usd.is_some());
        let cli_costs = matches!(d.driver, DriverKind::Claude | DriverKind::Opencode | DriverKind::Aider);
        let priced = d.model.as_ref().is_some_and(|m| plan.prices.contains_key(m));
        if wants_usd && !cli_costs && !priced {
            let help = match &d.model {
                Some(m) => format!("add `prices: {{ {m}: {{ input: …, output: …, cache_read: … }} }}` (US dollars per million tokens)"),
                None => format!("set `agents.{}.model` and give it a price under `prices`, or use a `tokens` budget", task.agent),
            };
            issues.push(
                PlanIssue::warning(
                    "budget/no-price",
                    pointer_join(&pointer_join("/agents", &task.agent), "model"),
                    format!("the {} CLI reports tokens but no cost, and no price is known for its model: its dollars count as unknown, not against the budget", d.driver.name()),
                )
                .with_help(help),
            );
        }
    }
    if let Some(b) = plan.budget
        && b.on_exhausted == fugue_core::OnExhausted::Finish
        && plan.tasks.iter().any(|t| plan.budget_of(t).is_none())
    {
        issues.push(
            PlanIssue::warning(
                "budget/unbounded-finish",
                "/budget/on_exhausted".to_owned(),
                "with `finish`, agents of tasks without a budget run on after the run's budget is spent, with no bound on what they spend",
            )
            .with_help("set `budget.per_task` (or budgets on the tasks or agents), or use `on_exhausted: stop`"),
        );
    }
    // One warning per agent is enough.
    let mut seen = std::collections::HashSet::new();
    issues.retain(|i| seen.insert((i.code.clone(), i.pointer.clone())));
    issues
}

/// Registers the secrets an agent spec holds with the process-wide redactor: a command
/// agent's `env` entries whose names look secret, a plugin agent's string `config` values
/// under secret-looking keys (at any depth).
fn register_agent_secrets(spec: &AgentSpec) {
    fn walk(key: Option<&str>, value: &serde_json::Value) {
        match value {
            serde_json::Value::String(s) if key.is_some_and(looks_secret) => {
                redact::register(key.unwrap_or_default(), s);
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(key, v)),
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| walk(Some(k), v)),
            _ => {}
        }
    }
    match spec {
        AgentSpec::Command(c) => {
            redact::register_vars(&c.env);
        }
        AgentSpec::Driver(d) => {
            redact::register_vars(&d.env);
        }
        AgentSpec::Plugin(p) => {
            if let Some(config) = &p.config {
                walk(None, config);
            }
        }
    }
}

/// Every plugin problem of `plan` (whose file is in `plan_dir`), located by JSON pointer:
/// `plugin/load` (not found, not loadable, wrong ABI, bad manifest), `plugin/kind` (not an
/// agent plugin) and `plugin/config` (a config the plugin's schema rejects).
pub fn check_plan_plugins(plan: &Plan, plan_dir: &Path) -> Vec<PlanIssue> {
    let mut issues = Vec::new();
    for (name, spec) in &plan.agents {
        let AgentSpec::Plugin(p) = spec else { continue };
        let agent_ptr = pointer_join("/agents", name);
        let plugin: PluginHandle = match open_plugin(&p.plugin, plan_dir) {
            Ok(plugin) => plugin,
            Err(e) => {
                let help = match e {
                    PluginError::AbiMismatch { .. } => "rebuild the plugin against this fugue's fugue-core",
                    PluginError::NotFound { .. } | PluginError::Missing { .. } => {
                        "build the plugin, fix the path, or add its directory to FUGUE_PLUGIN_PATH"
                    }
                    PluginError::Untrusted { .. } => "make the library and its directory writable by their owner only (`chmod go-w`)",
                    _ => "fix or rebuild the plugin",
                };
                issues.push(PlanIssue::error("plugin/load", pointer_join(&agent_ptr, "plugin"), e.to_string()).with_help(help));
                continue;
            }
        };
        if let Err(e) = plugin.require(PluginKind::Agent) {
            issues.push(
                PlanIssue::error("plugin/kind", pointer_join(&agent_ptr, "plugin"), e.to_string())
                    .with_help("name an agent plugin here; gate plugins are configured under `gates`"),
            );
            continue;
        }
        let agent_config = p.config.as_ref();
        let users: Vec<(usize, Option<&serde_json::Value>)> =
            plan.tasks.iter().enumerate().filter(|(_, t)| t.agent == *name).map(|(i, t)| (i, t.config.as_ref())).collect();
        let runs: Vec<(Option<usize>, Option<&serde_json::Value>)> =
            if users.is_empty() { vec![(None, None)] } else { users.into_iter().map(|(i, c)| (Some(i), c)).collect() };
        for (task, task_config) in runs {
            let merged = merge_config(agent_config, task_config);
            for v in plugin.validate_config(&merged) {
                let task_ptr = task.map(|i| format!("/tasks/{i}/config"));
                let in_task = task_config.is_some_and(|c| !v.pointer.is_empty() && c.pointer(&v.pointer).is_some());
                let in_agent = agent_config.is_some_and(|c| !v.pointer.is_empty() && c.pointer(&v.pointer).is_some());
                let base = match (&task_ptr, in_task, in_agent) {
                    (Some(t), true, _) => t.clone(),
                    (_, _, true) => pointer_join(&agent_ptr, "config"),
                    // A missing key: point at the object that lacks it, the task's if it has one.
                    (Some(t), _, _) if task_config.is_some() => t.clone(),
                    _ if agent_config.is_some() => pointer_join(&agent_ptr, "config"),
                    _ => agent_ptr.clone(),
                };
                let pointer = if base == agent_ptr { base } else { format!("{base}{}", v.pointer) };
                let context = match task {
                    Some(i) => format!(" (task `{}`)", plan.tasks[i].id),
                    None => String::new(),
                };
                issues.push(
                    PlanIssue::error("plugin/config", pointer, format!("config for plugin `{}`{context}: {}", plugin.name(), v.message))
                        .with_help(format!("`fugue plugins inspect {}` shows the config schema", plugin.inspect_spec())),
                );
            }
        }
    }
    issues
}

/// Whether `program` is an executable file in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .any(|p| std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_a_driver_ignores_are_warned_about() {
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "version": 1,
            "agents": {
                "g": { "driver": "gemini", "max_turns": 3, "overrides": { "a": "1" } },
                "c": { "driver": "claude", "max_turns": 3 }
            },
            "tasks": [{ "id": "t", "agent": "c" }]
        }))
        .expect("plan");
        let issues = check_plan_agents(&plan, Path::new("."));
        let ignored: Vec<&str> = issues.iter().filter(|i| i.code == "driver/setting").map(|i| i.pointer.as_str()).collect();
        assert_eq!(ignored, ["/agents/g/max_turns", "/agents/g/overrides"], "{issues:?}");
    }

    #[test]
    fn budgets_that_cannot_hold_as_written_are_warned_about() {
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "version": 1,
            "budget": { "usd": 5.0, "on_exhausted": "finish" },
            "prices": { "priced-model": { "input": 1.0, "output": 2.0 } },
            "agents": {
                "script": { "command": ["true"] },
                "codex": { "driver": "codex", "model": "gpt-x" },
                "priced": { "driver": "codex", "model": "priced-model" },
                "claude": { "driver": "claude" }
            },
            "tasks": [
                { "id": "a", "agent": "script" },
                { "id": "b", "agent": "codex" },
                { "id": "c", "agent": "codex" },
                { "id": "d", "agent": "priced" },
                { "id": "e", "agent": "claude", "budget": { "usd": 1.0 } }
            ]
        }))
        .expect("plan");
        let issues = check_plan_budgets(&plan);
        let found: Vec<(&str, &str)> = issues.iter().map(|i| (i.code.as_str(), i.pointer.as_str())).collect();
        assert_eq!(
            found,
            [
                ("budget/unmetered", "/tasks/0/agent"),
                ("budget/no-price", "/agents/codex/model"),
                ("budget/unbounded-finish", "/budget/on_exhausted"),
            ],
            "once per agent; a priced model and a CLI that reports its cost are fine: {issues:?}"
        );
        assert!(issues[1].help.as_deref().is_some_and(|h| h.contains("prices: { gpt-x:")), "{issues:?}");
    }

    #[test]
    fn confinement_a_kernel_cannot_enforce_is_an_error_when_strict_and_a_warning_by_default() {
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "version": 1,
            "agents": { "s": { "command": ["true"], "confine": "strict" }, "d": { "command": ["true"] },
                        "o": { "command": ["true"], "confine": "off" } },
            "tasks": [{ "id": "t1", "agent": "s" }, { "id": "t2", "agent": "d" }, { "id": "t3", "agent": "o" }]
        }))
        .expect("plan");
        let old = crate::confine::Support::Unsupported { why: "this kernel has no Landlock".to_owned() };
        let issues = confine_issues(&plan, Path::new("."), &old);
        let found: Vec<(&str, &str, bool)> = issues.iter().map(|i| (i.code.as_str(), i.pointer.as_str(), i.is_error())).collect();
        assert_eq!(found, [("confine/unsupported", "/agents/s/confine", true), ("confine/off", "", false)], "{issues:?}");
        assert!(issues[0].message.contains("no Landlock"), "{}", issues[0].message);
        let ok = crate::confine::Support::Landlock { abi: 7 };
        assert!(confine_issues(&plan, Path::new("."), &ok).is_empty());
    }
}
