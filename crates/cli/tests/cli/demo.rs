//! `fugue demo`: the README's first command works with nothing but git.

use crate::{fugue, temp};

#[test]
fn demo_runs_every_task_and_reports() {
    let dir = temp();
    let repo = dir.path().join("demo");
    let out = fugue(dir.path(), &["demo", "--dir", repo.to_str().expect("utf-8 path")]);
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Branches merged: 9/9"), "{}", out.stdout);
    assert!(out.stdout.contains("Overall Status: ✅ Complete"), "{}", out.stdout);
    assert!(out.stderr.contains("Execution Mode: PARALLEL"), "{}", out.stderr);
    assert!(out.stdout.contains("HTML report: "), "{}", out.stdout);
    let html = std::fs::read_to_string(repo.join(".claude/report.html")).expect("the demo writes its HTML report");
    assert!(html.contains("<svg") && html.contains("greeting"), "a timeline with the tasks");
    // Every module landed on main, and the run proves it kept the rules.
    for module in ["greeting", "farewell", "counter", "parser"] {
        assert!(repo.join("src").join(format!("{module}.rs")).exists(), "{module}.rs merged and checked out");
    }
    let lib = std::fs::read_to_string(repo.join("src/lib.rs")).expect("lib.rs");
    assert!(lib.contains("pub mod parser;"), "{lib}");
    let validate = fugue(dir.path(), &["--repo", repo.to_str().expect("utf-8"), "validate"]);
    assert_eq!(validate.code, 0, "{}", validate.stdout);
    assert!(validate.stdout.contains("kept every rule"), "{}", validate.stdout);
    let status = fugue(dir.path(), &["--repo", repo.to_str().expect("utf-8"), "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("status json");
    assert_eq!(v["state"], "success");
    assert!(v["tasks"].as_array().expect("tasks").iter().all(|t| t["status"] == "merged"));
}

#[test]
fn demo_refuses_a_non_empty_directory() {
    let dir = temp();
    std::fs::write(dir.path().join("keep.txt"), "mine").expect("write");
    let out = fugue(dir.path(), &["demo", "--dir", dir.path().to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(dir.path().join("keep.txt")).expect("kept"), "mine");
}

#[test]
fn demo_works_on_a_machine_without_a_git_identity() {
    let dir = temp();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let repo = dir.path().join("demo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fugue"))
        .args(["demo", "--dir", repo.to_str().expect("utf-8")])
        .env("NO_COLOR", "1")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_AUTHOR_EMAIL")
        .env_remove("GIT_COMMITTER_NAME")
        .env_remove("GIT_COMMITTER_EMAIL")
        .env("EMAIL", "")
        .output()
        .expect("run fugue demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Branches merged: 9/9"), "{stdout}");
}
