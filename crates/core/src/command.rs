//! Command lines in `verify`, `gates` and `pool.setup`: strings split into words the way a
//! shell splits them (quotes respected) and run without a shell.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A command line, already split into argv.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandLine {
    text: String,
    argv: Vec<String>,
}

/// A command line that cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandLineError {
    /// No words at all.
    #[error("empty command: write the program and its arguments, e.g. `cargo test`")]
    Empty,
    /// An unterminated quote.
    #[error("command `{0}` has an unterminated quote: close it, or write `sh -c '…'` for shell syntax")]
    Unterminated(String),
}

impl CommandLine {
    /// Splits `text` into words.
    pub fn parse(text: &str) -> Result<Self, CommandLineError> {
        let argv = shell_words::split(text).map_err(|_| CommandLineError::Unterminated(text.to_owned()))?;
        if argv.is_empty() {
            return Err(CommandLineError::Empty);
        }
        Ok(Self { text: text.to_owned(), argv })
    }

    /// The words: program first.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The program.
    pub fn program(&self) -> &str {
        &self.argv[0]
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandLine({:?})", self.argv)
    }
}

impl Serialize for CommandLine {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CommandLine::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for CommandLine {
    fn schema_name() -> Cow<'static, str> {
        "CommandLine".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "A command split into words like a shell would (quotes respected) and run without a shell; write `sh -c '…'` for pipes."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        let c = CommandLine::parse("sh -c 'echo $(x); y' \"a b\"").expect("splits");
        assert_eq!(c.argv(), ["sh", "-c", "echo $(x); y", "a b"]);
        assert_eq!(c.program(), "sh");
        assert_eq!(CommandLine::parse("  "), Err(CommandLineError::Empty));
        assert!(matches!(CommandLine::parse("echo 'x"), Err(CommandLineError::Unterminated(_))));
    }
}
