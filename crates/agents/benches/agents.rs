//! Benchmarks of the command agent and the plugin loader: `cargo bench -p fugue-agents`.
//!
//! * spawn-to-report latency of a command agent running `true`;
//! * output throughput of a command agent printing 64 MiB (capture capped, no log);
//! * plugin load (dlopen, ABI check, manifest validation, config-schema compile);
//! * one heuristic review through the C ABI on the blocking pool;
//! * one codemod run through the C ABI vs the same plugin in-process (the built-in path);
//! * config validation against a plugin's schema.
//!
//! The plugin libraries are built with cargo in the bench's profile first. The in-process
//! comparison uses codemod, the one plugin rlib this crate links: the heuristic review lives
//! in fugue-quality-gates, which depends on this crate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fugue_agents::{CommandAgent, InProcess, Plugin, PluginAgent, PluginGate};
use fugue_core::{Agent, AgentContext, CommandAgentSpec, GateContext, Pattern, PromptInput, QualityGate, TaskId};

fn report(name: &str, runs: u32, total: Duration, extra: &str) {
    let per = total / runs;
    let out = format!("{name:<54} {runs:>6} runs  {per:>12.3?}/run  {extra}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), out.as_bytes());
}

fn build_plugin(package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("bench exe");
    let release = exe.components().any(|c| c.as_os_str() == "release");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    cmd.args(["build", "--quiet", "--message-format=json", "-p", package]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cargo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == package.replace('-', "_").as_str())
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "so" || e == "dylib"))
        .expect("plugin library in cargo's output")
}

fn diff(files: usize, lines: usize) -> String {
    let mut d = String::new();
    for f in 0..files {
        d.push_str(&format!("diff --git a/src/m{f}.rs b/src/m{f}.rs\n--- /dev/null\n+++ b/src/m{f}.rs\n@@ -0,0 +1,{lines} @@\n"));
        for l in 0..lines {
            d.push_str(&format!("+    let value_{l} = compute({l}).map(|x| x + 1); // note {l}\n"));
        }
    }
    d
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = AgentContext::new(TaskId::new("bench").expect("id"), "p", dir.path());

    let spec = |argv: &[&str]| CommandAgentSpec {
        command: argv.iter().map(|s| (*s).to_owned()).collect(),
        timeout: None,
        env: Default::default(),
        prompt_via: PromptInput::Args,
        confine: None,
    };
    let agent = CommandAgent::new("true", spec(&["true"]));
    let runs = 100;
    let start = Instant::now();
    for _ in 0..runs {
        rt.block_on(agent.run(ctx.clone())).expect("runs");
    }
    report("command agent: spawn `true` to report", runs, start.elapsed(), "");

    let bytes: u64 = 64 << 20;
    let loud = CommandAgent::new("loud", spec(&["head", "-c", &bytes.to_string(), "/dev/zero"]));
    let runs = 3;
    let start = Instant::now();
    for _ in 0..runs {
        let r = rt.block_on(loud.run(ctx.clone())).expect("runs");
        assert!(r.output.len() <= CommandAgent::DEFAULT_OUTPUT_CAP + 64);
    }
    let elapsed = start.elapsed();
    let mib_s = (bytes * u64::from(runs)) as f64 / (1 << 20) as f64 / elapsed.as_secs_f64();
    report("command agent: 64 MiB of output, capped", runs, elapsed, &format!("{mib_s:.0} MiB/s"));

    let lib = build_plugin("fugue-plugin-heuristic-review");
    let start = Instant::now();
    let plugin = Plugin::load(&lib).expect("loads");
    report("plugin: first load (dlopen + checks)", 1, start.elapsed(), "");
    let runs = 10_000;
    let start = Instant::now();
    for _ in 0..runs {
        assert!(Plugin::load(&lib).is_ok());
    }
    report("plugin: cached load", runs, start.elapsed(), "");

    let config = serde_json::json!({"min_score": 8, "block_on": ["critical"], "max_function_lines": 60});
    let runs = 10_000;
    let start = Instant::now();
    for _ in 0..runs {
        assert!(plugin.validate_config(&config).is_empty());
    }
    report("plugin: validate a config", runs, start.elapsed(), "");

    for (label, files, lines) in [("small diff (1 file x 20 lines)", 1, 20), ("large diff (100 files x 100 lines)", 100, 100)] {
        let gate_ctx: GateContext = serde_json::from_value(serde_json::json!({
            "task_id": "bench", "phase": "implementation", "checkout": "/tmp", "base_commit": "a", "head_commit": "b",
            "changed_files": [], "diff": diff(files, lines), "modifies": [], "common": [], "config": {}
        }))
        .expect("context");
        let abi = PluginGate::new("review", Arc::clone(&plugin)).expect("gate");
        let runs = if files > 1 { 20 } else { 2_000 };
        let start = Instant::now();
        for _ in 0..runs {
            rt.block_on(abi.check(&gate_ctx)).expect("checks");
        }
        let added = (files * lines * runs as usize) as f64;
        let e = start.elapsed();
        report(&format!("review via C ABI, {label}"), runs, e, &format!("{:.0} added lines/s", added / e.as_secs_f64()));
    }

    // Codemod over 20 files of 100 lines, matching nothing (so every run does the same work):
    // the C ABI (JSON both ways, blocking pool) against the rlib in-process.
    let tree = tempfile::tempdir().expect("tempdir");
    for f in 0..20 {
        let text: String = (0..100).map(|l| format!("fn item_{f}_{l}() {{}}\n")).collect();
        let path = tree.path().join(format!("src/m{f}.rs"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    let mut codemod_ctx = AgentContext::new(TaskId::new("bench").expect("id"), "p", tree.path());
    codemod_ctx.modifies = std::iter::once(Pattern::parse("src/**").expect("pattern")).collect();
    codemod_ctx.config = serde_json::json!({"edits": [{"replace": "fn old_name\\(", "with": "fn new_name("}]});
    let abi = PluginAgent::new("cm", Plugin::load(&build_plugin("fugue-plugin-codemod")).expect("loads")).expect("agent");
    let local = InProcess::new(fugue_plugin_codemod::Codemod);
    let runs = 200;
    for (label, agent) in
        [("codemod via C ABI, 20 files x 100 lines", &abi as &dyn Agent), ("codemod in-process, 20 files x 100 lines", &local)]
    {
        let start = Instant::now();
        for _ in 0..runs {
            let r = rt.block_on(agent.run(codemod_ctx.clone())).expect("runs");
            assert!(r.files_modified.is_empty(), "{r:?}");
        }
        report(label, runs, start.elapsed(), "");
    }
}
