//! Confinement: what an agent's process may write, as plain data.
//!
//! A plan says how agents are confined with `confine: strict | off` (per plan, and per agent,
//! the agent's word winning) and which build caches they may write besides their worktree
//! (`caches:`). What that means for one process is a [`Confinement`]: the list of directory
//! hierarchies (and single files) it may write beneath. Everything else on the machine stays
//! readable and executable, and unwritable. The agents crate turns a `Confinement` into a
//! Landlock ruleset and applies it to the child before it executes the agent's program; a
//! cluster executor ships it with the job and applies it on the node. The type lives here, in
//! the plain-data core, because it travels inside a [`ProcessSpec`](crate::ProcessSpec).
//!
//! `None` for the mode means the default: strict where the kernel can enforce it, off (with
//! one warning naming the setting) where it cannot. An explicit `strict` is a promise fugue
//! keeps or refuses to run: it never runs an agent unconfined after being told `strict`.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{AgentSpec, Plan};

/// How an agent's process is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfineMode {
    /// With Landlock: the agent writes only in its worktree (its own git internals included),
    /// the declared `caches`, a private temp dir and its CLI's session state. Reviewers write
    /// none of the worktree. Fails the run on a kernel that cannot enforce it.
    Strict,
    /// No confinement by fugue: the agent may write wherever its user may.
    Off,
}

/// The confinement one agent gets from its plan: its mode (`None`: the default, strict where
/// the kernel supports it) and the caches it may write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConfinePolicy {
    /// The mode the plan asks for; `None` is the default.
    pub mode: Option<ConfineMode>,
    /// Directories the agent may also write (absolute, `~/` expanded).
    pub caches: Vec<PathBuf>,
}

impl ConfinePolicy {
    /// A policy with `mode` and no caches.
    pub fn new(mode: Option<ConfineMode>) -> Self {
        Self { mode, caches: Vec::new() }
    }

    /// Adds the caches.
    pub fn with_caches(mut self, caches: Vec<PathBuf>) -> Self {
        self.caches = caches;
        self
    }

    /// True when the plan turned confinement off.
    pub fn is_off(&self) -> bool {
        self.mode == Some(ConfineMode::Off)
    }
}

/// What one confined process may write: every path in `write`, and everything beneath the
/// directories among them. Reading and executing stay allowed everywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Confinement {
    /// Absolute paths the process may write (directories: the whole hierarchy).
    pub write: Vec<PathBuf>,
    /// True when an explicit `confine: strict` asked for it (a default confinement on a kernel
    /// that cannot enforce it is dropped with a warning; a strict one fails the run).
    #[serde(default)]
    pub strict: bool,
}

impl Confinement {
    /// A confinement allowing writes beneath `write`.
    pub fn new(write: Vec<PathBuf>, strict: bool) -> Self {
        Self { write, strict }
    }
}

/// `path` with a leading `~/` replaced by `$HOME/`.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if !home.is_empty() => PathBuf::from(home).join(rest),
        _ if path == "~" => std::env::var_os("HOME").map_or_else(|| PathBuf::from(path), PathBuf::from),
        _ => PathBuf::from(path),
    }
}

impl Plan {
    /// The confinement of agent `name`: its own `confine` over the plan's, with the plan's
    /// caches. Plugin agents run inside fugue's own process and are not confined.
    pub fn confine_of(&self, name: &str) -> ConfinePolicy {
        let own = match self.agents.get(name) {
            Some(AgentSpec::Command(c)) => c.confine,
            Some(AgentSpec::Driver(d)) => d.confine,
            Some(AgentSpec::Plugin(_)) | None => None,
        };
        ConfinePolicy::new(own.or(self.confine)).with_caches(self.caches.iter().map(|c| expand_home(c)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_overrides_the_plan_and_caches_expand_home() {
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "version": 1,
            "confine": "off",
            "caches": ["~/.cargo", "/var/cache/x"],
            "agents": { "a": { "command": ["true"], "confine": "strict" }, "b": { "command": ["true"] } },
            "tasks": [ { "id": "t", "agent": "a" } ]
        }))
        .expect("plan");
        assert_eq!(plan.confine_of("a").mode, Some(ConfineMode::Strict));
        assert!(plan.confine_of("b").is_off());
        let caches = plan.confine_of("a").caches;
        assert_eq!(caches[1], PathBuf::from("/var/cache/x"));
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(caches[0], PathBuf::from(home).join(".cargo"));
        }
    }

    #[test]
    fn the_default_is_left_to_the_kernel() {
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "version": 1, "agents": { "a": { "command": ["true"] } }, "tasks": [ { "id": "t", "agent": "a" } ]
        }))
        .expect("plan");
        assert_eq!(plan.confine_of("a"), ConfinePolicy::default());
    }
}
