//! The checked-in `schemas/` must equal the schemas generated from the types, and each schema
//! accepts its positive fixtures and rejects its negative ones at the asserted JSON pointer and
//! keyword.
//!
//! Fixtures live in `tests/fixtures/schemas/<schema name>/`: `valid-*.json` must validate;
//! `invalid-*.json` hold `{"instance": …, "errors": [{"pointer": "/…", "keyword": "…"}]}`.

use std::path::Path;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn checked_in_schemas_match_the_types() {
    let mut stale = Vec::new();
    for (name, schema) in fugue::core::schema::all() {
        let path = root().join("schemas").join(name);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != fugue::core::schema::render(&schema) {
            stale.push(name);
        }
    }
    assert!(stale.is_empty(), "schemas out of date: {stale:?}; regenerate with `cargo run -p fugue-cli -- schema --out schemas`");
    let files = std::fs::read_dir(root().join("schemas")).expect("schemas dir").count();
    assert_eq!(files, fugue::core::schema::all().len(), "schemas/ holds files that are not generated");
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
    for (name, schema) in fugue::core::schema::all() {
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
    assert!(checked >= 18);
}
