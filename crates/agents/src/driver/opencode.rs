//! opencode (`opencode-ai`, checked with 1.18.33: by hand against a scripted endpoint, and end
//! to end through `fugue run` against the scripted Chat Completions API in the CLI tests,
//! `more_drivers`).
//!
//! Headless: `opencode run --format json [--model provider/model] [--session <id>]` with the
//! prompt on standard input (a prompt argument with spaces reached the model wrapped in
//! quotes). The provider and its models are the user's opencode configuration: their config
//! file, or `OPENCODE_CONFIG_CONTENT` (in the plan agent's `env`, say); `provider` and `model`
//! pick one. Permissions go in as `OPENCODE_PERMISSION`: `edit` allows edits and the task's
//! verify commands and denies other shell commands and web fetches; `read-only` denies edits
//! and shell; `bypass` allows everything. A tool denied outright is removed from the model's
//! tools, and a call to it comes back as the tool `invalid`; a command outside the allowed
//! ones comes back as an error, "a rule which prevents you from using this specific tool
//! call": both are refusals. Model list fetches and auto-updates are switched off. (On every
//! start it also installs `@opencode-ai/plugin` into its config dir in the background; offline
//! that is a warning in its log, nothing more.)
//!
//! Sessions apart: opencode keeps sessions in one SQLite database, and concurrent first runs
//! on a new database race to create its tables (one fails: "Failed query: CREATE TABLE
//! `workspace`…"), so with `isolate_sessions` each slot gets a database of its own
//! (`OPENCODE_DB` in the slot's session directory; resuming stays in the slot). Credentials
//! and config stay the user's.
//!
//! JSON events read: `step_start` (`sessionID`), `text`, `tool_use` (`part.tool`,
//! `part.state.input`, `part.state.status`), `step_finish` (one per model call: `part.tokens`,
//! `part.cost` in USD — `0` for a model without a `cost` entry in the config, which is read as
//! unknown, not free — `part.reason`), `error` (`error.data.message`).

use fugue_core::{DriverAgentSpec, FailureKind, Permissions, Usage};
use serde_json::{Value, json};

use super::home::HomeSpec;
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
        let mut env = vec![
            ("OPENCODE_PERMISSION".to_owned(), permission.to_string()),
            ("OPENCODE_DISABLE_AUTOUPDATE".to_owned(), "1".to_owned()),
            ("OPENCODE_DISABLE_MODELS_FETCH".to_owned(), "1".to_owned()),
        ];
        if let Some(home) = inv.home.filter(|_| !spec.env.contains_key("OPENCODE_DB")) {
            env.push(("OPENCODE_DB".to_owned(), home.join("opencode.db").to_string_lossy().into_owned()));
        }
        env
    }

    fn home(&self) -> Option<HomeSpec> {
        Some(HomeSpec::scratch("OPENCODE_FUGUE_HOME"))
    }

    fn state_paths(&self, home: Option<&std::path::Path>) -> Vec<std::path::PathBuf> {
        // opencode keeps its data (logs, storage, the auth file), cache (its bun-installed
        // providers), config and state in the XDG dirs (checked with 1.18.33: a confined run
        // without them dies on "EACCES: permission denied, mkdir '~/.local'").
        let xdg = |var: &str, default: &str| match std::env::var_os(var).filter(|v| !v.is_empty()) {
            Some(dir) => Some(std::path::PathBuf::from(dir).join("opencode")),
            None => super::in_home(default),
        };
        let mut paths: Vec<std::path::PathBuf> = home.map(std::path::Path::to_path_buf).into_iter().collect();
        paths.extend(
            [
                xdg("XDG_DATA_HOME", ".local/share/opencode"),
                xdg("XDG_CACHE_HOME", ".cache/opencode"),
                xdg("XDG_CONFIG_HOME", ".config/opencode"),
                xdg("XDG_STATE_HOME", ".local/state/opencode"),
            ]
            .into_iter()
            .flatten(),
        );
        paths
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
                    let lower = why.to_ascii_lowercase();
                    if ["permission", "rejected", "denied", "prevents you from using"].iter().any(|w| lower.contains(w)) {
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
                // opencode says 0 when the config gives the model no price: unknown, not free.
                u.cost_usd = part.get("cost").and_then(Value::as_f64).filter(|c| *c > 0.0);
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
        super::super::parse::parse_fixture(Box::new(OpencodeParser::default()), name)
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
        // A command outside the allowed ones (`bash` offered for the verify command only).
        let p = fixture("opencode-shell-rule-denied.jsonl");
        assert_eq!(p.denials, ["bash: echo hi > other.txt"], "{p:?}");
        let p = fixture("opencode-permission-rejected.jsonl");
        assert_eq!(p.denials.len(), 1, "{p:?}");
    }

    #[test]
    fn cost_is_read_only_where_the_config_prices_the_model() {
        let p = fixture("opencode-write-cost.jsonl");
        assert_eq!((p.usage.input_tokens, p.usage.output_tokens), (Some(200), Some(40)));
        assert!(p.usage.cost_usd.is_some_and(|c| (c - 0.0012).abs() < 1e-12), "{p:?}");
        // No `cost` entry: opencode says 0, which is no price at all.
        let p = fixture("opencode-write.jsonl");
        assert!(p.usage.input_tokens.is_some() && p.usage.cost_usd.is_none(), "{p:?}");
    }

    #[test]
    fn each_slot_gets_a_database_of_its_own() {
        let spec = DriverAgentSpec::new(fugue_core::DriverKind::Opencode);
        let home = std::path::Path::new("/state/sessions/opencode/wt-1");
        let inv = Invocation {
            prompt: "p",
            resume: None,
            permissions: Permissions::Edit,
            verify: &[],
            home: Some(home),
            budget_usd: None,
            confined: false,
        };
        let env = Opencode.env(&spec, &inv);
        assert!(env.contains(&("OPENCODE_DB".to_owned(), "/state/sessions/opencode/wt-1/opencode.db".to_owned())), "{env:?}");
        let inv = Invocation { home: None, ..inv };
        assert!(!Opencode.env(&spec, &inv).iter().any(|(k, _)| k == "OPENCODE_DB"));
    }
}
