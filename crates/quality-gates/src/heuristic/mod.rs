//! The heuristic review: scores a diff from 0 to 10 from static signals, without a model.
//!
//! It is fugue's default reviewer ([`crate::Reviewer::heuristic`]) and lives here so that
//! every host has it without building or linking a plugin. [`HeuristicReview`] implements
//! [`PluginImpl`] and serves two kinds — its manifest's kind is `gate` and its
//! `metadata.capabilities` add `agent` — so the host runs it in-process through
//! `fugue_agents::InProcess`, and the `fugue-plugin-heuristic-review` crate exports this same
//! type as a dynamic library (an example of a gate plugin that cannot drift from the built-in
//! reviewer, because there is only one implementation).
//!
//! The review reads the unified diff of the task (`GateContext.diff`; as an agent, `config.diff`
//! or `git diff` in the worktree) and looks only at what the change adds:
//!
//! | rule | severity | signal |
//! |---|---|---|
//! | `conflict-marker` | critical | `<<<<<<<` / `>>>>>>>` lines |
//! | `secret` | critical | private keys, AWS access key ids |
//! | `todo` | low | new `TODO`, `FIXME`, `XXX` |
//! | `unwrap` | medium | `.unwrap()` / `.expect(` in non-test Rust |
//! | `panic` | medium | `panic!`, `todo!`, `unimplemented!` in non-test Rust |
//! | `debug-print` | medium / low | `dbg!` (medium); `println!`, `console.log`, `print(` outside binaries and tests (low) |
//! | `long-function` | medium | a new function longer than `max_function_lines` (default 80) |
//! | `untested-change` | medium | source files changed and no test changed or added |
//! | `no-trailing-newline` | low | a changed file ends without a newline |
//! | `empty-diff` | medium | nothing changed |
//!
//! Test code is recognised by path (`tests/`, `*_test.*`, `*.test.*`, `test_*.py`, `spec/`, …;
//! `examples/`, `benches/` and `build.rs` are treated alike) and, in Rust, by the rest of a file
//! after `#[cfg(test)]` or `mod tests`. The score starts at 10 and loses, per rule, a weight by
//! severity (critical 4, high 2.5, medium 1, low 0.4, info 0.1) for each of its first three
//! findings, so one noisy rule cannot sink a change alone. The gate passes when the score
//! reaches `min_score` (default 7) and no finding has a `block_on` severity (default critical
//! and high).

mod diff;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use fugue_core::plugin::{PluginImpl, PluginKind, PluginManifest};
use fugue_core::{AgentContext, AgentReport, Finding, GateContext, GateReport, GateVerdict, ReviewReport, Severity};
use regex::Regex;
use serde::Deserialize;

use self::diff::{FileDiff, Kind};

/// The review's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// The lowest passing score.
    pub min_score: f64,
    /// Severities that fail the gate whatever the score.
    pub block_on: Vec<Severity>,
    /// Longest acceptable new function, in lines.
    pub max_function_lines: usize,
    /// Rule ids to skip.
    pub disable: Vec<String>,
    /// Agent mode: the diff to review (instead of running `git diff`).
    pub diff: Option<String>,
    /// Agent mode: what to diff the worktree against (default: `FUGUE_BASE_COMMIT` from the
    /// context's env, else `HEAD`).
    pub base: Option<String>,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            min_score: 7.0,
            block_on: vec![Severity::Critical, Severity::High],
            max_function_lines: 80,
            disable: Vec::new(),
            diff: None,
            base: None,
        }
    }
}

/// Every rule: id, severity, what it flags.
pub const RULES: &[(&str, Severity, &str)] = &[
    ("conflict-marker", Severity::Critical, "merge conflict markers"),
    ("secret", Severity::Critical, "private keys and access key ids"),
    ("todo", Severity::Low, "new TODO / FIXME / XXX"),
    ("unwrap", Severity::Medium, "unwrap()/expect() in non-test Rust"),
    ("panic", Severity::Medium, "panic!/todo!/unimplemented! in non-test Rust"),
    ("debug-print", Severity::Low, "debug prints (dbg! is medium)"),
    ("long-function", Severity::Medium, "new functions over max_function_lines"),
    ("untested-change", Severity::Medium, "source changed without a test change"),
    ("no-trailing-newline", Severity::Low, "files ending without a newline"),
    ("empty-diff", Severity::Medium, "nothing to review"),
];

/// The JSON schema of [`ReviewConfig`], as published in the manifest.
pub fn config_schema() -> serde_json::Value {
    let severity = serde_json::json!({"type": "string", "enum": ["info", "low", "medium", "high", "critical"]});
    let rule_ids: Vec<&str> = RULES.iter().map(|r| r.0).collect();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "heuristic-review config",
        "type": "object",
        "properties": {
            "min_score": {"description": "The lowest passing score.", "type": "number", "minimum": 0, "maximum": 10, "default": 7},
            "block_on": {"description": "Severities that fail the gate whatever the score.", "type": "array", "items": severity, "default": ["critical", "high"]},
            "max_function_lines": {"description": "Longest acceptable new function, in lines.", "type": "integer", "minimum": 1, "default": 80},
            "disable": {"description": "Rule ids to skip.", "type": "array", "items": {"enum": rule_ids}},
            "diff": {"description": "Agent mode: the unified diff to review.", "type": "string"},
            "base": {"description": "Agent mode: the commit to diff the worktree against.", "type": "string", "minLength": 1}
        },
        "additionalProperties": false
    })
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants; a test compiles every one of them.
    Regex::new(pattern).expect("constant regex compiles")
}

static TODO: LazyLock<Regex> = LazyLock::new(|| re(r"\b(TODO|FIXME|XXX)\b"));
static UNWRAP: LazyLock<Regex> = LazyLock::new(|| re(r"\.(unwrap|expect)\("));
static PANIC: LazyLock<Regex> = LazyLock::new(|| re(r"\b(panic|todo|unimplemented)!\s*[\(\[\{]"));
static DBG: LazyLock<Regex> = LazyLock::new(|| re(r"\bdbg!\s*\("));
static RUST_PRINT: LazyLock<Regex> = LazyLock::new(|| re(r"\be?print(ln)?!\s*\("));
static JS_PRINT: LazyLock<Regex> = LazyLock::new(|| re(r"\bconsole\.(log|debug|trace)\s*\("));
static PY_PRINT: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*print\s*\("));
static SECRET: LazyLock<Regex> = LazyLock::new(|| re(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\bAKIA[0-9A-Z]{16}\b"));
static RUST_TEST_MARK: LazyLock<Regex> = LazyLock::new(|| re(r"#\[cfg\(test\)\]|\bmod tests?\b|#\[(\w+::)*test\]"));
static FN_BRACES: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+"[^"]*"\s+)?fn\s+([A-Za-z_]\w*)|^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)|^func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)"#,
    )
});
static FN_PYTHON: LazyLock<Regex> = LazyLock::new(|| re(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)"));
static STRINGS: LazyLock<Regex> = LazyLock::new(|| re(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)'"#));

const CODE_EXTENSIONS: &[&str] =
    &["rs", "py", "js", "jsx", "mjs", "ts", "tsx", "go", "java", "kt", "c", "cc", "cpp", "h", "hpp", "rb", "swift", "cs", "php", "scala"];

fn extension(path: &str) -> &str {
    Path::new(path).extension().and_then(|e| e.to_str()).unwrap_or("")
}

/// Test code by its path.
pub fn is_test_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.split('.').next().unwrap_or(name);
    path.split('/').any(|c| matches!(c, "tests" | "test" | "__tests__" | "spec" | "specs" | "testdata"))
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || stem.ends_with("_spec")
        || stem.starts_with("test_")
        || name.contains(".test.")
        || name.contains(".spec.")
}

/// Code that is not shipped: tests, examples, benches, build scripts.
fn is_non_production(path: &str) -> bool {
    is_test_path(path) || path.split('/').any(|c| matches!(c, "examples" | "benches")) || path == "build.rs" || path.ends_with("/build.rs")
}

fn is_binary_entry(path: &str) -> bool {
    path.ends_with("src/main.rs") || path.contains("src/bin/") || path.ends_with("main.go") || path.ends_with("__main__.py")
}

fn is_comment(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("//") || t.starts_with("/*") || t.starts_with('*') || t.starts_with('#') && !t.starts_with("#[")
}

struct Reviewer<'a> {
    config: &'a ReviewConfig,
    findings: Vec<(&'static str, Finding)>,
}

impl Reviewer<'_> {
    fn flag(&mut self, rule: &'static str, severity: Severity, file: Option<&str>, line: Option<u32>, message: String) {
        if !self.config.disable.iter().any(|d| d == rule) {
            self.findings.push((rule, Finding { severity, file: file.map(str::to_owned), line, message }));
        }
    }

    fn file(&mut self, f: &FileDiff) {
        let path = f.path.as_str();
        let ext = extension(path);
        let rust = ext == "rs";
        let non_prod = is_non_production(path);
        let mut in_test = false;
        for hunk in &f.hunks {
            if rust && RUST_TEST_MARK.is_match(&hunk.context) {
                in_test = true;
            }
            for line in &hunk.lines {
                if line.kind == Kind::Removed {
                    continue;
                }
                if rust && RUST_TEST_MARK.is_match(&line.text) {
                    in_test = true;
                }
                if line.kind != Kind::Added {
                    continue;
                }
                self.added_line(path, ext, line.number, &line.text, non_prod || in_test);
            }
            self.long_functions(path, ext, hunk, f.created);
        }
        if let Some(n) = f.no_newline_at {
            self.flag("no-trailing-newline", Severity::Low, Some(path), Some(n), format!("{path} does not end with a newline"));
        }
    }

    fn added_line(&mut self, path: &str, ext: &str, n: u32, text: &str, test_code: bool) {
        let at = (Some(path), Some(n));
        if text.starts_with("<<<<<<< ") || text.starts_with(">>>>>>> ") || text == "<<<<<<<" || text == ">>>>>>>" {
            self.flag("conflict-marker", Severity::Critical, at.0, at.1, "merge conflict marker left in the file".to_owned());
        }
        if SECRET.is_match(text) {
            self.flag(
                "secret",
                Severity::Critical,
                at.0,
                at.1,
                "what looks like a private key or an access key id is committed".to_owned(),
            );
        }
        if let Some(m) = TODO.find(text) {
            self.flag("todo", Severity::Low, at.0, at.1, format!("new {} left in the change", m.as_str()));
        }
        let comment = is_comment(text);
        if ext == "rs" && !test_code && !comment {
            if let Some(m) = UNWRAP.captures(text).and_then(|c| c.get(1)) {
                self.flag(
                    "unwrap",
                    Severity::Medium,
                    at.0,
                    at.1,
                    format!("`{}` in non-test code: handle the error or return it", m.as_str()),
                );
            }
            if let Some(m) = PANIC.captures(text).and_then(|c| c.get(1)) {
                self.flag("panic", Severity::Medium, at.0, at.1, format!("`{}!` in non-test code", m.as_str()));
            }
        }
        if comment || test_code {
            return;
        }
        let binary = is_binary_entry(path);
        match ext {
            "rs" if DBG.is_match(text) => {
                self.flag("debug-print", Severity::Medium, at.0, at.1, "`dbg!` left in the code".to_owned());
            }
            "rs" if !binary && RUST_PRINT.is_match(text) => {
                self.flag(
                    "debug-print",
                    Severity::Low,
                    at.0,
                    at.1,
                    "print to stdout/stderr in library code: use logging or return the text".to_owned(),
                );
            }
            "js" | "jsx" | "mjs" | "ts" | "tsx" if JS_PRINT.is_match(text) => {
                self.flag("debug-print", Severity::Low, at.0, at.1, "`console.log` left in the code".to_owned());
            }
            "py" if !binary && PY_PRINT.is_match(text) => {
                self.flag("debug-print", Severity::Low, at.0, at.1, "`print(` left in library code: use logging".to_owned());
            }
            _ => {}
        }
    }

    /// New functions (their first line added) longer than the limit.
    fn long_functions(&mut self, path: &str, ext: &str, hunk: &diff::Hunk, whole_file: bool) {
        let limit = self.config.max_function_lines;
        let lines: Vec<&diff::Line> = hunk.lines.iter().filter(|l| l.kind != Kind::Removed).collect();
        for (i, start) in lines.iter().enumerate() {
            if start.kind != Kind::Added {
                continue;
            }
            let measured = if ext == "py" {
                FN_PYTHON.captures(&start.text).map(|c| {
                    let indent = c.get(1).map_or(0, |m| m.as_str().len());
                    let name = c.get(2).map_or("", |m| m.as_str()).to_owned();
                    let body = lines[i + 1..]
                        .iter()
                        .take_while(|l| l.text.trim().is_empty() || l.text.len() - l.text.trim_start().len() > indent)
                        .count();
                    (name, body + 1, whole_file || i + 1 + body < lines.len())
                })
            } else if CODE_EXTENSIONS.contains(&ext) {
                FN_BRACES.captures(&start.text).and_then(|c| {
                    let name = (1..=3).find_map(|g| c.get(g)).map_or("", |m| m.as_str()).to_owned();
                    brace_span(&lines[i..]).map(|(len, closed)| (name, len, closed))
                })
            } else {
                None
            };
            if let Some((name, len, complete)) = measured.filter(|m| m.1 > limit) {
                let size = if complete { format!("{len}") } else { format!("at least {len}") };
                self.flag(
                    "long-function",
                    Severity::Medium,
                    Some(path),
                    Some(start.number),
                    format!("function `{name}` is {size} lines long (limit {limit}): split it"),
                );
            }
        }
    }
}

/// The length of the function starting at `lines[0]` by its braces: (lines, closed in the hunk).
/// `None` for a declaration without a body.
fn brace_span(lines: &[&diff::Line]) -> Option<(usize, bool)> {
    let mut depth: i64 = 0;
    let mut opened = false;
    for (i, line) in lines.iter().enumerate() {
        let code = STRINGS.replace_all(&line.text, "\"\"");
        let code = code.split("//").next().unwrap_or("");
        for c in code.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                ';' if !opened => return None,
                _ => {}
            }
        }
        if opened && depth <= 0 {
            return Some((i + 1, true));
        }
    }
    opened.then_some((lines.len(), false))
}

fn weight(severity: Severity) -> f64 {
    match severity {
        Severity::Critical => 4.0,
        Severity::High => 2.5,
        Severity::Medium => 1.0,
        Severity::Low => 0.4,
        Severity::Info => 0.1,
    }
}

/// Reviews a unified diff. `changed_files` (may be empty) adds paths the diff does not show,
/// such as binary files, to the untested-change rule.
pub fn review(diff: &str, changed_files: &[String], config: &ReviewConfig) -> ReviewReport {
    let files = diff::parse(diff);
    let mut reviewer = Reviewer { config, findings: Vec::new() };
    for f in files.iter().filter(|f| !f.deleted) {
        reviewer.file(f);
    }
    let live: Vec<&FileDiff> = files.iter().filter(|f| !f.deleted).collect();
    if live.is_empty() && changed_files.is_empty() && files.is_empty() {
        reviewer.flag("empty-diff", Severity::Medium, None, None, "the diff is empty: the task changed nothing to review".to_owned());
    }
    let mut paths: Vec<&str> = live.iter().map(|f| f.path.as_str()).chain(changed_files.iter().map(String::as_str)).collect();
    paths.sort_unstable();
    paths.dedup();
    let sources: Vec<&str> = live
        .iter()
        .filter(|f| CODE_EXTENSIONS.contains(&extension(&f.path)) && !is_non_production(&f.path) && f.added().next().is_some())
        .map(|f| f.path.as_str())
        .collect();
    let tests_touched = paths.iter().any(|p| is_test_path(p))
        || live.iter().filter(|f| extension(&f.path) == "rs").any(|f| f.added().any(|l| RUST_TEST_MARK.is_match(&l.text)));
    if !sources.is_empty() && !tests_touched {
        let shown: Vec<&str> = sources.iter().take(5).copied().collect();
        let more = if sources.len() > shown.len() { format!(" and {} more", sources.len() - shown.len()) } else { String::new() };
        reviewer.flag(
            "untested-change",
            Severity::Medium,
            None,
            None,
            format!("source changed ({}{more}) but no test was added or changed", shown.join(", ")),
        );
    }

    let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
    let mut penalty = 0.0;
    for (rule, finding) in &reviewer.findings {
        let seen = per_rule.entry(rule).or_default();
        *seen += 1;
        if *seen <= 3 {
            penalty += weight(finding.severity);
        }
    }
    let score = ((10.0_f64 - penalty).clamp(0.0, 10.0) * 10.0).round() / 10.0;
    let mut findings: Vec<Finding> = reviewer.findings.into_iter().map(|(_, f)| f).collect();
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.file.cmp(&b.file)).then_with(|| a.line.cmp(&b.line)));
    let summary = summarize(score, &findings, live.len());
    ReviewReport { score, findings, summary: Some(summary) }
}

fn summarize(score: f64, findings: &[Finding], files: usize) -> String {
    let mut counts: BTreeMap<std::cmp::Reverse<Severity>, usize> = BTreeMap::new();
    for f in findings {
        *counts.entry(std::cmp::Reverse(f.severity)).or_default() += 1;
    }
    let detail = if counts.is_empty() {
        "no findings".to_owned()
    } else {
        counts
            .iter()
            .map(|(s, n)| format!("{n} {}", serde_json::to_value(s.0).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("heuristic review: score {score}/10 over {files} file(s), {detail}")
}

/// Pass or fail by the config's `min_score` and `block_on`.
pub fn verdict(report: &ReviewReport, config: &ReviewConfig) -> GateVerdict {
    let blocked = report.findings.iter().any(|f| config.block_on.contains(&f.severity));
    if blocked || report.score < config.min_score { GateVerdict::Fail } else { GateVerdict::Pass }
}

/// The gate's report for a review.
pub fn gate_report(report: &ReviewReport, config: &ReviewConfig) -> GateReport {
    let mut gate = GateReport::pass("heuristic-review");
    gate.verdict = verdict(report, config);
    gate.score = Some(report.score);
    gate.findings = report.findings.clone();
    gate
}

fn parse_config(value: &serde_json::Value) -> Result<ReviewConfig, String> {
    if value.is_null() {
        return Ok(ReviewConfig::default());
    }
    serde_json::from_value(value.clone()).map_err(|e| format!("invalid heuristic-review config: {e}"))
}

/// The working tree's changes against `base` as a unified diff, untracked files included
/// (as new files), read with `git` without touching the index.
fn worktree_diff(worktree: &Path, base: &str) -> Result<String, String> {
    let git = |args: &[&str]| -> Result<String, String> {
        let out = fugue_core::git::Git::default().cmd(worktree).args(args).run().map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut diff = git(&["diff", "--no-color", "--no-ext-diff", base, "--"])?;
    for path in git(&["ls-files", "--others", "--exclude-standard", "-z"])?.split('\0').filter(|p| !p.is_empty()) {
        let Ok(text) = std::fs::read_to_string(worktree.join(path)) else { continue };
        if text.len() > 1 << 20 {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        diff.push_str(&format!(
            "diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n",
            lines.len()
        ));
        for l in &lines {
            diff.push('+');
            diff.push_str(l);
            diff.push('\n');
        }
        if !text.is_empty() && !text.ends_with('\n') {
            diff.push_str("\\ No newline at end of file\n");
        }
    }
    Ok(diff)
}

/// The heuristic reviewer as a plugin type: a gate, and a reviewer agent through its
/// capabilities.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeuristicReview;

impl PluginImpl for HeuristicReview {
    fn manifest(&self) -> PluginManifest {
        PluginManifest::new(
            "heuristic-review",
            env!("CARGO_PKG_VERSION"),
            PluginKind::Gate,
            "Scores a diff 0-10 from static signals (TODOs, unwrap/panic, long functions, untested changes, debug prints…).",
            config_schema(),
        )
        .with_capabilities(&[PluginKind::Gate, PluginKind::Agent])
    }

    fn gate(&self, ctx: &GateContext) -> Result<GateReport, String> {
        let config = parse_config(&ctx.config)?;
        let report = review(&ctx.diff, &ctx.changed_files, &config);
        Ok(gate_report(&report, &config))
    }

    /// As a reviewer agent: reviews the worktree's diff and returns the review report as
    /// JSON in `output` (valid against `review-report.schema.json`).
    fn agent(&self, ctx: AgentContext) -> Result<AgentReport, String> {
        let config = parse_config(&ctx.config)?;
        let diff = match &config.diff {
            Some(d) => d.clone(),
            None => {
                let base = config.base.clone().or_else(|| ctx.env.get("FUGUE_BASE_COMMIT").cloned()).unwrap_or_else(|| "HEAD".to_owned());
                worktree_diff(&ctx.worktree, &base)?
            }
        };
        let report = review(&diff, &[], &config);
        let mut out = AgentReport::ready(report.summary.clone().unwrap_or_default());
        out.output = serde_json::to_string_pretty(&report).map_err(|e| format!("failed to serialise the review: {e}"))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn added_file(path: &str, body: &str) -> String {
        let lines: Vec<&str> = body.lines().collect();
        let mut d = format!("diff --git a/{path} b/{path}\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n", lines.len());
        for l in lines {
            d.push('+');
            d.push_str(l);
            d.push('\n');
        }
        d
    }

    fn rules_of(report: &ReviewReport) -> Vec<String> {
        report.findings.iter().map(|f| f.message.clone()).collect()
    }

    #[test]
    fn every_rule_regex_compiles() {
        for r in
            [&TODO, &UNWRAP, &PANIC, &DBG, &RUST_PRINT, &JS_PRINT, &PY_PRINT, &SECRET, &RUST_TEST_MARK, &FN_BRACES, &FN_PYTHON, &STRINGS]
        {
            assert!(!r.as_str().is_empty());
        }
    }

    #[test]
    fn a_clean_tested_change_scores_ten() {
        let diff = added_file("src/lib.rs", "pub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n")
            + &added_file("tests/add.rs", "#[test]\nfn adds() { assert_eq!(x::add(1, 2), 3); }\n");
        let report = review(&diff, &[], &ReviewConfig::default());
        assert_eq!(report.score, 10.0, "{report:?}");
        assert!(report.findings.is_empty());
        assert_eq!(verdict(&report, &ReviewConfig::default()), GateVerdict::Pass);
    }

    #[test]
    fn flags_the_static_signals() {
        let body = "pub fn f() -> u32 {\n    // TODO: tidy\n    let x = g().unwrap();\n    dbg!(x);\n    println!(\"hi\");\n    panic!(\"no\");\n}\n#[cfg(test)]\nmod tests {\n    fn t() { h().unwrap(); }\n}";
        let mut diff = added_file("src/lib.rs", body);
        diff.push_str("\\ No newline at end of file\n");
        diff.push_str(&added_file("web/app.ts", "console.log(state);\n"));
        let report = review(&diff, &[], &ReviewConfig::default());
        let messages = rules_of(&report);
        let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
        assert!(has("new TODO"), "{messages:?}");
        assert!(has("`unwrap` in non-test code"), "{messages:?}");
        assert!(has("`dbg!` left"), "{messages:?}");
        assert!(has("print to stdout/stderr in library code"), "{messages:?}");
        assert!(has("`panic!` in non-test code"), "{messages:?}");
        assert!(has("`console.log` left"), "{messages:?}");
        assert!(has("does not end with a newline"), "{messages:?}");
        assert!(!has("no test was added or changed"), "the file adds a test module: {messages:?}");
        // Only the unwrap outside the test module is flagged.
        assert_eq!(report.findings.iter().filter(|f| f.message.contains("unwrap")).count(), 1);
        let unwrap = report.findings.iter().find(|f| f.message.contains("unwrap")).expect("unwrap finding");
        assert_eq!((unwrap.file.as_deref(), unwrap.line), (Some("src/lib.rs"), Some(3)));
        assert!(report.score < 7.0, "{}", report.score);
        assert_eq!(verdict(&report, &ReviewConfig::default()), GateVerdict::Fail);
    }

    #[test]
    fn untested_source_and_long_functions() {
        let long: String = std::iter::once("fn big() {".to_owned())
            .chain((0..100).map(|i| format!("    let v{i} = {i};")))
            .chain(["}".to_owned()])
            .collect::<Vec<_>>()
            .join("\n");
        let report = review(&added_file("src/big.rs", &long), &[], &ReviewConfig::default());
        let messages = rules_of(&report);
        assert!(messages.iter().any(|m| m == "function `big` is 102 lines long (limit 80): split it"), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("source changed (src/big.rs) but no test")), "{messages:?}");
        assert_eq!(report.score, 8.0);
        // A test path among the changed files satisfies the rule; a disabled rule is silent.
        let config = ReviewConfig { disable: vec!["long-function".to_owned()], ..ReviewConfig::default() };
        let report = review(&added_file("src/big.rs", &long), &["tests/big.rs".to_owned()], &config);
        assert!(report.findings.is_empty(), "{report:?}");
        let py = format!("def f():\n{}\n", (0..90).map(|_| "    x = 1").collect::<Vec<_>>().join("\n"));
        let report = review(&added_file("pkg/mod.py", &py), &[], &ReviewConfig::default());
        assert!(rules_of(&report).iter().any(|m| m.starts_with("function `f` is 91 lines")), "{report:?}");
    }

    #[test]
    fn critical_findings_block_whatever_the_score() {
        let diff = added_file("notes.md", "<<<<<<< HEAD\nkey: AKIAABCDEFGHIJKLMNOP\n");
        let report = review(&diff, &[], &ReviewConfig::default());
        assert_eq!(report.findings.iter().filter(|f| f.severity == Severity::Critical).count(), 2);
        assert_eq!(report.score, 2.0);
        let lenient = ReviewConfig { min_score: 0.0, block_on: vec![], ..ReviewConfig::default() };
        assert_eq!(verdict(&report, &lenient), GateVerdict::Pass);
        assert_eq!(verdict(&report, &ReviewConfig { min_score: 0.0, ..ReviewConfig::default() }), GateVerdict::Fail);
    }

    #[test]
    fn empty_diff_and_repeated_findings_are_bounded() {
        let empty = review("", &[], &ReviewConfig::default());
        assert_eq!(empty.score, 9.0);
        assert!(empty.findings[0].message.contains("changed nothing"));
        let todos: String = (0..50).map(|i| format!("// TODO {i}\n")).collect();
        let report = review(&added_file("docs/x.txt", &todos), &[], &ReviewConfig::default());
        assert_eq!(report.findings.len(), 50);
        assert_eq!(report.score, 8.8);
    }

    #[test]
    fn reports_are_valid_against_the_schema() {
        let schema = fugue_core::schema::all().into_iter().find(|(n, _)| *n == "review-report.schema.json").expect("schema").1;
        let validator = jsonschema::validator_for(&serde_json::to_value(schema).expect("json")).expect("compiles");
        for diff in ["", &added_file("src/lib.rs", "fn f() { x.unwrap(); }\n// FIXME\n")] {
            let report = serde_json::to_value(review(diff, &[], &ReviewConfig::default())).expect("json");
            let errors: Vec<String> = validator.iter_errors(&report).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?} in {report}");
        }
    }

    #[test]
    fn gate_and_agent_entry_points() {
        let ctx: GateContext = serde_json::from_value(json!({
            "task_id": "t1", "phase": "implementation", "checkout": "/tmp", "base_commit": "a", "head_commit": "b",
            "changed_files": ["src/lib.rs"], "diff": added_file("src/lib.rs", "fn f() { x.unwrap(); }\n"),
            "modifies": ["src/**"], "common": [], "config": {"min_score": 9}
        }))
        .expect("context");
        let report = HeuristicReview.gate(&ctx).expect("gate");
        assert_eq!(report.verdict, GateVerdict::Fail);
        assert_eq!(report.score, Some(8.0));
        let mut agent_ctx = AgentContext::new(fugue_core::TaskId::new("t1").expect("id"), "review", "/nonexistent");
        agent_ctx.config = json!({"diff": added_file("tests/a.rs", "fn t() {}\n")});
        let out = HeuristicReview.agent(agent_ctx).expect("agent");
        let parsed: ReviewReport = serde_json::from_str(&out.output).expect("review report JSON");
        assert_eq!(parsed.score, 10.0);
        let mut bad_ctx = ctx.clone();
        bad_ctx.config = json!({"min_scor": 1});
        let bad = HeuristicReview.gate(&bad_ctx);
        assert!(bad.expect_err("unknown key").contains("unknown field `min_scor`"));
        assert!(HeuristicReview.manifest().supports(PluginKind::Agent));
    }
}
