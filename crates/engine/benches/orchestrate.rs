//! Side-by-side benchmarks of the engine against its peers (issue 9).
//!
//! Three measurements, each built from a fixed seed and run in one process, alternating the
//! contenders round by round so that machine noise hits them alike:
//!
//! 1. orchestration overhead: N no-op tasks (`true`, `isolation: none`, 8 agents) by fugue
//!    (journal fsynced, and not), GNU `parallel -j8` and `make -j8`; per-task overhead is
//!    wall / N (the ideal time of N no-ops is zero);
//! 2. schedule quality: one random DAG of `sleep` tasks on 4 agents by fugue, `make -j4` on a
//!    Makefile of the same DAG, and the planner's parallel groups run one after another with a
//!    barrier; makespan over the lower bound max(critical path, work / agents);
//! 3. peak memory: the high-water RSS of a child process that runs one fugue run;
//! 4. worktrees: a run of 16 tasks that each edit a file of a 5,000-file repository, with the
//!    pool's warm slots recycled, with a pool created during the run, and without a pool (a new
//!    worktree for every task). (Warm acquire against a bare `git worktree add` is the pool's
//!    own benchmark, `cargo bench -p fugue-worktrees --bench pool`.)
//!
//! 5. merges: one merge of a one-file task branch into `main` of a generated repository of
//!    5,000 and of 50,000 files (`git fast-import`, seconds to set up), by the merge coordinator
//!    without a checkout (`merge-tree --write-tree`) and, the peer in the same run, through the
//!    integration worktree (the fallback for git < 2.38, which was every merge before) — with
//!    `main` checked out nowhere, and checked out (clean) in the main worktree, fugue run's case.
//!
//! Tables go to stdout as markdown. `FUGUE_BENCH_SMOKE=1` shrinks every workload to a few tasks
//! so that CI checks the harness, not the timings. A peer that is not installed is skipped with
//! a note on how to install it.

#![expect(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, reason = "a benchmark reports on stdout and may panic")]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fugue_core::Plan;
use fugue_core::load::{LoadOptions, load_str};
use fugue_engine::{RunOptions, RunOutcome};
use serde_json::json;

const CHILD_ENV: &str = "FUGUE_BENCH_RSS_CHILD";

/// The state dirs of finished runs, removed when the benchmark ends rather than between rounds:
/// on ext4, creating a file soon after thousands were deleted costs up to a millisecond (the
/// inode allocator skips every recently deleted inode whose table block is still dirty, for up
/// to 5 minutes), so deleting one round's files would bill the next round's contender for the
/// bench's own cleanup. A real run's logs accumulate; they are not deleted just before it.
static GRAVEYARD: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());

fn main() {
    if let Ok(n) = std::env::var(CHILD_ENV) {
        rss_child(n.parse().expect("task count"));
        GRAVEYARD.lock().expect("graveyard").clear();
        return;
    }
    let smoke = std::env::var("FUGUE_BENCH_SMOKE").is_ok_and(|v| v == "1");
    let only = std::env::var("FUGUE_BENCH_ONLY").unwrap_or_default();
    let mut out = String::new();
    if only.is_empty() || only.contains("overhead") {
        out.push_str(&overhead(smoke));
    }
    if only.is_empty() || only.contains("schedule") {
        out.push_str(&schedule(smoke));
    }
    if only.is_empty() || only.contains("memory") {
        out.push_str(&memory(smoke));
    }
    if only.is_empty() || only.contains("worktrees") {
        out.push_str(&worktrees(smoke));
    }
    if only.is_empty() || only.contains("merge") {
        out.push_str(&merges(smoke));
    }
    if only.is_empty() || only.contains("first_agent") {
        out.push_str(&first_agent(smoke));
    }
    println!("{out}");
    GRAVEYARD.lock().expect("graveyard").clear();
}

// ---------------------------------------------------------------- helpers

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.name=b", "-c", "user.email=b@b", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git {args:?} failed");
}

/// A fresh repository with one commit; removed with the graveyard.
fn repo() -> PathBuf {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("repo");
    std::fs::create_dir_all(&path).expect("mkdir");
    git(&path, &["init", "-q"]);
    std::fs::write(path.join("README.md"), "bench\n").expect("write");
    std::fs::write(path.join(".gitignore"), ".claude/\n.tmp*/\n").expect("write");
    git(&path, &["add", "-A"]);
    git(&path, &["commit", "-qm", "init"]);
    GRAVEYARD.lock().expect("graveyard").push(dir);
    path
}

fn load(doc: &serde_json::Value) -> Plan {
    let text = serde_json::to_string(doc).expect("json");
    match load_str("bench.json", &text, &LoadOptions::default()) {
        Ok(l) => l.plan,
        Err(e) => panic!("the bench plan does not load: {e:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

/// Runs `plan` in a fresh state dir of `repo`; returns the wall time.
fn run_fugue(rt: &tokio::runtime::Runtime, repo: &Path, plan: Plan, fsync: bool) -> Duration {
    let state = tempfile::tempdir_in(repo).expect("state dir");
    let mut opts = RunOptions::new(repo, state.path().join(".claude"));
    opts.fsync = fsync;
    let took = run_with(rt, plan, opts);
    if std::env::var_os("FUGUE_BENCH_TRACE").is_some() {
        println!("{}", trace(&fugue_engine::journal_path(&state.path().join(".claude"))));
    }
    GRAVEYARD.lock().expect("graveyard").push(state);
    took
}

/// Where a run's time went between the agents, from its journal (`FUGUE_BENCH_TRACE=1`): the
/// medians, over tasks, of each step of a task's life, in ms (the journal has ms timestamps).
fn trace(journal: &Path) -> String {
    let text = std::fs::read_to_string(journal).expect("journal");
    let mut by_task: std::collections::HashMap<String, Vec<(String, u64, serde_json::Value)>> = Default::default();
    let mut dispatches: Vec<u64> = Vec::new();
    let mut ends: Vec<u64> = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("record");
        let ts = fugue_core::time::parse_millis(v["ts"].as_str().unwrap_or_default()).unwrap_or(0);
        let event = v["event"].as_str().unwrap_or_default().to_owned();
        let Some(task) = v["task"].as_str() else { continue };
        let key = if event == "status" { format!("status:{}", v["status"].as_str().unwrap_or_default()) } else { event };
        if key == "status:in_progress" {
            dispatches.push(ts);
        }
        if key == "status:merged" {
            ends.push(ts);
        }
        by_task.entry(task.to_owned()).or_default().push((key, ts, v));
    }
    let find = |rs: &[(String, u64, serde_json::Value)], k: &str| rs.iter().find(|r| r.0 == k).map(|r| (r.1, r.2.clone()));
    let mut steps: [Vec<f64>; 4] = Default::default();
    for rs in by_task.values() {
        let (Some((start, _)), Some((agent_end, agent)), Some((merged, _))) =
            (find(rs, "status:in_progress"), find(rs, "agent_finished"), find(rs, "status:merged"))
        else {
            continue;
        };
        let agent_ms = agent["duration_ms"].as_u64().unwrap_or(0);
        steps[0].push(agent_end.saturating_sub(agent_ms).saturating_sub(start) as f64);
        steps[1].push(agent_ms as f64);
        steps[2].push(merged.saturating_sub(agent_end) as f64);
    }
    // From a task's end to the next dispatch after it (a free slot refilled).
    dispatches.sort_unstable();
    for &e in &ends {
        if let Some(&d) = dispatches.iter().find(|&&d| d >= e) {
            steps[3].push((d - e) as f64);
        }
    }
    let names = ["dispatch → agent started", "agent (spawn to exit)", "agent exit → merged", "merged → next dispatch"];
    let mut out = String::from("| step | median ms | mean ms |\n|---|---:|---:|\n");
    for (name, v) in names.iter().zip(steps.iter_mut()) {
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        writeln!(out, "| {name} | {:.1} | {mean:.2} |", if v.is_empty() { 0.0 } else { median(v) }).unwrap();
    }
    out
}

fn installed(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn run_shell(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().expect("peer runs");
    let took = started.elapsed();
    assert!(out.status.success(), "peer failed: {}", String::from_utf8_lossy(&out.stderr));
    took
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A small deterministic generator (64-bit LCG, top bits), so workloads are the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------- 1. overhead

/// N no-op tasks, written as a user would write the plan file, and loaded as `fugue run` loads
/// it (the text and its source map are freed before the run, as the CLI does).
fn noop_plan(n: usize) -> Plan {
    let mut text = String::from(
        "version: 1\nbase: main\nisolation: none\nparallelization: { max_agents: 8 }\n\
         agents:\n  noop: { command: [\"true\"] }\ngates: { review: false }\ntasks:\n",
    );
    for i in 0..n {
        writeln!(text, "  - {{ id: t{i}, agent: noop, modifies: [out/t{i}] }}").unwrap();
    }
    match load_str("bench.yaml", &text, &LoadOptions::default()) {
        Ok(l) => l.into_plan(),
        Err(e) => panic!("the bench plan does not load: {e:?}"),
    }
}

fn overhead(smoke: bool) -> String {
    let sizes: &[(usize, usize)] = if smoke { &[(5, 1), (10, 1)] } else { &[(100, 5), (1_000, 3), (10_000, 1)] };
    // `FUGUE_BENCH_MAX_N` caps the sizes (for profiling a change quickly).
    let max_n: usize = std::env::var("FUGUE_BENCH_MAX_N").ok().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
    let sizes: Vec<(usize, usize)> = sizes.iter().copied().filter(|&(n, _)| n <= max_n).collect();
    // Above this many tasks fugue is left out of this table (to keep a run short).
    let fugue_max: usize = std::env::var("FUGUE_BENCH_FUGUE_MAX_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let rt = runtime();
    let repo = repo();
    let have_parallel = installed("parallel");
    let have_make = installed("make");
    let mut s = String::new();
    writeln!(s, "### Orchestration overhead: N no-op tasks (`true`), 8 at a time\n").unwrap();
    writeln!(s, "Per-task overhead = wall / N in ms (the ideal wall time of N no-ops is 0); median (best) of the rounds.\n").unwrap();
    writeln!(
        s,
        "| N | rounds | fugue (fsync) | fugue (`fsync: false`) | GNU `parallel -j8` | `make -j8` | fugue (fsync) above make | fugue / make |"
    )
    .unwrap();
    writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|").unwrap();
    for (n, rounds) in sizes {
        let work = tempfile::tempdir().expect("temp");
        let cmds = work.path().join("cmds.txt");
        std::fs::write(&cmds, "true\n".repeat(n)).expect("write");
        let makefile = work.path().join("Makefile");
        let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let mut mk = format!(".PHONY: all {}\nall: {}\n", names.join(" "), names.join(" "));
        for name in &names {
            writeln!(mk, "{name}:\n\t@true").unwrap();
        }
        std::fs::write(&makefile, mk).expect("write");
        let plan = if n <= fugue_max { noop_plan(n) } else { noop_plan(1) };
        let mut times: [Vec<f64>; 4] = Default::default();
        for round in 0..rounds {
            // Rotate who goes first so drift and warm caches favour nobody.
            for k in 0..4 {
                let which = (k + round) % 4;
                let took = match which {
                    0 if n <= fugue_max => Some(run_fugue(&rt, &repo, plan.clone(), true)),
                    1 if n <= fugue_max => Some(run_fugue(&rt, &repo, plan.clone(), false)),
                    2 if have_parallel => Some(run_shell(
                        Command::new("parallel").args(["-j8", "--will-cite"]).stdin(std::fs::File::open(&cmds).expect("open")),
                    )),
                    3 if have_make => Some(run_shell(Command::new("make").args(["-j8", "-s", "-f"]).arg(&makefile))),
                    _ => None,
                };
                if let Some(t) = took {
                    times[which].push(secs(t) * 1000.0 / n as f64);
                }
            }
        }
        let cell = |v: &mut Vec<f64>| {
            if v.is_empty() {
                "—".to_owned()
            } else {
                let best = v.iter().copied().fold(f64::INFINITY, f64::min);
                format!("{:.3} ({:.3})", median(v), best)
            }
        };
        // Medians of the same rounds: the fugue's cost above a bare process spawn per task.
        let (above, ratio) = if times[0].is_empty() || times[3].is_empty() {
            ("—".to_owned(), "—".to_owned())
        } else {
            let (f, m) = (median(&mut times[0]), median(&mut times[3]));
            (format!("{:.3}", f - m), format!("{:.2}", f / m))
        };
        let [a, b, c, d] = &mut times;
        writeln!(s, "| {n} | {rounds} | {} | {} | {} | {} | {above} | {ratio} |", cell(a), cell(b), cell(c), cell(d)).unwrap();
    }
    writeln!(s, "\n— : not run (fugue is left out above {fugue_max} tasks, `FUGUE_BENCH_FUGUE_MAX_N`).").unwrap();
    if !have_parallel {
        writeln!(s, "\nGNU parallel is not installed: skipped (install it with `apt-get install parallel`).").unwrap();
    }
    if !have_make {
        writeln!(s, "\nmake is not installed: skipped (install it with `apt-get install make`).").unwrap();
    }
    s.push('\n');
    s
}

// ---------------------------------------------------------------- 2. schedule quality

struct Dag {
    /// Durations in ms.
    dur: Vec<u64>,
    deps: Vec<Vec<usize>>,
}

fn random_dag(n: usize, min_ms: u64, max_ms: u64, seed: u64) -> Dag {
    let mut rng = Rng(seed);
    let mut dur = Vec::with_capacity(n);
    let mut deps = Vec::with_capacity(n);
    for i in 0..n {
        dur.push(min_ms + rng.below(max_ms - min_ms + 1));
        let mut d: Vec<usize> = Vec::new();
        if i > 0 {
            // Up to three dependencies on the 25 tasks before: a layered, fairly wide DAG.
            for _ in 0..rng.below(4) {
                let lo = i.saturating_sub(25) as u64;
                let j = (lo + rng.below(i as u64 - lo)) as usize;
                if !d.contains(&j) {
                    d.push(j);
                }
            }
        }
        d.sort_unstable();
        deps.push(d);
    }
    Dag { dur, deps }
}

impl Dag {
    fn critical_path(&self) -> u64 {
        let mut finish = vec![0u64; self.dur.len()];
        for i in 0..self.dur.len() {
            finish[i] = self.deps[i].iter().map(|&j| finish[j]).max().unwrap_or(0) + self.dur[i];
        }
        finish.into_iter().max().unwrap_or(0)
    }

    fn plan(&self, agents: usize) -> Plan {
        let tasks: Vec<_> = (0..self.dur.len())
            .map(|i| {
                json!({
                    "id": format!("t{i}"),
                    "agent": "sleep",
                    "prompt": format!("{:.3}", self.dur[i] as f64 / 1000.0),
                    "estimate": format!("{}ms", self.dur[i]),
                    "modifies": [format!("out/t{i}")],
                    "depends_on": self.deps[i].iter().map(|j| format!("t{j}")).collect::<Vec<_>>(),
                })
            })
            .collect();
        load(&json!({
            "version": 1,
            "base": "main",
            "isolation": "none",
            "parallelization": { "max_agents": agents },
            "agents": { "sleep": { "command": ["sleep", "{prompt}"] } },
            "gates": { "review": false },
            "tasks": tasks,
        }))
    }

    fn makefile(&self) -> String {
        let names: Vec<String> = (0..self.dur.len()).map(|i| format!("t{i}")).collect();
        let mut mk = format!(".PHONY: all {}\nall: {}\n", names.join(" "), names.join(" "));
        for i in 0..self.dur.len() {
            let deps: Vec<String> = self.deps[i].iter().map(|j| format!("t{j}")).collect();
            writeln!(mk, "t{i}: {}\n\t@sleep {:.3}", deps.join(" "), self.dur[i] as f64 / 1000.0).unwrap();
        }
        mk
    }
}

/// Runs each parallel group with `agents` workers, waiting for the whole group before the next.
fn run_barrier(groups: &[Vec<usize>], dag: &Dag, agents: usize) -> Duration {
    let started = Instant::now();
    for group in groups {
        let queue = Arc::new(Mutex::new(group.clone()));
        let workers: Vec<_> = (0..agents)
            .map(|_| {
                let queue = Arc::clone(&queue);
                let dur = dag.dur.clone();
                std::thread::spawn(move || {
                    loop {
                        let Some(i) = queue.lock().expect("queue").pop() else { break };
                        let ok = Command::new("sleep").arg(format!("{:.3}", dur[i] as f64 / 1000.0)).status().expect("sleep").success();
                        assert!(ok);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
    }
    started.elapsed()
}

fn schedule(smoke: bool) -> String {
    let (n, min_ms, max_ms, agents, rounds) = if smoke { (12, 1, 5, 4, 1) } else { (200, 20, 200, 4, 2) };
    let dag = random_dag(n, min_ms, max_ms, 9);
    let work: u64 = dag.dur.iter().sum();
    let cp = dag.critical_path();
    let lb = cp.max(work.div_ceil(agents as u64));
    let plan = dag.plan(agents);
    let sealed = fugue_engine::planner::DefaultPlanner::new().plan_sealed(&plan).expect("plans");
    let index: std::collections::HashMap<String, usize> = plan.tasks.iter().enumerate().map(|(i, t)| (t.id.to_string(), i)).collect();
    let groups: Vec<Vec<usize>> = sealed
        .graph()
        .execution_strategy
        .parallel_groups
        .iter()
        .map(|g| g.tasks.iter().map(|t| index[&t.id.to_string()]).collect())
        .collect();
    let tmp = tempfile::tempdir().expect("temp");
    let makefile = tmp.path().join("Makefile");
    std::fs::write(&makefile, dag.makefile()).expect("write");
    let have_make = installed("make");
    let rt = runtime();
    let repo = repo();
    let mut times: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        for k in 0..3 {
            let which = (k + round) % 3;
            let took = match which {
                0 => Some(run_fugue(&rt, &repo, plan.clone(), true)),
                1 if have_make => Some(run_shell(Command::new("make").arg(format!("-j{agents}")).args(["-s", "-f"]).arg(&makefile))),
                2 => Some(run_barrier(&groups, &dag, agents)),
                _ => None,
            };
            if let Some(t) = took {
                times[which].push(secs(t) * 1000.0);
            }
        }
    }
    let mut s = String::new();
    writeln!(s, "### Schedule quality: a random DAG on {agents} agents\n").unwrap();
    writeln!(
        s,
        "{n} tasks (seed 9, up to 3 dependencies each on the 25 tasks before), `sleep` of {min_ms}–{max_ms} ms each: \
         work {work} ms, critical path {cp} ms, {} parallel groups; LB = max(critical path, work / {agents}) = {lb} ms. \
         Median (best) of {rounds} round(s).\n",
        groups.len()
    )
    .unwrap();
    writeln!(s, "| contender | makespan | makespan / LB |").unwrap();
    writeln!(s, "|---|---:|---:|").unwrap();
    let names = ["fugue (fsync)", &format!("`make -j{agents}`"), "parallel groups with a barrier"];
    for (name, v) in names.iter().zip(times.iter_mut()) {
        if v.is_empty() {
            writeln!(s, "| {name} | skipped (`apt-get install make`) | |").unwrap();
            continue;
        }
        let best = v.iter().copied().fold(f64::INFINITY, f64::min);
        let m = median(v);
        writeln!(s, "| {name} | {m:.0} ms ({best:.0}) | {:.3} ({:.3}) |", m / lb as f64, best / lb as f64).unwrap();
    }
    s.push('\n');
    s
}

// ---------------------------------------------------------------- 3. memory

fn rss_child(n: usize) {
    let rt = runtime();
    let repo = repo();
    let took = run_fugue(&rt, &repo, noop_plan(n), true);
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).unwrap_or("0");
    println!("{hwm} {}", took.as_millis());
}

fn memory(smoke: bool) -> String {
    let sizes: &[usize] = if smoke { &[10] } else { &[100, 1_000, 2_000, 10_000] };
    let limit = Duration::from_secs(std::env::var("FUGUE_BENCH_TIMEOUT_S").ok().and_then(|v| v.parse().ok()).unwrap_or(300));
    let exe = std::env::current_exe().expect("own path");
    let mut s = String::new();
    writeln!(s, "### Peak memory of one run (VmHWM of a child process running it)\n").unwrap();
    writeln!(s, "| N no-op tasks | peak RSS | wall (ms per task) |").unwrap();
    writeln!(s, "|---:|---:|---:|").unwrap();
    for &n in sizes {
        let mut child = Command::new(&exe).env(CHILD_ENV, n.to_string()).stdout(Stdio::piped()).spawn().expect("child runs");
        let started = Instant::now();
        while child.try_wait().expect("wait").is_none() && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(50));
        }
        if child.try_wait().expect("wait").is_none() {
            // /proc/<pid>/status still has the high-water mark before the kill.
            let hwm = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
            let kb: f64 =
                hwm.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0.0);
            child.kill().expect("kill the child");
            let _ = child.wait();
            writeln!(s, "| {n} | ≥ {:.1} MB (so far) | did not finish in {} s |", kb / 1024.0, limit.as_secs()).unwrap();
            continue;
        }
        let out = child.wait_with_output().expect("child output");
        assert!(out.status.success(), "the memory child failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        let kb: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let ms: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        writeln!(s, "| {n} | {:.1} MB | {:.1} s ({:.2}) |", kb / 1024.0, ms / 1000.0, ms / n as f64).unwrap();
    }
    s.push('\n');
    s
}

// ---------------------------------------------------------------- 4. worktrees

/// A repository of `files` small text files in 50 directories (fixed seed), packed like a real
/// one; its main checkout is detached so merges never touch it.
fn big_repo(files: usize) -> PathBuf {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("repo");
    let mut rng = Rng(0x5eed_f00d);
    for i in 0..files {
        let file = path.join(format!("src/m{:02}/f{i:04}.txt", i % 50));
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        let text: String = (0..5 + rng.below(40)).map(|l| format!("line {l}: {}\n", rng.next())).collect();
        std::fs::write(file, text).expect("write");
    }
    std::fs::write(path.join(".gitignore"), ".claude/\n.tmp*/\n").expect("write");
    git(&path, &["init", "-q"]);
    git(&path, &["add", "-A"]);
    git(&path, &["commit", "-qm", "generated"]);
    git(&path, &["repack", "-adq"]);
    git(&path, &["checkout", "-q", "--detach"]);
    GRAVEYARD.lock().expect("graveyard").push(dir);
    path
}

/// `tasks` independent tasks on 4 agents, each writing its own new file in a worktree of a
/// pool of `slots` slots in `pool_dir`. Task ids carry the run number: branches stay distinct.
/// `auto_cleanup: false` keeps the slots after a run (the default removes them, so a second run
/// would start cold) and keeps removing 5,000-file worktrees out of the measured time.
fn worktree_plan(run: usize, tasks: usize, slots: usize, pool_dir: &Path) -> Plan {
    let mut text = format!(
        "version: 1\nbase: main\nparallelization: {{ max_agents: 4, auto_cleanup: false }}\npool: {{ size: {slots}, dir: \"{}\" }}\n\
         agents:\n  edit: {{ command: [\"sh\", \"-c\", \"mkdir -p notes && echo done > notes/{{task_id}}.txt\"] }}\n\
         gates: {{ review: false }}\ntasks:\n",
        pool_dir.display()
    );
    for i in 0..tasks {
        writeln!(text, "  - {{ id: r{run}-t{i}, agent: edit, modifies: [notes/r{run}-t{i}.txt] }}").unwrap();
    }
    match load_str("worktrees.yaml", &text, &LoadOptions::default()) {
        Ok(l) => l.into_plan(),
        Err(e) => panic!("the worktree plan does not load: {e:?}"),
    }
}

/// Runs `plan` with its state in `state`; the wall time.
fn run_in(rt: &tokio::runtime::Runtime, repo: &Path, state: &Path, plan: Plan) -> Duration {
    run_with(rt, plan, RunOptions::new(repo, state))
}

/// One successful run; its wall time.
fn run_with(rt: &tokio::runtime::Runtime, plan: Plan, opts: RunOptions) -> Duration {
    let started = Instant::now();
    let summary = rt.block_on(fugue_engine::run(plan, opts)).expect("the run starts");
    let took = started.elapsed();
    assert_eq!(summary.outcome, RunOutcome::Success, "the bench run failed");
    took
}

fn worktrees(smoke: bool) -> String {
    let (files, tasks, rounds) = if smoke { (50, 4, 1) } else { (5_000, 16, 3) };
    let rt = runtime();
    let repo = big_repo(files);
    let scratch = tempfile::tempdir().expect("temp");
    let scratch_path = scratch.path().to_owned();
    GRAVEYARD.lock().expect("graveyard").push(scratch);
    // The warm pool: its state dir and slots outlive each run, as between two runs of a user's.
    let warm_state = scratch_path.join("warm-state");
    let warm_pool = scratch_path.join("warm-pool");
    let mut run_no = 0;
    let mut next_run = || {
        run_no += 1;
        run_no
    };
    run_in(&rt, &repo, &warm_state, worktree_plan(next_run(), tasks, 4, &warm_pool));
    let mut times: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        for k in 0..3 {
            let which = (k + round) % 3;
            let run = next_run();
            let took = match which {
                0 => run_in(&rt, &repo, &warm_state, worktree_plan(run, tasks, 4, &warm_pool)),
                1 => {
                    let fresh = scratch_path.join(format!("cold-{run}"));
                    run_in(&rt, &repo, &fresh.join("state"), worktree_plan(run, tasks, 4, &fresh.join("pool")))
                }
                _ => {
                    let fresh = scratch_path.join(format!("none-{run}"));
                    run_in(&rt, &repo, &fresh.join("state"), worktree_plan(run, tasks, tasks, &fresh.join("pool")))
                }
            };
            times[which].push(secs(took) * 1000.0);
        }
    }
    let mut s = String::new();
    writeln!(s, "### Worktrees: a run of {tasks} tasks on a {files}-file repository, 4 agents\n").unwrap();
    writeln!(
        s,
        "Each task writes one new file in its worktree; fugue commits it, runs the boundary gate and merges it. \
         Median (best) of {rounds} round(s), the three alternated.\n"
    )
    .unwrap();
    writeln!(s, "| contender | run | per task | vs a new worktree per task |").unwrap();
    writeln!(s, "|---|---:|---:|---:|").unwrap();
    let none = median(&mut times[2].clone());
    let names = [
        "with the pool: 4 warm slots, recycled (a second run in the same state dir)",
        "a pool created during the run: 4 slots, recycled",
        "without the pool: a new worktree for every task",
    ];
    for (name, v) in names.iter().zip(times.iter_mut()) {
        let best = v.iter().copied().fold(f64::INFINITY, f64::min);
        let m = median(v);
        writeln!(s, "| {name} | {m:.0} ms ({best:.0}) | {:.0} ms | {:.2} |", m / tasks as f64, m / none).unwrap();
    }
    s.push('\n');
    s
}

// ---------------------------------------------------------------- 5. merges

/// Merge cost in repository size: both methods, two sizes, `main` checked out or not.
fn merges(smoke: bool) -> String {
    use fugue_engine::worktrees::MergeMethod;
    let (sizes, rounds) = if smoke { ([200, 2_000], 2) } else { ([5_000, 50_000], 7) };
    let mut s = String::new();
    writeln!(s, "### Merges: one one-file task branch into `main`, by repository size\n").unwrap();
    writeln!(
        s,
        "`Pool::merge` of a new branch with one changed file, {rounds} merges per method alternated (a new branch each). \
         merge-tree: no checkout (git ≥ 2.38). checkout: the integration worktree (`merge --no-ff` there), \
         first merge (it creates the worktree) and the median of the rest. ms, median (best).\n"
    )
    .unwrap();
    writeln!(s, "| files | `main` | merge-tree | checkout, first | checkout, later | checkout / merge-tree |").unwrap();
    writeln!(s, "|---:|---|---:|---:|---:|---:|").unwrap();
    let mut flat: Vec<(usize, bool, f64)> = Vec::new();
    for checked_out in [false, true] {
        for files in sizes {
            let repo = imported_repo(files, checked_out, smoke);
            let state = repo.parent().expect("parent").join("state");
            let spec = fugue_core::PoolSpec {
                size: 1,
                dir: repo.parent().expect("parent").join("pool").to_string_lossy().into_owned(),
                ..fugue_core::PoolSpec::default()
            };
            let pool = fugue_engine::worktrees::Pool::open(&repo, &state, spec).expect("pool");
            let mut times: [Vec<f64>; 2] = Default::default();
            let mut n = 0;
            for round in 0..rounds {
                for k in 0..2 {
                    let which = (k + round) % 2;
                    let method = [MergeMethod::MergeTree, MergeMethod::Checkout][which];
                    n += 1;
                    let branch = one_file_branch(&repo, n, files);
                    let req = fugue_engine::worktrees::MergeRequest::new([branch.clone()]).target("main").method(method);
                    let started = Instant::now();
                    let report = pool.merge(&req).expect("merge");
                    times[which].push(secs(started.elapsed()) * 1000.0);
                    assert!(report.is_complete() && report.method == method, "{branch}: {report:?}");
                }
            }
            let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
            let tree = median(&mut times[0].clone());
            let first = times[1][0];
            let mut later = times[1][1..].to_vec();
            let later_m = median(&mut later);
            writeln!(
                s,
                "| {files} | {} | {tree:.1} ({:.1}) | {first:.0} | {later_m:.0} ({:.0}) | {:.1} |",
                if checked_out { "checked out, clean" } else { "not checked out" },
                best(&times[0]),
                best(&later),
                later_m / tree
            )
            .unwrap();
            flat.push((files, checked_out, tree));
        }
    }
    for checked_out in [false, true] {
        let of = |f: usize| flat.iter().find(|(n, c, _)| *n == f && *c == checked_out).map_or(f64::NAN, |x| x.2);
        writeln!(
            s,
            "\nmerge-tree, `main` {}: {} files / {} files = {:.2} ({}× the files)",
            if checked_out { "checked out" } else { "not checked out" },
            sizes[1],
            sizes[0],
            of(sizes[1]) / of(sizes[0]),
            sizes[1] / sizes[0]
        )
        .unwrap();
    }
    s.push('\n');
    s
}

// ---------------------------------------------------------------- 6. time to the first agent

/// A one-task plan whose agent writes the time it started (ns since the epoch) into its
/// worktree, so the run's merge brings it to `main`.
fn first_agent_plan(run: usize, pool_dir: &Path) -> Plan {
    let text = format!(
        "version: 1\nbase: main\nparallelization: {{ max_agents: 1, auto_cleanup: false }}\npool: {{ size: 1, dir: \"{}\" }}\n\
         agents:\n  stamp: {{ command: [\"sh\", \"-c\", \"date +%s%N > started-r{run}.txt\"] }}\n\
         gates: {{ review: false }}\ntasks:\n  - {{ id: r{run}, agent: stamp, modifies: [started-r{run}.txt] }}\n",
        pool_dir.display()
    );
    match load_str("first-agent.yaml", &text, &LoadOptions::default()) {
        Ok(l) => l.into_plan(),
        Err(e) => panic!("the first-agent plan does not load: {e:?}"),
    }
}

/// From `fugue run` to the first agent's start on a big repository, with a new pool (the slot
/// is checked out during the run) and a warm one (a second run recycles the slot), beside what
/// the peers pay before their agent starts: one `git worktree add` of the repository. And what a
/// slot costs on disk against a new worktree per task.
fn first_agent(smoke: bool) -> String {
    let (files, rounds) = if smoke { (2_000, 1) } else { (50_000, 3) };
    let rt = runtime();
    let repo = imported_repo(files, true, smoke);
    let base = repo.parent().expect("parent").to_path_buf();
    let started_at = |run: usize| -> f64 {
        let out = Command::new("git").args(["show", &format!("main:started-r{run}.txt")]).current_dir(&repo).output().expect("git show");
        String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().expect("a timestamp") / 1e6
    };
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let (warm_state, warm_pool) = (base.join("warm-state"), base.join("warm-pool"));
    let mut run = 0;
    let mut times: [Vec<f64>; 3] = Default::default();
    for round in 0..=rounds {
        // Cold: a new state dir and pool, the slot created in the run.
        run += 1;
        let t0 = now_ms();
        run_in(&rt, &repo, &base.join(format!("cold-{run}/state")), first_agent_plan(run, &base.join(format!("cold-{run}/pool"))));
        let cold = started_at(run) - t0;
        // Warm: the same pool again; the first round only warms it.
        run += 1;
        let t0 = now_ms();
        run_in(&rt, &repo, &warm_state, first_agent_plan(run, &warm_pool));
        let warm = started_at(run) - t0;
        // The peers: a new worktree for the task.
        let peer = base.join(format!("peer-{round}"));
        let t0 = Instant::now();
        git(&repo, &["worktree", "add", "-q", "-b", &format!("peer/{round}"), &peer.to_string_lossy(), "main"]);
        let add = secs(t0.elapsed()) * 1000.0;
        if round > 0 {
            times[0].push(cold);
            times[1].push(warm);
            times[2].push(add);
        }
    }
    let slot = fugue_engine::worktrees::disk_usage([warm_pool.join("wt-1").as_path()]);
    let peer_disk = fugue_engine::worktrees::disk_usage([base.join("peer-0").as_path()]);
    let mut s = String::new();
    writeln!(s, "### Time to the first agent on a {files}-file repository\n").unwrap();
    writeln!(
        s,
        "From calling `fugue_engine::run` to the agent's first instruction (its `date +%s%N`, merged to `main`), one task, \
         {rounds} round(s) after a warm-up, the three in turn. ms, median (best).\n"
    )
    .unwrap();
    writeln!(s, "| contender | to the first agent | vs `git worktree add` |").unwrap();
    writeln!(s, "|---|---:|---:|").unwrap();
    let peer = median(&mut times[2].clone());
    for (name, v) in
        ["fugue, new pool (the slot is checked out in the run)", "fugue, warm pool (a recycled slot)", "peer: `git worktree add`"]
            .iter()
            .zip(times.iter_mut())
    {
        let best = v.iter().copied().fold(f64::INFINITY, f64::min);
        let m = median(v);
        writeln!(s, "| {name} | {m:.0} ({best:.0}) | {:.2} |", m / peer).unwrap();
    }
    writeln!(
        s,
        "\nDisk: a slot {:.1} MiB, a peer's worktree {:.1} MiB; a pool of N slots serves any number of tasks, a worktree per task costs that per task.\n",
        slot as f64 / 1048576.0,
        peer_disk as f64 / 1048576.0
    )
    .unwrap();
    s
}

/// A repository of `files` small files under `src/dNNN/`, written by one `git fast-import` (no
/// file is created for it: seconds at 50,000 files); `main` checked out in the main worktree
/// when asked (that writes every file), else the worktree is left empty and detached. Under the
/// system temp dir, removed with the graveyard.
fn imported_repo(files: usize, checked_out: bool, smoke: bool) -> PathBuf {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("repo");
    std::fs::create_dir_all(&path).expect("mkdir");
    git(&path, &["init", "-q"]);
    let mut stream = Vec::with_capacity(files * 120);
    for i in 0..files {
        let text = format!("file {i}\nline one of {i}\nline two of {i}\n");
        write!(stream, "blob\nmark :{}\ndata {}\n{text}\n", i + 1, text.len()).unwrap();
    }
    let message = "generated";
    write!(stream, "commit refs/heads/main\ncommitter b <b@b> 1700000000 +0000\ndata {}\n{message}\n", message.len()).unwrap();
    for i in 0..files {
        writeln!(stream, "M 100644 :{} {}", i + 1, bench_file(i)).unwrap();
    }
    let gitignore = ".claude/\n";
    write!(stream, "M 100644 inline .gitignore\ndata {}\n{gitignore}\n", gitignore.len()).unwrap();
    fast_import(&path, &stream);
    if checked_out {
        git(&path, &["checkout", "-q", "-f", "main"]);
        // Files written in the index's own second are "racily clean" and re-read by every
        // status until the index is written later: a user's checkout is older than that. (The
        // smoke run checks the harness, not timings.)
        if !smoke {
            std::thread::sleep(Duration::from_millis(1100));
        }
        git(&path, &["status", "--porcelain", "--untracked-files=no"]);
    } else {
        git(&path, &["update-ref", "--no-deref", "HEAD", "main"]);
        git(&path, &["read-tree", "--empty"]);
    }
    GRAVEYARD.lock().expect("graveyard").push(dir);
    path
}

fn bench_file(i: usize) -> String {
    format!("src/d{:03}/f{i:05}.txt", i % 500)
}

/// A new branch `auto/mN` off `main` that changes one file: one fast-import, not timed.
fn one_file_branch(repo: &Path, n: usize, files: usize) -> String {
    use std::io::Write as _;
    let branch = format!("auto/m{n}");
    let text = format!("changed by task {n}\n");
    let message = format!("task {n}");
    let mut stream = Vec::new();
    write!(
        stream,
        "commit refs/heads/{branch}\ncommitter b <b@b> {} +0000\ndata {}\n{message}\nfrom refs/heads/main^0\nM 100644 inline {}\ndata {}\n{text}\n",
        1_700_000_000 + n,
        message.len(),
        bench_file((n * 7919) % files),
        text.len()
    )
    .unwrap();
    fast_import(repo, &stream);
    branch
}

fn fast_import(repo: &Path, stream: &[u8]) {
    use std::io::Write as _;
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet", "--force"])
        .current_dir(repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("git fast-import");
    child.stdin.take().expect("stdin").write_all(stream).expect("feed fast-import");
    assert!(child.wait().expect("wait").success(), "git fast-import failed");
}
