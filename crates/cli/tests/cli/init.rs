//! `fugue init` writes a plan that `fugue plan` accepts, and never clobbers one.

use crate::{fugue, temp};

#[test]
fn init_writes_a_plan_that_validates() {
    let dir = temp();
    let out = fugue(dir.path(), &["init", "--agent", "codex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(dir.path().join("fugue.yaml")).expect("written");
    assert!(text.contains("agent: codex"));
    let out = fugue(dir.path(), &["plan", "fugue.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Execution Mode"), "{}", out.stdout);
    assert!(out.stdout.contains("Critical path: contracts"), "{}", out.stdout);
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = temp();
    std::fs::write(dir.path().join("fugue.yaml"), "mine").expect("write");
    let out = fugue(dir.path(), &["init"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(dir.path().join("fugue.yaml")).expect("read"), "mine");
    assert_eq!(fugue(dir.path(), &["init", "--force"]).code, 0);
}

#[test]
fn init_writes_the_caches_and_tests_of_the_project_it_finds() {
    let dir = temp();
    std::fs::write(dir.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").expect("write");
    let out = fugue(dir.path(), &["init"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("caches and tests for Cargo.toml"), "{}", out.stdout);
    let text = std::fs::read_to_string(dir.path().join("fugue.yaml")).expect("written");
    assert!(text.contains("keep_ignored: [\"target/\"]") && text.contains("seed: { \"target/\": copy }"), "{text}");
    assert!(text.contains("tests: { commands: [\"cargo test\"] }"), "{text}");
    assert_eq!(fugue(dir.path(), &["plan", "fugue.yaml"]).code, 0);
}
