//! Location-free findings about a plan.
//!
//! Validation (schema, semantics, planning, plugin configs) reports a [`PlanIssue`] that names
//! the offending value by its JSON pointer into the plan document (`/tasks/3/depends_on/0`).
//! The loader keeps a map from pointers to source spans, so any layer — even one that never
//! saw the file, like the planner — produces errors that render with file, line and column.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueLevel {
    /// Worth knowing; the plan still runs.
    Warning,
    /// The plan cannot run.
    Error,
}

/// One problem with a plan, located by JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanIssue {
    /// Error or warning.
    pub level: IssueLevel,
    /// A stable machine-readable code such as `duplicate-id` or `schema/required`.
    pub code: String,
    /// JSON pointer of the offending value (`""` for the whole document).
    pub pointer: String,
    /// What is wrong, in one lowercase sentence.
    pub message: String,
    /// What to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Point at the key rather than the value (for unknown or duplicate keys).
    #[serde(default)]
    pub at_key: bool,
}

impl PlanIssue {
    /// A new error.
    pub fn error(code: impl Into<String>, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self { level: IssueLevel::Error, code: code.into(), pointer: pointer.into(), message: message.into(), help: None, at_key: false }
    }

    /// A new warning.
    pub fn warning(code: impl Into<String>, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self { level: IssueLevel::Warning, ..Self::error(code, pointer, message) }
    }

    /// Adds the hint on what to change.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Points the label at the key of `pointer` instead of its value.
    pub fn at_key(mut self) -> Self {
        self.at_key = true;
        self
    }

    /// True for an error.
    pub fn is_error(&self) -> bool {
        self.level == IssueLevel::Error
    }
}

impl fmt::Display for PlanIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.pointer.is_empty() {
            write!(f, " (at {})", self.pointer)?;
        }
        Ok(())
    }
}

/// Escapes one JSON-pointer reference token (`~` → `~0`, `/` → `~1`).
pub fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Joins a parent pointer and a key.
pub fn pointer_join(parent: &str, key: impl fmt::Display) -> String {
    format!("{parent}/{}", pointer_token(&key.to_string()))
}
