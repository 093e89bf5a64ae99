use fugue_core::TaskStatus;
use fugue_engine::{RunOptions, RunOutcome};

use crate::support::{approve, git, repo};

fn plan(yaml: &str) -> fugue_core::Plan {
    fugue_core::load::load_str("plan.yaml", yaml, &Default::default()).map_err(|e| format!("{e:?}")).expect("valid plan").plan
}

const AGENT: &str = r#"
agents:
  write: { command: ["sh", "-c", "mkdir -p src/$FUGUE_TASK_ID && echo \"$0\" > src/$FUGUE_TASK_ID/out.txt", "{prompt}"] }
  fail: { command: ["sh", "-c", "exit 3"] }
gates: { review: false }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_merges_every_task_in_dependency_order() {
    let r = repo();
    let p = plan(&format!(
        "version: 1\nbase: main\n{AGENT}tasks:\n  - {{id: arch, phase: architecture, agent: write, prompt: base, modifies: [src/arch/**]}}\n  - {{id: a, agent: write, prompt: A, modifies: [src/a/**], depends_on: [arch]}}\n  - {{id: b, agent: write, prompt: B, modifies: [src/b/**]}}\n  - {{id: c, agent: write, prompt: C, modifies: [src/c/**]}}\n"
    ));
    let mut opts = RunOptions::new(&r.path, r.path.join(".claude"));
    opts.verifier = Some(approve());
    let summary = fugue_engine::run(p, opts).await.expect("run");
    assert_eq!(summary.outcome, RunOutcome::Success);
    for t in ["arch", "a", "b", "c"] {
        let id = fugue_core::TaskId::new(t).expect("id");
        assert_eq!(summary.view.task(&id).status, TaskStatus::Merged, "{t}");
        let content = git(&r.path, &["show", &format!("main:src/{t}/out.txt")]);
        assert_eq!(content, t.to_uppercase().replace("ARCH", "base"));
    }
    let log = git(&r.path, &["log", "--format=%s", "main"]);
    let arch_pos = log.lines().position(|l| l.contains("auto/arch")).expect("arch merged");
    let a_pos = log.lines().position(|l| l.contains("auto/a")).expect("a merged");
    assert!(a_pos < arch_pos, "arch merged before a:\n{log}");
    let loaded = fugue_engine::load_run(&r.path.join(".claude")).expect("journal");
    let v = fugue_engine::validate::validate(&loaded.view, loaded.graph.as_ref().expect("graph"));
    assert!(v.ok(), "{:?}", v.findings);
    assert!(r.path.join(".claude/PARALLEL_STATUS.json").exists());
    assert!(r.path.join(".claude/WORKFLOW_STATE.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_blocks_its_dependents_and_the_rest_merge() {
    let r = repo();
    let p = plan(&format!(
        "version: 1\nbase: main\nparallelization: {{ retry_on_failure: 1 }}\n{AGENT}tasks:\n  - {{id: bad, agent: fail, modifies: [src/bad/**]}}\n  - {{id: dep, agent: write, modifies: [src/dep/**], depends_on: [bad]}}\n  - {{id: ok, agent: write, prompt: fine, modifies: [src/ok/**]}}\n"
    ));
    let mut opts = RunOptions::new(&r.path, r.path.join(".claude"));
    opts.verifier = Some(approve());
    opts.backoff = std::time::Duration::from_millis(1);
    let summary = fugue_engine::run(p, opts).await.expect("run");
    assert_eq!(summary.outcome, RunOutcome::Failed);
    let st = |t: &str| summary.view.task(&fugue_core::TaskId::new(t).expect("id")).status;
    assert_eq!(st("bad"), TaskStatus::Failed);
    assert_eq!(st("dep"), TaskStatus::Blocked);
    assert_eq!(st("ok"), TaskStatus::Merged);
    assert_eq!(summary.view.task(&fugue_core::TaskId::new("bad").expect("id")).attempts, 2, "one retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_gates_reject_an_out_of_scope_write_and_approve_clean_work() {
    let r = repo();
    let p = plan(
        "version: 1\nbase: main\nparallelization: { retry_on_failure: 0 }\nagents:\n  good: { command: [\"sh\", \"-c\", \"mkdir -p src/good && printf 'fine\\\\n' > src/good/a.txt\"] }\n  sneaky: { command: [\"sh\", \"-c\", \"mkdir -p src/sneaky src/other && echo x > src/sneaky/a.txt && echo y > src/other/b.txt\"] }\ngates: { review: false, max_iterations: 2 }\ntasks:\n  - {id: good, agent: good, modifies: [src/good/**]}\n  - {id: sneaky, agent: sneaky, modifies: [src/sneaky/**]}\n",
    );
    let opts = RunOptions::new(&r.path, r.path.join(".claude"));
    let summary = fugue_engine::run(p, opts).await.expect("run");
    let st = |t: &str| summary.view.task(&fugue_core::TaskId::new(t).expect("id"));
    assert_eq!(st("good").status, TaskStatus::Merged);
    let sneaky = st("sneaky");
    assert_eq!(sneaky.status, TaskStatus::Failed);
    let boundary = sneaky.qa.iter().find(|g| g.gate == "boundary").expect("boundary report");
    assert!(boundary.findings.iter().any(|f| f.file.as_deref() == Some("src/other/b.txt")), "{boundary:?}");
    assert_eq!(git(&r.path, &["show", "main:src/good/a.txt"]), "fine");
    let worktrees = git(&r.path, &["worktree", "list"]);
    assert!(!worktrees.contains("/qa/"), "QA checkouts are removed:\n{worktrees}");
}
