//! QA end to end: real git repositories, a real worktree per task, real agents and commands.

use std::time::Duration;

use fugue_core::{Agent, AgentContext, AgentOutcome, Boundaries, GateVerdict, QaVerdict, SeedMode, TaskId, TaskSpec};
use fugue_quality_gates::{GateSettings, Qa, QaOutcome, QaRequest};
use serde_json::json;

use crate::common::{Fixture, gates, git, scope, task, write};

fn settings() -> GateSettings {
    GateSettings::default().with_grace(Duration::from_millis(100))
}

fn qa(fx: &Fixture, gates_json: serde_json::Value) -> Qa {
    Qa::new(gates(gates_json), &Boundaries { common: scope(&["common/**"]), ..Boundaries::default() }, &fx.qa_dir, settings())
}

async fn verify(qa: &Qa, fx: &Fixture, task: &TaskSpec, iteration: u32) -> QaOutcome {
    let req = QaRequest::new(task, &fx.repo, &fx.worktree, "auto/t1", &fx.base).iteration(iteration);
    qa.verify(&req).await.expect("QA runs")
}

fn gate<'a>(outcome: &'a QaOutcome, name: &str) -> &'a fugue_core::GateReport {
    outcome.reports.iter().find(|r| r.gate == name).unwrap_or_else(|| panic!("no {name} report in {outcome:#?}"))
}

const LIB: &str = "/// Adds two numbers.\npub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n";
const TEST: &str = "#[test]\nfn adds() {\n    assert_eq!(demo::add(1, 2), 3);\n}\n";

#[tokio::test]
async fn clean_work_is_approved_and_leftovers_are_committed() {
    let fx = Fixture::new();
    write(&fx.worktree, "src/lib.rs", LIB);
    fx.commit("add");
    // Left uncommitted by the agent: QA commits it.
    write(&fx.worktree, "tests/add.rs", TEST);
    let t = task(&["src/**", "tests/**"], &["sh -c 'test -f tests/add.rs && echo \"test result: ok. 1 passed; 0 failed; 0 ignored\"'"]);
    let outcome = verify(&qa(&fx, json!({"docs": {"commands": []}})), &fx, &t, 0).await;
    assert_eq!(outcome.verdict, QaVerdict::TaskApproved, "{outcome:#?}");
    assert_eq!(outcome.feedback, None);
    assert_eq!(outcome.summary, "TASK_APPROVED: 4 gate(s) passed");
    let names: Vec<_> = outcome.reports.iter().map(|r| r.gate.as_str()).collect();
    assert_eq!(names, ["boundary", "review", "tests", "docs"]);
    assert_eq!(gate(&outcome, "tests").counts.map(|c| c.passed), Some(1));
    assert_eq!(gate(&outcome, "review").score, Some(10.0));
    assert_eq!(outcome.changed_files, ["src/lib.rs", "tests/add.rs"]);

    let committed = outcome.committed.clone().expect("QA committed the leftovers");
    assert_eq!(outcome.head_commit, committed);
    assert_eq!(fx.head(), committed);
    assert_eq!(git(&fx.worktree, &["status", "--porcelain"]), "", "nothing left uncommitted");
    assert_eq!(
        git(&fx.worktree, &["log", "-1", "--format=%an <%ae>|%s"]),
        "fugue <fugue@localhost>|fugue: commit work left uncommitted by task t1 (QA iteration 1)"
    );
    assert!(!fx.qa_dir.join("t1").exists(), "the fresh checkout is removed");
    assert!(!git(&fx.repo, &["worktree", "list"]).contains("/qa/"), "and unregistered");
}

/// The agent of the two-iteration test: a shell script that writes sloppy code first and, once
/// its feedback mentions `unwrap`, a clean version with a test. It commits nothing.
const SCRIPTED_AGENT: &str = r#"set -e
mkdir -p src tests
if grep -q 'unwrap' "$FUGUE_FEEDBACK_FILE"; then
  cp "$FUGUE_FEEDBACK_FILE" feedback-seen.txt.tmp
  printf '/// Parses a number.\npub fn parse(s: &str) -> Result<u32, std::num::ParseIntError> {\n    s.parse()\n}\n' > src/lib.rs
  printf '#[test]\nfn parses() {\n    assert_eq!(demo::parse("1"), Ok(1));\n}\n' > tests/parse.rs
else
  printf 'pub fn parse(s: &str) -> u32 {\n    // TODO: errors\n    let a: u32 = s.parse().unwrap();\n    let b: u32 = s.trim().parse().unwrap();\n    let c: u32 = s.trim_end().parse().unwrap();\n    a + b + c\n}\n' > src/lib.rs
fi
"#;

#[tokio::test]
async fn a_scripted_agent_fails_review_then_passes_after_reading_its_feedback() {
    let fx = Fixture::new();
    write(&fx.dir.path().join("agent"), "agent.sh", SCRIPTED_AGENT);
    let script = fx.dir.path().join("agent/agent.sh");
    let spec = serde_json::from_value(json!({"command": ["sh", script.to_str().expect("utf-8")]})).expect("agent spec");
    let agent = fugue_agents::CommandAgent::new("scripted", spec);
    let t = task(&["src/**", "tests/**"], &[]);
    let qa = qa(&fx, json!({}));

    let mut feedback: Option<String> = None;
    let mut verdicts = Vec::new();
    for iteration in 0..qa.max_iterations() {
        let mut ctx = AgentContext::new(TaskId::new("t1").expect("id"), "write a parser", &fx.worktree);
        ctx.feedback = feedback.clone();
        ctx.iteration = iteration;
        let ran = agent.run(ctx).await.expect("agent runs");
        assert_eq!(ran.outcome, AgentOutcome::ReadyForQa, "{ran:?}");
        let outcome = verify(&qa, &fx, &t, iteration).await;
        verdicts.push(outcome.verdict);
        if outcome.verdict != QaVerdict::TaskRejected {
            break;
        }
        let review = gate(&outcome, "review");
        assert_eq!(review.verdict, GateVerdict::Fail);
        let text = outcome.feedback.clone().expect("feedback on rejection");
        assert!(text.contains("## review: fail (score"), "{text}");
        assert!(text.contains("- [medium] src/lib.rs:3: `unwrap` in non-test code"), "{text}");
        assert!(text.contains("- [low] src/lib.rs:2: new TODO"), "{text}");
        feedback = Some(text);
    }
    assert_eq!(verdicts, [QaVerdict::TaskRejected, QaVerdict::TaskApproved]);
    assert!(fx.worktree.join("feedback-seen.txt.tmp").exists(), "the second iteration read the feedback");
    let files = git(&fx.repo, &["diff", "--name-only", &format!("{}..auto/t1", fx.base)]);
    assert_eq!(files, "src/lib.rs\ntests/parse.rs");
    assert_eq!(git(&fx.repo, &["show", "auto/t1:src/lib.rs"]).lines().next(), Some("/// Parses a number."));
}

#[tokio::test]
async fn work_that_needs_an_ignored_file_is_rejected_in_the_fresh_checkout() {
    let fx = Fixture::new();
    write(&fx.worktree, "src/loader.sh", "cat fixture.data\n");
    write(&fx.worktree, "tests/loader_test.sh", "test \"$(sh src/loader.sh)\" = expected\n");
    // The agent generated this file and forgot it is git-ignored: `git add -A` skips it.
    write(&fx.worktree, "fixture.data", "expected\n");
    let t = task(&["src/**", "tests/**", "fixture.data"], &["sh tests/loader_test.sh"]);
    let in_worktree = std::process::Command::new("sh").arg("tests/loader_test.sh").current_dir(&fx.worktree).status().expect("sh");
    assert!(in_worktree.success(), "the tests pass in the agent's own worktree");

    let outcome = verify(&qa(&fx, json!({"review": false})), &fx, &t, 0).await;
    assert_eq!(outcome.verdict, QaVerdict::TaskRejected, "{outcome:#?}");
    assert!(outcome.committed.is_some(), "the tracked leftovers were committed");
    assert_eq!(outcome.changed_files, ["src/loader.sh", "tests/loader_test.sh"]);
    let tests = gate(&outcome, "tests");
    assert_eq!(tests.verdict, GateVerdict::Fail);
    let feedback = outcome.feedback.expect("feedback");
    assert!(feedback.contains("command `sh tests/loader_test.sh` exited with code 1"), "{feedback}");
    assert!(feedback.contains("fixture.data: No such file or directory"), "{feedback}");
    assert!(feedback.contains("only committed files count"), "{feedback}");
}

#[tokio::test]
async fn an_out_of_scope_write_is_rejected_with_its_path_and_not_committed() {
    let fx = Fixture::new();
    write(&fx.worktree, "src/ok.rs", "/// Fine.\npub const OK: u8 = 1;\n");
    fx.commit("in scope");
    let head_before = fx.head();
    write(&fx.worktree, "docs/elsewhere.md", "not mine\n");
    write(&fx.worktree, "common/types.txt", "changed a shared file\n");
    let t = task(&["src/**", "common/**"], &[]);
    let outcome = verify(&qa(&fx, json!({})), &fx, &t, 0).await;
    assert_eq!(outcome.verdict, QaVerdict::TaskRejected);
    assert_eq!(outcome.committed, None, "out-of-scope work is not committed");
    assert_eq!(fx.head(), head_before);
    let boundary = gate(&outcome, "boundary");
    let files: Vec<_> = boundary.findings.iter().filter_map(|f| f.file.as_deref()).collect();
    assert_eq!(files, ["common/types.txt", "docs/elsewhere.md"]);
    let feedback = outcome.feedback.expect("feedback");
    assert!(
        feedback.contains(
            "- [critical] docs/elsewhere.md: `docs/elsewhere.md` breaks the task's boundary: it is outside the task's `modifies`"
        ),
        "{feedback}"
    );
    assert!(feedback.contains("read-only during a parallel phase"), "{feedback}");
}

#[tokio::test]
async fn committed_out_of_scope_changes_and_escaping_symlinks_are_rejected() {
    let fx = Fixture::new();
    write(&fx.worktree, "src/ok.rs", "/// Fine.\npub const OK: u8 = 1;\n");
    write(&fx.worktree, "scripts/deploy.sh", "echo deploy\n");
    std::os::unix::fs::symlink("/etc/hostname", fx.worktree.join("src/host")).expect("symlink");
    fx.commit("mixed");
    let t = task(&["src/**"], &[]);
    let outcome = verify(&qa(&fx, json!({"review": false})), &fx, &t, 0).await;
    assert_eq!(outcome.verdict, QaVerdict::TaskRejected);
    let boundary = gate(&outcome, "boundary");
    let messages: Vec<_> = boundary.findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].starts_with("`scripts/deploy.sh` breaks"), "{messages:?}");
    assert!(messages[1].contains("`src/host`") && messages[1].contains("symlink to `/etc/hostname`"), "{messages:?}");
}

#[tokio::test]
async fn common_paths_are_writable_outside_parallel_phases() {
    let fx = Fixture::new();
    write(&fx.worktree, "common/types.txt", "architecture phase defines the types\n");
    fx.commit("types");
    let t: TaskSpec =
        serde_json::from_value(json!({"id": "t1", "agent": "a", "phase": "architecture", "modifies": ["common/**"]})).expect("task");
    let qa = qa(&fx, json!({"review": false}));
    let req = QaRequest::new(&t, &fx.repo, &fx.worktree, "auto/t1", &fx.base);
    assert!(!req.parallel, "architecture is a serial phase");
    assert_eq!(qa.verify(&req).await.expect("QA").verdict, QaVerdict::TaskApproved);
    let parallel = qa.verify(&req.clone().parallel(true)).await.expect("QA");
    assert_eq!(parallel.verdict, QaVerdict::TaskRejected);
}

#[tokio::test]
async fn a_missing_test_command_blocks_qa_without_feedback() {
    let fx = Fixture::new();
    write(&fx.worktree, "src/lib.rs", LIB);
    write(&fx.worktree, "tests/add.rs", TEST);
    fx.commit("work");
    let t = task(&["src/**", "tests/**"], &["fugue-missing-test-tool --run"]);
    let outcome = verify(&qa(&fx, json!({})), &fx, &t, 0).await;
    assert_eq!(outcome.verdict, QaVerdict::QaBlocked, "{outcome:#?}");
    assert_eq!(outcome.feedback, None, "a blocked QA burns no iteration and gives the agent nothing to fix");
    assert_eq!(gate(&outcome, "tests").verdict, GateVerdict::Blocked);
    assert!(
        outcome.summary.starts_with("QA_BLOCKED: tests: command `fugue-missing-test-tool --run` could not be started"),
        "{}",
        outcome.summary
    );
    assert!(outcome.summary.contains("was not found"), "{}", outcome.summary);
}

#[tokio::test]
async fn a_worktree_on_the_wrong_branch_is_rejected() {
    let fx = Fixture::new();
    git(&fx.worktree, &["checkout", "--quiet", "-b", "elsewhere"]);
    let outcome = verify(&qa(&fx, json!({})), &fx, &task(&["src/**"], &[]), 0).await;
    assert_eq!(outcome.verdict, QaVerdict::TaskRejected);
    assert!(
        outcome
            .feedback
            .expect("feedback")
            .contains("the worktree has branch `elsewhere` checked out instead of the task branch `auto/t1`")
    );
}

#[tokio::test]
async fn recycled_checkouts_keep_build_caches_and_lose_everything_else() {
    let fx = Fixture::new();
    write(&fx.worktree, "src/lib.rs", LIB);
    fx.commit("one");
    // Passes only when junk.tmp (ignored, not kept) was cleaned away; target/ (kept) grows.
    let t = task(&["src/**"], &["sh -c 'test ! -e junk.tmp && touch junk.tmp && mkdir -p target && echo run >> target/runs'"]);
    let qa = Qa::new(
        gates(json!({"review": false})),
        &Boundaries::default(),
        &fx.qa_dir,
        settings().with_keep_ignored(vec!["target/".to_owned()]),
    );
    let first = verify(&qa, &fx, &t, 0).await;
    assert_eq!(first.verdict, QaVerdict::TaskApproved, "{first:#?}");
    write(&fx.worktree, "src/lib.rs", &format!("{LIB}\n/// Twice.\npub fn twice(a: u32) -> u32 {{\n    add(a, a)\n}}\n"));
    let second = verify(&qa, &fx, &t, 1).await;
    assert_eq!(second.verdict, QaVerdict::TaskApproved, "{second:#?}");
    let checkouts = qa.checkouts();
    assert_eq!(checkouts, [fx.qa_dir.join("q-1")], "one slot, recycled");
    let checkout = &checkouts[0];
    assert_eq!(std::fs::read_to_string(checkout.join("target/runs")).expect("kept cache"), "run\nrun\n");
    assert_eq!(git(checkout, &["rev-parse", "HEAD"]), second.head_commit, "the recycled checkout is at the new head");
    qa.remove_checkouts(&fx.repo).await;
    assert!(checkout.join("target/runs").exists(), "with kept caches the slot stays warm for the next run");
    // Without kept caches, the end of the run removes it.
    qa_without_caches(&fx).remove_checkouts(&fx.repo).await;
    assert!(!checkout.exists());
}

fn qa_without_caches(fx: &Fixture) -> Qa {
    Qa::new(gates(json!({"review": false})), &Boundaries::default(), &fx.qa_dir, settings())
}

/// QA with warm caches: `target/` kept and seeded by copy from the user's checkout.
fn warm_qa(fx: &Fixture) -> Qa {
    Qa::new(
        gates(json!({"review": false})),
        &Boundaries::default(),
        &fx.qa_dir,
        settings().with_keep_ignored(vec!["target/".to_owned()]).with_seed(vec![("target/".to_owned(), SeedMode::Copy)]),
    )
}

#[tokio::test]
async fn warm_caches_never_let_a_file_only_in_the_agents_worktree_change_the_verdict() {
    let fx = Fixture::new();
    // The user's own build left a cache: new QA slots are seeded from it.
    write(&fx.repo, "target/from-user", "user build\n");
    write(&fx.worktree, "src/lib.rs", LIB);
    fx.commit("one");
    // Only in the agent's worktree: an ignored file outside the caches, and one planted in the
    // very cache dir QA recycles.
    write(&fx.worktree, "fixture.data", "the agent's\n");
    write(&fx.worktree, "target/planted", "the agent's\n");
    let needs = |file: &str| {
        task(&["src/**"], &[&format!("sh -c 'echo run >> target/qa-runs; test -f target/from-user || exit 3; test -f {file}'")])
    };
    for (round, file) in ["fixture.data", "target/planted", "fixture.data"].into_iter().enumerate() {
        // A new Qa each round: the slot is warm across runs, not only within one.
        let outcome = verify(&warm_qa(&fx), &fx, &needs(file), round as u32).await;
        assert_eq!(outcome.verdict, QaVerdict::TaskRejected, "round {round}, {file}: {outcome:#?}");
        let checkout = fx.qa_dir.join("q-1");
        assert_eq!(
            std::fs::read_to_string(checkout.join("target/qa-runs")).expect("QA's own cache"),
            "run\n".repeat(round + 1),
            "the same warm slot every round"
        );
        assert!(!checkout.join("fixture.data").exists() && !checkout.join("target/planted").exists());
    }
    assert!(fx.worktree.join("fixture.data").exists() && fx.worktree.join("target/planted").exists(), "the agent's files stay its own");
    assert!(!fx.repo.join("target/qa-runs").exists(), "seeding copies: QA never writes into the user's cache");

    // An untracked file is no way in either: it is committed and judged as such, or, out of
    // the task's scope, rejected before any gate runs.
    write(&fx.worktree, "notes.md", "untracked\n");
    let outcome = verify(&warm_qa(&fx), &fx, &needs("notes.md"), 3).await;
    assert_eq!(outcome.verdict, QaVerdict::TaskRejected);
    assert_eq!(outcome.reports.iter().map(|r| r.gate.as_str()).collect::<Vec<_>>(), ["boundary"], "{outcome:#?}");
}

#[tokio::test]
async fn a_busy_slot_is_skipped_and_a_broken_one_is_replaced() {
    let fx = Fixture::new();
    write(&fx.worktree, "src/lib.rs", LIB);
    fx.commit("one");
    let t = task(&["src/**"], &["sh -c 'mkdir -p target && echo run >> target/qa-runs'"]);
    assert_eq!(verify(&warm_qa(&fx), &fx, &t, 0).await.verdict, QaVerdict::TaskApproved);
    // Another round (of another process) holds q-1: this one takes a new slot.
    let held = std::fs::OpenOptions::new().write(true).open(fx.qa_dir.join("q-1.lock")).expect("lock file");
    held.lock().expect("lock");
    assert_eq!(verify(&warm_qa(&fx), &fx, &t, 1).await.verdict, QaVerdict::TaskApproved);
    assert_eq!(warm_qa(&fx).checkouts(), [fx.qa_dir.join("q-1"), fx.qa_dir.join("q-2")]);
    drop(held);
    // A crash left a git lock in q-1: resetting it fails, so it is replaced, and the new
    // checkout is seeded from the free warm slot q-2 (the user's checkout has no cache).
    let gitdir = git(&fx.qa_dir.join("q-1"), &["rev-parse", "--absolute-git-dir"]);
    std::fs::write(std::path::Path::new(&gitdir).join("index.lock"), "").expect("lock");
    let outcome = verify(&warm_qa(&fx), &fx, &t, 2).await;
    assert_eq!(outcome.verdict, QaVerdict::TaskApproved, "{outcome:#?}");
    assert_eq!(std::fs::read_to_string(fx.qa_dir.join("q-1/target/qa-runs")).expect("cache"), "run\nrun\n", "q-2's cache and this run");
    assert!(!std::path::Path::new(&gitdir).join("index.lock").exists(), "a new checkout");
    assert_eq!(git(&fx.qa_dir.join("q-1"), &["rev-parse", "HEAD"]), outcome.head_commit);
    assert_eq!(git(&fx.qa_dir.join("q-1"), &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn gates_that_judge_only_the_change_run_in_the_agents_worktree() {
    let fx = Fixture::new();
    write(&fx.worktree, "src/lib.rs", LIB);
    let t = task(&["src/**"], &[]);
    // Boundary alone (review off, no test commands, docs without commands): no checkout.
    let outcome = verify(&qa(&fx, json!({"review": false, "docs": {"commands": []}})), &fx, &t, 0).await;
    assert_eq!(outcome.verdict, QaVerdict::TaskApproved, "{outcome:#?}");
    let names: Vec<_> = outcome.reports.iter().map(|r| r.gate.as_str()).collect();
    assert_eq!(names, ["boundary", "docs"]);
    assert_eq!(outcome.changed_files, ["src/lib.rs"]);
    assert_eq!(fx.head(), outcome.head_commit, "the leftovers were committed all the same");
    assert!(!fx.qa_dir.exists(), "no checkout was made");
    assert!(!git(&fx.repo, &["worktree", "list"]).contains("/qa/"));
    // Out of scope is still caught, before anything is committed.
    write(&fx.worktree, "elsewhere.txt", "x\n");
    let outcome = verify(&qa(&fx, json!({"review": false})), &fx, &t, 1).await;
    assert_eq!(outcome.verdict, QaVerdict::TaskRejected, "{outcome:#?}");
    assert!(gate(&outcome, "boundary").findings.iter().any(|f| f.file.as_deref() == Some("elsewhere.txt")));
    assert!(!fx.qa_dir.exists());
}
