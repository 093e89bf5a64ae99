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
    assert!(names.contains(&"plan.schema.json".to_owned()) && names.len() >= 10, "{names:?}");
    assert!(names.contains(&"journal-record.schema.json".to_owned()), "{names:?}");
    assert_eq!(fugue(dir.path(), &["schema", "--out", "s", "--check"]).code, 0);
    std::fs::write(dir.path().join("s/journal-record.schema.json"), "{}").expect("tamper");
    let out = fugue(dir.path(), &["schema", "--out", "s", "--check"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("journal-record.schema.json") && !out.stderr.contains("plan.schema.json"), "{}", out.stderr);
    assert_eq!(fugue(dir.path(), &["schema", "--out", "s"]).code, 0);
    assert_eq!(fugue(dir.path(), &["schema", "--out", "s", "--check"]).code, 0);
    std::fs::write(dir.path().join("s/plan.schema.json"), "{}").expect("tamper");
    let out = fugue(dir.path(), &["schema", "--out", "s", "--check"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("plan.schema.json"), "{}", out.stderr);
}

#[test]
fn schema_prints_every_schema_with_the_journal() {
    let dir = temp();
    let out = fugue(dir.path(), &["schema"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let all: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert!(all["plan.schema.json"].is_object(), "{}", out.stdout);
    assert_eq!(all["journal-record.schema.json"]["title"], "journal.ndjson line");
}

/// The checked-in `schemas/` directory is what `fugue schema --out` writes.
#[test]
fn schema_check_passes_on_the_checked_in_schemas() {
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let dir = temp();
    let out = fugue(dir.path(), &["schema", "--out", schemas.to_str().expect("utf-8 path"), "--check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
