//! Confinement end to end (Landlock): `fugue run plan.yaml` from the repository root with the
//! default, relative state and pool dirs, and command agents that try to write where they must
//! not — the user's checkout, another slot, the state dir, the base branch's ref, a file
//! outside the repository — beside legitimate work (edits, its own commits, a build writing its
//! declared cache, its TMPDIR). Skipped with a loud line where the kernel has no Landlock.

use std::path::Path;

use crate::runs::{git, repo};
use crate::{fugue, temp};

#[expect(clippy::print_stderr, reason = "a skipped test must say so where the test output shows it")]
fn landlock() -> bool {
    if fugue_engine::agents::confine::support().enforced() {
        return true;
    }
    eprintln!("SKIPPED: this kernel cannot confine agents ({})", fugue_engine::agents::confine::support().describe());
    false
}

fn journal(repo: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(repo.join(".claude/fugue/journal.ndjson")).expect("journal");
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

use crate::run_plan as run;

#[test]
fn every_write_outside_the_worktree_is_refused_and_the_task_fails_naming_it() {
    if !landlock() {
        return;
    }
    let dir = temp();
    let outside = dir.path().join("outside.txt");
    // Each attempt is made and its failure ignored, as a careless or hostile agent would; the
    // legitimate edit comes last so that only confinement can fail the task.
    let script = format!(
        "echo pwned > \"$FUGUE_WORKTREE/../../../README.md\"; \
         echo pwned > \"$FUGUE_WORKTREE/../wt-2/README.md\"; mkdir \"$FUGUE_WORKTREE/../wt-9\"; \
         echo junk >> \"$FUGUE_WORKTREE/../../fugue/journal.ndjson\"; \
         git update-ref refs/heads/main HEAD~0 2>&1 | tail -1; git branch sneaky 2>&1 | tail -1; \
         echo sneaky > {}; \
         mkdir -p src && echo legit > src/legit.txt",
        outside.display()
    );
    let plan = format!(
        "version: 1\nbase: main\nparallelization: {{ retry_on_failure: 0, max_agents: 2, min_tasks: 2 }}\ngates: {{ review: false, max_iterations: 1 }}\n\
         agents:\n  sneaky: {{ command: [\"sh\", \"-c\", {script:?}] }}\n  quick: {{ command: [\"sh\", \"-c\", \"mkdir -p src && echo ok > src/quick.txt\"] }}\n\
         tasks:\n  - {{ id: t1, agent: sneaky, modifies: [\"src/**\"] }}\n  - {{ id: t2, agent: quick, modifies: [\"src/quick.txt\"] }}\n"
    );
    let repo = repo(dir.path(), &plan);
    let main_before = git(&repo, &["rev-parse", "main"]);
    let out = run(&repo);
    assert_eq!(out.code, 1, "the sneaky task fails\n{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("Confinement: on"), "fugue run says confinement is on: {}", out.stderr);

    // Nothing outside the worktree changed.
    assert_eq!(std::fs::read_to_string(repo.join("README.md")).expect("readme"), "x\n", "the user's checkout is untouched");
    assert!(!outside.exists(), "nothing was written outside the repository");
    assert!(!repo.join(".claude/worktrees/wt-9").exists(), "no directory beside the slots");
    if let Ok(text) = std::fs::read_to_string(repo.join(".claude/worktrees/wt-2/README.md")) {
        assert_eq!(text, "x\n", "the other slot is untouched");
    }
    let events = journal(&repo);
    assert!(
        !std::fs::read_to_string(repo.join(".claude/fugue/journal.ndjson")).expect("journal").contains("junk"),
        "the journal is fugue's"
    );
    assert!(!git(&repo, &["branch", "--list", "sneaky"]).contains("sneaky"), "no branch made");
    // main moved only by t2's merge, never to the agent's HEAD.
    assert!(git(&repo, &["merge-base", "--is-ancestor", &main_before, "main"]).is_empty());
    assert_eq!(git(&repo, &["log", "--merges", "--format=%s", "main"]).lines().count(), 1, "only t2 merged");
    assert_eq!(git(&repo, &["show", "main:README.md"]), "x");

    // The task failed, and its report names the refusals.
    let finished: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "agent_finished" && e["task"] == "t1").collect();
    let summary = finished[0]["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("confinement refused"), "{summary}");
    assert!(summary.contains("README.md: Permission denied"), "{summary}");
    assert_eq!(finished[0]["failure"], "permission_denied");
    // The task log says that confinement was on, and which roots it allowed.
    let log = std::fs::read_to_string(repo.join(".claude/logs/t1.agent.log")).expect("agent log");
    let header = log.lines().find(|l| l.starts_with("--- fugue: confinement: on")).expect("confinement line");
    assert!(header.contains(".claude/worktrees/wt-") && header.contains(".git/objects") && header.contains("fugue-tmp-t1-"), "{header}");
    assert!(!header.contains(&format!("{}, ", repo.display())), "the repository itself is not a root: {header}");
    assert!(log.contains("cannot lock ref") || log.contains("Permission denied"), "{log}");
    // So does the task's own log (the journal's record of the run).
    let md = std::fs::read_dir(repo.join(".claude/logs"))
        .expect("logs")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("t1-"))
        .map(|e| std::fs::read_to_string(e.path()).expect("task log"))
        .expect("the task log");
    assert!(md.contains("- confinement (last run): on; writes allowed only beneath: ") && md.contains(".git/objects"), "{md}");
}

#[test]
fn legitimate_work_commits_and_a_declared_cache_succeed_under_confinement() {
    if !landlock() {
        return;
    }
    let dir = temp();
    let cache = dir.path().join("cache");
    // Edits, a commit of its own on its branch (on the detached HEAD fugue gives it), a "build"
    // that writes its declared cache, and temp files in its TMPDIR.
    let script = format!(
        "set -e; mkdir -p src; echo one > src/a.txt; git add src/a.txt; git commit -qm 'the agent commits its own work'; \
         echo two > src/b.txt; t=$(mktemp); echo tmp > \"$t\"; echo \"$TMPDIR\" > {cache}/tmpdir; echo built > {cache}/artifact",
        cache = cache.display()
    );
    let plan = format!(
        "version: 1\nbase: main\ncaches: [{cache:?}]\ngates: {{ review: false }}\nagents:\n  builder: {{ command: [\"sh\", \"-c\", {script:?}] }}\n\
         tasks:\n  - {{ id: t1, agent: builder, modifies: [\"src/**\"] }}\n",
        cache = cache.display().to_string()
    );
    let repo = repo(dir.path(), &plan);
    let out = run(&repo);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(git(&repo, &["show", "main:src/a.txt"]), "one");
    assert_eq!(git(&repo, &["show", "main:src/b.txt"]), "two", "fugue committed what the agent left");
    let subjects = git(&repo, &["log", "--format=%s", "main"]);
    assert!(subjects.contains("the agent commits its own work"), "the agent's own commit is on main: {subjects}");
    assert_eq!(std::fs::read_to_string(cache.join("artifact")).expect("cache").trim(), "built");
    let tmpdir = std::fs::read_to_string(cache.join("tmpdir")).expect("tmpdir");
    assert!(tmpdir.contains("fugue-tmp-t1-"), "a private TMPDIR: {tmpdir}");
    assert!(!Path::new(tmpdir.trim()).exists(), "the TMPDIR went with the run");
    assert_eq!(fugue(&repo, &["validate"]).code, 0);
}

#[test]
fn confine_off_is_honoured_and_fugue_plan_says_which_agents_are_confined() {
    if !landlock() {
        return;
    }
    let dir = temp();
    let outside = dir.path().join("outside.txt");
    let plan = format!(
        "version: 1\nbase: main\ngates: {{ review: false }}\nagents:\n  \
         free: {{ command: [\"sh\", \"-c\", \"echo out > {o} && mkdir -p src && echo x > src/x.txt\"], confine: off }}\n  \
         kept: {{ command: [\"sh\", \"-c\", \"mkdir -p src && echo y > src/y.txt\"] }}\n\
         tasks:\n  - {{ id: t1, agent: free, modifies: [\"src/x.txt\"] }}\n  - {{ id: t2, agent: kept, modifies: [\"src/y.txt\"] }}\n",
        o = outside.display()
    );
    let repo = repo(dir.path(), &plan);
    let shown = fugue(&repo, &["plan", "plan.yaml"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("Confinement: on (Landlock ABI") && shown.stdout.contains("for `kept`"), "{}", shown.stdout);
    assert!(shown.stdout.contains("unconfined (`confine: off`): `free`"), "{}", shown.stdout);
    let out = run(&repo);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(std::fs::read_to_string(&outside).expect("written").trim(), "out", "`confine: off` lets the agent write outside");
    let log = std::fs::read_to_string(repo.join(".claude/logs/t1.agent.log")).unwrap_or_default();
    assert!(log.is_empty() || log.contains("confinement: off"), "{log}");
    // The journal says which runs were confined, and to what.
    let confined: Vec<serde_json::Value> = journal(&repo).into_iter().filter(|e| e["event"] == "agent_confined").collect();
    assert_eq!(confined.len(), 1, "only t2's run was confined: {confined:?}");
    assert_eq!(confined[0]["task"], "t2");
    assert!(
        confined[0]["write"]
            .as_array()
            .is_some_and(|roots| roots.iter().any(|r| r.as_str().is_some_and(|r| r.ends_with("/wt-1") || r.contains("/wt-")))),
        "{confined:?}"
    );
}

#[test]
fn a_relative_cache_is_refused_with_its_place_in_the_plan() {
    let dir = temp();
    let plan = "version: 1\ncaches: [\"build/cache\"]\nagents:\n  a: { command: [\"true\"] }\ntasks:\n  - { id: t1, agent: a }\n";
    let repo = repo(dir.path(), plan);
    let out = fugue(&repo, &["plan", "plan.yaml"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("cache `build/cache`") && out.stderr.contains("absolute or start with `~/`"), "{}", out.stderr);
    assert!(out.stderr.contains("plan.yaml:2"), "names the line: {}", out.stderr);
    // A cache that holds the repository would open all of it.
    let plan = format!(
        "version: 1\ncaches: [{:?}]\nagents:\n  a: {{ command: [\"true\"] }}\ntasks:\n  - {{ id: t1, agent: a }}\n",
        dir.path().display().to_string()
    );
    std::fs::write(repo.join("plan.yaml"), plan).expect("plan");
    let out = fugue(&repo, &["plan", "plan.yaml"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("holds the repository"), "{}", out.stderr);
}

#[test]
fn a_reviewer_is_confined_read_only() {
    if !landlock() {
        return;
    }
    let dir = temp();
    // The reviewer tries to change the checkout it reviews (quietly: a refusal it printed would
    // fail it); confined read-only, it cannot, and says so in its score.
    let reviewer = r#"if (echo hacked >> README.md) 2>/dev/null; then echo '{"score": 0, "findings": [{"severity": "critical", "message": "the reviewer could write"}]}'; else echo '{"score": 9, "findings": []}'; fi"#;
    let plan = format!(
        "version: 1\nbase: main\ngates: {{ review: {{ agent: rev }} }}\nagents:\n  rev: {{ command: [\"sh\", \"-c\", {reviewer:?}] }}\n  \
         work: {{ command: [\"sh\", \"-c\", \"mkdir -p src && echo w > src/w.txt\"] }}\ntasks:\n  - {{ id: t1, agent: work, modifies: [\"src/**\"] }}\n"
    );
    let repo = repo(dir.path(), &plan);
    let out = run(&repo);
    assert_eq!(out.code, 0, "the read-only reviewer approved: {}\n{}", out.stdout, out.stderr);
    assert_eq!(git(&repo, &["show", "main:README.md"]), "x");
}

#[test]
fn a_confined_agents_own_commit_survives_kill_9_and_resume_and_lands_once() {
    if !landlock() {
        return;
    }
    let dir = temp();
    let signals = dir.path().join("signals");
    std::fs::create_dir_all(&signals).expect("mkdir");
    let s = signals.display();
    // First run: commit on the (detached) HEAD, then wait to be killed. After the resume: the
    // commit is there, so only the rest of the work is left.
    let script = format!(
        "if [ -e src/first.txt ]; then echo two > src/second.txt; else mkdir -p src && echo one > src/first.txt && git add src && \
         git commit -qm 'committed before the crash' && touch {s}/started && while [ ! -e {s}/release ]; do sleep 0.05; done; fi"
    );
    let plan = format!(
        "version: 1\nbase: main\ncaches: [\"{s}\"]\ngates: {{ review: false }}\nagents:\n  a: {{ command: [\"sh\", \"-c\", {script:?}] }}\n\
         tasks:\n  - {{ id: t1, agent: a, modifies: [\"src/**\"] }}\n"
    );
    let repo = repo(dir.path(), &plan);
    let mut child = crate::runs::spawn_run(&repo);
    crate::runs::wait_for(&signals.join("started"));
    child.kill().expect("kill -9");
    let _ = child.wait();
    std::fs::write(signals.join("release"), "").expect("release");
    let out = fugue(&repo, &["resume"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(git(&repo, &["show", "main:src/first.txt"]), "one");
    assert_eq!(git(&repo, &["show", "main:src/second.txt"]), "two");
    let subjects = git(&repo, &["log", "--format=%s", "main"]);
    assert_eq!(subjects.lines().filter(|l| *l == "committed before the crash").count(), 1, "{subjects}");
    assert_eq!(crate::runs::merges_of(&repo, "t1"), 1);
    assert_eq!(git(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/main", "the user's checkout stays on main");
    assert_eq!(fugue(&repo, &["validate"]).code, 0);
}
