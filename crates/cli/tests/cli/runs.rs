//! `fugue run`, `resume`, `status`, `validate` on real repositories with scripted agents:
//! crash (kill -9) and Ctrl-C followed by resume, one run per repository, merge conflicts under
//! `overlap: isolate`, retries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) use crate::git;
use crate::{fugue, temp};

/// A repository with one commit and `plan.yaml`.
pub(crate) fn repo(dir: &Path, plan: &str) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README.md"), "x\n").expect("write");
    std::fs::write(repo.join(".gitignore"), "plan.yaml\n").expect("write");
    std::fs::write(repo.join("shared.txt"), "base\n").expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "init"]);
    std::fs::write(repo.join("plan.yaml"), plan).expect("plan");
    repo
}

pub(crate) fn spawn_run(repo: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fugue"))
        .args(["run", "plan.yaml"])
        .current_dir(repo)
        .env("NO_COLOR", "1")
        .envs(crate::GIT_IDENTITY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fugue run")
}

/// Waits until `path` exists (the scripted agent's "I am running" signal).
pub(crate) fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The number of merges of `auto/<task>` into main.
pub(crate) fn merges_of(repo: &Path, task: &str) -> usize {
    git(repo, &["log", "--merges", "--format=%s", "main"]).lines().filter(|l| l.contains(&format!("'auto/{task}'"))).count()
}

/// A plan whose `slow` task waits for `release` (after announcing itself in `started`).
fn crash_plan(signals: &Path) -> String {
    let s = signals.display();
    format!(
        r#"version: 1
base: main
caches: ["{s}"]
parallelization: {{ max_agents: 2, min_tasks: 2 }}
agents:
  quick: {{ command: ["sh", "-c", "mkdir -p src/$FUGUE_TASK_ID && echo done > src/$FUGUE_TASK_ID/out.txt"] }}
  slow: {{ command: ["sh", "-c", "mkdir -p src/slow && touch {s}/started && while [ ! -e {s}/release ]; do sleep 0.05; done; echo done > src/slow/out.txt; touch {s}/finished"] }}
gates: {{ review: false }}
tasks:
  - {{ id: a, agent: quick, modifies: [src/a/**] }}
  - {{ id: slow, agent: slow, modifies: [src/slow/**] }}
  - {{ id: b, agent: quick, modifies: [src/b/**], depends_on: [a] }}
  - {{ id: after, phase: analysis, agent: quick, modifies: [src/after/**] }}
"#
    )
}

#[test]
fn kill_9_then_resume_merges_every_task_exactly_once() {
    let dir = temp();
    let signals = dir.path().join("signals");
    std::fs::create_dir_all(&signals).expect("mkdir");
    let repo = repo(dir.path(), &crash_plan(&signals));
    let mut child = spawn_run(&repo);
    wait_for(&signals.join("started"));
    child.kill().expect("kill -9");
    let _ = child.wait();
    // The orphaned agent finishes on its own; the resumed run must not merge twice.
    std::fs::write(signals.join("release"), "").expect("release");
    wait_for(&signals.join("finished"));

    let status = fugue(&repo, &["status"]);
    assert!(status.stdout.contains("stopped"), "{}", status.stdout);
    let second = fugue(&repo, &["run", "plan.yaml"]);
    assert_eq!(second.code, 2, "a new run refuses while one is unfinished: {}", second.stderr);
    assert!(second.stderr.contains("fugue resume"), "{}", second.stderr);

    let out = fugue(&repo, &["resume"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for task in ["a", "slow", "b", "after"] {
        assert_eq!(merges_of(&repo, task), 1, "auto/{task} merged exactly once");
        assert_eq!(git(&repo, &["show", &format!("main:src/{task}/out.txt")]), "done");
    }
    let locks = std::fs::read_to_string(repo.join(".claude/RESOURCE_LOCKS.json")).expect("locks");
    assert!(locks.contains("\"locks\": []"), "no stale lock left: {locks}");
    assert_eq!(fugue(&repo, &["validate"]).code, 0);
    let worktrees = git(&repo, &["worktree", "list"]);
    assert_eq!(worktrees.lines().count(), 1, "no orphan worktree: {worktrees}");
}

#[test]
fn ctrl_c_interrupts_and_resume_finishes() {
    let dir = temp();
    let signals = dir.path().join("signals");
    std::fs::create_dir_all(&signals).expect("mkdir");
    let repo = repo(dir.path(), &crash_plan(&signals));
    let child = spawn_run(&repo);
    wait_for(&signals.join("started"));
    // SIGINT, as a terminal's Ctrl-C sends it.
    let pid = i32::try_from(child.id()).expect("pid");
    assert!(Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill").success());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!signals.join("finished").exists(), "the agent was stopped with the run");
    std::fs::write(signals.join("release"), "").expect("release");
    let out = fugue(&repo, &["resume"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for task in ["a", "slow", "b", "after"] {
        assert_eq!(merges_of(&repo, task), 1, "auto/{task} merged exactly once");
    }
}

#[test]
fn a_second_run_in_the_same_repository_is_refused_with_the_holder_pid() {
    let dir = temp();
    let signals = dir.path().join("signals");
    std::fs::create_dir_all(&signals).expect("mkdir");
    let repo = repo(dir.path(), &crash_plan(&signals));
    let mut child = spawn_run(&repo);
    wait_for(&signals.join("started"));
    let second = fugue(&repo, &["resume"]);
    assert_ne!(second.code, 0);
    assert!(second.stderr.contains(&child.id().to_string()), "names the pid {}: {}", child.id(), second.stderr);
    std::fs::write(signals.join("release"), "").expect("release");
    assert!(child.wait().expect("wait").success());
}

#[test]
fn overlapping_writers_under_isolate_conflict_at_merge_and_keep_the_branch() {
    let dir = temp();
    let plan = r#"version: 1
base: main
parallelization: { overlap: isolate, min_tasks: 2, retry_on_failure: 0 }
agents:
  edit: { command: ["sh", "-c", "echo \"$0\" > shared.txt", "{prompt}"] }
gates: { review: false }
tasks:
  - { id: one, agent: edit, prompt: "one", modifies: [shared.txt] }
  - { id: two, agent: edit, prompt: "two", modifies: [shared.txt] }
"#;
    let repo = repo(dir.path(), plan);
    let out = fugue(&repo, &["run", "plan.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Conflict: `"), "{}", out.stdout);
    let status = fugue(&repo, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    let statuses: Vec<&str> = v["tasks"].as_array().expect("tasks").iter().map(|t| t["status"].as_str().unwrap_or_default()).collect();
    assert!(statuses.contains(&"merged") && statuses.contains(&"merge_conflict"), "{statuses:?}");
    let loser = v["tasks"].as_array().expect("tasks").iter().find(|t| t["status"] == "merge_conflict").expect("loser");
    let branch = format!("auto/{}", loser["id"].as_str().expect("id"));
    git(&repo, &["rev-parse", "--verify", &branch]);
}

#[test]
fn a_flaky_agent_is_retried_and_its_attempts_counted() {
    let dir = temp();
    // The counter is outside the repository: a directory the plan declares for confined agents.
    let count = dir.path().join("count");
    std::fs::create_dir_all(&count).expect("mkdir");
    let counter = count.join("tries");
    let plan = format!(
        r#"version: 1
base: main
caches: ["{d}"]
parallelization: {{ retry_on_failure: 2 }}
agents:
  flaky: {{ command: ["sh", "-c", "echo x >> {c}; [ $(wc -l < {c}) -ge 2 ] || exit 1; mkdir -p src/f && echo ok > src/f/out.txt"] }}
gates: {{ review: false }}
tasks:
  - {{ id: f, agent: flaky, modifies: [src/f/**] }}
"#,
        c = counter.display(),
        d = count.display()
    );
    let repo = repo(dir.path(), &plan);
    let out = fugue(&repo, &["run", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let status = fugue(&repo, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(v["tasks"][0]["attempts"], 2);
    assert_eq!(v["tasks"][0]["status"], "merged");
}
