//! Benchmarks of the gates and of a whole QA round, with plain `Instant` timing.
//!
//! Run with `cargo bench -p fugue-quality-gates`. Each case runs a few warm-up rounds, then
//! reports the median and the fastest of its timed rounds.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fugue_core::{
    Boundaries, CommandLine, GateContext, GatesSpec, Pattern, Phase, QaVerdict, QualityGate, ReviewGateSpec, Scope, TaskId, TaskSpec,
    TestsGateSpec,
};
use fugue_quality_gates::{
    BoundaryGate, GateSettings, Qa, QaRequest, ReviewGate, Reviewer, TestsGate, boundary_findings, docs_findings, gate_context, run_gates,
};

fn report(name: &str, mut samples: Vec<Duration>, unit: Option<(&str, f64)>) {
    samples.sort();
    let median = samples[samples.len() / 2];
    let best = samples[0];
    let rate = unit.map(|(what, n)| format!("  ({:.0} {what}/s at the median)", n / median.as_secs_f64())).unwrap_or_default();
    let line = format!("{name:<60} median {:>10.3} ms   best {:>10.3} ms{rate}\n", median.as_secs_f64() * 1e3, best.as_secs_f64() * 1e3);
    let _ = std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes());
}

fn time<T>(rounds: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    for _ in 0..2 {
        std::hint::black_box(f());
    }
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect()
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "git {args:?} failed");
}

fn added_file(path: &str, body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let mut d = format!("diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n", lines.len());
    for l in lines {
        d.push('+');
        d.push_str(l);
        d.push('\n');
    }
    d
}

fn context(checkout: &Path, diff: String, changed: Vec<String>) -> GateContext {
    let mut ctx = gate_context(&TaskId::new("bench").expect("id"), Phase::Implementation, checkout);
    ctx.diff = diff;
    ctx.changed_files = changed;
    ctx.modifies = Scope(vec![Pattern::parse("src/**").expect("pattern")]);
    ctx
}

fn big_diff(files: usize) -> String {
    let body = "/// Doc.\npub fn f(a: u32) -> u32 {\n    let b = a + 1;\n    // TODO tidy\n    b.checked_mul(2).unwrap()\n}\n";
    (0..files).map(|i| added_file(&format!("src/m{i}.rs"), body)).collect()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Arc::new(GateSettings::default());

    // Pure rules.
    let paths: Vec<String> = (0..10_000).map(|i| format!("src/mod{}/file{i}.rs", i % 50)).collect();
    let modifies: Scope = (0..20).map(|i| Pattern::parse(&format!("src/mod{i}/**")).expect("pattern")).collect();
    let common = Scope(vec![Pattern::parse("common/**").expect("pattern")]);
    report(
        "boundary rules, 10k paths x 20 patterns",
        time(20, || boundary_findings(&paths, dir.path(), &modifies, &common, true).len()),
        Some(("paths", 10_000.0)),
    );
    let diff = big_diff(1_000);
    report("docs rule, 1000-file diff (6k added lines)", time(20, || docs_findings(&diff).len()), Some(("files", 1_000.0)));

    // Review: the heuristic reviewer in-process, with schema validation.
    let review = ReviewGate::new(ReviewGateSpec::default(), Arc::new(Reviewer::heuristic()), Arc::clone(&settings));
    let small = context(dir.path(), big_diff(10), Vec::new());
    report("review gate (heuristic), 10-file diff", time(50, || rt.block_on(review.check(&small)).map(|r| r.verdict)), None);
    let large = context(dir.path(), diff.clone(), Vec::new());
    report(
        "review gate (heuristic), 1000-file diff",
        time(10, || rt.block_on(review.check(&large)).map(|r| r.verdict)),
        Some(("files", 1_000.0)),
    );

    // Tests gate: process start, output scanning, coverage parsing.
    let noisy: TestsGateSpec = serde_json::from_value(serde_json::json!({"commands": [
        "sh -c 'i=0; while [ $i -lt 20000 ]; do echo \"test m::t$i ... ok\"; i=$((i+1)); done; echo \"test result: ok. 20000 passed; 0 failed; 0 ignored\"'"
    ]}))
    .expect("spec");
    let gate = TestsGate::new(Some(&noisy), &[], Arc::clone(&settings)).expect("gate");
    let ctx = context(dir.path(), String::new(), Vec::new());
    report(
        "tests gate, one command printing 20k lines",
        time(10, || rt.block_on(gate.check(&ctx)).map(|r| r.counts)),
        Some(("lines", 20_001.0)),
    );
    let trivial = TestsGate::new(None, &[CommandLine::parse("true").expect("cmd")], Arc::clone(&settings)).expect("gate");
    report("tests gate, `true` (spawn + wait + group stop)", time(30, || rt.block_on(trivial.check(&ctx)).map(|r| r.verdict)), None);
    let lcov: String = (0..10_000).map(|i| format!("SF:src/f{i}.rs\nDA:1,1\nDA:2,0\nLF:40\nLH:36\nend_of_record\n")).collect();
    std::fs::write(dir.path().join("lcov.info"), &lcov).expect("write lcov");
    let cov: TestsGateSpec =
        serde_json::from_value(serde_json::json!({"commands": ["true"], "coverage": {"report": "lcov.info", "format": "lcov"}}))
            .expect("spec");
    let cov_gate = TestsGate::new(Some(&cov), &[], Arc::clone(&settings)).expect("gate");
    report(
        &format!("tests gate + lcov report of 10k files ({} KB)", lcov.len() / 1024),
        time(10, || rt.block_on(cov_gate.check(&ctx)).map(|r| r.coverage)),
        None,
    );

    // Concurrency: four gates at once.
    let gates: Vec<Arc<dyn QualityGate>> = vec![
        Arc::new(BoundaryGate::new(true)),
        Arc::new(ReviewGate::new(ReviewGateSpec::default(), Arc::new(Reviewer::heuristic()), Arc::clone(&settings))),
        Arc::new(TestsGate::new(None, &[CommandLine::parse("true").expect("cmd")], Arc::clone(&settings)).expect("gate")),
        Arc::new(TestsGate::new(None, &[CommandLine::parse("sh -c 'exit 0'").expect("cmd")], Arc::clone(&settings)).expect("gate")),
    ];
    report("run_gates: boundary + review + 2 command gates", time(30, || rt.block_on(run_gates(&gates, &small)).len()), None);

    // A whole QA round: boundary on the worktree, commit, fresh checkout, gates, removal.
    let root = dir.path().join("qa-bench");
    let repo = root.join("repo");
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    for i in 0..200 {
        std::fs::write(repo.join(format!("src/file{i}.rs")), format!("/// File {i}.\npub fn f{i}() {{}}\n")).expect("write");
    }
    git(&repo, &["init", "--quiet"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "base"]);
    let base = String::from_utf8(Command::new("git").arg("-C").arg(&repo).args(["rev-parse", "HEAD"]).output().expect("git").stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    let worktree = root.join("wt");
    git(&repo, &["worktree", "add", "--quiet", "-b", "auto/bench", worktree.to_str().expect("utf-8"), "main"]);
    let task: TaskSpec =
        serde_json::from_value(serde_json::json!({"id": "bench", "agent": "a", "modifies": ["src/**", "tests/**"], "verify": ["true"]}))
            .expect("task");
    let gates_spec: GatesSpec = serde_json::from_value(serde_json::json!({})).expect("gates");
    let qa = Qa::new(gates_spec, &Boundaries::default(), root.join("qa"), GateSettings::default());
    let mut n = 0;
    let samples = time(10, || {
        n += 1;
        std::fs::write(worktree.join("src/file0.rs"), format!("/// File 0, round {n}.\npub fn f0() {{}}\n")).expect("write");
        std::fs::create_dir_all(worktree.join("tests")).expect("mkdir");
        std::fs::write(worktree.join("tests/t.rs"), format!("#[test]\nfn t{n}() {{}}\n")).expect("write");
        let req = QaRequest::new(&task, &repo, &worktree, "auto/bench", &base);
        let outcome = rt.block_on(qa.verify(&req)).expect("QA");
        assert_eq!(outcome.verdict, QaVerdict::TaskApproved, "{outcome:#?}");
    });
    report("QA round, 200-file repo (commit + fresh checkout + 4 gates)", samples, None);
}
