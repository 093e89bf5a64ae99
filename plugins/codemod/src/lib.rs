//! `codemod`: a fugue agent plugin that applies declarative edits.
//!
//! Mechanical refactors across a codebase — rename a function, add an import after another,
//! create one module per feature from a template — need no model: this agent does them from
//! its `config`, and fugue runs it like any other agent (in the task's worktree, under its
//! locks, through the quality gates). It is also the agent of `fugue demo` and an example of
//! how to write a plugin: a plain type implementing [`PluginImpl`], exported with
//! [`fugue_core::export_plugin!`], unit-tested as an rlib.
//!
//! ```yaml
//! agents:
//!   codemod:
//!     plugin: codemod            # or target/debug/libfugue_plugin_codemod.so
//!     config:
//!       edits:
//!         - replace: 'fn old_name\('            # a regex (multi-line mode); `$1` in `with`
//!           with: 'fn new_name('
//!           files: ["src/**/*.rs"]              # default: the task's `modifies`
//!         - insert_after: '^use std::io;$'      # after each line holding a match
//!           text: 'use std::fmt;'
//!         - create: 'src/features/{task_id}/mod.rs'
//!           template: "//! {task_name}\n"
//!           overwrite: false                    # default: refuse to change an existing file
//! ```
//!
//! `{task_id}`, `{task_name}`, `{prompt}`, `{attempt}` and `{iteration}` are replaced in `with`,
//! `text`, `create` and `template`. Edits apply in order, each seeing the previous ones'
//! results, all in memory first: only when every edit succeeded and every changed file lies
//! inside the task's `modifies` scope is anything written, so a refused edit leaves the
//! worktree untouched. Inserting is idempotent (text already there is not inserted again),
//! which keeps QA retries harmless.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use fugue_core::plugin::{PluginImpl, PluginKind, PluginManifest};
use fugue_core::{AgentContext, AgentReport, Pattern, Scope};
use regex::Regex;
use serde::Deserialize;

/// The plugin's configuration: the agent's `config` merged with the task's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodemodConfig {
    /// The edits, applied in order.
    pub edits: Vec<Edit>,
    /// Report failure when no file changed.
    #[serde(default)]
    pub fail_if_unchanged: bool,
}

/// One declarative edit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Edit {
    /// Replace every match of a regex.
    Replace {
        /// The regex (multi-line mode: `^` and `$` match at line boundaries).
        replace: String,
        /// The replacement; `$1`, `${name}` refer to groups.
        with: String,
        /// Which files; default: the task's `modifies`.
        #[serde(default)]
        files: Option<Vec<String>>,
    },
    /// Insert text after each line holding a match.
    InsertAfter {
        /// The regex.
        insert_after: String,
        /// The line(s) to insert; a trailing newline is added when missing.
        text: String,
        /// Which files; default: the task's `modifies`.
        #[serde(default)]
        files: Option<Vec<String>>,
    },
    /// Create a file from a template.
    Create {
        /// The repo-relative path.
        create: String,
        /// The content.
        template: String,
        /// Replace a file that exists with other content.
        #[serde(default)]
        overwrite: bool,
    },
}

/// Why the codemod did not apply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodemodError {
    /// The config does not describe edits.
    #[error("invalid codemod config: {0}")]
    Config(String),
    /// A regex does not compile.
    #[error("edit {edit}: invalid regex `{pattern}`: {message}")]
    Regex {
        /// 1-based edit number.
        edit: usize,
        /// The regex.
        pattern: String,
        /// The compiler's message.
        message: String,
    },
    /// A path or glob that is not a repo-relative pattern.
    #[error("edit {edit}: invalid path `{path}`: {message}")]
    Path {
        /// 1-based edit number.
        edit: usize,
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
    /// Edits would change files outside the task's `modifies` scope.
    #[error("refused: {} outside the task's modifies scope ({scope}); nothing was written", describe_out_of_scope(.paths))]
    OutOfScope {
        /// `(edit number, path)` of each refused change.
        paths: Vec<(usize, String)>,
        /// The scope, as written.
        scope: String,
    },
    /// `create` of a file that exists with other content, without `overwrite`.
    #[error("edit {edit}: `{path}` already exists with other content; set `overwrite: true` to replace it")]
    Exists {
        /// 1-based edit number.
        edit: usize,
        /// The path.
        path: String,
    },
    /// Reading or writing a file failed.
    #[error("failed to {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The repo-relative path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn describe_out_of_scope(paths: &[(usize, String)]) -> String {
    paths.iter().map(|(edit, path)| format!("edit {edit} would change `{path}`")).collect::<Vec<_>>().join(", ")
}

impl CodemodError {
    /// True for problems of the config itself (as opposed to the worktree's content).
    pub fn is_config_error(&self) -> bool {
        matches!(self, CodemodError::Config(_) | CodemodError::Regex { .. } | CodemodError::Path { .. })
    }
}

/// What an application changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Repo-relative paths written, sorted.
    pub files: Vec<String>,
    /// One line per edit and file.
    pub log: Vec<String>,
}

/// The JSON schema of [`CodemodConfig`], as published in the manifest.
pub fn config_schema() -> serde_json::Value {
    let files = serde_json::json!({
        "description": "Globs of the files to edit (repo-relative); default: the task's `modifies`.",
        "type": "array", "items": {"type": "string", "minLength": 1}
    });
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "codemod config",
        "type": "object",
        "properties": {
            "edits": {
                "description": "Edits applied in order, each seeing the previous ones' results.",
                "type": "array",
                "minItems": 1,
                "items": {"oneOf": [
                    {
                        "title": "replace",
                        "type": "object",
                        "properties": {
                            "replace": {"description": "A regex (multi-line mode).", "type": "string", "minLength": 1},
                            "with": {"description": "The replacement; `$1`/`${name}` are groups; `{task_id}` etc. are expanded.", "type": "string"},
                            "files": files
                        },
                        "required": ["replace", "with"],
                        "additionalProperties": false
                    },
                    {
                        "title": "insert_after",
                        "type": "object",
                        "properties": {
                            "insert_after": {"description": "A regex; the text goes after each line holding a match.", "type": "string", "minLength": 1},
                            "text": {"description": "The line(s) to insert.", "type": "string"},
                            "files": files
                        },
                        "required": ["insert_after", "text"],
                        "additionalProperties": false
                    },
                    {
                        "title": "create",
                        "type": "object",
                        "properties": {
                            "create": {"description": "The repo-relative path of the file to create; `{task_id}` etc. are expanded.", "type": "string", "minLength": 1},
                            "template": {"description": "Its content; `{task_id}` etc. are expanded.", "type": "string"},
                            "overwrite": {"description": "Replace an existing file with other content.", "type": "boolean", "default": false}
                        },
                        "required": ["create", "template"],
                        "additionalProperties": false
                    }
                ]}
            },
            "fail_if_unchanged": {"description": "Report failure when no file changed.", "type": "boolean", "default": false}
        },
        "required": ["edits"],
        "additionalProperties": false
    })
}

/// The values `{task_id}`-style placeholders take.
fn expand(text: &str, ctx: &AgentContext, escape_dollar: bool) -> String {
    let value = |s: &str| if escape_dollar { s.replace('$', "$$") } else { s.to_owned() };
    let pairs = [
        ("{task_id}", value(ctx.task_id.as_str())),
        ("{task_name}", value(&ctx.task_name)),
        ("{prompt}", value(&ctx.prompt)),
        ("{attempt}", ctx.attempt.to_string()),
        ("{iteration}", ctx.iteration.to_string()),
    ];
    // One pass, so a value holding `{task_id}` is not expanded again.
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        for (key, val) in &pairs {
            if rest[open..].starts_with(key) {
                out.push_str(val);
                rest = &rest[open + key.len()..];
                continue 'outer;
            }
        }
        out.push('{');
        rest = &rest[open + 1..];
    }
    out.push_str(rest);
    out
}

enum Compiled {
    Replace { re: Regex, with: String, files: Scope },
    Insert { re: Regex, text: String, files: Scope },
    Create { path: String, content: String, overwrite: bool },
}

fn compile_regex(edit: usize, pattern: &str) -> Result<Regex, CodemodError> {
    regex::RegexBuilder::new(pattern).multi_line(true).build().map_err(|e| CodemodError::Regex {
        edit,
        pattern: pattern.to_owned(),
        message: e.to_string(),
    })
}

fn compile_files(edit: usize, files: Option<&[String]>, modifies: &Scope) -> Result<Scope, CodemodError> {
    match files {
        None => Ok(modifies.clone()),
        Some(globs) => globs
            .iter()
            .map(|g| Pattern::parse(g).map_err(|e| CodemodError::Path { edit, path: g.clone(), message: e.to_string() }))
            .collect(),
    }
}

fn compile(config: &CodemodConfig, ctx: &AgentContext) -> Result<Vec<Compiled>, CodemodError> {
    config
        .edits
        .iter()
        .enumerate()
        .map(|(i, edit)| {
            let n = i + 1;
            Ok(match edit {
                Edit::Replace { replace, with, files } => Compiled::Replace {
                    re: compile_regex(n, replace)?,
                    with: expand(with, ctx, true),
                    files: compile_files(n, files.as_deref(), &ctx.modifies)?,
                },
                Edit::InsertAfter { insert_after, text, files } => {
                    let mut text = expand(text, ctx, false);
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                    Compiled::Insert {
                        re: compile_regex(n, insert_after)?,
                        text,
                        files: compile_files(n, files.as_deref(), &ctx.modifies)?,
                    }
                }
                Edit::Create { create, template, overwrite } => {
                    let raw = expand(create, ctx, false);
                    let bad = |message: String| CodemodError::Path { edit: n, path: raw.clone(), message };
                    let pattern = Pattern::parse(&raw).map_err(|e| bad(e.to_string()))?;
                    if !pattern.is_literal() || raw.ends_with('/') {
                        return Err(bad("`create` needs a file path, not a glob or a directory".to_owned()));
                    }
                    Compiled::Create { path: pattern.as_str().to_owned(), content: expand(template, ctx, false), overwrite: *overwrite }
                }
            })
        })
        .collect()
}

/// The worktree's files selected by `scope`, walked from the scope's literal prefixes only
/// (so `src/a/**` never reads `target/`), skipping `.git` and symlinks.
fn select_files(root: &Path, scope: &Scope) -> Result<BTreeSet<String>, CodemodError> {
    fn walk(root: &Path, rel: &str, scope: &Scope, out: &mut BTreeSet<String>) -> Result<(), CodemodError> {
        let abs = if rel.is_empty() { root.to_owned() } else { root.join(rel) };
        let Ok(meta) = std::fs::symlink_metadata(&abs) else { return Ok(()) };
        if meta.is_file() {
            if scope.matches(rel) {
                out.insert(rel.to_owned());
            }
            return Ok(());
        }
        if !meta.is_dir() {
            return Ok(());
        }
        let entries = std::fs::read_dir(&abs).map_err(|source| CodemodError::Io { action: "list", path: rel.to_owned(), source })?;
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if name == ".git" {
                continue;
            }
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            walk(root, &child, scope, out)?;
        }
        Ok(())
    }
    let mut out = BTreeSet::new();
    let mut starts: Vec<&str> = scope.patterns().iter().map(Pattern::literal_prefix).collect();
    starts.sort_unstable();
    starts.dedup();
    // A prefix below another one is walked with it.
    let roots: Vec<&str> =
        starts.iter().copied().filter(|s| !starts.iter().any(|o| o != s && (o.is_empty() || s.starts_with(&format!("{o}/"))))).collect();
    for start in roots {
        walk(root, start, scope, &mut out)?;
    }
    Ok(out)
}

/// The working copy of the files the edits touch.
struct Files<'a> {
    root: &'a Path,
    /// Current content by path; `None` for a file that does not exist (yet).
    content: BTreeMap<String, Option<String>>,
    original: BTreeMap<String, Option<String>>,
    /// Which edits changed each file.
    edits_of: BTreeMap<String, BTreeSet<usize>>,
    /// Files that exist but are not UTF-8 text.
    binary: BTreeSet<String>,
}

impl Files<'_> {
    fn get(&mut self, path: &str) -> Result<Option<&str>, CodemodError> {
        if !self.content.contains_key(path) {
            let abs = self.root.join(path);
            let text = match std::fs::read(&abs) {
                // Binary (non-UTF-8) files are never edited.
                Ok(bytes) => String::from_utf8(bytes).map_err(|_| self.binary.insert(path.to_owned())).ok(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => return Err(CodemodError::Io { action: "read", path: path.to_owned(), source }),
            };
            self.original.insert(path.to_owned(), text.clone());
            self.content.insert(path.to_owned(), text);
        }
        Ok(self.content.get(path).and_then(|c| c.as_deref()))
    }

    fn set(&mut self, edit: usize, path: &str, text: String) {
        self.content.insert(path.to_owned(), Some(text));
        self.edits_of.entry(path.to_owned()).or_default().insert(edit);
    }

    fn changed(&self) -> impl Iterator<Item = (&String, &str)> {
        self.content.iter().filter_map(|(p, c)| {
            let c = c.as_deref()?;
            (self.original.get(p).and_then(|o| o.as_deref()) != Some(c)).then_some((p, c))
        })
    }
}

fn insert_after(content: &str, re: &Regex, text: &str) -> (String, usize) {
    let mut out = String::with_capacity(content.len() + text.len());
    let mut last = 0;
    let mut inserted = 0;
    let mut done_line = None;
    for m in re.find_iter(content) {
        let line_end = content[m.end()..].find('\n').map_or(content.len(), |i| m.end() + i + 1);
        // Several matches on one line insert once.
        if done_line == Some(line_end) {
            continue;
        }
        done_line = Some(line_end);
        out.push_str(&content[last..line_end]);
        last = line_end;
        if content[line_end..].starts_with(text) {
            continue;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(text);
        inserted += 1;
    }
    out.push_str(&content[last..]);
    (out, inserted)
}

/// Applies `config` in `ctx.worktree`, honouring `ctx.modifies`. Nothing is written unless
/// every edit succeeds and stays in scope.
pub fn apply(config: &CodemodConfig, ctx: &AgentContext) -> Result<Applied, CodemodError> {
    let edits = compile(config, ctx)?;
    let root = ctx.worktree.as_path();
    let mut files = Files { root, content: BTreeMap::new(), original: BTreeMap::new(), edits_of: BTreeMap::new(), binary: BTreeSet::new() };
    let mut log = Vec::new();
    for (i, edit) in edits.iter().enumerate() {
        let n = i + 1;
        match edit {
            Compiled::Replace { re, files: scope, .. } | Compiled::Insert { re, files: scope, .. } => {
                let mut targets = select_files(root, scope)?;
                // Files created by earlier edits are candidates too.
                targets.extend(files.content.iter().filter(|(p, c)| c.is_some() && scope.matches(p)).map(|(p, _)| p.clone()));
                for path in targets {
                    let Some(current) = files.get(&path)? else { continue };
                    let (next, count) = match edit {
                        Compiled::Replace { with, .. } => {
                            let count = re.find_iter(current).count();
                            (re.replace_all(current, with.as_str()).into_owned(), count)
                        }
                        Compiled::Insert { text, .. } => insert_after(current, re, text),
                        Compiled::Create { .. } => continue,
                    };
                    if count > 0 && next != current {
                        let verb = if matches!(edit, Compiled::Replace { .. }) { "replacement(s)" } else { "insertion(s)" };
                        log.push(format!("edit {n}: {count} {verb} in {path}"));
                        files.set(n, &path, next);
                    }
                }
            }
            Compiled::Create { path, content, overwrite } => match files.get(path)?.map(str::to_owned) {
                None if files.binary.contains(path) && !overwrite => return Err(CodemodError::Exists { edit: n, path: path.clone() }),
                Some(existing) if existing == *content => log.push(format!("edit {n}: {path} already has the template's content")),
                Some(_) if !overwrite => return Err(CodemodError::Exists { edit: n, path: path.clone() }),
                existing => {
                    log.push(format!("edit {n}: {} {path}", if existing.is_some() { "overwrote" } else { "created" }));
                    files.set(n, path, content.clone());
                }
            },
        }
    }
    let changed: Vec<(String, String)> = files.changed().map(|(p, c)| (p.clone(), c.to_owned())).collect();
    let outside: Vec<(usize, String)> = changed
        .iter()
        .filter(|(p, _)| !ctx.modifies.matches(p))
        .flat_map(|(p, _)| files.edits_of.get(p).into_iter().flatten().map(move |e| (*e, p.clone())))
        .collect();
    if !outside.is_empty() {
        let scope = if ctx.modifies.is_empty() {
            "empty".to_owned()
        } else {
            ctx.modifies.patterns().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        return Err(CodemodError::OutOfScope { paths: outside, scope });
    }
    for (path, content) in &changed {
        let abs: PathBuf = root.join(path);
        if let Some(dir) = abs.parent() {
            std::fs::create_dir_all(dir).map_err(|source| CodemodError::Io {
                action: "create the directory of",
                path: path.clone(),
                source,
            })?;
        }
        std::fs::write(&abs, content).map_err(|source| CodemodError::Io { action: "write", path: path.clone(), source })?;
    }
    Ok(Applied { files: changed.into_iter().map(|(p, _)| p).collect(), log })
}

/// The codemod agent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Codemod;

impl Codemod {
    /// Runs the edits of `ctx.config` and reports like an agent: config problems are errors,
    /// a refused or failed application is a failed report.
    pub fn run(&self, ctx: &AgentContext) -> Result<AgentReport, String> {
        let config: CodemodConfig =
            serde_json::from_value(ctx.config.clone()).map_err(|e| CodemodError::Config(e.to_string()).to_string())?;
        let started = std::time::Instant::now();
        let mut report = match apply(&config, ctx) {
            Ok(applied) if applied.files.is_empty() && config.fail_if_unchanged => {
                let mut r = AgentReport::failed("codemod changed no file (fail_if_unchanged is set)");
                r.output = applied.log.join("\n");
                r
            }
            Ok(applied) => {
                let mut r =
                    AgentReport::ready(format!("codemod applied {} edit(s), changing {} file(s)", config.edits.len(), applied.files.len()));
                let mut output = applied.log.join("\n");
                if applied.log.is_empty() {
                    let _ = write!(output, "no edit matched anything");
                }
                r.output = output;
                r.files_modified = applied.files;
                r
            }
            Err(e) if e.is_config_error() => return Err(e.to_string()),
            Err(e) => AgentReport::failed(e.to_string()),
        };
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }
}

impl PluginImpl for Codemod {
    fn manifest(&self) -> PluginManifest {
        let mut m = PluginManifest::new(
            "codemod",
            env!("CARGO_PKG_VERSION"),
            PluginKind::Agent,
            "Applies declarative edits (regex replace, insert after a match, files from templates) inside the task's modifies scope.",
            config_schema(),
        );
        m.metadata.insert("homepage".to_owned(), serde_json::Value::from("https://example.invalid/fugue/plugins/codemod"));
        m
    }

    fn agent(&self, ctx: AgentContext) -> Result<AgentReport, String> {
        self.run(&ctx)
    }
}

fugue_core::export_plugin!(Codemod);

#[cfg(test)]
mod tests {
    use fugue_core::TaskId;
    use serde_json::json;

    use super::*;

    fn scope(patterns: &[&str]) -> Scope {
        patterns.iter().map(|p| Pattern::parse(p).expect("pattern")).collect()
    }

    fn ctx(dir: &Path, modifies: &[&str], config: serde_json::Value) -> AgentContext {
        let mut ctx = AgentContext::new(TaskId::new("feat-1").expect("id"), "do $it", dir);
        ctx.task_name = "Feature one".to_owned();
        ctx.modifies = scope(modifies);
        ctx.config = config;
        ctx
    }

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = |p: &str, c: &str| {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, c).expect("write");
        };
        w("src/a/lib.rs", "use std::io;\nfn old_name() {}\nfn main() { old_name(); }\n");
        w("src/b/lib.rs", "fn old_name() {}\n");
        w(".git/config", "old_name");
        w("src/a/blob.bin", "");
        std::fs::write(dir.path().join("src/a/blob.bin"), [0xff, 0xfe, b'o']).expect("write");
        dir
    }

    fn read(dir: &Path, p: &str) -> String {
        std::fs::read_to_string(dir.join(p)).expect("read")
    }

    #[test]
    fn replaces_inserts_and_creates_inside_the_scope() {
        let dir = repo();
        let config = json!({"edits": [
            {"replace": r"\bold_name\b", "with": "new_name"},
            {"insert_after": "^use std::io;$", "text": "use std::fmt; // {task_id}"},
            {"create": "src/a/{task_id}.rs", "template": "//! {task_name}: {prompt}\n"},
            {"replace": "Feature", "with": "$0!", "files": ["src/a/*.rs"]}
        ]});
        let ctx = ctx(dir.path(), &["src/a/**"], config);
        let report = Codemod.run(&ctx).expect("runs");
        assert_eq!(report.outcome, fugue_core::AgentOutcome::ReadyForQa, "{report:?}");
        assert_eq!(report.files_modified, ["src/a/feat-1.rs", "src/a/lib.rs"]);
        assert_eq!(
            read(dir.path(), "src/a/lib.rs"),
            "use std::io;\nuse std::fmt; // feat-1\nfn new_name() {}\nfn main() { new_name(); }\n"
        );
        assert_eq!(read(dir.path(), "src/a/feat-1.rs"), "//! Feature! one: do $it\n");
        // Outside the default scope, and in .git: untouched.
        assert_eq!(read(dir.path(), "src/b/lib.rs"), "fn old_name() {}\n");
        assert_eq!(read(dir.path(), ".git/config"), "old_name");
        // Running again changes nothing: inserts are idempotent, the created file matches.
        let again = Codemod.run(&ctx).expect("runs");
        assert!(again.files_modified.is_empty(), "{again:?}");
    }

    #[test]
    fn an_edit_outside_the_scope_is_refused_and_nothing_is_written() {
        let dir = repo();
        let config = json!({"edits": [
            {"replace": "old_name", "with": "new_name"},
            {"replace": "old_name", "with": "x", "files": ["src/**/*.rs"]}
        ]});
        let report = Codemod.run(&ctx(dir.path(), &["src/a/**"], config)).expect("runs");
        assert_eq!(report.outcome, fugue_core::AgentOutcome::Failed);
        assert!(report.summary.contains("edit 2 would change `src/b/lib.rs`"), "{}", report.summary);
        assert!(report.summary.contains("outside the task's modifies scope (src/a/**)"), "{}", report.summary);
        assert!(!report.summary.contains("src/a/lib.rs"), "{}", report.summary);
        assert_eq!(read(dir.path(), "src/a/lib.rs"), "use std::io;\nfn old_name() {}\nfn main() { old_name(); }\n");

        let create = json!({"edits": [{"create": "README.md", "template": "x"}]});
        let report = Codemod.run(&ctx(dir.path(), &["src/a/**"], create)).expect("runs");
        assert!(report.summary.contains("edit 1 would change `README.md`"), "{}", report.summary);
        assert!(!dir.path().join("README.md").exists());
    }

    #[test]
    fn config_problems_are_errors() {
        let dir = repo();
        let run = |config| Codemod.run(&ctx(dir.path(), &["src/**"], config));
        let err = run(json!({"edits": [{"replace": "(", "with": ""}]})).expect_err("bad regex");
        assert!(err.starts_with("edit 1: invalid regex `(`"), "{err}");
        let err = run(json!({"edits": [{"create": "src/*.rs", "template": ""}]})).expect_err("glob");
        assert!(err.contains("needs a file path"), "{err}");
        let err = run(json!({"edits": [{"create": "../x", "template": ""}]})).expect_err("parent");
        assert!(err.contains("invalid path `../x`"), "{err}");
        let err = run(json!({"edits": [{"frobnicate": 1}]})).expect_err("unknown");
        assert!(err.starts_with("invalid codemod config"), "{err}");
    }

    #[test]
    fn create_refuses_to_clobber_unless_told() {
        let dir = repo();
        let config = json!({"edits": [{"create": "src/b/lib.rs", "template": "new"}]});
        let report = Codemod.run(&ctx(dir.path(), &["src/**"], config)).expect("runs");
        assert!(report.summary.contains("already exists with other content"), "{}", report.summary);
        let config = json!({"edits": [{"create": "src/b/lib.rs", "template": "new", "overwrite": true}]});
        let report = Codemod.run(&ctx(dir.path(), &["src/**"], config)).expect("runs");
        assert_eq!(report.files_modified, ["src/b/lib.rs"]);
        assert_eq!(read(dir.path(), "src/b/lib.rs"), "new");
    }

    #[test]
    fn nothing_matched_is_ready_unless_required() {
        let dir = repo();
        let report = Codemod.run(&ctx(dir.path(), &["src/**"], json!({"edits": [{"replace": "zzz", "with": "y"}]}))).expect("runs");
        assert_eq!(report.outcome, fugue_core::AgentOutcome::ReadyForQa);
        assert_eq!(report.output, "no edit matched anything");
        let strict = json!({"edits": [{"replace": "zzz", "with": "y"}], "fail_if_unchanged": true});
        let report = Codemod.run(&ctx(dir.path(), &["src/**"], strict)).expect("runs");
        assert_eq!(report.outcome, fugue_core::AgentOutcome::Failed);
    }

    #[test]
    fn insert_after_handles_edges() {
        let re = Regex::new("(?m)^a$").expect("regex");
        assert_eq!(insert_after("a\nb\na", &re, "x\n"), ("a\nx\nb\na\nx\n".to_owned(), 2));
        assert_eq!(insert_after("a\nx\n", &re, "x\n"), ("a\nx\n".to_owned(), 0));
        let word = Regex::new("o").expect("regex");
        assert_eq!(insert_after("foo\nbar\n", &word, "z\n"), ("foo\nz\nbar\n".to_owned(), 1));
    }

    #[test]
    fn manifest_and_schema_agree_with_the_types() {
        let m = Codemod.manifest();
        assert_eq!(m.name, "codemod");
        assert_eq!(m.abi_version, fugue_core::plugin::PLUGIN_ABI_VERSION);
        let parsed: CodemodConfig = serde_json::from_value(json!({"edits": [
            {"replace": "a", "with": "b"}, {"insert_after": "a", "text": "b", "files": ["x"]}, {"create": "p", "template": "t", "overwrite": true}
        ]}))
        .expect("parses");
        assert_eq!(parsed.edits.len(), 3);
        assert!(matches!(parsed.edits[2], Edit::Create { overwrite: true, .. }));
    }
}
