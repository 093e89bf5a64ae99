//! The review gate: a reviewer scores the task's diff; the gate applies the plan's bar.
//!
//! A [`Reviewer`] is one of two shapes, whatever it is built from:
//!
//! * a **gate** — a [`QualityGate`] whose report carries `score` and `findings`: the built-in
//!   heuristic review ([`crate::heuristic`], run in-process, the default), or a
//!   plugin named in the plan's `agents` that serves gates. It gets the [`GateContext`] (diff,
//!   changed files, checkout) with `config` set to the plugin's config from the plan;
//! * an **agent** — an [`Agent`] run in the checkout whose output holds a review report as
//!   JSON: a command agent (a model CLI asked to print the report) or an agent-only plugin. It
//!   gets a prompt saying so, the diff in the file named by `FUGUE_DIFF_FILE`, and
//!   `FUGUE_BASE_COMMIT`/`FUGUE_HEAD_COMMIT`. The last JSON object in its output that has a
//!   `score` is the report.
//!
//! Either way the report must validate against `review-report.schema.json`; a reviewer that
//! cannot be run, crashes, exits non-zero, prints no report or an invalid one makes the gate
//! *blocked* with a message that says which — the reviewer's failure is not the task's. The
//! gate itself decides pass or fail, not the reviewer: pass when `score ≥ min_score` and no
//! finding has a severity in `block_on`. A failing score adds one finding that says so.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use fugue_agents::{CommandAgent, DriverAgent, InProcess, PluginError, open_plugin};
use fugue_core::plugin::PluginKind;
use fugue_core::{
    Agent, AgentContext, AgentOutcome, AgentSpec, ConfinePolicy, Finding, GateContext, GateReport, GateVerdict, QualityGate,
    ReviewGateSpec, ReviewReport, Severity, async_trait,
};

use crate::commands::quote_tail;
use crate::elapsed_ms;
use crate::heuristic::HeuristicReview;
use crate::settings::GateSettings;

/// The gate's name in reports.
pub const REVIEW_GATE: &str = "review";

/// The built-in reviewer's name; a plan may also name it in `gates.review.agent`.
pub const HEURISTIC_REVIEWER: &str = "heuristic-review";

const AGENT_PROMPT: &str = "Review the change of task `{task}` ({base}..{head}) in this checkout. The unified diff is in the \
file named by the FUGUE_DIFF_FILE environment variable. Print your review on standard output as one JSON object: \
{\"score\": <0-10>, \"findings\": [{\"severity\": \"info|low|medium|high|critical\", \"file\": \"<path>\", \"line\": <n>, \
\"message\": \"<what is wrong>\"}], \"summary\": \"<one line>\"}. Do not modify any file.";

static REVIEW_SCHEMA: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema = fugue_core::schema::all()
        .into_iter()
        .find(|(name, _)| *name == "review-report.schema.json")
        .ok_or_else(|| "fugue-core has no review-report schema".to_owned())?
        .1;
    let value = serde_json::to_value(schema).map_err(|e| e.to_string())?;
    jsonschema::validator_for(&value).map_err(|e| format!("the review-report schema does not compile: {e}"))
});

/// Why a plan's reviewer could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewerError {
    /// `gates.review.agent` names no agent of the plan.
    #[error(
        "failed to find reviewer `{name}`: `gates.review.agent` must name an agent of the plan's `agents` ({known}) or `heuristic-review`"
    )]
    UnknownAgent {
        /// The name.
        name: String,
        /// The plan's agent names.
        known: String,
    },
    /// The reviewer's plugin could not be loaded or serves neither gates nor agents.
    #[error("failed to load reviewer `{name}`: {source}")]
    Plugin {
        /// The agent name.
        name: String,
        /// Why.
        #[source]
        source: PluginError,
    },
}

/// Who reviews: a gate-shaped or an agent-shaped reviewer (see the module docs).
#[derive(Clone)]
#[non_exhaustive]
pub enum Reviewer {
    /// A gate whose report carries the score and findings.
    Gate {
        /// The reviewer's name (for messages).
        name: String,
        /// The gate.
        gate: Arc<dyn QualityGate>,
        /// The `config` it gets in its context.
        config: serde_json::Value,
    },
    /// An agent whose output holds a review report as JSON.
    Agent {
        /// The reviewer's name (its key in the plan's `agents`).
        name: String,
        /// The agent.
        agent: Arc<dyn Agent>,
        /// The `config` it gets in its context.
        config: serde_json::Value,
        /// Its time limit; the settings' `review_timeout` when `None`.
        timeout: Option<Duration>,
    },
}

impl fmt::Debug for Reviewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reviewer::Gate { name, config, .. } => f.debug_struct("Reviewer::Gate").field("name", name).field("config", config).finish(),
            Reviewer::Agent { name, config, timeout, .. } => {
                f.debug_struct("Reviewer::Agent").field("name", name).field("config", config).field("timeout", timeout).finish()
            }
        }
    }
}

impl Reviewer {
    /// The built-in heuristic review, in-process.
    pub fn heuristic() -> Self {
        Reviewer::Gate {
            name: HEURISTIC_REVIEWER.to_owned(),
            gate: Arc::new(InProcess::new(HeuristicReview).named(HEURISTIC_REVIEWER)),
            config: serde_json::Value::Object(Default::default()),
        }
    }

    /// A gate-shaped reviewer.
    pub fn from_gate(name: impl Into<String>, gate: Arc<dyn QualityGate>, config: serde_json::Value) -> Self {
        Reviewer::Gate { name: name.into(), gate, config }
    }

    /// An agent-shaped reviewer.
    pub fn from_agent(name: impl Into<String>, agent: Arc<dyn Agent>, config: serde_json::Value, timeout: Option<Duration>) -> Self {
        Reviewer::Agent { name: name.into(), agent, config, timeout }
    }

    /// The reviewer the plan's `gates.review` asks for: the heuristic review by default, else
    /// the named agent of `agents` (plugin paths resolved against `plan_dir`; a bare name no
    /// library matches may be a built-in plugin, see `fugue_agents::register_builtin`). A
    /// plugin that serves gates is used as a gate, else as an agent. A command agent runs
    /// through `settings.executor` with `settings.grace`.
    pub fn from_plan(
        spec: &ReviewGateSpec,
        agents: &BTreeMap<String, AgentSpec>,
        plan_dir: &Path,
        settings: &GateSettings,
    ) -> Result<Self, ReviewerError> {
        let Some(name) = spec.agent.as_deref() else { return Ok(Self::heuristic()) };
        let plugin_error = |source| ReviewerError::Plugin { name: name.to_owned(), source };
        match agents.get(name) {
            None if name == HEURISTIC_REVIEWER => Ok(Self::heuristic()),
            None => Err(ReviewerError::UnknownAgent {
                name: name.to_owned(),
                known: if agents.is_empty() { "none defined".to_owned() } else { agents.keys().cloned().collect::<Vec<_>>().join(", ") },
            }),
            Some(AgentSpec::Command(c)) => {
                // Reviewers run read-only (see `run_agent`): confined, they write nothing of the
                // checkout, only their temp dir.
                let agent = CommandAgent::new(name, c.clone())
                    .with_executor(Arc::clone(&settings.executor))
                    .with_grace(settings.grace)
                    .with_confinement(ConfinePolicy::new(c.confine.or(settings.confine)));
                Ok(Self::from_agent(name, Arc::new(agent), serde_json::json!({}), c.timeout.map(|t| t.0)))
            }
            Some(AgentSpec::Driver(d)) => {
                // A coding-agent CLI reviews in a read-only session (see `run_agent`).
                let agent = DriverAgent::new(name, d.clone())
                    .with_executor(Arc::clone(&settings.executor))
                    .with_confinement(ConfinePolicy::new(d.confine.or(settings.confine)));
                Ok(Self::from_agent(name, Arc::new(agent), serde_json::json!({ "driver": d.driver.name() }), d.timeout.map(|t| t.0)))
            }
            Some(AgentSpec::Plugin(p)) => {
                let plugin = open_plugin(&p.plugin, plan_dir).map_err(plugin_error)?;
                let config = p.config.clone().unwrap_or_else(|| serde_json::json!({}));
                let timeout = p.timeout.map(|t| t.0);
                if plugin.supports(PluginKind::Gate) {
                    Ok(Self::from_gate(name, plugin.gate(name, timeout).map_err(plugin_error)?, config))
                } else {
                    Ok(Self::from_agent(name, plugin.agent(name, timeout).map_err(plugin_error)?, config, timeout))
                }
            }
        }
    }

    /// The reviewer's name.
    pub fn name(&self) -> &str {
        match self {
            Reviewer::Gate { name, .. } | Reviewer::Agent { name, .. } => name,
        }
    }

    /// Reviews the work in `ctx`; `Err` says why no valid report came back.
    pub async fn review(&self, ctx: &GateContext, settings: &GateSettings) -> Result<ReviewReport, String> {
        let value = match self {
            Reviewer::Gate { name, gate, config } => {
                let mut ctx = ctx.clone();
                ctx.config = config.clone();
                let report = gate.check(&ctx).await.map_err(|e| format!("reviewer `{name}` failed: {e}"))?;
                if report.verdict == GateVerdict::Blocked {
                    let why: Vec<&str> = report.findings.iter().map(|f| f.message.as_str()).collect();
                    return Err(format!("reviewer `{name}` is blocked: {}", why.join("; ")));
                }
                let score = report.score.ok_or_else(|| format!("reviewer `{name}` returned a gate report without a score"))?;
                serde_json::json!({ "score": score, "findings": report.findings })
            }
            Reviewer::Agent { name, agent, config, timeout } => self.run_agent(name, agent, config, *timeout, ctx, settings).await?,
        };
        validate_report(self.name(), &value)
    }

    async fn run_agent(
        &self,
        name: &str,
        agent: &Arc<dyn Agent>,
        config: &serde_json::Value,
        timeout: Option<Duration>,
        ctx: &GateContext,
        settings: &GateSettings,
    ) -> Result<serde_json::Value, String> {
        let mut diff_file = tempfile::Builder::new()
            .prefix(&format!("fugue-review-{}-", ctx.task_id))
            .suffix(".diff")
            .tempfile()
            .map_err(|e| format!("failed to create a temporary file for the diff to review: {e}"))?;
        diff_file.write_all(ctx.diff.as_bytes()).map_err(|e| format!("failed to write the diff to review: {e}"))?;
        let mut prompt =
            AGENT_PROMPT.replace("{task}", ctx.task_id.as_str()).replace("{base}", &ctx.base_commit).replace("{head}", &ctx.head_commit);
        // A driven CLI reviews read-only, and a file outside its checkout may be out of its
        // reach: the diff comes in the prompt itself.
        let driven = config.get("driver").is_some();
        if driven {
            // One argv word holds at most 128 KiB on Linux.
            const IN_PROMPT: usize = 96 * 1024;
            let mut end = ctx.diff.len().min(IN_PROMPT);
            while !ctx.diff.is_char_boundary(end) {
                end -= 1;
            }
            let cut = if end < ctx.diff.len() { "\n[… the diff goes on; review what is shown …]" } else { "" };
            prompt.push_str(&format!(
                "\n\nAnswer with the JSON object only, as your final message.\n\nThe diff:\n```diff\n{}{cut}\n```\n",
                &ctx.diff[..end]
            ));
        }
        let mut actx = AgentContext::new(ctx.task_id.clone(), prompt, &ctx.checkout);
        actx.read_only = true;
        actx.task_name = format!("review of {}", ctx.task_id);
        actx.config = if driven { serde_json::json!({}) } else { config.clone() };
        actx.env = settings.env.clone();
        actx.env.insert("FUGUE_BASE_COMMIT".to_owned(), ctx.base_commit.clone());
        actx.env.insert("FUGUE_HEAD_COMMIT".to_owned(), ctx.head_commit.clone());
        actx.env.insert("FUGUE_DIFF_FILE".to_owned(), diff_file.path().display().to_string());
        actx.timeout = Some(timeout.unwrap_or(settings.review_timeout));
        let report = agent.run(actx).await.map_err(|e| format!("reviewer `{name}` failed: {e}"))?;
        if report.outcome == AgentOutcome::Failed {
            return Err(format!("reviewer `{name}` failed: {}{}", report.summary, quote_tail(&report.output, settings.quoted_lines)));
        }
        let said = report.final_message.as_deref().and_then(extract_report);
        said.or_else(|| extract_report(&report.output)).ok_or_else(|| {
            format!(
                "reviewer `{name}` printed no JSON review report (an object with `score` and `findings`); its output ends with:{}",
                quote_tail(&report.output, 10)
            )
        })
    }
}

/// The review report in an agent's output: the last JSON object starting a line that has a
/// `score`, else the first JSON object starting a line (so its schema errors can be shown).
pub(crate) fn extract_report(output: &str) -> Option<serde_json::Value> {
    let trimmed = output.trim();
    if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str(trimmed) {
        return Some(v);
    }
    let mut first = None;
    let mut best = None;
    let mut offset = 0;
    for line in output.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        if !line.trim_start().starts_with('{') {
            continue;
        }
        let mut values = serde_json::Deserializer::from_str(&output[start..]).into_iter::<serde_json::Value>();
        if let Some(Ok(v @ serde_json::Value::Object(_))) = values.next() {
            if v.get("score").is_some() {
                best = Some(v);
            } else if first.is_none() {
                first = Some(v);
            }
        }
    }
    best.or(first)
}

/// Validates `value` against the review-report schema and reads it.
pub fn validate_report(reviewer: &str, value: &serde_json::Value) -> Result<ReviewReport, String> {
    let validator = REVIEW_SCHEMA.as_ref().map_err(Clone::clone)?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(10)
        .map(|e| {
            let at = e.instance_path().as_str().to_owned();
            if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
        })
        .collect();
    if !errors.is_empty() {
        return Err(format!("the review report of `{reviewer}` does not match review-report.schema.json: {}", errors.join("; ")));
    }
    serde_json::from_value(value.clone()).map_err(|e| format!("the review report of `{reviewer}` cannot be read: {e}"))
}

/// The review gate.
#[derive(Debug, Clone)]
pub struct ReviewGate {
    spec: ReviewGateSpec,
    reviewer: Arc<Reviewer>,
    settings: Arc<GateSettings>,
}

impl ReviewGate {
    /// The gate applying `spec`'s bar to `reviewer`'s reports.
    pub fn new(spec: ReviewGateSpec, reviewer: Arc<Reviewer>, settings: Arc<GateSettings>) -> Self {
        Self { spec, reviewer, settings }
    }
}

#[async_trait]
impl QualityGate for ReviewGate {
    fn name(&self) -> &str {
        REVIEW_GATE
    }

    async fn check(&self, ctx: &GateContext) -> Result<fugue_core::GateReport, fugue_core::GateError> {
        let started = Instant::now();
        let mut report = GateReport::pass(REVIEW_GATE);
        match self.reviewer.review(ctx, &self.settings).await {
            Err(message) => {
                report.verdict = GateVerdict::Blocked;
                report.findings = vec![Finding { severity: Severity::High, file: None, line: None, message }];
            }
            Ok(review) => {
                let min = f64::from(self.spec.min_score);
                let blocking = review.findings.iter().filter(|f| self.spec.block_on.contains(&f.severity)).count();
                report.score = Some(review.score);
                report.findings = review.findings;
                if review.score < min || blocking > 0 {
                    report.verdict = GateVerdict::Fail;
                    let why = match (review.score < min, blocking) {
                        (true, 0) => format!("the review score {}/10 is below the minimum of {min}", review.score),
                        (true, n) => {
                            format!("the review score {}/10 is below the minimum of {min} and {n} finding(s) block the merge", review.score)
                        }
                        (false, n) => format!("{n} finding(s) of a blocking severity fail the review (score {}/10)", review.score),
                    };
                    let message = format!("{why} (reviewer `{}`): fix the findings below", self.reviewer.name());
                    report.findings.insert(0, Finding { severity: Severity::Medium, file: None, line: None, message });
                }
            }
        }
        report.duration_ms = elapsed_ms(started);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_report_from_noisy_output() {
        let out = "thinking…\n{\"note\": 1}\nwarning: x\n{\n  \"score\": 8,\n  \"findings\": [\n    {\"severity\": \"low\", \"message\": \"m\"}\n  ]\n}\ntrailing\n";
        let v = extract_report(out).expect("report");
        assert_eq!(v["score"], 8);
        assert_eq!(extract_report("{\"score\": 3, \"findings\": []}").expect("whole")["score"], 3);
        assert_eq!(extract_report("no json here"), None);
        assert_eq!(extract_report("{\"findings\": []}\n").expect("first object")["findings"], serde_json::json!([]));
    }

    #[test]
    fn schema_violations_are_named() {
        let ok = validate_report("r", &serde_json::json!({"score": 7.5, "findings": [{"severity": "low", "message": "m", "line": 3}]}));
        assert_eq!(ok.map(|r| r.score), Ok(7.5));
        let bad = validate_report("r", &serde_json::json!({"score": 12, "findings": [{"severity": "awful", "message": ""}]}))
            .expect_err("invalid");
        assert!(bad.contains("review-report.schema.json"), "{bad}");
        assert!(bad.contains("/score"), "{bad}");
        assert!(bad.contains("/findings/0/severity"), "{bad}");
        let missing = validate_report("r", &serde_json::json!({"findings": []})).expect_err("no score");
        assert!(missing.contains("score"), "{missing}");
    }

    #[test]
    fn unknown_reviewer_is_an_error() {
        let spec = ReviewGateSpec { agent: Some("nobody".to_owned()), ..ReviewGateSpec::default() };
        let settings = GateSettings::default();
        let err = Reviewer::from_plan(&spec, &BTreeMap::new(), Path::new("."), &settings).expect_err("unknown");
        assert!(err.to_string().contains("failed to find reviewer `nobody`"), "{err}");
        let spec = ReviewGateSpec { agent: Some(HEURISTIC_REVIEWER.to_owned()), ..ReviewGateSpec::default() };
        assert_eq!(Reviewer::from_plan(&spec, &BTreeMap::new(), Path::new("."), &settings).expect("built-in").name(), HEURISTIC_REVIEWER);
    }
}
