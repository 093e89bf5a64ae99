//! Task identifiers: they become branch names (`auto/<id>`) and file names, so they are
//! restricted to a safe alphabet.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

/// The pattern every task id must match (also used in the plan schema).
pub const TASK_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$";

/// A validated task id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TaskId(String);

/// Why a string is not a task id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a valid task id: use 1-128 letters, digits, `-`, `_` or `.`, starting with a letter or digit, without `..` and not ending in `.lock`"
)]
pub struct TaskIdError(pub String);

impl TaskId {
    /// Validates `s` as a task id.
    pub fn new(s: impl Into<String>) -> Result<Self, TaskIdError> {
        let s = s.into();
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if first_ok && rest_ok && s.len() <= 128 && !s.contains("..") && !s.ends_with(".lock") && !s.ends_with('.') {
            Ok(Self(s))
        } else {
            Err(TaskIdError(s))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The task's branch: `auto/<id>`.
    pub fn branch(&self) -> String {
        format!("auto/{}", self.0)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::borrow::Borrow<str> for TaskId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TaskId::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for TaskId {
    fn schema_name() -> Cow<'static, str> {
        "TaskId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": TASK_ID_PATTERN,
            "description": "A task id: letters, digits, `-`, `_`, `.`; it names the branch `auto/<id>`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(TaskId::new("trading").is_ok());
        assert!(TaskId::new("define-contracts.v2_x").is_ok());
        for bad in ["", "-a", "a b", "a..b", "x.lock", "a/b", "é", "a."] {
            assert!(TaskId::new(bad).is_err(), "{bad}");
        }
        assert_eq!(TaskId::new("t1").map(|t| t.branch()).ok().as_deref(), Some("auto/t1"));
    }
}
