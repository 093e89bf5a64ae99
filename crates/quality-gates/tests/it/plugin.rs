//! Reviewers named in a plan: the heuristic-review plugin loaded as a dynamic library or
//! registered as a built-in, and a command agent, all built by `Reviewer::from_plan` /
//! `Qa::from_plan`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use fugue_core::{AgentSpec, GateVerdict, Plan, QaVerdict, QualityGate, ReviewGateSpec};
use fugue_quality_gates::{GateSettings, Qa, QaRequest, ReviewGate, Reviewer};
use serde_json::json;

use crate::common::{Fixture, added_file, context, write};

/// The heuristic-review plugin's shared library, built with cargo once per test run.
fn plugin_library() -> &'static PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .args(["build", "--quiet", "--message-format=json", "-p", "fugue-plugin-heuristic-review"])
            .output()
            .expect("run cargo");
        assert!(out.status.success(), "building the plugin failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "fugue_plugin_heuristic_review")
            .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f.as_str().map(PathBuf::from))
            .find(|f| f.to_string_lossy().ends_with(std::env::consts::DLL_SUFFIX))
            .expect("the plugin's shared library in cargo's output")
    })
}

fn spec(agent: &str) -> ReviewGateSpec {
    ReviewGateSpec { agent: Some(agent.to_owned()), ..ReviewGateSpec::default() }
}

const DIRTY: &str = "pub fn f(s: &str) -> u32 {\n    // FIXME\n    s.parse().unwrap()\n}\n";

#[tokio::test]
async fn a_plugin_reviewer_from_the_plan_reviews_as_a_gate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agents: BTreeMap<String, AgentSpec> = serde_json::from_value(json!({
        "strict": {"plugin": plugin_library(), "config": {"max_function_lines": 40}},
        "misconfigured": {"plugin": plugin_library(), "config": {"no_such_key": 1}},
    }))
    .expect("agents");
    let reviewer = Reviewer::from_plan(&spec("strict"), &agents, dir.path(), &GateSettings::default()).expect("plugin loads");
    assert!(matches!(reviewer, Reviewer::Gate { .. }), "a plugin serving gates is used as a gate: {reviewer:?}");
    let bar = ReviewGateSpec { min_score: 8, ..spec("strict") };
    let gate = ReviewGate::new(bar, Arc::new(reviewer), Arc::new(GateSettings::default()));
    let report = gate.check(&context(dir.path(), &added_file("src/lib.rs", DIRTY), &[], &["**"])).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Fail, "{report:?}");
    assert_eq!(report.score, Some(7.6), "one unwrap, one FIXME, no test");
    assert!(report.findings[0].message.starts_with("the review score 7.6/10 is below the minimum of 8"), "{report:?}");
    assert!(report.findings.iter().any(|f| f.message.contains("`unwrap` in non-test code")), "{report:?}");

    let bad = Reviewer::from_plan(&spec("misconfigured"), &agents, dir.path(), &GateSettings::default()).expect("plugin loads");
    let gate = ReviewGate::new(spec("misconfigured"), Arc::new(bad), Arc::new(GateSettings::default()));
    let report = gate.check(&context(dir.path(), &added_file("src/lib.rs", DIRTY), &[], &["**"])).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Blocked, "{report:?}");
    assert!(report.findings[0].message.contains("no_such_key"), "{}", report.findings[0].message);

    let missing: BTreeMap<String, AgentSpec> = serde_json::from_value(json!({"gone": {"plugin": "does/not/exist.so"}})).expect("agents");
    let err = Reviewer::from_plan(&spec("gone"), &missing, dir.path(), &GateSettings::default()).expect_err("missing library");
    assert!(err.to_string().starts_with("failed to load reviewer `gone`"), "{err}");
}

#[tokio::test]
async fn a_builtin_reviewer_needs_no_library() {
    fugue_agents::register_builtin(fugue_quality_gates::heuristic::HeuristicReview).expect("valid manifest");
    let dir = tempfile::tempdir().expect("tempdir");
    let agents: BTreeMap<String, AgentSpec> =
        serde_json::from_value(json!({"linked": {"plugin": "heuristic-review", "config": {"max_function_lines": 40}}})).expect("agents");
    let reviewer = Reviewer::from_plan(&spec("linked"), &agents, dir.path(), &GateSettings::default())
        .expect("the built-in (or a library in FUGUE_PLUGIN_PATH)");
    assert!(matches!(reviewer, Reviewer::Gate { .. }), "{reviewer:?}");
    let gate = ReviewGate::new(ReviewGateSpec { min_score: 8, ..spec("linked") }, Arc::new(reviewer), Arc::new(GateSettings::default()));
    let report = gate.check(&context(dir.path(), &added_file("src/lib.rs", DIRTY), &[], &["**"])).await.expect("report");
    assert_eq!((report.verdict, report.score), (GateVerdict::Fail, Some(7.6)), "the same review as the library: {report:?}");
}

#[tokio::test]
async fn qa_from_a_plan_uses_its_command_reviewer() {
    let fx = Fixture::new();
    write(&fx.worktree, "src/lib.rs", "/// One.\npub const ONE: u8 = 1;\n");
    fx.commit("one");
    // A "model" that reads the diff fugue gives it and judges by what it sees.
    let script = r#"if grep -q 'ONE' "$FUGUE_DIFF_FILE"; then echo '{"score": 3, "findings": [{"severity": "high", "file": "src/lib.rs", "line": 2, "message": "magic constant"}]}'; else echo '{"score": 9, "findings": []}'; fi"#;
    let plan: Plan = serde_json::from_value(json!({
        "version": 1,
        "agents": {"model": {"command": ["sh", "-c", script]}, "worker": {"command": ["true"]}},
        "gates": {"review": {"agent": "model"}},
        "tasks": [{"id": "t1", "agent": "worker", "modifies": ["src/**"]}]
    }))
    .expect("plan");
    let qa = Qa::from_plan(&plan, fx.dir.path(), &fx.qa_dir, GateSettings::default()).expect("qa");
    let outcome = qa.verify(&QaRequest::new(&plan.tasks[0], &fx.repo, &fx.worktree, "auto/t1", &fx.base)).await.expect("QA");
    assert_eq!(outcome.verdict, QaVerdict::TaskRejected, "{outcome:#?}");
    let feedback = outcome.feedback.expect("feedback");
    assert!(feedback.contains("## review: fail (score 3/10)"), "{feedback}");
    assert!(feedback.contains("- [high] src/lib.rs:2: magic constant"), "{feedback}");
    assert!(feedback.contains("(reviewer `model`)"), "{feedback}");
}
