//! The plugin ABI (version 1) shared by plugins and the loader.
//!
//! A plugin is a `cdylib` exporting four C functions:
//!
//! * `fugue_plugin_abi_version() -> u32` — checked before anything else;
//! * `fugue_plugin_manifest() -> *const c_char` — a static NUL-terminated JSON [`PluginManifest`];
//! * `fugue_plugin_invoke(*const c_char) -> *mut c_char` — request JSON in, response JSON out;
//! * `fugue_plugin_free(*mut c_char)` — frees a response.
//!
//! Only JSON crosses the boundary: no Rust types, no allocator, no async runtime.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The ABI version this build speaks.
pub const PLUGIN_ABI_VERSION: u32 = 1;

/// What a plugin provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// An `Agent`.
    Agent,
    /// A `QualityGate`.
    Gate,
}

/// A plugin's self-description, returned by `fugue_plugin_manifest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "fugue plugin manifest")]
pub struct PluginManifest {
    /// The plugin's name.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))]
    pub name: String,
    /// Its version (semver).
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$"))]
    pub version: String,
    /// Agent or gate.
    pub kind: PluginKind,
    /// The ABI it was built for; must equal the host's.
    #[schemars(range(min = 1))]
    pub abi_version: u32,
    /// One line on what it does.
    #[schemars(length(min = 1))]
    pub description: String,
    /// The JSON schema its `config` must satisfy.
    #[schemars(extend("type" = "object"))]
    pub config_schema: serde_json::Value,
    /// Free-form extra metadata (authors, homepage, capabilities…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
}
