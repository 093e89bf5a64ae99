//! Warm QA on a real Rust crate (issue 19): what QA and a whole run cost against `cargo test`.
//!
//! The project: a library crate with real dependencies (serde with derive, serde_json, regex;
//! all in the local cargo registry, so the benchmark runs offline), one integration test, its
//! `Cargo.lock` committed and `target/` ignored. Four parallel tasks each add one integration
//! test; their agents are shell commands; the tests gate is `cargo test -q`. Measured in one
//! process, in this order:
//!
//! 1. peer: one cold `cargo test -q` in the user's checkout (no `target/`);
//! 2. peer: one warm incremental `cargo test -q` there after adding a test file — what the
//!    user pays for the same change by hand;
//! 3. before: the run with QA as it was (no kept caches, so every QA checkout is new and builds
//!    from scratch, and nothing is seeded);
//! 4. after: `pool.keep_ignored: [target/]`, `pool.seed: {target/: copy}` — new QA checkouts
//!    are seeded from the user's `target/` (reflinks where the file system has them);
//! 5. after, again: the same with the QA checkouts the previous run left warm.
//!
//! Between the runs the repository goes back to its first commit, so each run does the same
//! work. A task's QA time is the journal's `qa_finished.duration_ms` (commit, checkout, gates).
//! The goals: QA of a task ≤ 1.5 × the warm incremental test; the 4-task run ≤ 1.5 × one cold
//! build.
//!
//! The second ecosystem is a JavaScript project whose `node_modules/` comes from the npm
//! registry (express, lodash, mocha): the cold peer is `npm ci` then `npm test`, the cache is
//! `node_modules/`, and the gate reinstalls only when the committed lock file differs from the
//! one the installed tree was made from. `FUGUE_BENCH_ONLY=rust` or `js` picks one.
//! `FUGUE_BENCH_SMOKE=1` uses a crate without dependencies and two tasks and leaves the
//! JavaScript case out, so that CI checks the harness in seconds, not the timings.

#![expect(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, reason = "a benchmark reports on stdout and may panic")]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fugue_core::load::{LoadOptions, load_str};
use fugue_engine::{RunOptions, RunOutcome};

const LIB: &str = r#"//! A small crate with real dependencies.
use regex::Regex;
use serde::{Deserialize, Serialize};

/// A parsed record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub tags: Vec<String>,
    pub score: f64,
}

/// Parses `name: tag,tag = score` lines.
pub fn parse(line: &str) -> Option<Record> {
    let re = Regex::new(r"^(?P<name>\w+):\s*(?P<tags>[\w,]*)\s*=\s*(?P<score>[0-9.]+)$").ok()?;
    let c = re.captures(line)?;
    Some(Record {
        name: c["name"].to_owned(),
        tags: c["tags"].split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        score: c["score"].parse().ok()?,
    })
}

/// The record as JSON.
pub fn to_json(r: &Record) -> String {
    serde_json::to_string(r).unwrap_or_default()
}
"#;

const SMOKE_LIB: &str =
    "//! A crate without dependencies (smoke mode).\npub fn parse(line: &str) -> Option<usize> {\n    Some(line.len())\n}\n";

fn main() {
    let smoke = std::env::var("FUGUE_BENCH_SMOKE").is_ok_and(|v| v == "1");
    // The registry is local: never wait on a network.
    // SAFETY: single-threaded here, before any runtime or child starts.
    unsafe { std::env::set_var("CARGO_NET_OFFLINE", "true") };
    for (k, v) in
        [("GIT_AUTHOR_NAME", "bench"), ("GIT_AUTHOR_EMAIL", "b@b"), ("GIT_COMMITTER_NAME", "bench"), ("GIT_COMMITTER_EMAIL", "b@b")]
    {
        // SAFETY: as above.
        unsafe { std::env::set_var(k, v) };
    }
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "RUSTFLAGS", "CARGO_INCREMENTAL"] {
        // SAFETY: as above.
        unsafe { std::env::remove_var(var) };
    }
    let only = std::env::var("FUGUE_BENCH_ONLY").unwrap_or_default();
    let mut out = String::new();
    if only.is_empty() || only.contains("rust") {
        out.push_str(&measure(&rust(smoke), smoke));
    }
    // The JavaScript case needs npm and the npm registry (once, for the lock file and the
    // cache); the smoke run leaves it out.
    if !smoke && (only.is_empty() || only.contains("js")) {
        match Command::new("npm").arg("--version").output() {
            Ok(o) if o.status.success() => out.push_str(&measure(&javascript(), smoke)),
            _ => out.push_str("\n(JavaScript case skipped: npm is not installed.)\n"),
        }
    }
    println!("{out}");
}

/// One ecosystem's project and how its tasks, gate and caches look.
struct Eco {
    title: String,
    /// Makes the project in a directory and commits it; returns the checkout.
    make: Box<dyn Fn(&Path) -> PathBuf>,
    /// The peers' test command (argv), run in the user's checkout.
    test: Vec<&'static str>,
    /// What the cold peer runs, for the table.
    cold: &'static str,
    /// The plan's tests gate.
    gate: &'static str,
    /// The build cache, as in `keep_ignored`.
    cache: &'static str,
    /// Where task `name`'s new test goes, and its text.
    test_path: fn(&str) -> String,
    test_body: fn(&str) -> String,
}

fn measure(eco: &Eco, smoke: bool) -> String {
    let tasks = if smoke { 2 } else { 4 };
    let scratch = tempfile::tempdir().expect("temp");
    let repo = (eco.make)(scratch.path());
    let reflinks = fugue_worktrees::reflinks_supported(&repo);

    let cold = timed(&repo, &eco.test);
    let peer = repo.join((eco.test_path)("peer"));
    std::fs::write(&peer, (eco.test_body)("peer")).expect("write");
    let incremental = timed(&repo, &eco.test);
    std::fs::remove_file(&peer).expect("remove");

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut rows = Vec::new();
    // Every run adds tests no QA checkout has built yet (t1…, then t5…, then t9), so each QA
    // round compiles a new test, like the incremental peer.
    for (name, warm, state, first, n) in [
        ("before: QA in a new checkout per task, no caches", false, "state-before", 1, tasks),
        ("after: warm QA pool, seeded from the user's checkout (first run)", true, "state-after", 1, tasks),
        ("after: the same, QA checkouts left warm by the previous run", true, "state-after", tasks + 1, tasks),
        ("after: one task alone, warm QA pool (no other build competing for the cores)", true, "state-after", 2 * tasks + 1, 1),
    ] {
        reset(&repo);
        let state = scratch.path().join(state);
        let plan = plan(eco, first, n, warm, &scratch.path().join(format!("pool-{}", rows.len())));
        let started = Instant::now();
        let summary = rt.block_on(fugue_engine::run(plan, RunOptions::new(&repo, &state))).expect("the run starts");
        let wall = started.elapsed();
        assert_eq!(summary.outcome, RunOutcome::Success, "{name}: the bench run failed");
        let qa = qa_times(&fugue_engine::journal_path(&state));
        let disk = fugue_engine::disk::DiskUsage::load(&state);
        rows.push((name, wall, qa, disk));
    }

    let mut out = String::new();
    let s = |d: Duration| d.as_secs_f64();
    let test = eco.test.join(" ");
    writeln!(out, "### Warm QA: {}, {tasks} tasks each adding a test, tests gate `{}`\n", eco.title, eco.gate).unwrap();
    writeln!(
        out,
        "File system reflinks: {}. Peers in the same run: one cold `{}` {:.1} s; one warm incremental `{test}` after adding a test {:.2} s.\n",
        if reflinks { "yes" } else { "no (copies)" },
        eco.cold,
        s(cold),
        s(incremental)
    )
    .unwrap();
    writeln!(
        out,
        "| run | wall | / cold | QA per task, median (max) | of which the tests gate | QA / incremental test | slots on disk at the end |"
    )
    .unwrap();
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for (name, wall, qa, disk) in &rows {
        let total: Vec<f64> = qa.iter().map(|q| q.0).collect();
        let tests: Vec<f64> = qa.iter().map(|q| q.1).collect();
        let median_qa = median(&total);
        let max = total.iter().copied().fold(0.0, f64::max);
        let disk = disk.as_ref().map_or("-".to_owned(), |d| fugue_engine::disk::bytes_text(d.total_bytes));
        writeln!(
            out,
            "| {name} | {:.1} s | {:.2}× | {median_qa:.2} s ({max:.2} s) | {:.2} s | {:.2}× | {disk} |",
            s(*wall),
            s(*wall) / s(cold),
            median(&tests),
            median_qa / s(incremental)
        )
        .unwrap();
    }
    writeln!(out, "\nGoals: QA of a task ≤ 1.5× the incremental test; the {tasks}-task run ≤ 1.5× one cold build.\n").unwrap();
    out
}

fn rust(smoke: bool) -> Eco {
    Eco {
        title: format!("a Rust crate ({})", if smoke { "no dependencies (smoke)" } else { "serde, serde_json, regex" }),
        make: Box::new(move |dir| project(dir, smoke)),
        test: vec!["cargo", "test", "-q"],
        cold: "cargo test -q",
        gate: "cargo test -q",
        cache: "target/",
        test_path: |name| format!("tests/{name}.rs"),
        test_body: if smoke { |name| test_file(name, true) } else { |name| test_file(name, false) },
    }
}

/// A JavaScript project: express and lodash as dependencies, mocha as the test runner, all from
/// the npm registry (`node_modules/` about 100 packages). The gate reinstalls only when the
/// committed lock file differs from the one the installed tree was made from — what keeps a
/// kept `node_modules/` honest when a task changes the dependencies.
fn javascript() -> Eco {
    Eco {
        title: "a JavaScript project (express, lodash; mocha), `node_modules/` from the npm registry".to_owned(),
        make: Box::new(js_project),
        test: vec!["npm", "test", "--silent"],
        cold: "npm ci && npm test",
        gate: "sh -c 'cmp -s package-lock.json node_modules/.fugue-lock || { npm ci --prefer-offline --no-audit --no-fund --silent && cp package-lock.json node_modules/.fugue-lock; }; npm test --silent'",
        cache: "node_modules/",
        test_path: |name| format!("test/{name}.test.js"),
        test_body: |name| {
            format!(
                "const assert = require('assert');\nconst {{ summary }} = require('../index');\ndescribe('{name}', () => {{\n  it('sums', () => assert.strictEqual(summary([1, 2, 3]).total, 6));\n}});\n"
            )
        },
    }
}

fn js_project(dir: &Path) -> PathBuf {
    let repo = dir.join("project");
    std::fs::create_dir_all(repo.join("test")).expect("mkdir");
    std::fs::write(
        repo.join("package.json"),
        r#"{ "name": "demo", "version": "0.1.0", "private": true, "scripts": { "test": "mocha --reporter dot" },
  "dependencies": { "express": "^4.19.0", "lodash": "^4.17.21" }, "devDependencies": { "mocha": "^10.4.0" } }
"#,
    )
    .expect("write");
    std::fs::write(
        repo.join("index.js"),
        "const _ = require('lodash');\nconst express = require('express');\nexports.summary = (xs) => ({ total: _.sum(xs), max: _.max(xs) });\nexports.app = () => express();\n",
    )
    .expect("write");
    std::fs::write(repo.join("test/base.test.js"), (javascript().test_body)("base")).expect("write");
    std::fs::write(repo.join(".gitignore"), "node_modules/\n").expect("write");
    run(Command::new("npm").args(["install", "--no-audit", "--no-fund", "--silent"]).current_dir(&repo));
    std::fs::copy(repo.join("package-lock.json"), repo.join("node_modules/.fugue-lock")).expect("copy");
    // The peers' cold run starts without node_modules, from npm's cache, as `npm ci` does.
    std::fs::remove_dir_all(repo.join("node_modules")).expect("remove");
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "init"]);
    git(&repo, &["tag", "bench-start"]);
    repo
}

fn timed(repo: &Path, argv: &[&str]) -> Duration {
    let started = Instant::now();
    if argv[0] == "npm" && !repo.join("node_modules").exists() {
        // The cold peer: install, then test.
        run(Command::new("npm").args(["ci", "--prefer-offline", "--no-audit", "--no-fund", "--silent"]).current_dir(repo));
        std::fs::copy(repo.join("package-lock.json"), repo.join("node_modules/.fugue-lock")).expect("copy");
    }
    run(Command::new(argv[0]).args(&argv[1..]).current_dir(repo));
    started.elapsed()
}

/// The crate, committed on `main`, with its lock file.
fn project(dir: &Path, smoke: bool) -> PathBuf {
    let repo = dir.join("project");
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    std::fs::create_dir_all(repo.join("tests")).expect("mkdir");
    let deps = if smoke { "" } else { "serde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\nregex = \"1\"\n" };
    std::fs::write(
        repo.join("Cargo.toml"),
        format!("[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}"),
    )
    .expect("write");
    std::fs::write(repo.join("src/lib.rs"), if smoke { SMOKE_LIB } else { LIB }).expect("write");
    std::fs::write(repo.join("tests/base.rs"), test_file("base", smoke)).expect("write");
    std::fs::write(repo.join(".gitignore"), "target/\n").expect("write");
    run(Command::new("cargo").args(["generate-lockfile", "--offline"]).current_dir(&repo));
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "init"]);
    git(&repo, &["tag", "bench-start"]);
    repo
}

fn test_file(name: &str, smoke: bool) -> String {
    if smoke {
        format!("#[test]\nfn {name}() {{\n    assert_eq!(demo::parse(\"ab\"), Some(2));\n}}\n")
    } else {
        format!(
            "#[test]\nfn {name}() {{\n    let r = demo::parse(\"{name}: a,b = 1.5\").expect(\"parses\");\n    assert_eq!(r.tags, [\"a\", \"b\"]);\n    assert!(demo::to_json(&r).contains(\"\\\"score\\\":1.5\"));\n}}\n"
        )
    }
}

/// The plan: `tasks` command agents each adding a test for task `t<i>`, `i` from `first`; warm
/// (the ecosystem's cache kept and seeded) or not.
fn plan(eco: &Eco, first: usize, tasks: usize, warm: bool, pool_dir: &Path) -> fugue_core::Plan {
    let cache = eco.cache;
    let caches = if warm { format!(r#"keep_ignored: ["{cache}"], seed: {{ "{cache}": copy }}"#) } else { "keep_ignored: []".to_owned() };
    let mut text = format!(
        "version: 1\nbase: main\nparallelization: {{ max_agents: {tasks}, min_tasks: 2 }}\npool: {{ size: {tasks}, dir: \"{}\", {caches} }}\n",
        pool_dir.display()
    );
    // The agents copy a prepared test file in (an argv template would read its braces as
    // placeholders).
    let bodies = pool_dir.with_extension("bodies");
    std::fs::create_dir_all(&bodies).expect("mkdir");
    text.push_str("agents:\n");
    let ids = first..first + tasks;
    for i in ids.clone() {
        let body = bodies.join(format!("t{i}"));
        std::fs::write(&body, (eco.test_body)(&format!("t{i}"))).expect("write");
        let _ = writeln!(text, "  a{i}: {{ command: [\"cp\", \"{}\", \"{}\"] }}", body.display(), (eco.test_path)(&format!("t{i}")));
    }
    let gate = eco.gate.replace('\\', "\\\\").replace('"', "\\\"");
    let _ = write!(text, "gates:\n  review: false\n  tests: {{ commands: [\"{gate}\"] }}\ntasks:\n");
    for i in ids {
        let _ = writeln!(text, "  - {{ id: t{i}, agent: a{i}, modifies: [{}] }}", (eco.test_path)(&format!("t{i}")));
    }
    match load_str("bench.yaml", &text, &LoadOptions::default()) {
        Ok(l) => l.into_plan(),
        Err(e) => panic!("the bench plan does not load: {e:?}\n{text}"),
    }
}

/// Back to the first commit: the merged tests and branches of the previous run are gone, the
/// user's `target/` stays.
fn reset(repo: &Path) {
    git(repo, &["checkout", "-q", "-f", "main"]);
    git(repo, &["reset", "-q", "--hard", "bench-start"]);
    git(repo, &["clean", "-q", "-fd"]);
    let branches = String::from_utf8(
        Command::new("git")
            .args(["for-each-ref", "--format=%(refname:short)", "refs/heads/auto/"])
            .current_dir(repo)
            .output()
            .expect("git")
            .stdout,
    )
    .expect("utf-8");
    for b in branches.lines().filter(|b| !b.is_empty()) {
        git(repo, &["branch", "-q", "-D", b]);
    }
}

/// Each `qa_finished` in the journal: the round and its tests gate, in seconds.
fn qa_times(journal: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(journal)
        .expect("journal")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "qa_finished")
        .filter_map(|v| {
            let tests = v["reports"].as_array()?.iter().find(|r| r["gate"] == "tests")?["duration_ms"].as_u64()?;
            Some((v["duration_ms"].as_u64()? as f64 / 1000.0, tests as f64 / 1000.0))
        })
        .collect()
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn run(cmd: &mut Command) {
    let out = cmd.stdout(Stdio::null()).output().expect("spawn");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn git(dir: &Path, args: &[&str]) {
    run(Command::new("git")
        .args(["-c", "user.name=b", "-c", "user.email=b@b", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir));
}
