//! Git faults: a stale `index.lock` (present at start in the main checkout, or appearing in a
//! task's worktree mid-run), a task branch deleted during the run (while its agent works, and
//! after QA approved it), and the base branch moved by someone else during the run.

use super::torn::{BLOCKING_TASKS, blocking_plan};
use super::{Expect, Scenario, assert_invariants, check_invariants, git, git_try, merges_of};

/// A run of [`blocking_plan`] with `release` already given and a stale `.git/index.lock` in
/// the main checkout (a git that died there).
fn with_stale_index_lock() -> (Scenario, crate::Output) {
    let s = Scenario::new(|signals| {
        std::fs::write(signals.join("release"), "").expect("release");
        blocking_plan(signals)
    });
    std::fs::write(s.repo.join(".git").join("index.lock"), "").expect("stale lock");
    let out = s.fugue(&["run", "plan.yaml"]);
    (s, out)
}

/// Every task is merged once, or still has its branch (or never ran because it was blocked).
fn nothing_lost(s: &Scenario) {
    for t in BLOCKING_TASKS {
        let merged = merges_of(&s.repo, t.id) == 1;
        let kept = git_try(&s.repo, &["rev-parse", "--verify", &format!("auto/{}", t.id)]).0;
        let blocked = s.task(t.id)["status"] == "blocked";
        assert!(merged || kept || blocked, "{} lost: {}", t.id, s.task(t.id));
    }
}

#[test]
fn a_stale_index_lock_in_the_main_checkout_is_named_up_front_and_a_rerun_recovers() {
    let (s, out) = with_stale_index_lock();
    // Refused before anything runs (exit 3, environment), naming the lock and the fix.
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(".git/index.lock exists") && out.stderr.contains("remove the file"), "names the lock: {}", out.stderr);
    assert!(s.journal_lines().is_empty(), "no run started");
    std::fs::remove_file(s.repo.join(".git").join("index.lock")).expect("rm lock");
    let out = s.fugue(&["run", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_invariants(&s, &BLOCKING_TASKS);
}

#[test]
fn a_stale_index_lock_in_the_main_checkout_is_found_before_any_agent_runs() {
    let (s, out) = with_stale_index_lock();
    let agents_ran = s.events().iter().filter(|e| e["event"] == "agent_finished").count();
    assert!(
        out.code == 0 || agents_ran == 0,
        "exit {} after {agents_ran} agent runs: a stale lock (no git process holds it) should be removed or reported up front",
        out.code
    );
}

/// A run whose task `x` leaves an `index.lock` in its worktree's git dir on its first attempt
/// (a git it started died), beside two healthy tasks.
fn index_lock_in_worktree(retries: u32) {
    let s = Scenario::new(|signals| {
        let sg = signals.display();
        format!(
            r#"version: 1
base: main
parallelization: {{ max_agents: 3, min_tasks: 2, retry_on_failure: {retries} }}
agents:
  quick: {{ command: ["sh", "-c", "mkdir -p src/$FUGUE_TASK_ID && echo \"$FUGUE_TASK_ID $$\" > src/$FUGUE_TASK_ID/out.txt"] }}
  locker: {{ command: ["sh", "-c", "mkdir -p src/x && echo \"x $$\" > src/x/out.txt; [ -e {sg}/locked ] || {{ touch {sg}/locked; touch \"$(git rev-parse --git-dir)/index.lock\"; }}"] }}
gates: {{ review: false }}
tasks:
  - {{ id: ok1, agent: quick, modifies: [src/ok1/**] }}
  - {{ id: x, agent: locker, modifies: [src/x/**] }}
  - {{ id: ok2, agent: quick, modifies: [src/ok2/**] }}
"#
        )
    });
    let out = s.fugue(&["run", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_invariants(
        &s,
        &[
            Expect { id: "ok1", worktree: true, file: Some("src/ok1/out.txt") },
            Expect { id: "x", worktree: true, file: Some("src/x/out.txt") },
            Expect { id: "ok2", worktree: true, file: Some("src/ok2/out.txt") },
        ],
    );
}

#[test]
fn an_index_lock_left_in_a_task_worktree_is_outlived_by_enough_retries() {
    // Back-off 0.2 + 0.4 + 0.8 s: the fourth attempt finds the lock older than the pool's 1 s
    // staleness age, with no process holding it, and recycles the slot.
    index_lock_in_worktree(3);
}

#[test]
fn an_index_lock_left_in_a_task_worktree_fails_that_attempt_and_the_retry_merges() {
    // One retry after 0.2 s: the lock is stale (its process is gone) but younger than 1 s.
    index_lock_in_worktree(1);
}

#[test]
fn an_index_lock_appearing_in_the_main_checkout_mid_run_is_survived_or_named() {
    // Someone's editor runs git in the main checkout and dies holding index.lock while `slow`
    // works; merges into the checked-out base need that index.
    let s = Scenario::new(blocking_plan);
    let child = s.spawn(&["run", "plan.yaml"]);
    s.wait_signal("started");
    let lock = s.repo.join(".git").join("index.lock");
    std::fs::write(&lock, "").expect("lock");
    s.signal("release");
    let out = child.wait_with_output().expect("wait");
    let stderr = super::stderr_of(&s);
    let report = s.fugue(&["report"]);
    let text = format!("{stderr}{}{}", report.stdout, s.journal_lines().join("\n"));
    if out.status.code() == Some(0) {
        assert_invariants(&s, &BLOCKING_TASKS);
    } else {
        assert!(text.contains("index.lock"), "the failure names index.lock: {text}");
        nothing_lost(&s);
        // Once the lock is gone, a new run of the plan merges what is left, exactly once.
        std::fs::remove_file(&lock).expect("rm lock");
        let again = s.fugue(&["run", "plan.yaml"]);
        assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
        assert_invariants(&s, &BLOCKING_TASKS);
    }
}

/// `slow`'s agent signals `started`, waits for `release`; the test acts in between.
fn with_slow_paused(act: impl FnOnce(&Scenario)) -> (Scenario, Option<i32>) {
    let s = Scenario::new(blocking_plan);
    let child = s.spawn(&["run", "plan.yaml"]);
    s.wait_signal("started");
    act(&s);
    s.signal("release");
    let out = child.wait_with_output().expect("wait");
    (s, out.status.code())
}

fn branch_deleted_while_slow_works() -> (Scenario, Option<i32>) {
    with_slow_paused(|s| {
        git(&s.repo, &["update-ref", "-d", "refs/heads/auto/slow"]);
    })
}

#[test]
fn a_task_branch_deleted_while_its_agent_works_is_recreated_by_the_retry() {
    let (s, code) = branch_deleted_while_slow_works();
    let bad = check_invariants(&s, &BLOCKING_TASKS);
    assert!(code == Some(0) && bad.is_empty(), "exit {code:?}: {bad:#?}");
}

/// `slow` approved by QA and waiting for the merge (the merge lock is held by the test).
fn slow_approved_waiting_for_merge() -> (Scenario, std::process::Child, std::process::Child) {
    let s = Scenario::new(blocking_plan);
    let run = s.spawn(&["run", "plan.yaml"]);
    s.wait_signal("started");
    super::wait_until("a and b merged", || merges_of(&s.repo, "a") == 1 && merges_of(&s.repo, "b") == 1);
    let holder = super::hold_flock(&s, &s.state().join("fugue").join("merge.lock"), "merge");
    s.signal("release");
    super::wait_until("slow approved", || s.journal_lines().iter().any(|l| l.contains(r#""task":"slow","status":"qa_approved""#)));
    (s, run, holder)
}

#[test]
fn a_task_branch_deleted_after_approval_fails_the_task_naming_the_branch() {
    let (s, run, mut holder) = slow_approved_waiting_for_merge();
    git(&s.repo, &["update-ref", "-d", "refs/heads/auto/slow"]);
    s.signal("merge-unlock");
    let _ = holder.wait();
    let out = run.wait_with_output().expect("wait");
    for t in ["a", "b"] {
        assert_eq!(merges_of(&s.repo, t), 1, "{t} merged once");
    }
    if out.status.code() == Some(0) {
        assert_invariants(&s, &BLOCKING_TASKS);
    } else {
        assert_eq!(s.task("slow")["status"], "failed");
        let reasons: Vec<String> = s.events_of("attempt_failed", "slow").iter().map(|e| e["reason"].to_string()).collect();
        assert!(reasons.iter().any(|r| r.contains("auto/slow")), "the failure names the branch: {reasons:?}");
    }
}

#[test]
fn a_crash_between_approval_and_merge_then_a_deleted_branch_is_redone_or_named_on_resume() {
    let (s, mut run, mut holder) = slow_approved_waiting_for_merge();
    run.kill().expect("SIGKILL");
    let _ = run.wait();
    s.signal("merge-unlock");
    let _ = holder.wait();
    assert!(super::wait_quiet(s.root()).is_empty());
    git(&s.repo, &["update-ref", "-d", "refs/heads/auto/slow"]);
    let out = s.fugue(&["resume"]);
    if out.code == 0 {
        assert_invariants(&s, &BLOCKING_TASKS);
    } else {
        let reasons: Vec<String> = s.events_of("attempt_failed", "slow").iter().map(|e| e["reason"].to_string()).collect();
        let text = format!("{}{}{reasons:?}", out.stdout, out.stderr);
        assert!(text.contains("auto/slow") && !text.contains("Missing"), "says in words that auto/slow is gone: {text}");
    }
}

#[test]
fn the_base_moved_by_someone_else_during_the_run_is_merged_onto_and_kept() {
    let (s, code) = with_slow_paused(|s| {
        std::fs::write(s.repo.join("outsider.txt"), "someone else\n").expect("write");
        git(&s.repo, &["add", "outsider.txt"]);
        git(&s.repo, &["commit", "-qm", "a commit by someone else"]);
    });
    assert_eq!(code, Some(0), "{}", super::stderr_of(&s));
    assert_invariants(&s, &BLOCKING_TASKS);
    assert_eq!(git(&s.repo, &["show", "main:outsider.txt"]), "someone else", "the outsider's commit is kept on main");
    assert_eq!(git(&s.repo, &["status", "--porcelain", "--untracked-files=no"]), "", "the checkout follows main");
}

#[test]
fn the_base_moved_during_the_run_re_verifies_the_merged_result_or_stops() {
    // `slow` verifies that no `poison` file exists; someone commits `poison` to main while
    // slow's agent works. Merging onto the new tip yields a main on which slow's own verify
    // fails: fugue must re-verify (and fail or retry) or stop, never merge unverified.
    let s = Scenario::new(|signals| {
        blocking_plan(signals).replace(
            "{ id: slow, agent: slow, modifies: [src/slow/**] }",
            r#"{ id: slow, agent: slow, modifies: [src/slow/**], verify: ["test ! -e poison"] }"#,
        )
    });
    let child = s.spawn(&["run", "plan.yaml"]);
    s.wait_signal("started");
    std::fs::write(s.repo.join("poison"), "x\n").expect("write");
    git(&s.repo, &["add", "poison"]);
    git(&s.repo, &["commit", "-qm", "poison"]);
    s.signal("release");
    let _ = child.wait_with_output().expect("wait");
    let merged = merges_of(&s.repo, "slow") == 1;
    let qa_runs = s.events_of("qa_finished", "slow").len();
    assert!(!merged || qa_runs >= 2, "slow merged onto a moved base after a single QA run against the old base ({qa_runs} QA runs)");
}

#[test]
fn uncommitted_changes_in_the_base_checkout_stop_the_merge_with_a_clear_message_and_lose_nothing() {
    let (s, code) = with_slow_paused(|s| {
        std::fs::write(s.repo.join("README.md"), "edited by a person\n").expect("edit");
    });
    assert_eq!(code, Some(1), "the run cannot merge slow");
    assert_eq!(std::fs::read_to_string(s.repo.join("README.md")).expect("readme"), "edited by a person\n", "the person's edit is intact");
    let reasons: Vec<String> = s.events().iter().filter(|e| e["event"] == "attempt_failed").map(|e| e["reason"].to_string()).collect();
    assert!(reasons.iter().any(|r| r.contains("uncommitted changes") && r.contains("README.md")), "{reasons:?}");
    // The unmerged work is kept on its branch.
    for t in ["slow", "after"] {
        if merges_of(&s.repo, t) == 0 && s.task(t)["status"] != "blocked" {
            assert!(git_try(&s.repo, &["rev-parse", "--verify", &format!("auto/{t}")]).0, "auto/{t} kept");
        }
    }
}
