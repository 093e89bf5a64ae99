//! `fugue schema --out DIR` writes every schema; `--check` detects drift.

use crate::{fugue, temp};

#[test]
fn schema_writes_and_checks() {
    let dir = temp();
    let out = fugue(dir.path(), &["schema", "--out", "s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let names: Vec<String> = std::fs::read_dir(dir.path().join("s"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"plan.schema.json".to_owned()) && names.len() >= 9, "{names:?}");
    assert_eq!(fugue(dir.path(), &["schema", "--out", "s", "--check"]).code, 0);
    std::fs::write(dir.path().join("s/plan.schema.json"), "{}").expect("tamper");
    let out = fugue(dir.path(), &["schema", "--out", "s", "--check"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("plan.schema.json"), "{}", out.stderr);
}
