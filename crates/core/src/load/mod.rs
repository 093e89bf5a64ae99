//! Reading a plan file: YAML or JSON → located value → schema check → semantic checks →
//! `Plan`.
//!
//! 1. [`yaml::parse`] builds a `serde_json::Value` and a [`SourceMap`] from JSON pointers to
//!    byte spans (JSON files go through the same parser: YAML 1.2 contains JSON).
//! 2. The `parallelization:` keys of `.claude/auto-context.yaml`, when given, are merged
//!    under the plan's own (the plan wins).
//! 3. The document is validated against the plan schema generated from the types, then
//!    checked semantically. Both steps collect every problem instead of stopping at the first.
//! 4. Only a document with no error is deserialised into [`Plan`].
//!
//! Problems travel as location-free [`PlanIssue`]s; [`LoadedPlan::diagnostics`] and
//! [`PlanDiagnostics`] turn any list of them — from this loader, the planner or a plugin
//! config check — into one miette report with file, line, column, a label and a hint each.

mod schema_check;
mod semantic;
mod suggest;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceSpan};
use serde_json::Value;

pub use yaml::{Loc, SourceMap};

use crate::diag::{IssueLevel, PlanIssue};
use crate::{Parallelization, Plan};

/// A file's name (as shown in messages) and text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name shown in diagnostics (the path as given).
    pub name: String,
    /// The text.
    pub text: Arc<str>,
}

/// A plan that passed every check.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    /// The plan.
    pub plan: Plan,
    /// Where it came from.
    pub source: SourceFile,
    /// JSON pointer → span, for locating later findings.
    pub map: SourceMap,
    /// The plan file's directory (relative plugin paths resolve against it).
    pub dir: PathBuf,
    /// Warnings found while loading.
    pub warnings: Vec<PlanIssue>,
}

impl LoadedPlan {
    /// Renders issues about this plan (from any layer) as one located diagnostic.
    pub fn diagnostics(&self, issues: Vec<PlanIssue>) -> PlanDiagnostics {
        PlanDiagnostics::new(&self.source, &self.map, issues)
    }

    /// The plan alone, freeing the source text and its map (megabytes for a large plan) once
    /// nothing is left to locate.
    pub fn into_plan(self) -> Plan {
        self.plan
    }
}

/// Options for [`load_file`] and [`load_str`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `.claude/auto-context.yaml` to take `parallelization:` defaults from, if it exists.
    pub auto_context: Option<PathBuf>,
}

/// Why a plan could not be loaded.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("failed to read {}: {source}", path.display())]
    #[diagnostic(code(fugue::io))]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The plan (or auto-context file) is invalid; every problem is in the diagnostic.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<PlanDiagnostics>),
}

impl LoadError {
    /// The issues, when the plan was read but is invalid.
    pub fn issues(&self) -> &[PlanIssue] {
        match self {
            LoadError::Invalid(d) => &d.issues,
            LoadError::Io { .. } => &[],
        }
    }
}

fn plan_validator() -> &'static (jsonschema::Validator, Value) {
    static V: OnceLock<(jsonschema::Validator, Value)> = OnceLock::new();
    V.get_or_init(|| {
        let schema = serde_json::to_value(crate::schema::plan_schema()).unwrap_or(Value::Bool(true));
        let validator = jsonschema::validator_for(&schema).unwrap_or_else(|_| {
            // The schema is generated from our own types; failing to compile it is a bug that
            // the schema tests catch. Fall back to accepting everything rather than panicking.
            jsonschema::validator_for(&Value::Bool(true)).unwrap_or_else(|_| unreachable!())
        });
        (validator, schema)
    })
}

fn parallelization_validator() -> &'static (jsonschema::Validator, Value) {
    static V: OnceLock<(jsonschema::Validator, Value)> = OnceLock::new();
    V.get_or_init(|| {
        let schema = serde_json::to_value(schemars::schema_for!(Parallelization)).unwrap_or(Value::Bool(true));
        let validator = jsonschema::validator_for(&schema)
            .unwrap_or_else(|_| jsonschema::validator_for(&Value::Bool(true)).unwrap_or_else(|_| unreachable!()));
        (validator, schema)
    })
}

/// Reads and checks a plan file.
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<LoadedPlan, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.to_owned(), source })?;
    let mut loaded = load_str(&path.display().to_string(), &text, opts)?;
    loaded.dir = path.parent().map(Path::to_owned).unwrap_or_default();
    Ok(loaded)
}

/// Parses `text` into a located value, or a diagnostic for a syntax error.
fn parse_source(source: &SourceFile) -> Result<(Value, SourceMap, Vec<PlanIssue>), LoadError> {
    yaml::parse(&source.text).map_err(|e| {
        let mut map = SourceMap::default();
        map.insert(String::new(), Loc { value: (e.offset, 1), key: None });
        let issue =
            PlanIssue::error("syntax", "", format!("invalid YAML/JSON: {}", e.message)).with_help("fix the syntax at the marked position");
        LoadError::Invalid(Box::new(PlanDiagnostics::new(source, &map, vec![issue])))
    })
}

/// Reads the `parallelization:` defaults of an auto-context file.
pub fn read_auto_context(path: &Path) -> Result<Option<Value>, LoadError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LoadError::Io { path: path.to_owned(), source }),
    };
    let source = SourceFile { name: path.display().to_string(), text: text.into() };
    let (doc, map, _) = parse_source(&source)?;
    let Some(par) = doc.get("parallelization").cloned() else { return Ok(None) };
    let (validator, schema) = parallelization_validator();
    let issues: Vec<PlanIssue> = schema_check::check(validator, schema, &par)
        .into_iter()
        .map(|mut i| {
            i.pointer = format!("/parallelization{}", i.pointer);
            i
        })
        .collect();
    if !issues.is_empty() {
        return Err(LoadError::Invalid(Box::new(PlanDiagnostics::new(&source, &map, issues))));
    }
    Ok(Some(par))
}

/// Checks a plan given as text; `name` is used in messages.
pub fn load_str(name: &str, text: &str, opts: &LoadOptions) -> Result<LoadedPlan, LoadError> {
    // Editors on some systems start UTF-8 files with a byte order mark; it is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let source = SourceFile { name: name.to_owned(), text: text.into() };
    let (mut doc, map, mut issues) = parse_source(&source)?;
    if let Some(defaults) = opts.auto_context.as_deref().map(read_auto_context).transpose()?.flatten() {
        merge_defaults(&mut doc, defaults);
    }
    let (validator, schema) = plan_validator();
    let schema_issues = schema_check::check(validator, schema, &doc);
    let flagged: std::collections::HashSet<String> = schema_issues.iter().map(|i| i.pointer.clone()).collect();
    issues.extend(schema_issues);
    if doc.is_object() {
        issues.extend(semantic::check(&doc).into_iter().filter(|i| !flagged.contains(&i.pointer)));
    }
    let (errors, warnings): (Vec<_>, Vec<_>) = issues.into_iter().partition(PlanIssue::is_error);
    if !errors.is_empty() {
        let mut all = errors;
        all.extend(warnings);
        return Err(LoadError::Invalid(Box::new(PlanDiagnostics::new(&source, &map, all))));
    }
    match serde_json::from_value::<Plan>(doc) {
        Ok(plan) => Ok(LoadedPlan { plan, source, map, dir: PathBuf::new(), warnings }),
        Err(e) => {
            let issue = PlanIssue::error("invalid", "", format!("invalid plan: {e}"));
            Err(LoadError::Invalid(Box::new(PlanDiagnostics::new(&source, &map, vec![issue]))))
        }
    }
}

fn merge_defaults(doc: &mut Value, defaults: Value) {
    let Some(obj) = doc.as_object_mut() else { return };
    let Value::Object(defaults) = defaults else { return };
    let entry = obj.entry("parallelization").or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(plan_par) = entry {
        for (k, v) in defaults {
            plan_par.entry(k).or_insert(v);
        }
    }
}

/// Line and column (1-based, in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// One located issue, as a miette diagnostic.
#[derive(Debug, Clone)]
pub struct IssueDiagnostic {
    issue: PlanIssue,
    span: Option<SourceSpan>,
    /// `file:line:col` of the span.
    pub location: String,
}

impl IssueDiagnostic {
    /// The issue.
    pub fn issue(&self) -> &PlanIssue {
        &self.issue
    }
}

impl fmt::Display for IssueDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.issue.message)
    }
}

impl std::error::Error for IssueDiagnostic {}

impl Diagnostic for IssueDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.issue.code))
    }
    fn severity(&self) -> Option<Severity> {
        Some(match self.issue.level {
            IssueLevel::Error => Severity::Error,
            IssueLevel::Warning => Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.issue.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        let label = if self.issue.pointer.is_empty() { "here".to_owned() } else { self.issue.pointer.clone() };
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(Some(label), span))))
    }
}

/// Every issue of one file, as one miette report (the issues are its related diagnostics).
#[derive(Debug, Clone)]
pub struct PlanDiagnostics {
    file: String,
    source: NamedSource<Arc<str>>,
    issues: Vec<PlanIssue>,
    items: Vec<IssueDiagnostic>,
}

impl PlanDiagnostics {
    /// Locates `issues` in `source` through `map`.
    pub fn new(source: &SourceFile, map: &SourceMap, mut issues: Vec<PlanIssue>) -> Self {
        issues.sort_by_key(|i| (map.locate(&i.pointer).map(|l| l.value.0), i.level == IssueLevel::Warning));
        let items = issues
            .iter()
            .map(|issue| {
                let loc = map.locate(&issue.pointer);
                let span = loc.map(|l| if issue.at_key { l.key.unwrap_or(l.value) } else { l.value });
                let (line, col) = span.map_or((1, 1), |(off, _)| line_col(&source.text, off));
                IssueDiagnostic {
                    issue: issue.clone(),
                    span: span.map(|(o, l)| SourceSpan::new(o.into(), l)),
                    location: format!("{}:{line}:{col}", source.name),
                }
            })
            .collect();
        Self { file: source.name.clone(), source: NamedSource::new(source.name.clone(), source.text.clone()), issues, items }
    }

    /// The issues, in source order.
    pub fn issues(&self) -> &[PlanIssue] {
        &self.issues
    }

    /// The located issues.
    pub fn items(&self) -> &[IssueDiagnostic] {
        &self.items
    }

    /// True when any issue is an error.
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(PlanIssue::is_error)
    }

    /// One line per issue: `file:line:col: level[code]: message (help: …)`.
    pub fn to_short_string(&self) -> String {
        self.items
            .iter()
            .map(|d| {
                let level = if d.issue.is_error() { "error" } else { "warning" };
                let help = d.issue.help.as_deref().map(|h| format!(" (help: {h})")).unwrap_or_default();
                format!("{}: {level}[{}]: {}{help}\n", d.location, d.issue.code, d.issue.message)
            })
            .collect()
    }
}

impl fmt::Display for PlanDiagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.issues.iter().filter(|i| i.is_error()).count();
        let warnings = self.issues.len() - errors;
        match (errors, warnings) {
            (0, w) => write!(f, "{} has {w} warning{}", self.file, if w == 1 { "" } else { "s" }),
            (e, _) => write!(f, "failed to load {}: {e} error{}", self.file, if e == 1 { "" } else { "s" }),
        }
    }
}

impl std::error::Error for PlanDiagnostics {}

impl Diagnostic for PlanDiagnostics {
    fn severity(&self) -> Option<Severity> {
        Some(if self.has_errors() { Severity::Error } else { Severity::Warning })
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.items.iter().map(|d| d as &dyn Diagnostic)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version: 1
agents:
  sh: { command: ["sh", "-c", "true"] }
tasks:
  - id: a
    agent: sh
    modifies: ["src/a/**"]
  - id: b
    agent: sh
    modifies: ["src/b/**"]
    depends_on: [a]
    estimate: 2m
"#;

    fn codes(text: &str) -> Vec<(String, String)> {
        match load_str("plan.yaml", text, &LoadOptions::default()) {
            Ok(_) => Vec::new(),
            Err(e) => e.issues().iter().filter(|i| i.is_error()).map(|i| (i.code.clone(), i.pointer.clone())).collect(),
        }
    }

    #[test]
    fn loads_a_good_plan() {
        let p = load_str("plan.yaml", GOOD, &LoadOptions::default()).expect("valid");
        assert_eq!(p.plan.tasks.len(), 2);
        assert_eq!(p.plan.parallelization.max_agents, 5);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn collects_every_error_with_its_pointer() {
        let bad = GOOD
            .replace("depends_on: [a]", "depends_on: [a, zz, b]")
            .replace("agent: sh\n    modifies: [\"src/a/**\"]", "agent: shh\n    modifies: [\"../x\"]\n    modifes: []");
        let got = codes(&bad);
        for want in [
            ("unknown-agent", "/tasks/0/agent"),
            ("bad-pattern", "/tasks/0/modifies/0"),
            ("schema/additionalProperties", "/tasks/0/modifes"),
            ("unknown-dependency", "/tasks/1/depends_on/1"),
            ("self-dependency", "/tasks/1/depends_on/2"),
        ] {
            assert!(got.contains(&(want.0.to_owned(), want.1.to_owned())), "missing {want:?} in {got:?}");
        }
    }

    #[test]
    fn diagnostics_name_line_and_column() {
        let bad = GOOD.replace("estimate: 2m", "estimate: soon");
        let err = load_str("plan.yaml", &bad, &LoadOptions::default()).expect_err("invalid");
        let LoadError::Invalid(d) = err else { panic!("expected diagnostics") };
        let short = d.to_short_string();
        assert!(short.starts_with("plan.yaml:13:15: error[schema/pattern]"), "{short}");
    }

    #[test]
    fn auto_context_supplies_defaults_the_plan_overrides() {
        let dir = std::env::temp_dir().join(format!("fugue-autoctx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ctx = dir.join("auto-context.yaml");
        std::fs::write(&ctx, "other_tool: {x: 1}\nparallelization:\n  max_agents: 9\n  min_tasks: 2\n").expect("write");
        let text = GOOD.replace("version: 1\n", "version: 1\nparallelization: { min_tasks: 4 }\n");
        let p = load_str("plan.yaml", &text, &LoadOptions { auto_context: Some(ctx.clone()) }).expect("valid");
        assert_eq!((p.plan.parallelization.max_agents, p.plan.parallelization.min_tasks), (9, 4));
        std::fs::write(&ctx, "parallelization:\n  max_agents: many\n").expect("write");
        let err = load_str("plan.yaml", GOOD, &LoadOptions { auto_context: Some(ctx) }).expect_err("bad defaults");
        let LoadError::Invalid(d) = err else { panic!("expected diagnostics") };
        assert!(d.to_short_string().contains("auto-context.yaml:2:15"), "{}", d.to_short_string());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn never_panics_on_garbage() {
        for text in [
            "",
            "---",
            "[]",
            "42",
            "tasks: 5",
            "version: 1\ntasks: [1, null, {id: []}]",
            "{{{{",
            "a: *x",
            "\t\u{0}",
            "version: 1\ntasks:\n - {id: a, agent: x, depends_on: [[]]}",
        ] {
            let _ = load_str("plan.yaml", text, &LoadOptions::default());
        }
    }
}
