//! Agent faults, each in a run beside two healthy tasks that must still merge: a non-zero exit,
//! death by a signal, a hang past `timeout`, a child that outlives the agent (in its group, in
//! its group ignoring SIGTERM, and escaped with `setsid`), writes outside the task's scope,
//! 100 MB of output, non-UTF-8 output, and an agent that deletes its own worktree. Retries are
//! counted against `retry_on_failure`.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Expect, Scenario, alive, assert_invariants, git_try, merges_of};

/// A plan with the healthy tasks `ok1` and `ok2` and the task `x` run by `agent` (a YAML flow
/// mapping), with `retry_on_failure: retries`, `max_iterations: 2`.
fn plan_with(agent: &str, retries: u32) -> impl FnOnce(&Path) -> String {
    let agent = agent.to_owned();
    move |_| {
        format!(
            r#"version: 1
base: main
parallelization: {{ max_agents: 3, min_tasks: 2, retry_on_failure: {retries} }}
agents:
  quick: {{ command: ["sh", "-c", "mkdir -p src/$FUGUE_TASK_ID && echo \"$FUGUE_TASK_ID $$\" > src/$FUGUE_TASK_ID/out.txt"] }}
  faulty: {agent}
gates: {{ review: false, max_iterations: 2 }}
tasks:
  - {{ id: ok1, agent: quick, modifies: [src/ok1/**] }}
  - {{ id: x, agent: faulty, modifies: [src/x/**] }}
  - {{ id: ok2, agent: quick, modifies: [src/ok2/**] }}
"#
        )
    }
}

const HEALTHY: [Expect<'static>; 2] = [
    Expect { id: "ok1", worktree: true, file: Some("src/ok1/out.txt") },
    Expect { id: "ok2", worktree: true, file: Some("src/ok2/out.txt") },
];

const WITH_X: [Expect<'static>; 3] = [HEALTHY[0], HEALTHY[1], Expect { id: "x", worktree: true, file: Some("src/x/out.txt") }];

/// The healthy tasks merged exactly once each, and `x` never merged.
fn assert_contained(s: &Scenario) {
    for t in HEALTHY {
        assert_eq!(merges_of(&s.repo, t.id), 1, "{} merged once", t.id);
        assert_eq!(s.task(t.id)["status"], "merged");
    }
    assert_eq!(merges_of(&s.repo, "x"), 0, "the faulty task is not merged");
    assert_eq!(s.task("x")["status"], "failed");
    let locks = std::fs::read_to_string(s.state().join("RESOURCE_LOCKS.json")).expect("locks");
    assert!(locks.contains("\"locks\": []"), "no stale lock: {locks}");
    assert!(super::lock_files(&s.repo.join(".git")).is_empty(), "no git lock file left");
    assert_eq!(s.fugue(&["validate"]).code, 0, "validate");
}

/// The summaries of `x`'s agent runs.
fn summaries(s: &Scenario) -> Vec<String> {
    s.events_of("agent_finished", "x").iter().map(|e| e["summary"].as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn a_non_zero_exit_fails_the_task_after_the_configured_retries() {
    let s = Scenario::new(plan_with(r#"{ command: ["sh", "-c", "echo trying; exit 3"] }"#, 2));
    let out = s.fugue(&["run", "plan.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_contained(&s);
    assert_eq!(s.task("x")["attempts"], 3, "retry_on_failure: 2 means three attempts");
    assert_eq!(s.events_of("attempt_failed", "x").len(), 3);
    assert!(summaries(&s).iter().all(|m| m.contains("code 3")), "{:?}", summaries(&s));
}

#[test]
fn an_agent_killed_by_a_signal_fails_and_says_which_signal() {
    let s = Scenario::new(plan_with(r#"{ command: ["sh", "-c", "kill -9 $$"] }"#, 1));
    let out = s.fugue(&["run", "plan.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_contained(&s);
    assert_eq!(s.task("x")["attempts"], 2);
    assert!(summaries(&s).iter().all(|m| m.contains("SIGKILL")), "{:?}", summaries(&s));
}

#[test]
fn a_hanging_agent_is_stopped_at_its_timeout_with_its_whole_group() {
    let s = Scenario::new(|signals| {
        let agent =
            format!(r#"{{ command: ["sh", "-c", "sleep 60 & echo $! >> {}/hang.pids; wait"], timeout: 300ms }}"#, signals.display());
        plan_with(&agent, 1)(signals)
    });
    let start = Instant::now();
    let out = s.fugue(&["run", "plan.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(start.elapsed() < Duration::from_secs(30), "the run was not held up by the hang");
    assert_contained(&s);
    assert_eq!(s.task("x")["attempts"], 2);
    let reasons: Vec<String> = s.events_of("attempt_failed", "x").iter().map(|e| e["reason"].to_string()).collect();
    assert!(reasons.iter().all(|r| r.contains("timed out") || r.contains("timeout")), "{reasons:?}");
    let pids = std::fs::read_to_string(s.signals.join("hang.pids")).expect("pids");
    for pid in pids.lines().filter_map(|p| p.trim().parse::<u32>().ok()) {
        assert!(!alive(pid), "the hung agent's child {pid} was stopped with it");
    }
}

#[test]
fn a_child_left_running_in_the_agents_group_is_stopped_and_does_not_block_the_run() {
    // The child keeps the agent's stdout open: the run must not wait for it.
    let s = Scenario::new(|signals| {
        let agent = format!(
            r#"{{ command: ["sh", "-c", "sleep 60 & echo $! > {}/child.pid; mkdir -p src/x && echo \"x $$\" > src/x/out.txt"] }}"#,
            signals.display()
        );
        plan_with(&agent, 0)(signals)
    });
    run_merges_and_the_child_is_gone(&s, "the child");
}

/// The run succeeds with every invariant, and the process whose pid the agent wrote to
/// `signals/child.pid` (`what`) is dead afterwards.
fn run_merges_and_the_child_is_gone(s: &Scenario, what: &str) {
    let out = s.fugue(&["run", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_invariants(s, &WITH_X);
    let pid: u32 = std::fs::read_to_string(s.signals.join("child.pid")).expect("pid").trim().parse().expect("pid");
    assert!(!alive(pid), "{what} {pid} outlived the run");
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let s = Scenario::new(|signals| {
        let agent = format!(
            r#"{{ command: ["sh", "-c", "sh -c 'trap \"\" TERM; echo $$ > {}/child.pid; while :; do sleep 0.05; done' & mkdir -p src/x && echo \"x $$\" > src/x/out.txt; while [ ! -s {}/child.pid ]; do sleep 0.01; done"] }}"#,
            signals.display(),
            signals.display()
        );
        plan_with(&agent, 0)(signals)
    });
    run_merges_and_the_child_is_gone(&s, "the TERM-proof child");
}

#[test]
fn a_child_escaped_with_setsid_does_not_block_the_run() {
    // Documented limit: a process that leaves the agent's process group (setsid) is out of
    // reach without cgroups. It must at least not hold the run up, even holding stdout.
    let s = Scenario::new(|signals| {
        let agent = format!(
            r#"{{ command: ["sh", "-c", "setsid sh -c 'echo $$ > {}/escaped.pid; exec sleep 30' & mkdir -p src/x && echo \"x $$\" > src/x/out.txt; while [ ! -s {}/escaped.pid ]; do sleep 0.01; done"] }}"#,
            signals.display(),
            signals.display()
        );
        plan_with(&agent, 0)(signals)
    });
    let out = s.fugue(&["run", "plan.yaml"]);
    let pid: Option<u32> = std::fs::read_to_string(s.signals.join("escaped.pid")).ok().and_then(|p| p.trim().parse().ok());
    let escaped_alive = pid.is_some_and(alive);
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_invariants(&s, &WITH_X);
    assert!(escaped_alive, "(documented) a setsid child is not stopped: if this fails, the limit is gone — update RELIABILITY.md");
}

#[test]
fn writes_outside_the_scope_are_rejected_by_the_boundary_gate_and_never_merged() {
    let s = Scenario::new(plan_with(
        r#"{ command: ["sh", "-c", "mkdir -p src/x src/ok1 && echo x > src/x/out.txt && echo stolen > src/ok1/stolen.txt && echo stray > stray.txt"] }"#,
        1,
    ));
    let out = s.fugue(&["run", "plan.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_contained(&s);
    assert_eq!(s.task("x")["attempts"], 2);
    let qa = s.events_of("qa_finished", "x");
    assert_eq!(qa.len(), 4, "two attempts of max_iterations 2: {qa:?}");
    for q in &qa {
        assert_eq!(q["verdict"], "TASK_REJECTED");
        let text = q["reports"].to_string();
        assert!(text.contains("stray.txt") && text.contains("src/ok1/stolen.txt") && text.contains("outside"), "{text}");
    }
    for f in ["stray.txt", "src/ok1/stolen.txt", "src/x/out.txt"] {
        assert!(!git_try(&s.repo, &["cat-file", "-e", &format!("main:{f}")]).0, "{f} reached main");
    }
    // The rejected work is kept on its branch for a person to look at.
    assert!(git_try(&s.repo, &["rev-parse", "--verify", "auto/x"]).0, "auto/x kept");
}

#[test]
fn a_hundred_megabytes_of_output_are_capped_in_the_report_log_and_memory() {
    let s = Scenario::new(plan_with(
        r#"{ command: ["sh", "-c", "head -c 100000000 /dev/zero | tr '\\000' 'x'; mkdir -p src/x && echo \"x $$\" > src/x/out.txt"] }"#,
        0,
    ));
    let mut child = s.spawn(&["run", "plan.yaml"]);
    // Peak resident memory (VmHWM only grows): the last reading before exit is the peak.
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            && let Some(kb) =
                text.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert_invariants(&s, &WITH_X);
    assert!(peak_kb > 0 && peak_kb < 200 * 1024, "fugue's peak RSS was {peak_kb} kB for 100 MB of agent output");
    let log = std::fs::metadata(s.state().join("logs").join("x.agent.log")).expect("agent log").len();
    super::note(&format!("100 MB of output: fugue peak RSS {peak_kb} kB, agent log {log} bytes"));
    assert!(log > 1024 * 1024 && log < 17 * 1024 * 1024, "the agent log is capped near 16 MiB: {log} bytes");
    let journal = std::fs::metadata(s.journal_path()).expect("journal").len();
    assert!(journal < 512 * 1024, "the journal stays small: {journal} bytes");
    for entry in std::fs::read_dir(s.state().join("logs")).expect("logs").flatten() {
        let len = entry.metadata().expect("meta").len();
        if entry.file_name().to_string_lossy().starts_with("x-") {
            assert!(len < 1024 * 1024, "the task report keeps a capped excerpt: {len} bytes");
        }
    }
}

#[test]
fn non_utf8_output_is_kept_lossily_and_the_task_merges() {
    let s = Scenario::new(plan_with(
        r#"{ command: ["sh", "-c", "printf 'caf\\351 \\377\\376 half-\\342\\202 end\\n'; printf '\\200\\201' >&2; mkdir -p src/x && echo \"x $$\" > src/x/out.txt"] }"#,
        0,
    ));
    let out = s.fugue(&["run", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_invariants(&s, &WITH_X);
    let log = std::fs::read(s.state().join("logs").join("x.agent.log")).expect("agent log");
    assert!(log.windows(4).any(|w| w == b"caf\xe9"), "the raw bytes reach the agent log");
    assert!(String::from_utf8_lossy(&log).contains("end"));
}

#[test]
fn an_agent_that_deletes_its_own_worktree_fails_that_attempt_and_the_retry_merges() {
    // First attempt: remove the worktree and exit 0. Second: behave.
    let s = Scenario::new(|signals| {
        let agent = format!(
            r#"{{ command: ["sh", "-c", "if [ ! -e {s}/deleted ]; then touch {s}/deleted; cd /; rm -rf \"$FUGUE_WORKTREE\"; exit 0; fi; mkdir -p src/x && echo \"x $$\" > src/x/out.txt"] }}"#,
            s = signals.display()
        );
        plan_with(&agent, 2)(signals)
    });
    let out = s.fugue(&["run", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(s.signals.join("deleted").exists());
    assert_invariants(&s, &WITH_X);
    assert_eq!(s.task("x")["attempts"], 2, "one failed attempt, one retry");
}
