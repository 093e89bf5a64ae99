//! The plugin loader against real libraries: the two plugins of the workspace as cargo builds
//! them, and deliberately broken plugins compiled by the test suite. Every broken plugin must
//! give a clear error and leave the host working. And built-in plugins: the codemod rlib
//! linked into this test binary, registered, and found by bare name like a library.

mod common;

use std::path::Path;
use std::sync::Arc;

use fugue_agents::{
    Plugin, PluginAgent, PluginError, PluginGate, PluginHandle, agent_from_spec, builtin_plugin, check_plan_agents, check_plan_plugins,
    discover_plugins, open_plugin_in, register_builtin, resolve_plugin_in, validate_config,
};
use fugue_core::plugin::{PluginImpl, PluginKind, PluginManifest, PluginRequest};
use fugue_core::{Agent, AgentContext, AgentError, AgentOutcome, GateContext, GateVerdict, Pattern, Plan, QualityGate, TaskId};
use serde_json::json;

fn ctx(dir: &Path, modifies: &[&str], config: serde_json::Value) -> AgentContext {
    let mut ctx = AgentContext::new(TaskId::new("rename").expect("id"), "rename old_name", dir);
    ctx.modifies = modifies.iter().map(|p| Pattern::parse(p).expect("pattern")).collect();
    ctx.config = config;
    ctx
}

fn sample_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in [("src/a/lib.rs", "fn old_name() {}\n"), ("src/b/lib.rs", "fn old_name() {}\n")] {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    dir
}

fn gate_context(diff: &str, config: serde_json::Value) -> GateContext {
    serde_json::from_value(json!({
        "task_id": "t1", "phase": "implementation", "checkout": "/tmp", "base_commit": "a", "head_commit": "b",
        "changed_files": ["src/lib.rs"], "diff": diff, "modifies": ["src/**"], "common": [], "config": config
    }))
    .expect("gate context")
}

#[tokio::test]
async fn codemod_runs_through_the_abi() {
    let plugin = Plugin::load(common::codemod()).expect("loads");
    assert_eq!(plugin.name(), "codemod");
    assert_eq!(plugin.manifest().kind, PluginKind::Agent);
    assert!(Arc::ptr_eq(&plugin, &Plugin::load(common::codemod()).expect("loads again")), "a second load returns the same plugin");

    let repo = sample_repo();
    let agent = PluginAgent::new("cm", Arc::clone(&plugin)).expect("agent plugin");
    let config = json!({"edits": [{"replace": "old_name", "with": "new_name"}]});
    let report = agent.run(ctx(repo.path(), &["src/a/**"], config.clone())).await.expect("runs");
    assert_eq!(report.outcome, AgentOutcome::ReadyForQa, "{report:?}");
    assert_eq!(report.files_modified, ["src/a/lib.rs"]);
    assert_eq!(std::fs::read_to_string(repo.path().join("src/a/lib.rs")).expect("read"), "fn new_name() {}\n");
    assert_eq!(std::fs::read_to_string(repo.path().join("src/b/lib.rs")).expect("read"), "fn old_name() {}\n");

    // An explicit glob reaching outside the scope is refused, naming the path.
    let wide = json!({"edits": [{"replace": "old_name", "with": "x", "files": ["src/**/*.rs"]}]});
    let report = agent.run(ctx(repo.path(), &["src/a/**"], wide)).await.expect("runs");
    assert_eq!(report.outcome, AgentOutcome::Failed);
    assert!(report.summary.contains("`src/b/lib.rs`"), "{}", report.summary);
}

#[tokio::test]
async fn configs_are_validated_with_pointers_before_the_call() {
    let plugin = Plugin::load(common::codemod()).expect("loads");
    let bad = json!({"edits": [{"replace": "a", "with": "b"}, {"create": 5, "template": "t"}], "typo": true});
    let violations = plugin.validate_config(&bad);
    let pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
    assert!(pointers.contains(&"/edits/1"), "{violations:?}");
    assert!(pointers.contains(&""), "{violations:?}");
    assert_eq!(validate_config(plugin.manifest(), &bad), violations, "the manifest-only check agrees");

    let repo = sample_repo();
    let agent = PluginAgent::new("cm", plugin).expect("agent plugin");
    let err = agent.run(ctx(repo.path(), &["src/**"], bad)).await.expect_err("rejected");
    assert!(matches!(err, AgentError::Plugin { .. }));
    let text = err.to_string();
    assert!(text.starts_with("plugin `codemod` failed: invalid config: "), "{text}");
    assert!(text.contains("at /edits/1:"), "{text}");
    assert_eq!(std::fs::read_to_string(repo.path().join("src/a/lib.rs")).expect("read"), "fn old_name() {}\n", "nothing ran");
}

#[tokio::test]
async fn heuristic_review_is_a_gate_and_a_reviewer_agent() {
    let plugin = Plugin::load(common::heuristic_review()).expect("loads");
    assert_eq!(plugin.manifest().kind, PluginKind::Gate);
    let diff =
        "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1,2 @@\n fn a() {}\n+fn b() { c().unwrap(); }\n";
    let gate = PluginGate::new("review", Arc::clone(&plugin)).expect("gate plugin");
    let report = gate.check(&gate_context(diff, json!({"min_score": 9}))).await.expect("checks");
    assert_eq!(report.gate, "heuristic-review");
    assert_eq!(report.verdict, GateVerdict::Fail);
    assert_eq!(report.score, Some(8.0));
    assert!(report.findings.iter().any(|f| f.line == Some(2) && f.file.as_deref() == Some("src/lib.rs")), "{report:?}");
    let err = gate.check(&gate_context(diff, json!({"min_score": 11}))).await.expect_err("bad config");
    assert!(err.to_string().contains("at /min_score:"), "{err}");

    let reviewer = PluginAgent::new("reviewer", plugin).expect("capabilities include agent");
    let report = reviewer.run(ctx(Path::new("/"), &[], json!({"diff": diff}))).await.expect("reviews");
    let review: fugue_core::ReviewReport = serde_json::from_str(&report.output).expect("review report JSON");
    assert_eq!(review.score, 8.0);

    let codemod = Plugin::load(common::codemod()).expect("loads");
    let err = PluginGate::new("x", codemod).expect_err("codemod is no gate");
    assert!(err.to_string().contains("is an agent plugin and cannot be used as a gate"), "{err}");
}

#[tokio::test]
async fn concurrent_calls_share_one_library() {
    let plugin = Plugin::load(common::heuristic_review()).expect("loads");
    let mut calls = Vec::new();
    for i in 0..8 {
        let plugin = Arc::clone(&plugin);
        let diff = format!("diff --git a/x{i}.md b/x{i}.md\n--- /dev/null\n+++ b/x{i}.md\n@@ -0,0 +1 @@\n+TODO {i}\n");
        calls.push(tokio::spawn(async move {
            plugin.call_blocking(PluginRequest::Gate { context: Box::new(gate_context(&diff, json!({}))) }).await
        }));
    }
    for call in calls {
        assert!(call.await.expect("joins").is_ok());
    }
}

#[test]
fn plan_checks_point_into_the_plan() {
    let plan: Plan = serde_json::from_value(json!({
        "version": 1,
        "agents": {
            "cm": {"plugin": common::codemod(), "config": {"edits": [{"replace": "a", "with": "b"}]}},
            "review": {"plugin": common::heuristic_review()},
            "ghost": {"plugin": "no-such-plugin-anywhere"}
        },
        "tasks": [
            {"id": "ok", "agent": "cm", "modifies": ["src/**"]},
            {"id": "bad-task", "agent": "cm", "modifies": ["src/**"], "config": {"edits": [{"insert_after": "x"}]}},
            {"id": "bad-agent", "agent": "cm", "modifies": ["src/**"], "config": {"fail_if_unchanged": "yes"}}
        ]
    }))
    .expect("plan");
    let issues = check_plan_plugins(&plan, Path::new("/"));
    let found: Vec<(&str, &str)> = issues.iter().map(|i| (i.code.as_str(), i.pointer.as_str())).collect();
    assert!(found.contains(&("plugin/config", "/tasks/1/config/edits/0")), "{issues:#?}");
    assert!(found.contains(&("plugin/config", "/tasks/2/config/fail_if_unchanged")), "{issues:#?}");
    assert!(found.contains(&("plugin/load", "/agents/ghost/plugin")), "{issues:#?}");
    // heuristic-review serves agents through its capabilities and its empty config is valid.
    assert!(!found.iter().any(|(_, p)| p.starts_with("/agents/review") || p.starts_with("/tasks/0")), "{issues:#?}");
    let task_issue = issues.iter().find(|i| i.pointer == "/tasks/1/config/edits/0").expect("issue");
    assert!(task_issue.message.starts_with("config for plugin `codemod` (task `bad-task`): "), "{}", task_issue.message);
    assert!(task_issue.is_error());
}

#[test]
fn plugins_are_found_by_name_and_by_scanning() {
    let dir = common::codemod().parent().expect("target dir").to_owned();
    let found = resolve_plugin_in(Path::new("codemod"), Path::new("/"), std::slice::from_ref(&dir)).expect("by bare name");
    assert_eq!(found, common::codemod());
    let listed = discover_plugins(&[dir]);
    let names: Vec<String> = listed.iter().filter_map(|s| s.plugin.as_ref().ok()).map(|p| p.name().to_owned()).collect();
    assert!(names.contains(&"codemod".to_owned()) && names.contains(&"heuristic-review".to_owned()), "{listed:?}");
}

fn load_err(name: &str, case: &str) -> (std::path::PathBuf, PluginError) {
    let path = common::fixture(name, "raw_plugin", Some(case), false);
    let err = Plugin::load(&path).expect_err("broken plugin must not load");
    (path, err)
}

#[test]
fn wrong_abi_is_named_exactly() {
    let (path, err) = load_err("wrong_abi", "wrong_abi");
    assert!(matches!(err, PluginError::AbiMismatch { found: 2, expected: 1, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("plugin {} was built for ABI 2, this fugue speaks ABI 1: rebuild it against fugue-core 0.1", path.display())
    );
}

#[test]
fn invalid_manifest_json() {
    let (_, err) = load_err("bad_json", "bad_json");
    assert!(matches!(err, PluginError::ManifestJson { .. }), "{err:?}");
    assert!(err.to_string().contains("returned a manifest that is not valid JSON"), "{err}");
}

#[test]
fn manifest_violating_the_schema() {
    let (_, err) = load_err("bad_schema", "bad_schema");
    let PluginError::ManifestSchema { violations, .. } = &err else { panic!("{err:?}") };
    let pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
    for p in ["/name", "/version", "/kind", "/description"] {
        assert!(pointers.contains(&p), "{p} missing from {violations:?}");
    }
    assert!(err.to_string().contains("has an invalid manifest (at /"), "{err}");
}

#[test]
fn config_schema_that_is_not_a_schema() {
    let (_, err) = load_err("bad_config_schema", "bad_config_schema");
    assert!(matches!(err, PluginError::ConfigSchema { .. }), "{err:?}");
    assert!(err.to_string().contains("has a config_schema that is not a valid JSON schema"), "{err}");
}

#[test]
fn missing_symbol() {
    let (_, err) = load_err("missing_invoke", "missing_invoke");
    assert!(matches!(err, PluginError::MissingSymbol { symbol: "fugue_plugin_invoke", .. }), "{err:?}");
    assert!(err.to_string().contains("does not export `fugue_plugin_invoke`"), "{err}");
}

#[tokio::test]
async fn garbage_responses_and_rejected_configs_from_a_raw_plugin() {
    let path = common::fixture("raw_ok", "raw_plugin", None, false);
    let plugin = Plugin::load(&path).expect("the valid raw plugin loads");
    let agent = PluginAgent::new("raw", plugin).expect("agent");
    let report = agent.run(ctx(Path::new("/"), &[], json!({"greeting": "hi"}))).await.expect("runs");
    assert!(report.summary.starts_with("raw plugin got ") && report.summary.ends_with(" request bytes"), "{}", report.summary);
    let err = agent.run(ctx(Path::new("/"), &[], json!({"greeting": 5, "other": 1}))).await.expect_err("rejected");
    let text = err.to_string();
    assert!(text.contains("at /greeting:") && text.contains("other"), "{text}");

    let garbage = Plugin::load(&common::fixture("garbage", "raw_plugin", Some("garbage_response"), false)).expect("loads");
    let err =
        PluginAgent::new("g", garbage).expect("agent").run(ctx(Path::new("/"), &[], json!({"greeting": "hi"}))).await.expect_err("garbage");
    assert!(err.to_string().contains("returned a response that is not a valid plugin response"), "{err}");
}

#[tokio::test]
async fn a_panicking_plugin_is_an_error_and_the_host_survives() {
    let plugin = Plugin::load(&common::fixture("boom", "panicking_plugin", None, true)).expect("loads");
    assert_eq!(plugin.name(), "boom");
    let agent = PluginAgent::new("boom", plugin).expect("agent");
    for _ in 0..3 {
        let err = agent.run(ctx(Path::new("/"), &[], json!({}))).await.expect_err("panics");
        assert_eq!(err.to_string(), "plugin `boom` failed: the plugin panicked: boom: deliberate panic in task rename");
    }
    // The host still works, with this plugin and with others.
    let codemod = Plugin::load(common::codemod()).expect("loads");
    let repo = sample_repo();
    let report = PluginAgent::new("cm", codemod)
        .expect("agent")
        .run(ctx(repo.path(), &["src/**"], json!({"edits": [{"replace": "old", "with": "new"}]})))
        .await
        .expect("runs");
    assert_eq!(report.files_modified.len(), 2);
}

fn register_codemod() {
    let builtin = register_builtin(fugue_plugin_codemod::Codemod).expect("codemod's manifest is valid");
    assert_eq!(builtin.name(), "codemod");
}

#[tokio::test]
async fn a_linked_plugin_runs_by_bare_name_without_a_library() {
    register_codemod();
    let handle = open_plugin_in(Path::new("codemod"), Path::new("/"), &[]).expect("the built-in");
    let PluginHandle::Builtin(builtin) = &handle else { panic!("no library is searched, so the built-in answers: {handle:?}") };
    assert_eq!(builtin.manifest(), &fugue_plugin_codemod::Codemod.manifest());
    assert_eq!(handle.path(), None);
    let err = handle.gate("g", None).err().expect("codemod is no gate");
    assert_eq!(err.to_string(), "built-in plugin `codemod` is an agent plugin and cannot be used as a gate");

    // As the engine builds it: the plan's key, its timeout, the config checked before the call.
    let spec = serde_json::from_value(json!({"plugin": "codemod", "timeout": "30s"})).expect("spec");
    let agent = agent_from_spec("rename", &spec, Path::new("/")).expect("agent");
    assert_eq!(agent.name(), "rename");
    let repo = sample_repo();
    let report =
        agent.run(ctx(repo.path(), &["src/a/**"], json!({"edits": [{"replace": "old_name", "with": "new_name"}]}))).await.expect("runs");
    assert_eq!(report.outcome, AgentOutcome::ReadyForQa, "{report:?}");
    assert_eq!(report.files_modified, ["src/a/lib.rs"]);
    assert_eq!(std::fs::read_to_string(repo.path().join("src/a/lib.rs")).expect("read"), "fn new_name() {}\n");
    let err = agent.run(ctx(repo.path(), &["src/**"], json!({"edits": [{"create": 5}]}))).await.expect_err("bad config");
    assert!(err.to_string().starts_with("plugin `codemod` failed: invalid config: at /edits/0"), "{err}");
}

#[test]
fn a_library_on_disk_wins_over_the_builtin() {
    register_codemod();
    let dir = common::codemod().parent().expect("target dir").to_owned();
    let handle = open_plugin_in(Path::new("codemod"), Path::new("/"), std::slice::from_ref(&dir)).expect("the library");
    assert!(matches!(&handle, PluginHandle::Library(p) if p.path() == common::codemod()), "{handle:?}");
    assert_eq!(handle.inspect_spec(), common::codemod().display().to_string());
    // A path is never a built-in, even when the name matches one.
    let err = open_plugin_in(Path::new("plugins/codemod"), Path::new("/nonexistent"), &[]).expect_err("missing file");
    assert!(matches!(err, PluginError::Missing { .. }), "{err:?}");
}

#[test]
fn plan_checks_treat_a_builtin_like_its_library() {
    register_codemod();
    let plan_with = |plugin: serde_json::Value| -> Plan {
        serde_json::from_value(json!({
            "version": 1,
            "agents": {"cm": {"plugin": plugin, "config": {"edits": [{"replace": "a", "with": "b"}], "typo": 1}}},
            "tasks": [
                {"id": "ok", "agent": "cm", "modifies": ["src/**"]},
                {"id": "bad-task", "agent": "cm", "modifies": ["src/**"], "config": {"edits": [{"insert_after": "x"}]}}
            ]
        }))
        .expect("plan")
    };
    let summary = |plan: &Plan| -> Vec<(String, String, String)> {
        check_plan_plugins(plan, Path::new("/")).into_iter().map(|i| (i.code, i.pointer, i.message)).collect()
    };
    let by_name = summary(&plan_with(json!("codemod")));
    assert_eq!(by_name, summary(&plan_with(json!(common::codemod()))), "the built-in and the library give the same issues");
    let pointers: Vec<&str> = by_name.iter().map(|i| i.1.as_str()).collect();
    assert!(pointers.contains(&"/tasks/1/config/edits/0"), "{by_name:#?}");
    assert!(pointers.contains(&"/agents/cm/config"), "{by_name:#?}");
    assert!(by_name.iter().all(|i| i.0 == "plugin/config"), "{by_name:#?}");
    let issues = check_plan_plugins(&plan_with(json!("codemod")), Path::new("/"));
    assert!(issues.iter().all(|i| i.help.as_deref().is_some_and(|h| h.starts_with("`fugue plugins inspect "))), "{issues:#?}");
}

/// A gate-only plugin type, to see a built-in refused as an agent.
#[derive(Debug, Default)]
struct GateOnly;

impl PluginImpl for GateOnly {
    fn manifest(&self) -> PluginManifest {
        PluginManifest::new("gate-only-builtin", "0.1.0", PluginKind::Gate, "judges", json!({"type": "object"}))
    }
}

#[test]
fn a_builtin_of_the_wrong_kind_is_a_plan_issue() {
    register_builtin(GateOnly).expect("valid manifest");
    assert!(builtin_plugin("gate-only-builtin").is_some());
    let plan: Plan = serde_json::from_value(json!({
        "version": 1,
        "agents": {"judge": {"plugin": "gate-only-builtin"}, "ghost": {"plugin": "no-such-plugin-anywhere"}},
        "tasks": [{"id": "t", "agent": "judge", "modifies": ["src/**"]}]
    }))
    .expect("plan");
    let issues = check_plan_agents(&plan, Path::new("/"));
    let kind = issues.iter().find(|i| i.code == "plugin/kind").expect("kind issue");
    assert_eq!(kind.pointer, "/agents/judge/plugin");
    assert_eq!(kind.message, "built-in plugin `gate-only-builtin` is a gate plugin and cannot be used as an agent");
    assert!(issues.iter().any(|i| i.code == "plugin/load" && i.pointer == "/agents/ghost/plugin"), "{issues:#?}");
}
