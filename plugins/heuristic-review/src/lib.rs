//! `heuristic-review` as a dynamic library: fugue's built-in heuristic reviewer exported
//! through the plugin C ABI.
//!
//! The review lives in [`fugue_quality_gates::heuristic`], where the review gate uses it
//! in-process as the default reviewer; this crate re-exports it and adds the four C symbols of
//! [`fugue_core::export_plugin!`]. There is a single implementation, so the plugin and the
//! default reviewer can never disagree on a score.
//!
//! It is here for two reasons. It is the example of a *gate* plugin (the codemod plugin is the
//! agent example): a plan can name the built library as an agent (`plugin: heuristic-review`,
//! found in `FUGUE_PLUGIN_PATH`, or its path) and use it as a reviewer with its own `config`,
//! and `fugue plugins inspect` shows its manifest. And the plugin loader's tests load it as a
//! real library serving two kinds: its manifest's kind is `gate` and its
//! `metadata.capabilities` add `agent`.
//!
//! Because the exports have fixed C names, a program must not link this crate's rlib next to
//! another plugin's: a host that wants the review in-process uses
//! [`fugue_quality_gates::heuristic::HeuristicReview`] directly.

pub use fugue_quality_gates::heuristic::*;

fugue_core::export_plugin!(HeuristicReview);

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use fugue_core::plugin::{PLUGIN_ABI_VERSION, PluginImpl, PluginKind, PluginManifest};

    use super::*;

    /// What the loader reads through the C exports, step by step: the ABI version, then a
    /// manifest that is JSON, valid against the plugin-manifest schema, agrees on the ABI and
    /// has a compiling config schema.
    #[test]
    fn the_exported_manifest_is_what_the_loader_expects() {
        assert_eq!(fugue_plugin_abi_version(), PLUGIN_ABI_VERSION);
        let raw = fugue_plugin_manifest();
        assert!(!raw.is_null());
        // SAFETY: non-null, NUL-terminated and static per `export_plugin!`.
        let text = unsafe { CStr::from_ptr(raw) }.to_str().expect("utf-8");
        let value: serde_json::Value = serde_json::from_str(text).expect("manifest JSON");

        let schema = fugue_core::schema::all().into_iter().find(|(n, _)| *n == "plugin-manifest.schema.json").expect("schema").1;
        let validator = jsonschema::validator_for(&serde_json::to_value(schema).expect("json")).expect("compiles");
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {value}");

        let manifest: PluginManifest = serde_json::from_value(value).expect("manifest");
        assert_eq!(manifest, HeuristicReview.manifest(), "the export is the built-in reviewer's manifest");
        assert_eq!(manifest.name, "heuristic-review");
        assert_eq!(manifest.abi_version, PLUGIN_ABI_VERSION);
        assert_eq!(manifest.kind, PluginKind::Gate);
        assert!(manifest.supports(PluginKind::Agent), "a reviewer agent through its capabilities");
        assert_eq!(manifest.config_schema, config_schema());
        assert!(jsonschema::validator_for(&manifest.config_schema).is_ok());
    }

    /// A request through the exported `invoke` gets the same review as the function.
    #[test]
    fn the_exported_invoke_reviews_like_the_built_in_reviewer() {
        let diff = "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1,2 @@\n fn a() {}\n+fn b() { c().unwrap(); }\n";
        let request = serde_json::json!({"kind": "gate", "context": {
            "task_id": "t1", "phase": "implementation", "checkout": "/tmp", "base_commit": "a", "head_commit": "b",
            "changed_files": ["src/lib.rs"], "diff": diff, "modifies": ["src/**"], "common": [], "config": {}
        }});
        let request = std::ffi::CString::new(request.to_string()).expect("no NUL");
        // SAFETY: a NUL-terminated request valid for the call.
        let raw = unsafe { fugue_plugin_invoke(request.as_ptr()) };
        assert!(!raw.is_null());
        // SAFETY: non-null and NUL-terminated; freed once below.
        let response: serde_json::Value = serde_json::from_slice(unsafe { CStr::from_ptr(raw) }.to_bytes()).expect("response JSON");
        // SAFETY: returned by this plugin's `invoke`, freed exactly once.
        unsafe { fugue_plugin_free(raw) };
        let expected = gate_report(&review(diff, &["src/lib.rs".to_owned()], &ReviewConfig::default()), &ReviewConfig::default());
        assert_eq!(response["kind"], "gate");
        assert_eq!(response["report"]["score"], serde_json::json!(expected.score));
        assert_eq!(response["report"]["findings"], serde_json::to_value(&expected.findings).expect("json"));
    }
}
