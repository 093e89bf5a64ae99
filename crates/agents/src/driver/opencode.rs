//! opencode (`opencode-ai`, checked with 1.18.33 against a scripted endpoint).
//!
//! Headless: `opencode run --format json [--model provider/model] [--session <id>]` with the
//! prompt on standard input (a prompt argument with spaces reached the model wrapped in
//! quotes). Permissions go in as `OPENCODE_PERMISSION`: `edit` allows edits and the task's
//! verify commands and denies other shell commands and web fetches; `read-only` denies edits
//! and shell; `bypass` allows everything. A denied tool is removed from the model's tools, and
//! a call to it comes back as the tool `invalid`: that is a refusal. Model list fetches and
//! auto-updates are switched off.
//!
//! JSON events read: `step_start` (`sessionID`), `text`, `tool_use` (`part.tool`,
//! `part.state.input`, `part.state.status`), `step_finish` (one per model call: `part.tokens`,
//! `part.cost` in USD, `part.reason`), `error` (`error.data.message`).

use fugue_core::{DriverAgentSpec, FailureKind, Permissions, Usage};
use serde_json::{Value, json};

use super::parse::{Parsed, StreamParser, describe_tool, json_object, single_line, str_at, u64_at};
use super::{Cli, Invocation};

#[derive(Debug)]
pub(crate) struct Opencode;

impl Cli for Opencode {
    fn args(&self, spec: &DriverAgentSpec, inv: &Invocation<'_>) -> Vec<String> {
        let mut a: Vec<String> = ["run", "--format", "json"].map(String::from).to_vec();
        match (&spec.provider, &spec.model) {
            (Some(p), Some(m)) => a.extend(["--model".to_owned(), format!("{p}/{m}")]),
            (None, Some(m)) => a.extend(["--model".to_owned(), m.clone()]),
            _ => {}
        }
        if let Some(session) = inv.resume {
            a.extend(["--session".to_owned(), session.to_owned()]);
        }
        a.extend(spec.args.iter().cloned());
        a
    }

    fn prompt_on_stdin(&self) -> bool {
        true
    }

    fn env(&self, spec: &DriverAgentSpec, inv: &Invocation<'_>) -> Vec<(String, String)> {
        let permission = match inv.permissions {
            Permissions::Edit => {
                let mut bash = serde_json::Map::new();
                bash.insert("*".to_owned(), json!("deny"));
                for cmd in inv.verify.iter().chain(&spec.allowed_tools) {
                    bash.insert(cmd.clone(), json!("allow"));
                }
                json!({"edit": "allow", "bash": bash, "webfetch": "deny"})
            }
            Permissions::ReadOnly => json!({"edit": "deny", "bash": "deny", "webfetch": "deny"}),
            Permissions::Bypass => json!({"edit": "allow", "bash": "allow", "webfetch": "allow"}),
        };
        vec![
            ("OPENCODE_PERMISSION".to_owned(), permission.to_string()),
            ("OPENCODE_DISABLE_AUTOUPDATE".to_owned(), "1".to_owned()),
            ("OPENCODE_DISABLE_MODELS_FETCH".to_owned(), "1".to_owned()),
        ]
    }

    fn can_resume(&self) -> bool {
        true
    }

    fn parser(&self) -> Box<dyn StreamParser> {
        Box::new(OpencodeParser::default())
    }
}

#[derive(Debug, Default)]
struct OpencodeParser {
    parsed: Parsed,
    steps: u32,
}

impl StreamParser for OpencodeParser {
    fn line(&mut self, line: &str) -> Option<String> {
        let ev = Value::Object(json_object(line)?);
        if let Some(id) = str_at(&ev, "sessionID").or_else(|| ev.get("part").and_then(|p| str_at(p, "sessionID"))) {
            self.parsed.session_id = Some(id.to_owned());
        }
        let part = ev.get("part").cloned().unwrap_or(Value::Null);
        match str_at(&ev, "type")? {
            "step_start" => {
                self.steps += 1;
                None
            }
            "text" => {
                let text = str_at(&part, "text").unwrap_or_default();
                self.parsed.final_message = Some(text.to_owned());
                Some(format!("says: {}", single_line(text)))
            }
            "tool_use" => {
                let tool = str_at(&part, "tool").unwrap_or("tool");
                let state = part.get("state").cloned().unwrap_or(Value::Null);
                let input = state.get("input").cloned().unwrap_or(Value::Null);
                if tool == "invalid" {
                    let why = input.get("error").and_then(Value::as_str).unwrap_or("a tool that is not allowed");
                    self.parsed.denials.push(format!(
                        "{} ({})",
                        input.get("tool").and_then(Value::as_str).unwrap_or("tool"),
                        single_line(why)
                    ));
                } else if str_at(&state, "status") == Some("error") {
                    let why = str_at(&state, "error").unwrap_or_default();
                    if why.to_ascii_lowercase().contains("permission") || why.contains("rejected") || why.contains("denied") {
                        self.parsed.denials.push(describe_tool(tool, &input));
                    }
                }
                Some(describe_tool(tool, &input))
            }
            "step_finish" => {
                let mut u = Usage::default();
                if let Some(t) = part.get("tokens") {
                    u.input_tokens = u64_at(t, "input");
                    u.output_tokens = u64_at(t, "output").map(|o| o + u64_at(t, "reasoning").unwrap_or(0));
                    u.cache_read_tokens = t.get("cache").and_then(|c| u64_at(c, "read"));
                    u.cache_write_tokens = t.get("cache").and_then(|c| u64_at(c, "write"));
                }
                u.cost_usd = part.get("cost").and_then(Value::as_f64);
                self.parsed.usage = self.parsed.usage.add(&u);
                if str_at(&part, "reason") != Some("tool-calls") {
                    self.parsed.finished = true;
                }
                None
            }
            "error" => {
                let e = ev.get("error").cloned().unwrap_or(Value::Null);
                let message =
                    e.get("data").and_then(|d| str_at(d, "message")).or_else(|| str_at(&e, "message")).or_else(|| str_at(&e, "name"));
                self.parsed.error =
                    Some((FailureKind::Api, format!("opencode reported an error: {}", single_line(message.unwrap_or("error")))));
                self.parsed.finished = true;
                None
            }
            _ => None,
        }
    }

    fn usage_so_far(&self) -> Usage {
        self.parsed.usage
    }

    fn finish(self: Box<Self>) -> Parsed {
        let mut p = self.parsed;
        p.turns = (self.steps > 0).then_some(self.steps);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Parsed {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cli").join(name);
        let text = std::fs::read_to_string(&path).expect("fixture");
        let mut p: Box<dyn StreamParser> = Box::new(OpencodeParser::default());
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            p.line(line);
        }
        p.finish()
    }

    #[test]
    fn reads_real_opencode_output() {
        let p = fixture("opencode-write.jsonl");
        assert!(p.finished_ok(), "{p:?}");
        assert!(p.session_id.as_deref().is_some_and(|s| s.starts_with("ses_")));
        assert!(p.usage.input_tokens.is_some_and(|n| n >= 100), "{p:?}");
        let p = fixture("opencode-shell-denied.jsonl");
        assert_eq!(p.denials.len(), 1, "{p:?}");
        assert!(p.denials[0].starts_with("bash"), "{:?}", p.denials);
        let p = fixture("opencode-error.jsonl");
        assert_eq!(p.error.as_ref().map(|e| e.0), Some(FailureKind::Api), "{p:?}");
    }
}
