//! Bytes → `fugue_core::load::load_str`, as a YAML file and as a JSON file.
//!
//! The loader must answer every input with a plan or with located diagnostics, never panic,
//! and the diagnostics must render (the CLI prints them through miette's graphical handler,
//! whose span arithmetic is the other place a bad offset would blow up). A plan that loads
//! must load again from the JSON `fugue run` saves as `.claude/fugue/plan.json`.
#![no_main]

use fugue_core::load::{LoadError, LoadOptions, PlanDiagnostics, load_str};
use libfuzzer_sys::fuzz_target;
use miette::{GraphicalReportHandler, GraphicalTheme};

fn render(d: &PlanDiagnostics, text: &str) {
    let mut out = String::new();
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor());
    handler.render_report(&mut out, d).expect("rendering into a String cannot fail");
    let _ = d.to_short_string();
    let lines = text.split('\n').count();
    for item in d.items() {
        let line: usize = item.location.rsplit(':').nth(1).and_then(|l| l.parse().ok()).expect("location is file:line:col");
        assert!(line >= 1 && line <= lines, "line {line} outside a {lines}-line text: {}", item.location);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for name in ["plan.yaml", "plan.json"] {
        match load_str(name, &text, &LoadOptions::default()) {
            Ok(loaded) => {
                if !loaded.warnings.is_empty() {
                    render(&loaded.diagnostics(loaded.warnings.clone()), &text);
                }
                let saved = serde_json::to_string_pretty(&loaded.plan).expect("a plan serialises");
                if let Err(e) = load_str("plan.json", &saved, &LoadOptions::default()) {
                    panic!("a loaded plan does not load again from its saved JSON: {e:?}\n{saved}");
                }
            }
            Err(LoadError::Invalid(d)) => {
                assert!(d.has_errors(), "an invalid plan without an error");
                render(&d, &text);
            }
            Err(e) => panic!("load_str gave an error without diagnostics: {e}"),
        }
    }
});
