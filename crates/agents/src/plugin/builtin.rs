//! Built-in plugins: plugin types linked into the host, found by bare name.
//!
//! A plugin crate is an rlib as well as a `cdylib`, so a host can link one (at most one: see
//! `export_plugin!`) and run it in-process. Registering it with [`register_builtin`] at
//! start-up makes a plan's `plugin: <bare name>` work without a built library: when
//! `FUGUE_PLUGIN_PATH` has no library of that name, the name falls back to the built-in whose
//! manifest has it. A library on disk always wins, so a user can override a built-in with
//! their own build; paths (anything with a `/` or an extension) never reach the registry.
//!
//! [`open_plugin`] is the one place that decides between the two and returns a
//! [`PluginHandle`]; `agent_from_spec`, the plan checks and the review gate's reviewer go
//! through it, so a built-in is checked exactly like a loaded library — its kind, and configs
//! against its `config_schema` with the same JSON pointers — and runs through
//! [`InProcess`] with the spec's timeout.
//!
//! Registration validates the manifest as loading does (the plugin-manifest schema, the ABI
//! version, a compiling `config_schema`), so a broken built-in is a host bug caught at
//! start-up rather than in a run. The registry is process-wide and keyed by manifest name;
//! registering a name again replaces the earlier entry, which keeps repeated start-up code
//! (and tests running in parallel) harmless.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use fugue_core::plugin::{PLUGIN_ABI_VERSION, PluginImpl, PluginKind, PluginManifest};
use fugue_core::{Agent, QualityGate};

use super::discover::{plugin_search_path, resolve_plugin_in};
use super::{InProcess, Plugin, PluginAgent, PluginError, PluginGate, Violation, manifest_validator, violations};

/// What the registry needs of an [`InProcess`] plugin, without its type parameter.
trait Embedded: Send + Sync + fmt::Debug {
    fn manifest(&self) -> &PluginManifest;
    fn validate_config(&self, config: &serde_json::Value) -> Vec<Violation>;
    fn agent(&self, name: &str, timeout: Option<Duration>) -> Arc<dyn Agent>;
    fn gate(&self, name: &str, timeout: Option<Duration>) -> Arc<dyn QualityGate>;
}

impl<P: PluginImpl + fmt::Debug> Embedded for InProcess<P> {
    fn manifest(&self) -> &PluginManifest {
        InProcess::manifest(self)
    }

    fn validate_config(&self, config: &serde_json::Value) -> Vec<Violation> {
        InProcess::validate_config(self, config)
    }

    fn agent(&self, name: &str, timeout: Option<Duration>) -> Arc<dyn Agent> {
        Arc::new(self.clone().named(name).with_timeout(timeout))
    }

    fn gate(&self, name: &str, timeout: Option<Duration>) -> Arc<dyn QualityGate> {
        Arc::new(self.clone().named(name).with_timeout(timeout))
    }
}

/// A plugin type linked into the host and registered with [`register_builtin`]. Cloning it
/// is cheap and shares the plugin.
#[derive(Debug, Clone)]
pub struct BuiltinPlugin {
    inner: Arc<dyn Embedded>,
}

impl BuiltinPlugin {
    /// The plugin's name (its manifest's), under which a plan finds it.
    pub fn name(&self) -> &str {
        &self.inner.manifest().name
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &PluginManifest {
        self.inner.manifest()
    }

    /// Does the plugin serve `kind` (its `kind`, or one listed in `metadata.capabilities`)?
    pub fn supports(&self, kind: PluginKind) -> bool {
        self.manifest().supports(kind)
    }

    /// An error unless the plugin serves `kind`.
    pub fn require(&self, kind: PluginKind) -> Result<(), PluginError> {
        if self.supports(kind) {
            Ok(())
        } else {
            Err(PluginError::BuiltinWrongKind { name: self.name().to_owned(), kind: self.manifest().kind, wanted: kind })
        }
    }

    /// Validates `config` against the plugin's `config_schema`.
    pub fn validate_config(&self, config: &serde_json::Value) -> Vec<Violation> {
        self.inner.validate_config(config)
    }

    /// The agent `name` backed by this plugin, giving up after `timeout` when the context sets
    /// none; fails unless the plugin serves agents.
    pub fn agent(&self, name: &str, timeout: Option<Duration>) -> Result<Arc<dyn Agent>, PluginError> {
        self.require(PluginKind::Agent)?;
        Ok(self.inner.agent(name, timeout))
    }

    /// The gate `name` backed by this plugin, giving up after `timeout`; fails unless the
    /// plugin serves gates.
    pub fn gate(&self, name: &str, timeout: Option<Duration>) -> Result<Arc<dyn QualityGate>, PluginError> {
        self.require(PluginKind::Gate)?;
        Ok(self.inner.gate(name, timeout))
    }
}

fn builtins() -> &'static RwLock<BTreeMap<String, BuiltinPlugin>> {
    static BUILTINS: OnceLock<RwLock<BTreeMap<String, BuiltinPlugin>>> = OnceLock::new();
    BUILTINS.get_or_init(RwLock::default)
}

/// Every reason `manifest` could not be loaded from a library, as violations.
fn manifest_violations(manifest: &PluginManifest) -> Vec<Violation> {
    let value = match serde_json::to_value(manifest) {
        Ok(value) => value,
        Err(e) => return vec![Violation { pointer: String::new(), message: format!("the manifest cannot be serialised: {e}") }],
    };
    let mut found = match manifest_validator() {
        Ok(validator) => violations(validator, &value),
        Err(message) => vec![Violation { pointer: String::new(), message }],
    };
    if manifest.abi_version != PLUGIN_ABI_VERSION {
        found.push(Violation {
            pointer: "/abi_version".to_owned(),
            message: format!(
                "is {} but this fugue speaks ABI {PLUGIN_ABI_VERSION}: build the manifest with `PluginManifest::new`",
                manifest.abi_version
            ),
        });
    }
    if let Err(e) = jsonschema::validator_for(&manifest.config_schema) {
        found.push(Violation { pointer: "/config_schema".to_owned(), message: format!("is not a valid JSON schema: {e}") });
    }
    found
}

/// Registers `plugin`, linked into the host, as the built-in plugin of its manifest's name
/// (replacing an earlier registration of that name) and returns it. Fails, registering
/// nothing, when its manifest would not load from a library.
pub fn register_builtin<P: PluginImpl + fmt::Debug>(plugin: P) -> Result<BuiltinPlugin, PluginError> {
    let embedded = InProcess::new(plugin);
    let problems = manifest_violations(embedded.manifest());
    if !problems.is_empty() {
        return Err(PluginError::BuiltinManifest { name: embedded.manifest().name.clone(), violations: problems });
    }
    let builtin = BuiltinPlugin { inner: Arc::new(embedded) };
    let mut registry = builtins().write().unwrap_or_else(PoisonError::into_inner);
    registry.insert(builtin.name().to_owned(), builtin.clone());
    Ok(builtin)
}

/// The built-in plugin registered under `name`, if any.
pub fn builtin_plugin(name: &str) -> Option<BuiltinPlugin> {
    builtins().read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
}

/// Every registered built-in plugin, by name.
pub fn builtin_plugins() -> Vec<BuiltinPlugin> {
    builtins().read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
}

/// A plugin named in a plan, found: a library loaded from disk, or a built-in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PluginHandle {
    /// A dynamic library, loaded and validated.
    Library(Arc<Plugin>),
    /// A plugin linked into the host.
    Builtin(BuiltinPlugin),
}

impl PluginHandle {
    /// The plugin's name (its manifest's).
    pub fn name(&self) -> &str {
        &self.manifest().name
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &PluginManifest {
        match self {
            PluginHandle::Library(p) => p.manifest(),
            PluginHandle::Builtin(b) => b.manifest(),
        }
    }

    /// The library's path; `None` for a built-in.
    pub fn path(&self) -> Option<&Path> {
        match self {
            PluginHandle::Library(p) => Some(p.path()),
            PluginHandle::Builtin(_) => None,
        }
    }

    /// What to give `fugue plugins inspect` to see this plugin: the library's path, or the
    /// built-in's name.
    pub fn inspect_spec(&self) -> String {
        match self {
            PluginHandle::Library(p) => p.path().display().to_string(),
            PluginHandle::Builtin(b) => b.name().to_owned(),
        }
    }

    /// Does the plugin serve `kind`?
    pub fn supports(&self, kind: PluginKind) -> bool {
        self.manifest().supports(kind)
    }

    /// An error unless the plugin serves `kind`.
    pub fn require(&self, kind: PluginKind) -> Result<(), PluginError> {
        match self {
            PluginHandle::Library(p) => p.require(kind),
            PluginHandle::Builtin(b) => b.require(kind),
        }
    }

    /// Validates `config` against the plugin's `config_schema`.
    pub fn validate_config(&self, config: &serde_json::Value) -> Vec<Violation> {
        match self {
            PluginHandle::Library(p) => p.validate_config(config),
            PluginHandle::Builtin(b) => b.validate_config(config),
        }
    }

    /// The agent `name` backed by this plugin, giving up after `timeout` when the context sets
    /// none; fails unless the plugin serves agents.
    pub fn agent(&self, name: &str, timeout: Option<Duration>) -> Result<Arc<dyn Agent>, PluginError> {
        match self {
            PluginHandle::Library(p) => Ok(Arc::new(PluginAgent::new(name, Arc::clone(p))?.with_timeout(timeout))),
            PluginHandle::Builtin(b) => b.agent(name, timeout),
        }
    }

    /// The gate `name` backed by this plugin, giving up after `timeout`; fails unless the
    /// plugin serves gates.
    pub fn gate(&self, name: &str, timeout: Option<Duration>) -> Result<Arc<dyn QualityGate>, PluginError> {
        match self {
            PluginHandle::Library(p) => Ok(Arc::new(PluginGate::new(name, Arc::clone(p))?.with_timeout(timeout))),
            PluginHandle::Builtin(b) => b.gate(name, timeout),
        }
    }
}

/// Finds and opens the plugin a plan names: [`resolve_plugin_in`] then [`Plugin::load`];
/// when a bare name matches no library in `search`, the built-in of that name instead.
pub fn open_plugin_in(spec: &Path, base_dir: &Path, search: &[PathBuf]) -> Result<PluginHandle, PluginError> {
    match resolve_plugin_in(spec, base_dir, search) {
        Ok(path) => Plugin::load(&path).map(PluginHandle::Library),
        Err(PluginError::NotFound { name, candidates, searched }) => match builtin_plugin(&name) {
            Some(builtin) => Ok(PluginHandle::Builtin(builtin)),
            None => Err(PluginError::NotFound { name, candidates, searched }),
        },
        Err(e) => Err(e),
    }
}

/// [`open_plugin_in`] with the directories of `FUGUE_PLUGIN_PATH`.
pub fn open_plugin(spec: &Path, base_dir: &Path) -> Result<PluginHandle, PluginError> {
    open_plugin_in(spec, base_dir, &plugin_search_path())
}

#[cfg(test)]
mod tests {
    use fugue_core::{AgentContext, AgentReport, TaskId};
    use serde_json::json;

    use super::*;

    #[derive(Debug, Default)]
    struct Echo {
        name: &'static str,
        schema: Option<serde_json::Value>,
        abi: Option<u32>,
    }

    impl PluginImpl for Echo {
        fn manifest(&self) -> PluginManifest {
            let schema = self
                .schema
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {"word": {"type": "string"}}, "additionalProperties": false}));
            let mut m = PluginManifest::new(self.name, "1.0.0", PluginKind::Agent, "echoes", schema);
            if let Some(abi) = self.abi {
                m.abi_version = abi;
            }
            m
        }

        fn agent(&self, ctx: AgentContext) -> Result<AgentReport, String> {
            let word = ctx.config.get("word").and_then(|w| w.as_str()).unwrap_or("nothing");
            Ok(AgentReport::ready(format!("echo {word}")))
        }
    }

    #[tokio::test]
    async fn a_registered_builtin_is_found_by_bare_name_only() {
        let registered = register_builtin(Echo { name: "echo-unit-test", ..Echo::default() }).expect("valid manifest");
        assert_eq!(registered.name(), "echo-unit-test");
        assert!(builtin_plugins().iter().any(|b| b.name() == "echo-unit-test"));

        let dir = tempfile::tempdir().expect("tempdir");
        let handle = open_plugin_in(Path::new("echo-unit-test"), dir.path(), &[dir.path().to_owned()]).expect("built-in");
        assert!(matches!(handle, PluginHandle::Builtin(_)), "{handle:?}");
        assert_eq!((handle.path(), handle.inspect_spec().as_str()), (None, "echo-unit-test"));
        let agent = handle.agent("speaker", Some(Duration::from_secs(5))).expect("an agent");
        assert_eq!(agent.name(), "speaker");
        let mut ctx = AgentContext::new(TaskId::new("t").expect("id"), "p", dir.path());
        ctx.config = json!({"word": "hi"});
        assert_eq!(agent.run(ctx).await.expect("runs").summary, "echo hi");

        let violations = handle.validate_config(&json!({"word": 3}));
        assert_eq!(violations.iter().map(|v| v.pointer.as_str()).collect::<Vec<_>>(), ["/word"]);
        let err = handle.gate("g", None).err().expect("not a gate");
        assert_eq!(err.to_string(), "built-in plugin `echo-unit-test` is an agent plugin and cannot be used as a gate");

        // Paths never reach the registry; unknown names keep their not-found error.
        let err = open_plugin_in(Path::new("./echo-unit-test"), dir.path(), &[]).expect_err("a path");
        assert!(matches!(err, PluginError::Missing { .. }), "{err:?}");
        let err = open_plugin_in(Path::new("echo-unit-test.so"), dir.path(), &[]).expect_err("a file name");
        assert!(matches!(err, PluginError::Missing { .. }), "{err:?}");
        let err = open_plugin_in(Path::new("no-such-builtin"), dir.path(), &[]).expect_err("unknown");
        assert!(matches!(err, PluginError::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn a_builtin_with_a_bad_manifest_is_refused() {
        let bad = Echo { name: "Bad Name", schema: Some(json!({"type": 12})), abi: Some(PLUGIN_ABI_VERSION + 1) };
        let err = register_builtin(bad).expect_err("invalid");
        let PluginError::BuiltinManifest { violations, .. } = &err else { panic!("{err:?}") };
        let pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
        for p in ["/name", "/abi_version", "/config_schema"] {
            assert!(pointers.contains(&p), "{p} not in {violations:?}");
        }
        assert!(err.to_string().starts_with("built-in plugin `Bad Name` has an invalid manifest (at /"), "{err}");
        assert!(builtin_plugin("Bad Name").is_none(), "nothing registered");
    }
}
