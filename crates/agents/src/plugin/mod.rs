//! The dynamic plugin loader.
//!
//! Loading a plugin is a fixed sequence, each step failing with its own [`PluginError`]:
//!
//! 0. resolve the path to its canonical, absolute form — `dlopen` is only ever handed an
//!    absolute path, so its own search (`LD_LIBRARY_PATH`, the cache, the working directory)
//!    never picks the library — and refuse it when it, or its directory, is writable by group
//!    or others (see `trust`);
//! 1. open the library (`dlopen` with `RTLD_NOW`, so a missing dependency fails here rather
//!    than in the middle of a run);
//! 2. read `fugue_plugin_abi_version` and compare it with [`PLUGIN_ABI_VERSION`] before
//!    touching anything else, since every other symbol's meaning depends on it;
//! 3. resolve the other three symbols;
//! 4. read the manifest, parse it as JSON, validate it against the plugin-manifest schema of
//!    `fugue_core::schema`, check that its `abi_version` agrees with the export, and compile
//!    its `config_schema`.
//!
//! Libraries are never unloaded. A loaded plugin lives in a process-wide registry keyed by its
//! canonical path (loading it again returns the same [`Plugin`]), and every library ever opened
//! — even one that failed a later check — is kept open: unloading Rust code that may have
//! registered thread-local destructors or handed out pointers is how hosts crash, and a plugin
//! is small.
//!
//! A plugin type linked into the host can stand in for a library of the same bare name: see
//! `builtin` ([`register_builtin`], [`open_plugin`]).
//!
//! Calls go through [`Plugin::call`] (blocking; JSON in, JSON out, the response freed by the
//! plugin's own `fugue_plugin_free`). The async adapters in `adapter` run it on tokio's
//! blocking pool, so a slow plugin never stalls the engine's reactor.

mod adapter;
mod builtin;
mod discover;
mod trust;

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use fugue_core::plugin::{FUGUE_CORE_VERSION, PLUGIN_ABI_VERSION, PluginKind, PluginManifest, PluginRequest, PluginResponse};
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use serde::Serialize;

pub use adapter::{InProcess, PluginAgent, PluginGate};
pub use builtin::{BuiltinPlugin, PluginHandle, builtin_plugin, builtin_plugins, open_plugin, open_plugin_in, register_builtin};
pub use discover::{PluginSummary, discover_plugins, library_file_names, plugin_search_path, resolve_plugin, resolve_plugin_in};

/// One rejection by a JSON schema: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer of the rejected value, relative to the validated document (`""` for the
    /// whole document).
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "at the top level: {}", self.message)
        } else {
            write!(f, "at {}: {}", self.pointer, self.message)
        }
    }
}

fn with_article(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Agent => "an agent",
        PluginKind::Gate => "a gate",
    }
}

fn join(violations: &[Violation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Why a plugin could not be found, loaded or called.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// A bare plugin name matched no file in the search path.
    #[error(
        "failed to find plugin `{name}`: no {} in {}; build it (e.g. `cargo build -p fugue-plugin-{name}`), give its path, or add its directory to FUGUE_PLUGIN_PATH",
        .candidates.join(" or "),
        if .searched.is_empty() { "FUGUE_PLUGIN_PATH (unset)".to_owned() } else { .searched.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ") }
    )]
    NotFound {
        /// The name asked for.
        name: String,
        /// File names tried.
        candidates: Vec<String>,
        /// Directories searched.
        searched: Vec<PathBuf>,
    },
    /// A plugin path that names no file.
    #[error("failed to find plugin {}: no such file; check the path (in a plan, relative paths are relative to the plan's directory)", .path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The library, or its directory, can be changed by someone other than its owner.
    #[error(
        "refusing to load plugin {}: {} {} is writable by {} (mode {:04o}), so they could make fugue run their code; fix it with `chmod go-w {}`",
        .plugin.display(),
        if *.directory { "its directory" } else { "the file" },
        .path.display(),
        trust::writers(*.mode),
        .mode,
        trust::shell_quote(.path)
    )]
    Untrusted {
        /// The library.
        plugin: PathBuf,
        /// The file or directory that is too open (the library itself, or its directory).
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// True when `path` is the library's directory.
        directory: bool,
    },
    /// `dlopen` failed.
    #[error("failed to load plugin {}: {message}", .path.display())]
    Open {
        /// The library.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// A required export is absent.
    #[error("failed to load plugin {}: it does not export `{symbol}`; a fugue plugin gets its exports from `fugue_core::export_plugin!`", .path.display())]
    MissingSymbol {
        /// The library.
        path: PathBuf,
        /// The missing symbol.
        symbol: &'static str,
    },
    /// The plugin speaks another ABI version.
    #[error("plugin {} was built for ABI {found}, this fugue speaks ABI {expected}: rebuild it against fugue-core {core}", .path.display())]
    AbiMismatch {
        /// The library.
        path: PathBuf,
        /// The plugin's ABI version.
        found: u32,
        /// The host's ABI version.
        expected: u32,
        /// The fugue-core version to build against (`major.minor`).
        core: String,
    },
    /// `fugue_plugin_manifest` returned null.
    #[error("plugin {} returned no manifest (`fugue_plugin_manifest` gave a null pointer, e.g. because `manifest()` panicked)", .path.display())]
    NoManifest {
        /// The library.
        path: PathBuf,
    },
    /// The manifest is not JSON.
    #[error("plugin {} returned a manifest that is not valid JSON: {message}", .path.display())]
    ManifestJson {
        /// The library.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The manifest violates the plugin-manifest schema.
    #[error("plugin {} has an invalid manifest ({}); fix the plugin's `manifest()`", .path.display(), join(.violations))]
    ManifestSchema {
        /// The library.
        path: PathBuf,
        /// The schema's rejections.
        violations: Vec<Violation>,
    },
    /// The manifest's `abi_version` disagrees with the exported one.
    #[error("plugin {} exports ABI {exported} but its manifest says abi_version {declared}: build the manifest with `PluginManifest::new`", .path.display())]
    ManifestAbi {
        /// The library.
        path: PathBuf,
        /// From `fugue_plugin_abi_version`.
        exported: u32,
        /// From the manifest.
        declared: u32,
    },
    /// The manifest's `config_schema` is not a usable JSON schema.
    #[error("plugin `{name}` ({}) has a config_schema that is not a valid JSON schema: {message}", .path.display())]
    ConfigSchema {
        /// The plugin's name.
        name: String,
        /// The library.
        path: PathBuf,
        /// The compiler's message.
        message: String,
    },
    /// The plugin does not serve the kind asked for.
    #[error("plugin `{name}` ({}) is {} plugin and cannot be used as {}", .path.display(), with_article(*.kind), with_article(*.wanted))]
    WrongKind {
        /// The plugin's name.
        name: String,
        /// The library.
        path: PathBuf,
        /// What it is.
        kind: PluginKind,
        /// What it was asked to be.
        wanted: PluginKind,
    },
    /// A built-in plugin's manifest would not load from a library (see `register_builtin`).
    #[error("built-in plugin `{name}` has an invalid manifest ({}); fix the plugin's `manifest()`", join(.violations))]
    BuiltinManifest {
        /// The plugin's name.
        name: String,
        /// What is wrong with the manifest.
        violations: Vec<Violation>,
    },
    /// A built-in plugin does not serve the kind asked for.
    #[error("built-in plugin `{name}` is {} plugin and cannot be used as {}", with_article(*.kind), with_article(*.wanted))]
    BuiltinWrongKind {
        /// The plugin's name.
        name: String,
        /// What it is.
        kind: PluginKind,
        /// What it was asked to be.
        wanted: PluginKind,
    },
    /// A config the plugin's `config_schema` rejects.
    #[error("invalid config for plugin `{name}`: {}", join(.violations))]
    Config {
        /// The plugin's name.
        name: String,
        /// The schema's rejections.
        violations: Vec<Violation>,
    },
    /// A call failed: an error response, a panic caught at the boundary, a malformed answer.
    #[error("plugin `{name}` failed: {message}")]
    Call {
        /// The plugin's name.
        name: String,
        /// Why.
        message: String,
    },
}

type AbiFn = unsafe extern "C" fn() -> u32;
type ManifestFn = unsafe extern "C" fn() -> *const c_char;
type InvokeFn = unsafe extern "C" fn(*const c_char) -> *mut c_char;
type FreeFn = unsafe extern "C" fn(*mut c_char);

/// A loaded, validated plugin. Obtain one with [`Plugin::load`].
pub struct Plugin {
    path: PathBuf,
    manifest: PluginManifest,
    config_validator: jsonschema::Validator,
    invoke: InvokeFn,
    free: FreeFn,
    // Keeps the code behind `invoke`/`free` mapped; the registry holds another reference, so
    // the library outlives every `Plugin` anyway.
    _library: Arc<Library>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("path", &self.path).field("manifest", &self.manifest).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Registry {
    loaded: HashMap<PathBuf, Arc<Plugin>>,
    /// Every library ever opened, kept open for the life of the process.
    libraries: Vec<Arc<Library>>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn manifest_validator() -> Result<&'static jsonschema::Validator, String> {
    static VALIDATOR: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            let schema = fugue_core::schema::all()
                .into_iter()
                .find(|(name, _)| *name == "plugin-manifest.schema.json")
                .ok_or_else(|| "fugue-core has no plugin-manifest schema".to_owned())?
                .1;
            let schema = serde_json::to_value(schema).map_err(|e| e.to_string())?;
            jsonschema::validator_for(&schema).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn violations(validator: &jsonschema::Validator, value: &serde_json::Value) -> Vec<Violation> {
    validator.iter_errors(value).map(|e| Violation { pointer: e.instance_path().as_str().to_owned(), message: e.to_string() }).collect()
}

/// Validates `config` against the `config_schema` of `manifest`, without loading or running
/// anything: every rejection with the JSON pointer of the rejected value inside `config`.
/// A `config_schema` that is not a valid schema is reported as one violation at `""`.
pub fn validate_config(manifest: &PluginManifest, config: &serde_json::Value) -> Vec<Violation> {
    match jsonschema::validator_for(&manifest.config_schema) {
        Ok(v) => violations(&v, config),
        Err(e) => {
            vec![Violation { pointer: String::new(), message: format!("the plugin's config_schema is not a valid JSON schema: {e}") }]
        }
    }
}

impl Plugin {
    /// Loads the plugin at `path` (or returns the already loaded one), checking its ABI
    /// version, manifest and config schema.
    pub fn load(path: &Path) -> Result<Arc<Plugin>, PluginError> {
        let canonical = std::fs::canonicalize(path).map_err(|_| PluginError::Missing { path: path.to_owned() })?;
        let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(plugin) = registry.loaded.get(&canonical) {
            return Ok(Arc::clone(plugin));
        }
        trust::check_trusted(&canonical)?;
        // SAFETY: opening a library runs its initialisers; a plugin is code the user chose to
        // run, exactly like an agent's program.
        let library = unsafe { Library::open(Some(&canonical), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
            // libloading keeps dlerror()'s text (say, "invalid ELF header") as the source.
            let message = match std::error::Error::source(&e) {
                Some(why) => format!("{e}: {why}"),
                None => e.to_string(),
            };
            PluginError::Open { path: canonical.clone(), message }
        })?;
        let library = Arc::new(library);
        registry.libraries.push(Arc::clone(&library));
        let plugin = Arc::new(Self::from_library(canonical.clone(), library)?);
        registry.loaded.insert(canonical, Arc::clone(&plugin));
        Ok(plugin)
    }

    fn from_library(path: PathBuf, library: Arc<Library>) -> Result<Self, PluginError> {
        fn symbol<T: Copy>(library: &Library, path: &Path, name: &'static str) -> Result<T, PluginError> {
            // SAFETY: `T` is the ABI's type for `name`; the library stays loaded for the
            // process's lifetime, so the copied function pointer stays valid.
            unsafe { library.get::<T>(name) }.map(|s| *s).map_err(|_| PluginError::MissingSymbol { path: path.to_owned(), symbol: name })
        }
        let abi: AbiFn = symbol(&library, &path, "fugue_plugin_abi_version")?;
        // SAFETY: the ABI function takes nothing and returns a u32 in every ABI version.
        let found = unsafe { abi() };
        if found != PLUGIN_ABI_VERSION {
            let core = FUGUE_CORE_VERSION.split('.').take(2).collect::<Vec<_>>().join(".");
            return Err(PluginError::AbiMismatch { path, found, expected: PLUGIN_ABI_VERSION, core });
        }
        let manifest_fn: ManifestFn = symbol(&library, &path, "fugue_plugin_manifest")?;
        let invoke: InvokeFn = symbol(&library, &path, "fugue_plugin_invoke")?;
        let free: FreeFn = symbol(&library, &path, "fugue_plugin_free")?;

        // SAFETY: ABI 1: a static NUL-terminated string owned by the plugin, or null.
        let raw = unsafe { manifest_fn() };
        if raw.is_null() {
            return Err(PluginError::NoManifest { path });
        }
        // SAFETY: non-null, NUL-terminated, alive as long as the library.
        let text = unsafe { CStr::from_ptr(raw) }.to_bytes();
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| PluginError::ManifestJson { path: path.clone(), message: e.to_string() })?;
        let validator = manifest_validator().map_err(|message| PluginError::ManifestJson { path: path.clone(), message })?;
        let problems = violations(validator, &value);
        if !problems.is_empty() {
            return Err(PluginError::ManifestSchema { path, violations: problems });
        }
        let manifest: PluginManifest = serde_json::from_value(value).map_err(|e| PluginError::ManifestSchema {
            path: path.clone(),
            violations: vec![Violation { pointer: String::new(), message: e.to_string() }],
        })?;
        if manifest.abi_version != found {
            return Err(PluginError::ManifestAbi { path, exported: found, declared: manifest.abi_version });
        }
        let config_validator = jsonschema::validator_for(&manifest.config_schema).map_err(|e| PluginError::ConfigSchema {
            name: manifest.name.clone(),
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { path, manifest, config_validator, invoke, free, _library: library })
    }

    /// The library's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated manifest.
    pub fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    /// The plugin's name (from its manifest).
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Does the plugin serve `kind` (its `kind`, or one listed in `metadata.capabilities`)?
    pub fn supports(&self, kind: PluginKind) -> bool {
        self.manifest.supports(kind)
    }

    /// An error unless the plugin serves `kind`.
    pub fn require(&self, kind: PluginKind) -> Result<(), PluginError> {
        if self.supports(kind) {
            Ok(())
        } else {
            Err(PluginError::WrongKind {
                name: self.manifest.name.clone(),
                path: self.path.clone(),
                kind: self.manifest.kind,
                wanted: kind,
            })
        }
    }

    /// Validates `config` against the plugin's `config_schema`.
    pub fn validate_config(&self, config: &serde_json::Value) -> Vec<Violation> {
        violations(&self.config_validator, config)
    }

    /// [`validate_config`](Self::validate_config) as a `Result`.
    pub fn check_config(&self, config: &serde_json::Value) -> Result<(), PluginError> {
        let problems = self.validate_config(config);
        if problems.is_empty() { Ok(()) } else { Err(PluginError::Config { name: self.manifest.name.clone(), violations: problems }) }
    }

    /// Calls the plugin on the current thread. An error response, a caught panic or a
    /// malformed answer is an `Err`.
    pub fn call(&self, request: &PluginRequest) -> Result<PluginResponse, PluginError> {
        let fail = |message: String| PluginError::Call { name: self.manifest.name.clone(), message };
        let json = serde_json::to_string(request).map_err(|e| fail(format!("failed to serialise the request: {e}")))?;
        let json = CString::new(json).map_err(|_| fail("the request contains a NUL byte".to_owned()))?;
        // SAFETY: ABI 1: a NUL-terminated request valid for the call; the answer is ours to
        // read and then give back to the plugin's `free`.
        let raw = unsafe { (self.invoke)(json.as_ptr()) };
        if raw.is_null() {
            return Err(fail("it returned no response (a null pointer)".to_owned()));
        }
        // SAFETY: non-null and NUL-terminated per the ABI; copied before it is freed.
        let parsed = serde_json::from_slice::<PluginResponse>(unsafe { CStr::from_ptr(raw) }.to_bytes());
        // SAFETY: returned by this plugin's `invoke`, freed exactly once.
        unsafe { (self.free)(raw) };
        match parsed {
            Ok(PluginResponse::Error { message }) => Err(fail(message)),
            Ok(response) => Ok(response),
            Err(e) => Err(fail(format!("it returned a response that is not a valid plugin response: {e}"))),
        }
    }

    /// [`call`](Self::call) on tokio's blocking pool.
    pub async fn call_blocking(self: &Arc<Self>, request: PluginRequest) -> Result<PluginResponse, PluginError> {
        let plugin = Arc::clone(self);
        tokio::task::spawn_blocking(move || plugin.call(&request))
            .await
            .map_err(|e| PluginError::Call { name: self.manifest.name.clone(), message: format!("the call was aborted: {e}") })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(schema: serde_json::Value) -> PluginManifest {
        PluginManifest::new("t", "0.1.0", PluginKind::Agent, "test", schema)
    }

    #[test]
    fn config_violations_carry_pointers() {
        let m = manifest(json!({
            "type": "object",
            "properties": {"edits": {"type": "array", "items": {"type": "object", "required": ["replace"]}}},
            "required": ["edits"],
            "additionalProperties": false
        }));
        assert!(validate_config(&m, &json!({"edits": [{"replace": "x"}]})).is_empty());
        let v = validate_config(&m, &json!({"edits": [{"replace": "x"}, {"with": 1}], "extra": true}));
        let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/edits/1"), "{v:?}");
        assert!(pointers.contains(&""), "{v:?}");
        assert!(v.iter().any(|v| v.message.contains("extra")), "{v:?}");
        assert!(v[0].to_string().starts_with("at "));
    }

    #[test]
    fn an_invalid_config_schema_is_one_violation() {
        let v = validate_config(&manifest(json!({"type": 12})), &json!({}));
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("not a valid JSON schema"), "{v:?}");
    }

    #[test]
    fn the_manifest_schema_is_available() {
        let validator = manifest_validator().expect("compiles");
        let good = serde_json::to_value(manifest(json!({"type": "object"}))).expect("json");
        assert!(violations(validator, &good).is_empty());
        let bad = json!({"name": "Bad Name", "version": "1", "kind": "robot", "abi_version": 1, "description": "", "config_schema": {}});
        let pointers: Vec<String> = violations(validator, &bad).into_iter().map(|v| v.pointer).collect();
        for p in ["/name", "/version", "/kind", "/description"] {
            assert!(pointers.iter().any(|x| x == p), "{p} not in {pointers:?}");
        }
    }

    #[test]
    fn missing_files_are_reported_by_path() {
        let err = Plugin::load(Path::new("/nonexistent/libnope.so")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/libnope.so: no such file"), "{err}");
    }
}
