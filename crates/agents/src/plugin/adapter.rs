//! Plugins as `Agent`s and `QualityGate`s.
//!
//! [`PluginAgent`] and [`PluginGate`] wrap a loaded [`Plugin`]: they check the config against
//! the plugin's schema first (a config error names its JSON pointer instead of reaching the
//! plugin), send the request on tokio's blocking pool, and turn the answer back into a report.
//! A timeout abandons the call — the blocking thread cannot be interrupted and finishes on its
//! own — and is reported as [`AgentError::Timeout`].
//!
//! [`InProcess`] is the same for a plugin type linked into the host as an rlib: the request
//! goes to its [`PluginImpl::invoke`] directly, with panics caught as at the C boundary. It is
//! how a host embeds a plugin (the default reviewer, the demo's agent) without a `.so`.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fugue_core::plugin::{PluginImpl, PluginKind, PluginManifest, PluginRequest, PluginResponse, panic_message};
use fugue_core::{Agent, AgentContext, AgentError, AgentReport, GateContext, GateError, GateReport, QualityGate, async_trait};

use super::{Plugin, PluginError, Violation, join};

/// A plugin agent: the plan's `{ plugin: …, config: … }`.
#[derive(Debug, Clone)]
pub struct PluginAgent {
    name: String,
    plugin: Arc<Plugin>,
    timeout: Option<Duration>,
}

impl PluginAgent {
    /// The agent `name` backed by `plugin`; fails unless the plugin serves agents.
    pub fn new(name: impl Into<String>, plugin: Arc<Plugin>) -> Result<Self, PluginError> {
        plugin.require(PluginKind::Agent)?;
        Ok(Self { name: name.into(), plugin, timeout: None })
    }

    /// Gives up on a call after `timeout` when the context sets none.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }
}

fn agent_error(agent: &str, err: PluginError) -> AgentError {
    match err {
        PluginError::Call { name, message } => AgentError::Plugin { plugin: name, message },
        other => AgentError::Plugin { plugin: agent.to_owned(), message: other.to_string() },
    }
}

fn config_message(violations: &[Violation]) -> String {
    format!("invalid config: {}", join(violations))
}

fn append_log(ctx: &AgentContext, agent: &str, report: &AgentReport) {
    let Some(path) = &ctx.log_file else { return };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // The log is for people; failing to write it must not fail the agent.
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "--- fugue: plugin agent `{agent}` for task `{}`: {}", ctx.task_id, report.summary);
        if !report.output.is_empty() {
            let _ = writeln!(f, "{}", report.output);
        }
    }
}

async fn with_timeout<T>(limit: Option<Duration>, fut: impl std::future::Future<Output = T>) -> Result<T, Duration> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await.map_err(|_| limit),
        None => Ok(fut.await),
    }
}

fn finish_agent(agent: &str, ctx: &AgentContext, response: PluginResponse, started: Instant) -> Result<AgentReport, AgentError> {
    match response {
        PluginResponse::Agent { mut report } => {
            if report.duration_ms == 0 {
                report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            }
            append_log(ctx, agent, &report);
            Ok(report)
        }
        _ => Err(AgentError::Plugin {
            plugin: agent.to_owned(),
            message: "it answered an agent request with something else than an agent report".to_owned(),
        }),
    }
}

fn finish_gate(gate: &str, response: PluginResponse, started: Instant) -> Result<GateReport, GateError> {
    match response {
        PluginResponse::Gate { mut report } => {
            if report.gate.is_empty() {
                report.gate = gate.to_owned();
            }
            if report.duration_ms == 0 {
                report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            }
            Ok(report)
        }
        _ => Err(GateError::Internal {
            gate: gate.to_owned(),
            message: "it answered a gate request with something else than a gate report".to_owned(),
        }),
    }
}

#[async_trait]
impl Agent for PluginAgent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, ctx: AgentContext) -> Result<AgentReport, AgentError> {
        let started = Instant::now();
        let problems = self.plugin.validate_config(&ctx.config);
        if !problems.is_empty() {
            return Err(AgentError::Plugin { plugin: self.plugin.name().to_owned(), message: config_message(&problems) });
        }
        let limit = ctx.timeout.or(self.timeout);
        let request = PluginRequest::Agent { context: Box::new(ctx.clone()) };
        let response = with_timeout(limit, self.plugin.call_blocking(request))
            .await
            .map_err(|after| AgentError::Timeout { agent: self.name.clone(), after })?
            .map_err(|e| agent_error(&self.name, e))?;
        finish_agent(&self.name, &ctx, response, started)
    }
}

/// A gate plugin.
#[derive(Debug, Clone)]
pub struct PluginGate {
    name: String,
    plugin: Arc<Plugin>,
    timeout: Option<Duration>,
}

impl PluginGate {
    /// The gate `name` backed by `plugin`; fails unless the plugin serves gates.
    pub fn new(name: impl Into<String>, plugin: Arc<Plugin>) -> Result<Self, PluginError> {
        plugin.require(PluginKind::Gate)?;
        Ok(Self { name: name.into(), plugin, timeout: None })
    }

    /// Gives up on a call after `timeout`.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl QualityGate for PluginGate {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, ctx: &GateContext) -> Result<GateReport, GateError> {
        let started = Instant::now();
        let problems = self.plugin.validate_config(&ctx.config);
        if !problems.is_empty() {
            return Err(GateError::Internal { gate: self.name.clone(), message: config_message(&problems) });
        }
        let request = PluginRequest::Gate { context: Box::new(ctx.clone()) };
        let response = with_timeout(self.timeout, self.plugin.call_blocking(request))
            .await
            .map_err(|after| GateError::Internal { gate: self.name.clone(), message: format!("timed out after {after:?}") })?
            .map_err(|e| GateError::Internal { gate: self.name.clone(), message: e.to_string() })?;
        finish_gate(&self.name, response, started)
    }
}

/// A plugin type linked into the host, used as an `Agent` or a `QualityGate` without a
/// library in between. Cloning it is cheap and shares the plugin.
#[derive(Debug)]
pub struct InProcess<P> {
    name: String,
    plugin: Arc<P>,
    manifest: Arc<PluginManifest>,
    config_validator: Arc<Result<jsonschema::Validator, String>>,
    timeout: Option<Duration>,
}

// Not derived: that would require `P: Clone`, and the plugin is shared, not copied.
impl<P> Clone for InProcess<P> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            plugin: Arc::clone(&self.plugin),
            manifest: Arc::clone(&self.manifest),
            config_validator: Arc::clone(&self.config_validator),
            timeout: self.timeout,
        }
    }
}

impl<P: PluginImpl> InProcess<P> {
    /// Wraps `plugin` under the name of its manifest.
    pub fn new(plugin: P) -> Self {
        let manifest = plugin.manifest();
        let config_validator = jsonschema::validator_for(&manifest.config_schema)
            .map_err(|e| format!("the plugin's config_schema is not a valid JSON schema: {e}"));
        Self {
            name: manifest.name.clone(),
            plugin: Arc::new(plugin),
            manifest: Arc::new(manifest),
            config_validator: Arc::new(config_validator),
            timeout: None,
        }
    }

    /// Renames it (the plan's agent key, or the gate's name).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Gives up on a call after `timeout` when the context sets none (as a gate: always).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    /// Validates `config` against the plugin's `config_schema`, like
    /// [`Plugin::validate_config`]; a `config_schema` that is not a valid schema is one
    /// violation at `""`.
    pub fn validate_config(&self, config: &serde_json::Value) -> Vec<Violation> {
        match self.config_validator.as_ref() {
            Ok(validator) => super::violations(validator, config),
            Err(message) => vec![Violation { pointer: String::new(), message: message.clone() }],
        }
    }

    fn check_config(&self, config: &serde_json::Value) -> Result<(), String> {
        let problems = self.validate_config(config);
        if problems.is_empty() { Ok(()) } else { Err(config_message(&problems)) }
    }

    async fn invoke(&self, request: PluginRequest) -> Result<PluginResponse, String> {
        let plugin = Arc::clone(&self.plugin);
        tokio::task::spawn_blocking(move || {
            catch_unwind(AssertUnwindSafe(|| plugin.invoke(request)))
                .unwrap_or_else(|payload| Err(format!("the plugin panicked: {}", panic_message(payload.as_ref()))))
        })
        .await
        .map_err(|e| format!("the call was aborted: {e}"))?
    }
}

#[async_trait]
impl<P: PluginImpl + std::fmt::Debug> Agent for InProcess<P> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, ctx: AgentContext) -> Result<AgentReport, AgentError> {
        let started = Instant::now();
        let plugin_error = |message: String| AgentError::Plugin { plugin: self.manifest.name.clone(), message };
        self.check_config(&ctx.config).map_err(plugin_error)?;
        let request = PluginRequest::Agent { context: Box::new(ctx.clone()) };
        let response = with_timeout(ctx.timeout.or(self.timeout), self.invoke(request))
            .await
            .map_err(|after| AgentError::Timeout { agent: self.name.clone(), after })?
            .map_err(plugin_error)?;
        match response {
            PluginResponse::Error { message } => Err(plugin_error(message)),
            other => finish_agent(&self.name, &ctx, other, started),
        }
    }
}

#[async_trait]
impl<P: PluginImpl + std::fmt::Debug> QualityGate for InProcess<P> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, ctx: &GateContext) -> Result<GateReport, GateError> {
        let started = Instant::now();
        let internal = |message: String| GateError::Internal { gate: self.name.clone(), message };
        self.check_config(&ctx.config).map_err(internal)?;
        let request = PluginRequest::Gate { context: Box::new(ctx.clone()) };
        let response = with_timeout(self.timeout, self.invoke(request))
            .await
            .map_err(|after| internal(format!("timed out after {after:?}")))?
            .map_err(internal)?;
        match response {
            PluginResponse::Error { message } => Err(internal(message)),
            other => finish_gate(&self.name, other, started),
        }
    }
}

#[cfg(test)]
mod tests {
    use fugue_core::TaskId;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Default)]
    struct Toy;

    impl PluginImpl for Toy {
        fn manifest(&self) -> PluginManifest {
            PluginManifest::new(
                "toy",
                "0.1.0",
                PluginKind::Agent,
                "a toy",
                json!({"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": false}),
            )
            .with_capabilities(&[PluginKind::Gate])
        }
        fn agent(&self, ctx: AgentContext) -> Result<AgentReport, String> {
            match ctx.prompt.as_str() {
                "panic" => panic!("toy panicked"),
                "fail" => Err("toy refuses".to_owned()),
                _ => Ok(AgentReport::ready(format!("did {}", ctx.prompt))),
            }
        }
        fn gate(&self, ctx: &GateContext) -> Result<GateReport, String> {
            Ok(GateReport::pass(format!("toy:{}", ctx.task_id)))
        }
    }

    fn ctx(prompt: &str, config: serde_json::Value) -> AgentContext {
        let mut ctx = AgentContext::new(TaskId::new("t1").expect("id"), prompt, "/tmp");
        ctx.config = config;
        ctx
    }

    #[tokio::test]
    async fn in_process_agent_reports_errors_and_panics() {
        let toy = InProcess::new(Toy).named("helper");
        assert_eq!(Agent::name(&toy), "helper");
        let ok = toy.run(ctx("work", json!({"n": 1}))).await.expect("runs");
        assert_eq!(ok.summary, "did work");
        let bad = toy.run(ctx("work", json!({"n": "one"}))).await.expect_err("config");
        assert!(bad.to_string().contains("invalid config: at /n:"), "{bad}");
        let refused = toy.run(ctx("fail", json!({}))).await.expect_err("refuses");
        assert_eq!(refused.to_string(), "plugin `toy` failed: toy refuses");
        let panicked = toy.run(ctx("panic", json!({}))).await.expect_err("panics");
        assert!(panicked.to_string().contains("the plugin panicked: toy panicked"), "{panicked}");
    }

    #[tokio::test]
    async fn in_process_gate() {
        let toy = InProcess::new(Toy);
        let gate_ctx: GateContext = serde_json::from_value(json!({
            "task_id": "t9", "phase": "implementation", "checkout": "/tmp", "base_commit": "a", "head_commit": "b",
            "changed_files": [], "diff": "", "modifies": [], "common": [], "config": {}
        }))
        .expect("context");
        let report = toy.check(&gate_ctx).await.expect("checks");
        assert_eq!(report.gate, "toy:t9");
        assert!(report.passed());
    }
}
