//! The bad-plan corpus: every file in `fixtures/bad-plans` must be rejected with exit code 2,
//! a diagnostic at the expected line, and the expected issue code.

use crate::{fixtures, fugue, temp};

fn expectation(path: &std::path::Path, text: &str) -> (usize, String) {
    let spec = match text.lines().next().and_then(|l| l.strip_prefix("# expect: ")) {
        Some(s) => s.to_owned(),
        None => std::fs::read_to_string(path.with_extension("json.expect")).expect("a `# expect:` line or a .expect file"),
    };
    let (line, code) = spec.trim().split_once(' ').expect("`LINE CODE`");
    (line.parse().expect("line number"), code.to_owned())
}

#[test]
fn every_bad_plan_is_rejected_with_exit_2_at_its_line() {
    let dir = temp();
    let mut cases = 0;
    let mut entries: Vec<_> = std::fs::read_dir(fixtures().join("bad-plans")).expect("corpus").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries.iter().filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json")) {
        let text = std::fs::read_to_string(path).expect("read case");
        let (line, code) = expectation(path, &text);
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        std::fs::copy(path, dir.path().join(&name)).expect("copy");
        let out = fugue(dir.path(), &["plan", &name]);
        assert_eq!(out.code, 2, "{name}: exit code\n{}", out.stderr);
        assert!(out.stderr.contains(&format!("[{name}:{line}:")), "{name}: expected a diagnostic at line {line}\n{}", out.stderr);
        assert!(out.stderr.contains(&code), "{name}: expected code `{code}`\n{}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{name}: panicked");
        cases += 1;
    }
    assert!(cases >= 20, "the corpus holds {cases} cases; at least 20 are required");
}

#[test]
fn diagnostics_are_readable() {
    let dir = temp();
    std::fs::copy(fixtures().join("bad-plans/01-unknown-agent.yaml"), dir.path().join("plan.yaml")).expect("copy");
    let out = fugue(dir.path(), &["plan", "plan.yaml"]);
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_missing_plan_file_is_bad_input() {
    let dir = temp();
    let out = fugue(dir.path(), &["plan", "nope.yaml"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("failed to read nope.yaml"), "{}", out.stderr);
}

#[test]
fn unknown_commands_are_usage_errors() {
    let dir = temp();
    let out = fugue(dir.path(), &["frobnicate"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("unrecognized subcommand"), "{}", out.stderr);
}
