//! Built-in agents (the `command` agent) and the dynamic plugin loader.
//!
//! Two ways to do a task's work exist in a plan's `agents` map, and this crate turns each into
//! a [`fugue_core::Agent`]:
//!
//! * **command agents** ([`CommandAgent`]): an argv template run without a shell in the task's
//!   worktree. The agent only describes the process ([`fugue_core::ProcessSpec`]); an
//!   [`fugue_core::Executor`] starts it. [`LocalExecutor`], the default, runs it in a process
//!   group of its own so that a timeout or a cancellation (the engine drops the future) takes
//!   down everything it started; a cluster executor can take its place
//!   ([`CommandAgent::with_executor`], [`agent_from_spec_with`]). Ready-made templates for the
//!   common coding-agent CLIs are in [`presets`].
//! * **plugins** ([`Plugin`]): `cdylib`s speaking the C ABI of [`fugue_core::plugin`]. The
//!   loader checks the ABI version before anything else, validates the manifest against the
//!   plugin-manifest schema and configs against the plugin's own `config_schema`, calls the
//!   plugin on a blocking thread, and never unloads a library. [`PluginAgent`] and
//!   [`PluginGate`] adapt a loaded plugin to the `Agent` and `QualityGate` traits;
//!   [`InProcess`] does the same for a plugin type linked in as an rlib.
//! * **built-in plugins** ([`register_builtin`]): a plugin type the host links in and
//!   registers, so that a plan's `plugin: <bare name>` works without a built library. A
//!   library of that name in `FUGUE_PLUGIN_PATH` still wins; [`open_plugin`] decides and
//!   returns a [`PluginHandle`] either way.
//!
//! [`agent_from_spec`] builds an agent from a plan's [`fugue_core::AgentSpec`] (local processes;
//! [`agent_from_spec_with`] takes the executor), and
//! [`check_plan_agents`] finds every agent problem of a plan (unloadable library, wrong
//! kind, config rejected by the plugin's schema) as located [`fugue_core::PlanIssue`]s without
//! running anything, so `fugue plan` reports them.

mod check;
mod command;
pub mod confine;
mod driver;
mod local;
mod output;
mod plugin;
mod presets;
mod process;
mod slurm;
mod template;

pub use check::{agent_from_spec, agent_from_spec_confined, agent_from_spec_with, check_plan_agents, check_plan_plugins};
pub use command::CommandAgent;
pub use driver::{DriverAgent, driver_refuses};
pub use local::LocalExecutor;
pub use plugin::{
    BuiltinPlugin, InProcess, Plugin, PluginAgent, PluginError, PluginGate, PluginHandle, PluginSummary, Violation, builtin_plugin,
    builtin_plugins, discover_plugins, library_file_names, open_plugin, open_plugin_in, plugin_search_path, register_builtin,
    resolve_plugin, resolve_plugin_in, validate_config,
};
pub use presets::{Preset, preset, presets};
pub use process::{kill_all_agents, stop_leftover_agents, wait_for_stopped_agents};
pub use slurm::{SlurmError, SlurmExecutor, cancel_all_jobs, executor_from_spec};
