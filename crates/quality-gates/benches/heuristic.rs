//! Benchmark of the heuristic review's analysis alone (no gate, no schema validation):
//! `cargo bench -p fugue-quality-gates --bench heuristic`.

use std::time::Instant;

use fugue_quality_gates::heuristic::{ReviewConfig, review};

fn diff(files: usize, lines: usize) -> String {
    let mut d = String::new();
    for f in 0..files {
        d.push_str(&format!(
            "diff --git a/src/m{f}.rs b/src/m{f}.rs\n--- a/src/m{f}.rs\n+++ b/src/m{f}.rs\n@@ -1,{lines} +1,{} @@\n",
            lines * 2
        ));
        d.push_str("+pub fn generated() -> u32 {\n");
        for l in 0..lines {
            d.push_str(&format!(" let kept_{l} = {l};\n"));
            d.push_str(&format!("+    let value_{l} = compute({l}).map(|x| x + 1); // note {l}\n"));
        }
    }
    d
}

fn main() {
    let config = ReviewConfig::default();
    for (files, lines) in [(1, 50), (50, 200), (500, 200)] {
        let text = diff(files, lines);
        let runs = (200_000 / (files * lines)).max(3);
        let start = Instant::now();
        let mut findings = 0;
        for _ in 0..runs {
            findings = review(&text, &[], &config).findings.len();
        }
        let elapsed = start.elapsed();
        let lines_total = (files * lines * 2 * runs) as f64;
        let out = format!(
            "review {files:>3} files x {lines:>3} lines ({:>6} KiB): {:>10.3?}/run, {:>9.0} diff lines/s, {findings} findings\n",
            text.len() / 1024,
            elapsed / runs as u32,
            lines_total / elapsed.as_secs_f64()
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), out.as_bytes());
    }
}
