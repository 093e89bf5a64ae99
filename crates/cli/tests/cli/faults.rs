//! Fault injection against the real `fugue` binary, real git and scripted agents (small shell
//! scripts): crashes at seeded journal positions followed by resume (`crash`), torn and
//! garbled state files (`torn`), misbehaving agents (`agent`), git trouble (`git`), and a state
//! dir that is read-only or full (`state_dir`).
//!
//! Every scenario ends with the same question — did the run lose or duplicate work? — answered
//! by [`check_invariants`] from the outside: merge commits on the base, branches, the lock
//! table, the worktree list, lock files in `.git`, the journal and `fugue validate`. Faults the
//! product does not handle yet are still written, as `#[ignore = "fault: …"]` tests, so the
//! suite stays green while recording the gap; `RELIABILITY.md` at the repository root is the
//! table of what was tried.
//!
//! The long crash suite: `cargo test -p fugue-cli --test cli faults:: -- --ignored`.

mod agent;
mod crash;
mod git;
mod state_dir;
mod torn;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) use crate::{git, git_try};

/// A scenario: a temp dir holding `repo/` (one commit, `plan.yaml`) and `signals/`, the
/// directory scripted agents and the test talk through.
#[derive(Debug)]
pub(crate) struct Scenario {
    dir: Option<tempfile::TempDir>,
    pub(crate) repo: PathBuf,
    pub(crate) signals: PathBuf,
}

impl Scenario {
    /// A repository whose plan is `plan(signals_dir)`.
    pub(crate) fn new(plan: impl FnOnce(&Path) -> String) -> Self {
        let dir = crate::temp();
        let signals = dir.path().join("signals");
        std::fs::create_dir_all(&signals).expect("mkdir signals");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("src")).expect("mkdir");
        git(&repo, &["init", "-q"]);
        std::fs::write(repo.join("README.md"), "x\n").expect("write");
        std::fs::write(repo.join(".gitignore"), "plan.yaml\n/.pool/\n").expect("write");
        std::fs::write(repo.join("shared.txt"), "base\n").expect("write");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "init"]);
        // The scripted agents report through files in `signals`, outside the repository: under
        // confinement (the default where the kernel has Landlock) a plan must declare it as a
        // directory they may write, as a build cache would be.
        let mut text = plan(&signals);
        if text.starts_with("version: 1\n") && !text.contains("\ncaches:") {
            text = text.replacen("version: 1\n", &format!("version: 1\ncaches: [\"{}\"]\n", signals.display()), 1);
        }
        std::fs::write(repo.join("plan.yaml"), text).expect("plan");
        Self { dir: Some(dir), repo, signals }
    }

    /// The scenario's root directory.
    pub(crate) fn root(&self) -> &Path {
        self.dir.as_ref().map_or_else(|| self.repo.parent().expect("root"), |d| d.path())
    }

    /// Keeps the directory after the test (to inspect a failure); returns its path.
    pub(crate) fn keep(&mut self) -> PathBuf {
        match self.dir.take() {
            Some(d) => d.keep(),
            None => self.repo.parent().expect("root").to_path_buf(),
        }
    }

    /// The state dir.
    pub(crate) fn state(&self) -> PathBuf {
        self.repo.join(".claude")
    }

    /// The journal.
    pub(crate) fn journal_path(&self) -> PathBuf {
        self.state().join("fugue").join("journal.ndjson")
    }

    /// `fugue ARGS` in the repository, with the test environment and no stdin.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fugue"));
        c.args(args)
            .current_dir(&self.repo)
            .env("NO_COLOR", "1")
            .env_remove("FUGUE_PLUGIN_PATH")
            .envs(crate::GIT_IDENTITY)
            .stdin(Stdio::null());
        c
    }

    /// Starts `fugue ARGS` in the repository; its stderr goes to `<root>/stderr-N.txt`.
    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        // stderr goes to a numbered file in the scenario's root; `stderr_of` reads them back.
        let n = std::fs::read_dir(self.root()).map(|d| d.count()).unwrap_or(0);
        let stderr = std::fs::File::create(self.root().join(format!("stderr-{n}.txt"))).expect("stderr file");
        self.command(args).stdout(Stdio::null()).stderr(stderr).spawn().expect("spawn fugue")
    }

    /// Runs `fugue ARGS` in the repository to the end.
    pub(crate) fn fugue(&self, args: &[&str]) -> crate::Output {
        self.command(args).output().expect("run fugue").into()
    }

    /// `fugue status --json`.
    pub(crate) fn status(&self) -> Value {
        let out = self.fugue(&["status", "--json"]);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{}\n{}", out.stdout, out.stderr))
    }

    /// `task`'s entry in `fugue status --json`.
    pub(crate) fn task(&self, task: &str) -> Value {
        let v = self.status();
        v["tasks"].as_array().expect("tasks").iter().find(|t| t["id"] == task).cloned().unwrap_or_else(|| panic!("no task {task}: {v}"))
    }

    /// The journal's lines (the raw text, one per line).
    pub(crate) fn journal_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.journal_path()).map(|t| t.lines().map(str::to_owned).collect()).unwrap_or_default()
    }

    /// The journal's events (panics on a line that does not parse).
    pub(crate) fn events(&self) -> Vec<Value> {
        self.journal_lines()
            .iter()
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {}: {e}: {l}", i + 1)))
            .collect()
    }

    /// The events of kind `kind` about `task`.
    pub(crate) fn events_of(&self, kind: &str, task: &str) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["event"] == kind && e["task"] == task).collect()
    }

    /// `touch signals/NAME`.
    pub(crate) fn signal(&self, name: &str) {
        std::fs::write(self.signals.join(name), "").expect("signal");
    }

    /// Waits for `signals/NAME`.
    pub(crate) fn wait_signal(&self, name: &str) {
        let path = self.signals.join(name);
        wait_until(&format!("{}", path.display()), || path.exists());
    }
}

/// A figure for RELIABILITY.md: shown with `--nocapture`, swallowed by libtest otherwise.
#[expect(clippy::print_stderr, reason = "test figures, captured by libtest unless --nocapture")]
pub(crate) fn note(msg: &str) {
    eprintln!("{msg}");
}

/// Holds the OS file lock (flock) on `lock`, as a second fugue would, until `signals/<name>-unlock`
/// exists; returns once it is held.
pub(crate) fn hold_flock(s: &Scenario, lock: &Path, name: &str) -> Child {
    let sg = s.signals.display();
    let child = Command::new("flock")
        .arg(lock)
        .args(["sh", "-c", &format!("touch {sg}/{name}-held; while [ ! -e {sg}/{name}-unlock ]; do sleep 0.02; done")])
        .spawn()
        .expect("flock");
    s.wait_signal(&format!("{name}-held"));
    child
}

/// Polls `cond` every 5 ms for up to 60 s.
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (up to 10 s) until no process runs with its working directory under `dir`: what a
/// killed `fugue` left running (agents, git) has finished, as it would have before a person
/// typed `fugue resume`.
pub(crate) fn wait_quiet(dir: &Path) -> Vec<String> {
    let start = Instant::now();
    loop {
        let busy = processes_under(dir);
        if busy.is_empty() || start.elapsed() > Duration::from_secs(10) {
            return busy;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `pid cmdline` of every process whose working directory is under `dir`.
pub(crate) fn processes_under(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) else { continue };
        if cwd.starts_with(&dir) {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd: String = String::from_utf8_lossy(&cmd).replace('\0', " ");
            // Zombies have no cmdline and hold nothing.
            if !cmd.trim().is_empty() {
                found.push(format!("{pid} {}", cmd.trim()));
            }
        }
    }
    found
}

/// Whether the process `pid` is alive (and not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// The number of merges of `auto/<task>` into main.
pub(crate) fn merges_of(repo: &Path, task: &str) -> usize {
    git(repo, &["log", "--merges", "--format=%s", "main"]).lines().filter(|l| l.contains(&format!("'auto/{task}'"))).count()
}

/// One task of a scenario, for the invariants: its id and whether it ran in a worktree (and so
/// must have exactly one merge commit of `auto/<id>` on main).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect<'a> {
    pub(crate) id: &'a str,
    pub(crate) worktree: bool,
    /// The file the task's agent writes (relative to the repo), checked on main or in the
    /// checkout.
    pub(crate) file: Option<&'a str>,
}

/// Everything that must hold after a run finished successfully, whatever happened on the way.
/// Returns every violation found (empty when all hold).
/// [`check_invariants`], failing the test with every broken one.
#[track_caller]
pub(crate) fn assert_invariants(s: &Scenario, tasks: &[Expect<'_>]) {
    let bad = check_invariants(s, tasks);
    assert!(bad.is_empty(), "{bad:#?}");
}

pub(crate) fn check_invariants(s: &Scenario, tasks: &[Expect<'_>]) -> Vec<String> {
    let mut bad = Vec::new();
    let repo = &s.repo;

    // The journal: every line parses, seq is 1..n, one run_started, one run_finished (last).
    let lines = s.journal_lines();
    let mut events = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str::<Value>(l) {
            Ok(v) => {
                if v["seq"].as_u64() != Some(i as u64 + 1) {
                    bad.push(format!("journal line {} has seq {} (expected {})", i + 1, v["seq"], i + 1));
                }
                events.push(v);
            }
            Err(e) => bad.push(format!("journal line {} does not parse: {e}: {l}", i + 1)),
        }
    }
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    if count("run_started") != 1 {
        bad.push(format!("{} run_started events (expected 1)", count("run_started")));
    }
    if count("run_finished") != 1 {
        bad.push(format!("{} run_finished events (expected 1)", count("run_finished")));
    }
    if events.last().map(|e| e["event"].clone()) != Some(Value::from("run_finished")) {
        bad.push("the journal does not end with run_finished".to_owned());
    }
    if let Some(f) = events.iter().find(|e| e["event"] == "run_finished")
        && f["outcome"] != "success"
    {
        bad.push(format!("the run finished with {}", f["outcome"]));
    }

    // Every task merged; worktree tasks exactly once; their work is on main.
    let status = s.status();
    for t in tasks {
        let st = status["tasks"].as_array().and_then(|a| a.iter().find(|x| x["id"] == t.id)).map(|x| x["status"].clone());
        if st != Some(Value::from("merged")) {
            bad.push(format!("task {} is {st:?}, not merged", t.id));
        }
        if t.worktree {
            let n = merges_of(repo, t.id);
            if n != 1 {
                bad.push(format!("auto/{} was merged {n} times into main (expected exactly 1)", t.id));
            }
            if let Some(f) = t.file {
                let (ok, text) = git_try(repo, &["show", &format!("main:{f}")]);
                if !ok || !text.starts_with(t.id) {
                    bad.push(format!("main:{f} is missing or wrong ({text})"));
                }
            }
        } else if let Some(f) = t.file
            && !repo.join(f).exists()
        {
            bad.push(format!("{f} (written in place by {}) is missing", t.id));
        }
    }

    // No commit lost: every merge the journal recorded is on main; every auto/* branch left is
    // merged into main.
    for e in events.iter().filter(|e| e["event"] == "merged") {
        if let Some(c) = e["commit"].as_str().filter(|c| !c.is_empty())
            && !git_try(repo, &["merge-base", "--is-ancestor", c, "main"]).0
        {
            bad.push(format!("merge commit {c} of task {} is not on main", e["task"]));
        }
    }
    for b in git(repo, &["for-each-ref", "--format=%(refname:short)", "refs/heads/auto/"]).lines() {
        if !git_try(repo, &["merge-base", "--is-ancestor", b, "main"]).0 {
            bad.push(format!("branch {b} holds commits that are not on main"));
        }
    }

    // No stale lock.
    match std::fs::read_to_string(s.state().join("RESOURCE_LOCKS.json")).map(|t| serde_json::from_str::<Value>(&t)) {
        Ok(Ok(v)) if v["locks"].as_array().is_some_and(Vec::is_empty) => {}
        Ok(Ok(v)) => bad.push(format!("RESOURCE_LOCKS.json still holds locks: {v}")),
        Ok(Err(e)) => bad.push(format!("RESOURCE_LOCKS.json does not parse: {e}")),
        Err(e) => bad.push(format!("RESOURCE_LOCKS.json: {e}")),
    }

    // No orphan worktree: every linked worktree exists, is not prunable, and is a pool slot,
    // the integration worktree or a (detached) warm QA checkout; no slot is left busy.
    let pool: Value =
        std::fs::read_to_string(s.state().join("pool-state.json")).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    let slots: Vec<String> =
        pool["worktrees"].as_array().map(|a| a.iter().filter_map(|w| w["path"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
    for w in pool["worktrees"].as_array().into_iter().flatten() {
        if w["status"] != "free" {
            bad.push(format!("pool slot {} is still {}", w["id"], w["status"]));
        }
    }
    let list = git(repo, &["worktree", "list", "--porcelain"]);
    let canon_repo = repo.canonicalize().unwrap_or_else(|_| repo.clone());
    for entry in list.split("\n\n") {
        let path = entry.lines().find_map(|l| l.strip_prefix("worktree ")).unwrap_or_default();
        if path.is_empty() || Path::new(path) == canon_repo || Path::new(path) == repo.as_path() {
            continue;
        }
        if entry.lines().any(|l| l.starts_with("prunable")) {
            bad.push(format!("worktree {path} is prunable (its directory is gone)"));
        }
        // A warm QA checkout (`<state>/fugue/qa/q-N`) stays across runs by design, detached:
        // it holds no branch, so it can block no merge or branch deletion.
        let qa_slot = Path::new(path).parent().is_some_and(|p| p.ends_with("fugue/qa"))
            && Path::new(path).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("q-"));
        if qa_slot && !entry.lines().any(|l| l == "detached") {
            bad.push(format!("QA checkout {path} is not detached"));
        }
        let known = slots.iter().any(|p| Path::new(p) == Path::new(path)) || path.ends_with("/integration") || qa_slot;
        if !known {
            bad.push(format!("worktree {path} belongs to no pool slot"));
        }
    }

    // No lock file left in .git (index.lock of any worktree, ref locks).
    for lock in lock_files(&repo.join(".git")) {
        bad.push(format!("leftover lock file {}", lock.display()));
    }

    // `fugue validate` agrees.
    let v = s.fugue(&["validate"]);
    if v.code != 0 {
        bad.push(format!("fugue validate exited {}: {}{}", v.code, v.stdout, v.stderr));
    }
    bad
}

/// Every git `*.lock` file under `dir` (a `.git` directory).
pub(crate) fn lock_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                // Objects hold no locks worth a walk.
                if p.file_name().is_some_and(|n| n != "objects") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "lock")
                // fugue's own OS file locks (flock) live on; only git's `*.lock` files are stale.
                && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("fugue-"))
            {
                out.push(p);
            }
        }
    }
    out
}

/// SplitMix64: a tiny, good-enough deterministic PRNG for seeded fault schedules.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[test]
fn splitmix64_matches_the_reference_sequence() {
    // Reference values for seed 1234567 (from the published C implementation).
    let mut r = SplitMix64::new(1_234_567);
    assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
    assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
}

/// Everything the scenario's spawned `fugue` processes wrote on stderr.
pub(crate) fn stderr_of(s: &Scenario) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(s.root())
        .map(|d| {
            d.flatten().map(|e| e.path()).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("stderr-"))).collect()
        })
        .unwrap_or_default();
    files.sort();
    files.iter().map(|f| std::fs::read_to_string(f).unwrap_or_default()).collect::<Vec<_>>().join("\n")
}
