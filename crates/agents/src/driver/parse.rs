//! What a CLI's machine output says, and the parser interface the drivers implement.
//!
//! Every driver turns one run's stdout, line by line, into a [`Parsed`]: lines that are not
//! JSON (a CLI's warnings, a banner) are skipped, and unknown event types are ignored, so a
//! newer CLI that adds events still parses. Each `line` call may return one line of activity
//! for progress ("Bash: cargo test", the start of a message).

use fugue_core::{FailureKind, Usage};
use serde_json::Value;

/// The facts of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Parsed {
    /// The session (thread) id, for continuing it.
    pub(crate) session_id: Option<String>,
    /// Model turns.
    pub(crate) turns: Option<u32>,
    /// Tokens and cost.
    pub(crate) usage: Usage,
    /// The last assistant message.
    pub(crate) final_message: Option<String>,
    /// Refused tool calls, one line each.
    pub(crate) denials: Vec<String>,
    /// An error result: what kind, and the CLI's words.
    pub(crate) error: Option<(FailureKind, String)>,
    /// The CLI printed the event that ends a headless session (its result).
    pub(crate) finished: bool,
    /// Writes the run's confinement refused, as the CLI showed them (tool output saying
    /// "Permission denied"), filled in by the driver for confined runs.
    pub(crate) refused_writes: Vec<String>,
    /// The paths the run's confinement allowed, for the report; `None` when unconfined.
    pub(crate) confined: Option<Vec<String>>,
}

impl Parsed {
    /// Finished with no error and nothing refused.
    pub(crate) fn finished_ok(&self) -> bool {
        self.finished && self.error.is_none() && self.denials.is_empty()
    }
}

/// Reads one run's stdout.
pub(crate) trait StreamParser: Send {
    /// One line of stdout (trimmed, not empty). Returns what the agent is doing now, when
    /// the line says something new.
    fn line(&mut self, line: &str) -> Option<String>;

    /// Usage so far, for live progress.
    fn usage_so_far(&self) -> Usage;

    /// Everything the run said.
    fn finish(self: Box<Self>) -> Parsed;
}

/// The parser left behind once a run's parse has been taken.
pub(crate) struct Nothing;

impl StreamParser for Nothing {
    fn line(&mut self, _: &str) -> Option<String> {
        None
    }
    fn usage_so_far(&self) -> Usage {
        Usage::default()
    }
    fn finish(self: Box<Self>) -> Parsed {
        Parsed::default()
    }
}

/// The line as a JSON object, if it is one.
pub(crate) fn json_object(line: &str) -> Option<serde_json::Map<String, Value>> {
    if !line.starts_with('{') {
        return None;
    }
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// `v[key]` as a u64.
pub(crate) fn u64_at(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// `v[key]` as a string.
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A one-line description of a tool call: `Bash: cargo test`, `Write src/a.rs`.
pub(crate) fn describe_tool(name: &str, input: &Value) -> String {
    let arg =
        ["command", "cmd", "file_path", "path", "filePath", "pattern", "url", "description"].iter().find_map(|k| match input.get(*k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(words)) => Some(words.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")),
            _ => None,
        });
    match arg {
        Some(arg) => format!("{name}: {}", single_line(&arg)),
        None => name.to_owned(),
    }
}

/// Text on one line (newlines become `⏎`), for progress.
pub(crate) fn single_line(s: &str) -> String {
    s.trim().replace('\n', " ⏎ ")
}

/// Feeds `lines` to `parser` the way the stream reader does (trimmed, blank lines skipped).
#[cfg(test)]
pub(crate) fn parse_lines<'a>(mut parser: Box<dyn StreamParser>, lines: impl IntoIterator<Item = &'a str>) -> Parsed {
    for line in lines.into_iter().map(str::trim).filter(|l| !l.is_empty()) {
        parser.line(line);
    }
    parser.finish()
}

/// A captured CLI output under `tests/fixtures/cli/`, parsed by `parser`.
#[cfg(test)]
pub(crate) fn parse_fixture(parser: Box<dyn StreamParser>, name: &str) -> Parsed {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cli").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    parse_lines(parser, text.lines())
}
