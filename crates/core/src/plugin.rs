//! The plugin ABI (version 1) shared by plugins and the loader.
//!
//! A plugin is a `cdylib` exporting four C functions:
//!
//! * `fugue_plugin_abi_version() -> u32` — checked before anything else;
//! * `fugue_plugin_manifest() -> *const c_char` — a static NUL-terminated JSON [`PluginManifest`];
//! * `fugue_plugin_invoke(*const c_char) -> *mut c_char` — request JSON in, response JSON out;
//! * `fugue_plugin_free(*mut c_char)` — frees a response.
//!
//! Only JSON crosses the boundary: no Rust types, no allocator, no async runtime. A request is
//! a [`PluginRequest`] (`{"kind": "agent", "context": …}` with an [`AgentContext`], or
//! `{"kind": "gate", "context": …}` with a [`GateContext`]); the answer is a
//! [`PluginResponse`] (`{"kind": "agent", "report": …}`, `{"kind": "gate", "report": …}` or
//! `{"kind": "error", "message": …}`).
//!
//! Plugin authors never write those functions by hand: they implement [`PluginImpl`] on a plain
//! Rust type and call [`export_plugin!`](crate::export_plugin), which generates the exports,
//! keeps one instance for the life of the library, and catches every panic at the boundary
//! (a panic unwinding into the host's C frame would abort it), turning it into an error
//! response. The plugin must be built with `panic = "unwind"` (the default) for that to work.
//!
//! A plugin that can serve more than its manifest's `kind` says so in its manifest's
//! `metadata.capabilities` (e.g. `["gate", "agent"]` for a gate that can also review as an
//! agent); the loader honours it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{AgentContext, AgentReport, GateContext, GateReport};

/// The ABI version this build speaks.
pub const PLUGIN_ABI_VERSION: u32 = 1;

/// The version of fugue-core this build is, for messages that tell how to rebuild a plugin.
pub const FUGUE_CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The metadata key listing the kinds a plugin serves besides its `kind`.
pub const CAPABILITIES_KEY: &str = "capabilities";

/// What a plugin provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// An `Agent`.
    Agent,
    /// A `QualityGate`.
    Gate,
}

impl PluginKind {
    /// The kind as written in manifests (`agent`, `gate`).
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Agent => "agent",
            PluginKind::Gate => "gate",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
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

impl PluginManifest {
    /// A manifest for this build's ABI, with no metadata.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        kind: PluginKind,
        description: impl Into<String>,
        config_schema: serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            kind,
            abi_version: PLUGIN_ABI_VERSION,
            description: description.into(),
            config_schema,
            metadata: BTreeMap::new(),
        }
    }

    /// Declares that the plugin also serves `kinds` (stored under `metadata.capabilities`).
    pub fn with_capabilities(mut self, kinds: &[PluginKind]) -> Self {
        let list = kinds.iter().map(|k| serde_json::Value::from(k.as_str())).collect();
        self.metadata.insert(CAPABILITIES_KEY.to_owned(), serde_json::Value::Array(list));
        self
    }

    /// Does the plugin serve `kind` (its own kind, or one listed in `metadata.capabilities`)?
    pub fn supports(&self, kind: PluginKind) -> bool {
        self.kind == kind
            || self
                .metadata
                .get(CAPABILITIES_KEY)
                .and_then(serde_json::Value::as_array)
                .is_some_and(|list| list.iter().any(|v| v.as_str() == Some(kind.as_str())))
    }
}

/// What the host sends to `fugue_plugin_invoke`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum PluginRequest {
    /// Do a task's work (the plugin acts as an `Agent`).
    Agent {
        /// The agent context; `context.config` is the agent's config merged with the task's.
        context: Box<AgentContext>,
    },
    /// Judge a task's work (the plugin acts as a `QualityGate`).
    Gate {
        /// The gate context; `context.config` is the gate's config.
        context: Box<GateContext>,
    },
}

impl PluginRequest {
    /// The kind of plugin the request is for.
    pub fn kind(&self) -> PluginKind {
        match self {
            PluginRequest::Agent { .. } => PluginKind::Agent,
            PluginRequest::Gate { .. } => PluginKind::Gate,
        }
    }
}

/// What `fugue_plugin_invoke` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum PluginResponse {
    /// An agent's report.
    Agent {
        /// The report.
        report: AgentReport,
    },
    /// A gate's report.
    Gate {
        /// The report.
        report: GateReport,
    },
    /// The plugin could not handle the request.
    Error {
        /// Why, in one sentence.
        message: String,
    },
}

/// A plugin written in Rust: implement this on a type and call
/// [`export_plugin!`](crate::export_plugin) with it.
///
/// Implement [`manifest`](Self::manifest) and either [`agent`](Self::agent) or
/// [`gate`](Self::gate) (or both, for a plugin with several capabilities); the default
/// [`invoke`](Self::invoke) dispatches a request to them. Calls may come from several host
/// threads at once, hence `Sync`.
pub trait PluginImpl: Send + Sync + 'static {
    /// The plugin's manifest (use [`PluginManifest::new`] so `abi_version` is right).
    fn manifest(&self) -> PluginManifest;

    /// Does a task's work in `ctx.worktree`.
    fn agent(&self, ctx: AgentContext) -> Result<AgentReport, String> {
        drop(ctx);
        Err(format!("plugin `{}` is not an agent", self.manifest().name))
    }

    /// Judges a task's work in `ctx.checkout`.
    fn gate(&self, ctx: &GateContext) -> Result<GateReport, String> {
        let _ = ctx;
        Err(format!("plugin `{}` is not a gate", self.manifest().name))
    }

    /// Handles one request; `Err` becomes an error response.
    fn invoke(&self, request: PluginRequest) -> Result<PluginResponse, String> {
        match request {
            PluginRequest::Agent { context } => self.agent(*context).map(|report| PluginResponse::Agent { report }),
            PluginRequest::Gate { context } => self.gate(&context).map(|report| PluginResponse::Gate { report }),
        }
    }
}

/// Generates the four C exports of a plugin from a type implementing [`PluginImpl`].
///
/// `export_plugin!(MyPlugin)` uses `MyPlugin::default()`; `export_plugin!(MyPlugin, expr)`
/// builds the instance with `expr`. The instance is created on first use and lives as long as
/// the library. Call it once, at the root of a `cdylib` crate.
///
/// Because the exports have fixed C names, two plugin crates' rlibs cannot be linked into one
/// binary: a program embedding a plugin in-process should link at most one.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        $crate::export_plugin!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $ctor:expr) => {
        #[doc(hidden)]
        fn __fugue_plugin_instance() -> &'static $ty {
            static INSTANCE: ::std::sync::OnceLock<$ty> = ::std::sync::OnceLock::new();
            INSTANCE.get_or_init(|| $ctor)
        }

        /// The plugin ABI version this plugin was built for.
        #[unsafe(no_mangle)]
        pub extern "C" fn fugue_plugin_abi_version() -> u32 {
            $crate::plugin::PLUGIN_ABI_VERSION
        }

        /// The plugin's manifest as NUL-terminated JSON, owned by the plugin (null if it
        /// cannot be produced).
        #[unsafe(no_mangle)]
        pub extern "C" fn fugue_plugin_manifest() -> *const ::std::ffi::c_char {
            static MANIFEST: ::std::sync::OnceLock<::std::ffi::CString> = ::std::sync::OnceLock::new();
            $crate::plugin::__private::manifest(&MANIFEST, __fugue_plugin_instance)
        }

        /// Handles one JSON request and returns a JSON response to free with
        /// `fugue_plugin_free`.
        ///
        /// # Safety
        /// `request` must be null or point to a NUL-terminated string valid for the call.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn fugue_plugin_invoke(request: *const ::std::ffi::c_char) -> *mut ::std::ffi::c_char {
            // SAFETY: forwarded from the caller's contract.
            unsafe { $crate::plugin::__private::invoke(__fugue_plugin_instance, request) }
        }

        /// Frees a response returned by `fugue_plugin_invoke`.
        ///
        /// # Safety
        /// `response` must be null or a pointer returned by `fugue_plugin_invoke` of this
        /// plugin, freed at most once.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn fugue_plugin_free(response: *mut ::std::ffi::c_char) {
            // SAFETY: forwarded from the caller's contract.
            unsafe { $crate::plugin::__private::free(response) }
        }
    };
}

/// The text of a panic payload, as `export_plugin!` reports a caught panic; for hosts that
/// call a [`PluginImpl`] in-process and catch its panics the same way.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    __private::panic_message(payload)
}

/// The functions `export_plugin!` expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    use std::any::Any;
    use std::ffi::{CStr, CString, c_char};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::OnceLock;

    use super::{PluginImpl, PluginRequest, PluginResponse};

    /// The text of a panic payload.
    pub fn panic_message(payload: &(dyn Any + Send)) -> String {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-text payload".to_owned()
        }
    }

    /// Serialises the manifest once and hands out a pointer that lives as long as the library.
    pub fn manifest<P: PluginImpl>(slot: &'static OnceLock<CString>, instance: fn() -> &'static P) -> *const c_char {
        if let Some(c) = slot.get() {
            return c.as_ptr();
        }
        let made = catch_unwind(AssertUnwindSafe(|| {
            let json = serde_json::to_string(&instance().manifest()).ok()?;
            CString::new(json).ok()
        }));
        match made {
            Ok(Some(c)) => slot.get_or_init(|| c).as_ptr(),
            _ => std::ptr::null(),
        }
    }

    fn to_raw(response: &PluginResponse) -> *mut c_char {
        // serde_json escapes NUL inside strings, so `CString::new` only fails on a bug; the
        // fallback is a fixed, valid error response.
        let json = serde_json::to_string(response).unwrap_or_else(|e| {
            format!(r#"{{"kind":"error","message":"failed to serialise the plugin's response: {}"}}"#, e.to_string().replace('"', "'"))
        });
        CString::new(json).unwrap_or_else(|_| c"{\"kind\":\"error\",\"message\":\"response contained NUL\"}".to_owned()).into_raw()
    }

    fn handle<P: PluginImpl>(instance: fn() -> &'static P, request: *const c_char) -> PluginResponse {
        if request.is_null() {
            return PluginResponse::Error { message: "the host sent a null request".to_owned() };
        }
        // SAFETY: the host passes a NUL-terminated string valid for the call (ABI contract).
        let bytes = unsafe { CStr::from_ptr(request) }.to_bytes();
        let request: PluginRequest = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => return PluginResponse::Error { message: format!("failed to parse the request: {e}") },
        };
        match instance().invoke(request) {
            Ok(response) => response,
            Err(message) => PluginResponse::Error { message },
        }
    }

    /// Parses the request, calls the plugin, serialises the answer; never unwinds.
    ///
    /// # Safety
    /// `request` must be null or a NUL-terminated string valid for the call.
    pub unsafe fn invoke<P: PluginImpl>(instance: fn() -> &'static P, request: *const c_char) -> *mut c_char {
        let response = catch_unwind(AssertUnwindSafe(|| handle(instance, request))).unwrap_or_else(|payload| PluginResponse::Error {
            message: format!("the plugin panicked: {}", panic_message(payload.as_ref())),
        });
        catch_unwind(AssertUnwindSafe(|| to_raw(&response))).unwrap_or(std::ptr::null_mut())
    }

    /// Frees a response made by [`invoke`].
    ///
    /// # Safety
    /// `response` must be null or a pointer returned by [`invoke`], freed at most once.
    pub unsafe fn free(response: *mut c_char) {
        if !response.is_null() {
            // SAFETY: per the contract it came from `CString::into_raw` in `to_raw`.
            drop(unsafe { CString::from_raw(response) });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::{CStr, CString, c_char};
    use std::sync::OnceLock;

    use super::*;
    use crate::TaskId;

    #[derive(Debug, Default)]
    struct Echo;

    impl PluginImpl for Echo {
        fn manifest(&self) -> PluginManifest {
            PluginManifest::new("echo", "0.1.0", PluginKind::Agent, "echoes", serde_json::json!({"type": "object"}))
        }
        fn agent(&self, ctx: AgentContext) -> Result<AgentReport, String> {
            if ctx.prompt == "panic" {
                panic!("asked to panic");
            }
            Ok(AgentReport::ready(ctx.prompt))
        }
    }

    fn echo() -> &'static Echo {
        static E: Echo = Echo;
        &E
    }

    fn call(request: &str) -> serde_json::Value {
        let c = CString::new(request).expect("no NUL");
        // SAFETY: a valid C string; the response is freed below.
        let raw = unsafe { __private::invoke(echo, c.as_ptr()) };
        assert!(!raw.is_null());
        // SAFETY: `raw` is a NUL-terminated string from `invoke`.
        let text = unsafe { CStr::from_ptr(raw) }.to_str().expect("utf-8").to_owned();
        // SAFETY: freed once.
        unsafe { __private::free(raw) };
        serde_json::from_str(&text).expect("response is JSON")
    }

    fn agent_request(prompt: &str) -> String {
        let ctx = AgentContext::new(TaskId::new("t1").expect("id"), prompt, "/tmp");
        serde_json::to_string(&PluginRequest::Agent { context: Box::new(ctx) }).expect("serialises")
    }

    #[test]
    fn invoke_round_trips_and_catches_panics() {
        let ok = call(&agent_request("hello"));
        assert_eq!(ok["kind"], "agent");
        assert_eq!(ok["report"]["summary"], "hello");
        let panicked = call(&agent_request("panic"));
        assert_eq!(panicked["kind"], "error");
        assert!(panicked["message"].as_str().is_some_and(|m| m.contains("panicked: asked to panic")), "{panicked}");
        let garbage = call("{not json");
        assert!(garbage["message"].as_str().is_some_and(|m| m.starts_with("failed to parse the request")));
        // SAFETY: null is allowed.
        let null = unsafe { __private::invoke(echo, std::ptr::null()) };
        // SAFETY: a valid response.
        let text = unsafe { CStr::from_ptr(null) }.to_string_lossy().into_owned();
        // SAFETY: freed once.
        unsafe { __private::free(null) };
        assert!(text.contains("null request"));
    }

    #[test]
    fn default_dispatch_refuses_the_other_kind() {
        let gate: serde_json::Value = serde_json::json!({
            "kind": "gate",
            "context": {"task_id": "t1", "phase": "implementation", "checkout": "/tmp", "base_commit": "a", "head_commit": "b",
                        "changed_files": [], "diff": "", "modifies": [], "common": [], "config": {}}
        });
        let answer = call(&gate.to_string());
        assert_eq!(answer, serde_json::json!({"kind": "error", "message": "plugin `echo` is not a gate"}));
    }

    #[test]
    fn manifest_is_cached_and_static() {
        static SLOT: OnceLock<CString> = OnceLock::new();
        let a: *const c_char = __private::manifest(&SLOT, echo);
        let b = __private::manifest(&SLOT, echo);
        assert_eq!(a, b);
        // SAFETY: points into SLOT.
        let m: PluginManifest = serde_json::from_slice(unsafe { CStr::from_ptr(a) }.to_bytes()).expect("manifest JSON");
        assert_eq!(m.abi_version, PLUGIN_ABI_VERSION);
        assert!(m.supports(PluginKind::Agent) && !m.supports(PluginKind::Gate));
        assert!(m.with_capabilities(&[PluginKind::Gate]).supports(PluginKind::Gate));
    }
}
