//! Warm QA end to end: `fugue run plan.yaml` twice in one repository, as a user runs it.
//!
//! QA checkouts are recycled across tasks and runs with their build caches, new ones are seeded
//! from the user's checkout, and nothing an agent leaves only in its worktree — an ignored
//! file, a file planted in the very cache dir QA keeps — reaches a verdict. The report says
//! what the slots cost on disk.

use std::path::Path;

use crate::runs::repo;
use crate::{fugue, git, temp};

/// Two tasks whose agent leaves ignored files behind; the tests gate records each QA round in
/// QA's own `target/` and passes only if the user's seeded cache is there and no agent file is.
/// Task `needy` needs the agent's ignored file and must be rejected.
fn plan(tasks: &[&str], needy: bool) -> String {
    let mut plan = String::from(
        r#"version: 1
base: main
parallelization: { max_agents: 2, min_tasks: 2, retry_on_failure: 0 }
pool: { keep_ignored: ["target/"], seed: { "target/": copy } }
agents:
  agent: { command: ["sh", "-c", "mkdir -p src/$FUGUE_TASK_ID target && echo done > src/$FUGUE_TASK_ID/out.txt && echo agent > target/planted && echo agent > local.cfg"] }
gates:
  review: false
  tests: { commands: ["sh -c 'mkdir -p target && echo run >> target/qa-runs && test -f target/from-user && test ! -e target/planted && test ! -e local.cfg'"] }
  max_iterations: 1
tasks:
"#,
    );
    for t in tasks {
        plan.push_str(&format!("  - {{ id: {t}, agent: agent, modifies: [src/{t}/**] }}\n"));
    }
    if needy {
        plan.push_str("  - { id: needy, agent: agent, modifies: [src/needy/**], verify: [\"test -f local.cfg\"] }\n");
    }
    plan
}

use crate::run_plan as run;

fn qa_runs(repo: &Path) -> usize {
    let qa = repo.join(".claude/fugue/qa");
    std::fs::read_dir(&qa)
        .map(|d| d.flatten().filter_map(|e| std::fs::read_to_string(e.path().join("target/qa-runs")).ok()).map(|t| t.lines().count()).sum())
        .unwrap_or(0)
}

#[test]
fn qa_checkouts_stay_warm_across_runs_and_never_judge_an_agents_leftovers() {
    let dir = temp();
    let repo = repo(dir.path(), &plan(&["a", "b"], true));
    std::fs::write(repo.join(".gitignore"), "plan.yaml\ntarget/\nlocal.cfg\n").expect("write");
    git(&repo, &["commit", "-qam", "ignore build output"]);
    // The user's own build: new slots and QA checkouts start from it.
    std::fs::create_dir_all(repo.join("target")).expect("mkdir");
    std::fs::write(repo.join("target/from-user"), "user build\n").expect("write");

    let out = run(&repo);
    assert_eq!(out.code, 1, "needy fails, the rest merges: {}\n{}", out.stdout, out.stderr);
    let status = fugue(&repo, &["status", "--json"]).stdout;
    let v: serde_json::Value = serde_json::from_str(&status).expect("status json");
    let status_of = |t: &str| v["tasks"].as_array().and_then(|a| a.iter().find(|x| x["id"] == t)).map(|x| x["status"].clone());
    assert_eq!(status_of("a"), Some("merged".into()), "{status}");
    assert_eq!(status_of("b"), Some("merged".into()), "{status}");
    assert_eq!(status_of("needy"), Some("failed".into()), "a file only in the agent's worktree fails QA: {status}");
    let first = qa_runs(&repo);
    assert!(first >= 2, "QA's own cache recorded its rounds: {first}");
    assert!(!repo.join("target/qa-runs").exists() && !repo.join("target/planted").exists(), "the user's cache is only read");
    assert!(out.stdout.contains("### Disk (slots at the end of the run"), "{}", out.stdout);
    assert!(out.stdout.contains("- QA checkouts: "), "{}", out.stdout);
    let report = fugue(&repo, &["report", "--json"]);
    let r: serde_json::Value = serde_json::from_str(&report.stdout).expect("report json");
    assert!(r["disk"]["total_bytes"].as_u64().is_some_and(|b| b > 0), "{}", report.stdout);
    assert!(r["disk"]["qa"].as_array().is_some_and(|q| !q.is_empty() && q.iter().all(|s| s["cache_bytes"].as_u64() > Some(0))));

    // A second run of other tasks recycles the same QA checkouts: their caches grow, no new
    // checkout is made beyond what two tasks at once need.
    std::fs::write(repo.join("plan.yaml"), plan(&["c", "d"], false)).expect("plan");
    let out = run(&repo);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(qa_runs(&repo) >= first + 2, "the warm checkouts of the first run judged the second: {} then {}", first, qa_runs(&repo));
    let slots = std::fs::read_dir(repo.join(".claude/fugue/qa")).expect("qa dir").flatten().filter(|e| e.path().is_dir()).count();
    assert!(slots <= 2, "at most one QA checkout per concurrent round: {slots}");
    for t in ["a", "b", "c", "d"] {
        assert!(repo.join(format!("src/{t}/out.txt")).exists(), "{t} merged");
    }
    assert!(!git(&repo, &["ls-files"]).contains("planted"), "no agent leftover was committed");
}
