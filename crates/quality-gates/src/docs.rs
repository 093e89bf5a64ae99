//! The docs gate: the plan's docs commands (e.g. `cargo doc --no-deps`) and a rule that new
//! public API comes with documentation.
//!
//! The rule reads the task's diff. A changed source file that *adds* public items — Rust
//! `pub fn/struct/enum/trait/type/const/static/mod/union` (not `pub(crate)`), Python top-level
//! `def`/`class` without a leading underscore, JavaScript/TypeScript `export`s, Go exported
//! `func`/`type`/`var`/`const` — must come with a documentation change: a doc comment among the
//! file's own added lines (`///`, `//!`, `/**`, `#[doc`, a Python docstring, a Go `//` comment),
//! or anywhere in the diff a change to a `README*`, a `CHANGELOG*` or a file under `docs/` or
//! `doc/`. Tests, examples, benches, build scripts and binary entry points have no public API
//! and are skipped. Each offending file is one medium finding naming its new items, which
//! fails the gate.

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use fugue_core::{CommandLine, DocsGateSpec, Finding, GateContext, GateError, GateReport, GateVerdict, QualityGate, Severity, async_trait};
use regex::Regex;

use crate::commands::run_commands;
use crate::diff::{self, FileDiff};
use crate::elapsed_ms;
use crate::settings::GateSettings;

/// The gate's name in reports.
pub const DOCS_GATE: &str = "docs";

fn re(pattern: &str) -> Regex {
    // Constant patterns; a unit test compiles each one.
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("constant regex `{pattern}` does not compile: {e}"))
}

static RUST_PUB: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"^\s*pub\s+(?:(?:async|unsafe|const|extern\s+"[^"]*")\s+)*(?:fn|struct|enum|trait|type|const|static|mod|union)\s+([A-Za-z_]\w*)"#)
});
static PY_PUB: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z]\w*)"));
static JS_PUB: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^\s*export\s+(?:default\s+)?(?:declare\s+)?(?:async\s+)?(?:function\*?|class|const|let|var|interface|type|enum|abstract\s+class)\s+([A-Za-z_$][\w$]*)",
    )
});
static GO_PUB: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:func\s+(?:\([^)]*\)\s*)?|type\s+|var\s+|const\s+)([A-Z]\w*)"));

/// The docs gate.
#[derive(Debug, Clone)]
pub struct DocsGate {
    commands: Vec<CommandLine>,
    settings: Arc<GateSettings>,
}

impl DocsGate {
    /// The gate for the plan's `gates.docs`.
    pub fn new(spec: &DocsGateSpec, settings: Arc<GateSettings>) -> Self {
        Self { commands: spec.commands.clone(), settings }
    }
}

#[async_trait]
impl QualityGate for DocsGate {
    fn name(&self) -> &str {
        DOCS_GATE
    }

    /// Its own rules read the diff; its commands need the checkout.
    fn needs_fresh_checkout(&self) -> bool {
        !self.commands.is_empty()
    }

    async fn check(&self, ctx: &GateContext) -> Result<GateReport, GateError> {
        let started = Instant::now();
        let run = run_commands(&self.commands, ctx, &self.settings).await;
        let mut findings = run.findings;
        findings.extend(docs_findings(&ctx.diff));
        let verdict = if run.blocked {
            GateVerdict::Blocked
        } else if findings.is_empty() {
            GateVerdict::Pass
        } else {
            GateVerdict::Fail
        };
        Ok(GateReport { verdict, findings, duration_ms: elapsed_ms(started), ..GateReport::pass(DOCS_GATE) })
    }
}

fn is_doc_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    name.starts_with("readme") || name.starts_with("changelog") || path.split('/').rev().skip(1).any(|c| c == "docs" || c == "doc")
}

fn has_no_public_api(path: &str) -> bool {
    crate::heuristic::is_test_path(path)
        || path.split('/').any(|c| matches!(c, "examples" | "benches" | "bin"))
        || path == "build.rs"
        || path.ends_with("/build.rs")
        || path.ends_with("main.rs")
        || path.ends_with("__main__.py")
        || path.ends_with("setup.py")
        || path.ends_with("conftest.py")
}

/// New public items of a file (name, line) and whether its added lines hold documentation.
fn public_additions(file: &FileDiff) -> (Vec<(String, u32)>, bool) {
    let ext = Path::new(&file.path).extension().and_then(|e| e.to_str()).unwrap_or("");
    let (item, doc): (&Regex, fn(&str) -> bool) = match ext {
        "rs" => (&RUST_PUB, |t| {
            let t = t.trim_start();
            t.starts_with("///") || t.starts_with("//!") || t.starts_with("/**") || t.starts_with("#[doc") || t.starts_with("#![doc")
        }),
        "py" => (&PY_PUB, |t| t.contains("\"\"\"") || t.contains("'''")),
        "js" | "jsx" | "mjs" | "cjs" | "ts" | "tsx" | "mts" | "cts" => (&JS_PUB, |t| t.trim_start().starts_with("/**")),
        "go" => (&GO_PUB, |t| t.trim_start().starts_with("//")),
        _ => return (Vec::new(), false),
    };
    let items =
        file.added.iter().filter_map(|(n, text)| item.captures(text).and_then(|c| c.get(1)).map(|m| (m.as_str().to_owned(), *n))).collect();
    let documented = file.added.iter().any(|(_, text)| doc(text));
    (items, documented)
}

/// The docs rule's findings for a unified diff.
pub fn docs_findings(diff_text: &str) -> Vec<Finding> {
    let files = diff::parse(diff_text);
    if files.iter().any(|f| !f.deleted && is_doc_path(&f.path)) {
        return Vec::new();
    }
    let mut findings = Vec::new();
    for file in files.iter().filter(|f| !f.deleted && !has_no_public_api(&f.path)) {
        let (items, documented) = public_additions(file);
        if items.is_empty() || documented {
            continue;
        }
        let shown: Vec<String> = items.iter().take(3).map(|(name, _)| format!("`{name}`")).collect();
        let more = if items.len() > shown.len() { format!(" and {} more", items.len() - shown.len()) } else { String::new() };
        findings.push(Finding {
            severity: Severity::Medium,
            file: Some(file.path.clone()),
            line: items.first().map(|(_, n)| *n).filter(|n| *n > 0),
            message: format!(
                "new public API ({}{more}) without documentation: add doc comments for it, or update the README, CHANGELOG or docs/",
                shown.join(", ")
            ),
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added_file(path: &str, body: &str) -> String {
        let lines: Vec<&str> = body.lines().collect();
        let mut d =
            format!("diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n", lines.len());
        for l in lines {
            d.push('+');
            d.push_str(l);
            d.push('\n');
        }
        d
    }

    #[test]
    fn regexes_compile() {
        for r in [&RUST_PUB, &PY_PUB, &JS_PUB, &GO_PUB] {
            assert!(!r.as_str().is_empty());
        }
    }

    #[test]
    fn undocumented_public_items_per_language() {
        let diff = added_file("src/lib.rs", "fn private() {}\npub(crate) fn internal() {}\npub async fn run() {}\npub struct S;")
            + &added_file("pkg/api.py", "def _hidden():\n    pass\ndef visible():\n    pass\nclass Thing:\n    def method(self): pass")
            + &added_file("web/api.ts", "const x = 1;\nexport function go() {}\nexport default class App {}")
            + &added_file("svc/svc.go", "package svc\nfunc Serve() {}\nfunc helper() {}")
            + &added_file("tests/it.rs", "pub fn helper() {}")
            + &added_file("src/main.rs", "pub fn main() {}");
        let f = docs_findings(&diff);
        let files: Vec<_> = f.iter().filter_map(|f| f.file.as_deref()).collect();
        assert_eq!(files, ["src/lib.rs", "pkg/api.py", "web/api.ts", "svc/svc.go"]);
        assert_eq!(f[0].line, Some(3));
        assert!(f[0].message.contains("(`run`, `S`)"), "{}", f[0].message);
        assert!(f[1].message.contains("`visible`, `Thing`") && !f[1].message.contains("_hidden"), "{}", f[1].message);
        assert!(f.iter().all(|f| f.severity == Severity::Medium));
    }

    #[test]
    fn documentation_satisfies_the_rule() {
        assert!(docs_findings(&added_file("src/lib.rs", "/// Adds.\npub fn add() {}")).is_empty());
        assert!(docs_findings(&added_file("pkg/m.py", "def f():\n    \"\"\"Does f.\"\"\"")).is_empty());
        assert!(docs_findings(&added_file("web/a.ts", "/** Go. */\nexport const go = 1;")).is_empty());
        let with_readme = added_file("src/lib.rs", "pub fn add() {}") + &added_file("README.md", "# add");
        assert!(docs_findings(&with_readme).is_empty());
        let with_docs = added_file("src/lib.rs", "pub fn add() {}") + &added_file("docs/api/add.md", "add");
        assert!(docs_findings(&with_docs).is_empty());
        let with_changelog = added_file("src/lib.rs", "pub fn add() {}") + &added_file("CHANGELOG.md", "- add");
        assert!(docs_findings(&with_changelog).is_empty());
        assert!(docs_findings("").is_empty());
    }
}
