//! `fugue run` with `executor: slurm` against the single-node cluster of
//! `scripts/slurm-dev.sh`: agents run as Slurm jobs, their ids go into the journal, and a
//! resume after kill -9 re-attaches to the job still running instead of submitting it again.
//!
//! Without a cluster the tests say so loudly and return; with `FUGUE_SLURM_REQUIRED=1` (CI)
//! they fail, naming what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::runs::{merges_of, repo, spawn_run, wait_for};
use crate::{fugue, temp};

/// The slurmrestd address of the dev cluster, or `None` after saying why there is none.
#[expect(clippy::print_stderr, reason = "a skipped test must say so where the test output shows it")]
fn cluster() -> Option<String> {
    let dir = std::env::var_os("FUGUE_SLURM_DIR").map_or_else(|| PathBuf::from("/tmp/fugue-slurm"), PathBuf::from);
    let socket = dir.join("slurmrestd.sock");
    let sinfo = Command::new("sinfo").args(["-h", "-o", "%T"]).output();
    let why = match sinfo {
        Err(e) => format!("`sinfo` cannot run ({e}): Slurm is not installed"),
        Ok(out) if !out.status.success() => format!("`sinfo` failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Ok(_) if !socket.exists() => format!("slurmrestd's socket {} does not exist", socket.display()),
        Ok(_) => return Some(format!("unix:{}", socket.display())),
    };
    assert!(
        !std::env::var("FUGUE_SLURM_REQUIRED").is_ok_and(|v| v == "1"),
        "FUGUE_SLURM_REQUIRED=1 but there is no usable Slurm cluster: {why}; run scripts/slurm-dev.sh start"
    );
    eprintln!("SKIPPED: no Slurm cluster — run scripts/slurm-dev.sh start ({why})");
    None
}

fn plan(rest: Option<&str>, signals: &Path) -> String {
    let s = signals.display();
    let executor = match rest {
        Some(rest) => format!("{{ kind: slurm, rest: \"{rest}\" }}"),
        None => "{ kind: slurm }".to_owned(),
    };
    format!(
        r#"version: 1
base: main
caches: ["{s}"]
executor: {executor}
parallelization: {{ max_agents: 2, min_tasks: 2 }}
agents:
  quick: {{ command: ["sh", "-c", "mkdir -p src/$FUGUE_TASK_ID && echo 'ran on '$SLURM_JOB_ID > src/$FUGUE_TASK_ID/out.txt && echo agent-output-$FUGUE_TASK_ID"] }}
  slow: {{ command: ["sh", "-c", "echo x >> {s}/starts && while [ ! -e {s}/release ]; do sleep 0.05; done; mkdir -p src/slow && echo done > src/slow/out.txt"] }}
gates: {{ review: false }}
tasks:
  - {{ id: a, agent: quick, modifies: [src/a/**] }}
  - {{ id: slow, agent: slow, modifies: [src/slow/**] }}
  - {{ id: b, agent: quick, modifies: [src/b/**], depends_on: [a] }}
"#
    )
}

/// Every `job_started` record of the journal: (task, job id).
fn jobs(repo: &Path) -> Vec<(String, String)> {
    let journal = std::fs::read_to_string(repo.join(".claude/fugue/journal.ndjson")).expect("journal");
    journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["event"] == "job_started")
        .map(|r| (r["task"].as_str().unwrap_or_default().to_owned(), r["job_id"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn runs_through(rest: Option<&str>) {
    let dir = temp();
    let signals = dir.path().join("signals");
    std::fs::create_dir_all(&signals).expect("mkdir");
    std::fs::write(signals.join("release"), "").expect("release");
    let repo = repo(dir.path(), &plan(rest, &signals));
    let out = fugue(&repo, &["run", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let jobs = jobs(&repo);
    for task in ["a", "slow", "b"] {
        assert_eq!(merges_of(&repo, task), 1, "auto/{task} merged once");
        assert_eq!(jobs.iter().filter(|(t, _)| t == task).count(), 1, "one job for {task}: {jobs:?}");
    }
    let (_, job_a) = jobs.iter().find(|(t, _)| t == "a").expect("job of a");
    let merged = crate::runs::git(&repo, &["show", "main:src/a/out.txt"]);
    assert_eq!(merged, format!("ran on {job_a}"), "the agent ran inside Slurm job {job_a}");
    let log = std::fs::read_to_string(repo.join(".claude/logs/a.agent.log")).expect("agent log");
    assert!(log.contains("agent-output-a"), "the job's output reached the task log: {log}");
}

#[test]
fn agents_run_as_slurm_jobs_through_slurmrestd() {
    if let Some(rest) = cluster() {
        runs_through(Some(&rest));
    }
}

#[test]
fn agents_run_as_slurm_jobs_through_the_cli() {
    if cluster().is_some() {
        runs_through(None);
    }
}

#[test]
fn resume_after_kill_9_reattaches_to_the_running_job() {
    let Some(rest) = cluster() else { return };
    let dir = temp();
    let signals = dir.path().join("signals");
    std::fs::create_dir_all(&signals).expect("mkdir");
    let repo = repo(dir.path(), &plan(Some(&rest), &signals));
    let mut child = spawn_run(&repo);
    wait_for(&signals.join("starts"));
    // The job id reaches the journal with the next group commit, before fugue waits on the job.
    let start = std::time::Instant::now();
    while !jobs(&repo).iter().any(|(t, _)| t == "slow") {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "no job_started for `slow`");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    let (_, job) = jobs(&repo).into_iter().find(|(t, _)| t == "slow").expect("job of slow");
    let queue = Command::new("squeue").args(["-h", "-j", &job, "-o", "%T"]).output().expect("squeue");
    assert!(String::from_utf8_lossy(&queue.stdout).contains("RUNNING"), "the job outlives fugue: {queue:?}");

    // Resume while the job still runs; let it finish only then.
    let resumed = Command::new(env!("CARGO_BIN_EXE_fugue"))
        .arg("resume")
        .current_dir(&repo)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn resume");
    let start = std::time::Instant::now();
    while jobs(&repo).iter().filter(|(t, _)| t == "slow").count() < 2 {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "resume did not re-attach to job {job}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(signals.join("release"), "").expect("release");
    let out = resumed.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let slow_jobs: Vec<String> = jobs(&repo).into_iter().filter(|(t, _)| t == "slow").map(|(_, j)| j).collect();
    assert_eq!(slow_jobs, [job.clone(), job], "re-attached to the same job, nothing submitted again");
    assert_eq!(std::fs::read_to_string(signals.join("starts")).expect("starts").lines().count(), 1, "the agent ran once");
    for task in ["a", "slow", "b"] {
        assert_eq!(merges_of(&repo, task), 1, "auto/{task} merged exactly once");
    }
    assert_eq!(fugue(&repo, &["validate"]).code, 0);
}

#[test]
fn a_slurm_job_is_confined_on_the_node() {
    let Some(rest) = cluster() else { return };
    if !fugue_engine::agents::confine::support().enforced() {
        return;
    }
    let dir = temp();
    let outside = dir.path().join("outside.txt");
    let plan = format!(
        "version: 1\nbase: main\nexecutor: {{ kind: slurm, rest: \"{rest}\" }}\nparallelization: {{ retry_on_failure: 0 }}\ngates: {{ review: false, max_iterations: 1 }}\n\
         agents:\n  sneaky: {{ command: [\"sh\", \"-c\", \"echo job $SLURM_JOB_ID; echo sneaky > {o}; git update-ref refs/heads/main HEAD; mkdir -p src && echo x > src/x.txt\"] }}\n\
         tasks:\n  - {{ id: t1, agent: sneaky, modifies: [\"src/**\"] }}\n",
        o = outside.display()
    );
    let repo = repo(dir.path(), &plan);
    let main_before = crate::runs::git(&repo, &["rev-parse", "main"]);
    let out = fugue(&repo, &["run", "plan.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(!outside.exists(), "the job wrote outside the repository");
    assert_eq!(crate::runs::git(&repo, &["rev-parse", "main"]), main_before, "main did not move");
    let log = std::fs::read_to_string(repo.join(".claude/logs/t1.agent.log")).expect("agent log");
    assert!(log.contains("--- fugue: confinement: on"), "{log}");
    assert!(log.contains("job ") && log.contains("outside.txt: Permission denied"), "the refusal came from the node: {log}");
    assert_eq!(jobs(&repo).len(), 1, "it ran as a Slurm job");
}
