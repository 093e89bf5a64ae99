//! The checked-in `schemas/` must equal the schemas generated from the types, and each schema
//! accepts its positive fixtures and rejects its negative ones at the asserted JSON pointer and
//! keyword.
//!
//! Fixtures live in `tests/fixtures/schemas/<schema name>/`: `valid-*.json` must validate, and so
//! must every line of a `valid-*.ndjson` (a whole journal); `invalid-*.json` hold
//! `{"instance": …, "errors": [{"pointer": "/…", "keyword": "…"}]}`.

use std::path::Path;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn checked_in_schemas_match_the_types() {
    let mut stale = Vec::new();
    for (name, schema) in fugue::engine::schemas() {
        let path = root().join("schemas").join(name);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != fugue::core::schema::render(&schema) {
            stale.push(name);
        }
    }
    assert!(stale.is_empty(), "schemas out of date: {stale:?}; regenerate with `cargo run -p fugue-cli -- schema --out schemas`");
    let files = std::fs::read_dir(root().join("schemas")).expect("schemas dir").count();
    assert_eq!(files, fugue::engine::schemas().len(), "schemas/ holds files that are not generated");
}

fn errors_of(schema: &Value, instance: &Value) -> Vec<(String, String)> {
    let validator = jsonschema::validator_for(schema).expect("schema compiles");
    let mut errs: Vec<(String, String)> =
        validator.iter_errors(instance).map(|e| (e.instance_path().as_str().to_owned(), e.kind().keyword().to_owned())).collect();
    errs.sort();
    errs
}

#[test]
fn schema_fixtures() {
    let mut checked = 0;
    for (name, schema) in fugue::engine::schemas() {
        let schema = serde_json::to_value(schema).expect("schema json");
        let dir = root().join("tests/fixtures/schemas").join(name.trim_end_matches(".schema.json"));
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| panic!("fixtures for {name} in {}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        let (mut valid, mut invalid) = (0, 0);
        for path in entries {
            let file = path.file_name().expect("name").to_string_lossy().into_owned();
            if file.starts_with("valid") && file.ends_with(".ndjson") {
                let mut lines = 0;
                for (no, line) in std::fs::read_to_string(&path).expect("read").lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{file}:{}: {e}", no + 1));
                    let errs = errors_of(&schema, &doc);
                    assert!(errs.is_empty(), "{name}/{file}:{} should validate: {errs:?}", no + 1);
                    lines += 1;
                }
                assert!(lines > 0, "{name}/{file} is empty");
                valid += 1;
                continue;
            }
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).unwrap_or_else(|e| panic!("{file}: {e}"));
            if file.starts_with("valid") {
                let errs = errors_of(&schema, &doc);
                assert!(errs.is_empty(), "{name}/{file} should validate: {errs:?}");
                valid += 1;
            } else if file.starts_with("invalid") {
                let mut want: Vec<(String, String)> = doc["errors"]
                    .as_array()
                    .expect("errors list")
                    .iter()
                    .map(|e| (e["pointer"].as_str().expect("pointer").to_owned(), e["keyword"].as_str().expect("keyword").to_owned()))
                    .collect();
                want.sort();
                assert!(!want.is_empty(), "{name}/{file} asserts no rejection");
                assert_eq!(errors_of(&schema, &doc["instance"]), want, "{name}/{file}");
                invalid += 1;
            }
        }
        assert!(valid >= 1 && invalid >= 1, "{name}: needs at least one valid and one invalid fixture");
        checked += valid + invalid;
    }
    assert!(checked >= 24);
}

fn journal_fixtures() -> Vec<(String, String)> {
    let dir = root().join("tests/fixtures/schemas/journal-record");
    let mut entries: Vec<_> = std::fs::read_dir(&dir).expect("journal-record fixtures").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    entries
        .into_iter()
        .map(|p| (p.file_name().expect("name").to_string_lossy().into_owned(), std::fs::read_to_string(&p).expect("read")))
        .collect()
}

/// The schema and the engine agree on the journal fixtures: every valid one is a [`Record`]
/// that writes back as the same JSON, every invalid one is refused by the journal's reader too.
///
/// [`Record`]: fugue::engine::journal::Record
#[test]
fn journal_fixtures_agree_with_the_reader() {
    use fugue::engine::journal::Record;
    let (mut valid, mut invalid) = (0, 0);
    for (file, text) in journal_fixtures() {
        if file.starts_with("valid") {
            let docs: Vec<&str> =
                if file.ends_with(".ndjson") { text.lines().filter(|l| !l.trim().is_empty()).collect() } else { vec![&text] };
            for doc in docs {
                let record: Record = serde_json::from_str(doc).unwrap_or_else(|e| panic!("{file} should read as a record: {e}"));
                let back = serde_json::to_value(&record).expect("serialize");
                let orig: Value = serde_json::from_str(doc).expect("json");
                assert_eq!(back, orig, "{file} does not write back as itself");
                valid += 1;
            }
        } else if file.starts_with("invalid") {
            let doc: Value = serde_json::from_str(&text).expect("json");
            assert!(
                serde_json::from_value::<Record>(doc["instance"].clone()).is_err(),
                "{file} reads as a record, but the schema rejects it"
            );
            invalid += 1;
        }
    }
    assert!(valid >= 20 && invalid >= 4, "{valid} valid, {invalid} invalid");
}

/// The demo journal holds every kind of line a successful run writes, and the reader takes it
/// whole (no torn tail): it is a real journal, not a hand-made one.
#[test]
fn demo_journal_fixture_is_a_real_journal() {
    let path = root().join("tests/fixtures/schemas/journal-record/valid-demo-journal.ndjson");
    let replay = fugue::engine::journal::read(&path).expect("reads");
    assert!(replay.torn_tail.is_none());
    let kinds: std::collections::BTreeSet<String> =
        replay.records.iter().map(|r| serde_json::to_value(r).expect("json")["event"].as_str().expect("event").to_owned()).collect();
    for kind in [
        "run_started",
        "phase_started",
        "status",
        "locks_granted",
        "attempt_started",
        "agent_finished",
        "qa_finished",
        "merged",
        "phase_completed",
        "run_finished",
    ] {
        assert!(kinds.contains(kind), "the demo journal has no {kind}: {kinds:?}");
    }
    let seqs: Vec<u64> = replay.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}
