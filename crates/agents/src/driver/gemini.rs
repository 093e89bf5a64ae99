//! Gemini CLI (`@google/gemini-cli`, checked with 0.61.0: by hand against a scripted endpoint,
//! and end to end through `fugue run` against the scripted Gemini API in the CLI tests,
//! `more_drivers`).
//!
//! Headless: `gemini --output-format stream-json --approval-mode … [-m model] -p <prompt>`,
//! stdin empty (it appends stdin to the prompt). Without `-m` the model is "auto" and a
//! routing model (`gemini-*-flash-lite`) is asked first, with retries and backoff when its
//! answer is not the JSON it wants (about 87 s against an endpoint that does not serve it):
//! pin `model` in the plan. A plan without one still runs, against the real service. The
//! endpoint and key are Gemini CLI's own settings (`GOOGLE_GEMINI_BASE_URL`, `GEMINI_API_KEY`
//! in the agent's `env`, and `security.auth.selectedType` in the user's
//! `~/.gemini/settings.json`). Concurrent sessions share `~/.gemini` safely (checked with five
//! at once: each working directory gets its own project entry), so slots are not isolated.
//! Permissions: `edit` is
//! `--approval-mode auto_edit` (the file tools `write_file` and `replace`; headless it offers no
//! shell, so a verify command cannot run inside the session — QA runs it); `read-only` is
//! `default` (headless, neither edit tools nor shell are offered); `bypass` is `yolo`. A call
//! to a tool the mode does not offer comes back as `tool_not_registered` while the model may
//! still say it succeeded: that is a refusal. Sessions continue with `--resume <session_id>`
//! from the same working directory. Its turn limit is only a settings key
//! (`model.maxSessionTurns`).
//!
//! stream-json events read: `init` (`session_id`, `model`), `message` (assistant text, in
//! deltas), `tool_use` (`tool_name`, `parameters`), `tool_result` (`status`, `error.type`),
//! `error`, and `result` (`status`, `error`, `stats`: `input_tokens` including `cached`,
//! `output_tokens`). Gemini CLI reports no cost.

use fugue_core::{DriverAgentSpec, FailureKind, Permissions, Usage};
use serde_json::Value;

use super::parse::{Parsed, StreamParser, describe_tool, json_object, single_line, str_at, u64_at};
use super::{Cli, Invocation, clip};

#[derive(Debug)]
pub(crate) struct Gemini;

impl Cli for Gemini {
    fn args(&self, spec: &DriverAgentSpec, inv: &Invocation<'_>) -> Vec<String> {
        let mut a: Vec<String> = ["--output-format", "stream-json"].map(String::from).to_vec();
        if let Some(model) = &spec.model {
            a.extend(["--model".to_owned(), model.clone()]);
        }
        let mode = match inv.permissions {
            Permissions::Edit => "auto_edit",
            Permissions::ReadOnly => "default",
            Permissions::Bypass => "yolo",
        };
        a.extend(["--approval-mode".to_owned(), mode.to_owned()]);
        if !spec.allowed_tools.is_empty() {
            a.push("--allowed-tools".to_owned());
            a.extend(spec.allowed_tools.iter().cloned());
        }
        if let Some(session) = inv.resume {
            a.extend(["--resume".to_owned(), session.to_owned()]);
        }
        a.extend(spec.args.iter().cloned());
        a.extend(["-p".to_owned(), inv.prompt.to_owned()]);
        a
    }

    fn env(&self, _spec: &DriverAgentSpec, _inv: &Invocation<'_>) -> Vec<(String, String)> {
        // A worktree fugue made is trusted by whoever runs fugue on it; headless runs refuse
        // an untrusted directory.
        vec![("GEMINI_CLI_TRUST_WORKSPACE".to_owned(), "true".to_owned())]
    }

    fn state_paths(&self, _home: Option<&std::path::Path>) -> Vec<std::path::PathBuf> {
        // Gemini CLI keeps its settings, login, project registry (`projects.json`, written
        // through a temp file beside it) and sessions in `~/.gemini` (checked with 0.61.0: a
        // confined run without it dies on "EACCES … projects.json.<uuid>.tmp").
        super::in_home(".gemini").into_iter().collect()
    }

    fn can_resume(&self) -> bool {
        true
    }

    fn parser(&self) -> Box<dyn StreamParser> {
        Box::new(GeminiParser::default())
    }
}

#[derive(Debug, Default)]
struct GeminiParser {
    parsed: Parsed,
    message: String,
    turns: u32,
}

impl StreamParser for GeminiParser {
    fn line(&mut self, line: &str) -> Option<String> {
        let ev = Value::Object(json_object(line)?);
        if let Some(id) = str_at(&ev, "session_id") {
            self.parsed.session_id = Some(id.to_owned());
        }
        match str_at(&ev, "type")? {
            "init" => Some(format!("started{}", str_at(&ev, "model").map(|m| format!(" ({m})")).unwrap_or_default())),
            "message" if str_at(&ev, "role") == Some("assistant") => {
                let text = str_at(&ev, "content").unwrap_or_default();
                if ev.get("delta").and_then(Value::as_bool) == Some(true) {
                    self.message.push_str(text);
                } else {
                    self.message = text.to_owned();
                }
                Some(format!("says: {}", single_line(&self.message)))
            }
            "tool_use" => {
                self.turns += 1;
                let done = std::mem::take(&mut self.message);
                if !done.trim().is_empty() {
                    self.parsed.final_message = Some(done);
                }
                Some(describe_tool(str_at(&ev, "tool_name").unwrap_or("tool"), ev.get("parameters").unwrap_or(&Value::Null)))
            }
            "tool_result" => {
                let error = ev.get("error");
                let refused = error.and_then(|e| str_at(e, "type")).is_some_and(|t| {
                    t.contains("permission") || t.contains("denied") || t.contains("not_allowed") || t == "tool_not_registered"
                });
                if refused {
                    let why = error.and_then(|e| str_at(e, "message")).unwrap_or("refused");
                    let tool = str_at(&ev, "tool_id").and_then(|id| id.split("__").next()).unwrap_or("tool");
                    self.parsed.denials.push(format!("{tool} ({})", clip(&single_line(why), 120)));
                }
                None
            }
            "error" => {
                let message = str_at(&ev, "message").unwrap_or("error");
                if str_at(&ev, "severity") != Some("warning") {
                    self.parsed.error = Some((FailureKind::Error, format!("Gemini CLI reported an error: {}", single_line(message))));
                }
                None
            }
            "result" => {
                let p = &mut self.parsed;
                p.finished = true;
                if let Some(stats) = ev.get("stats") {
                    let mut u = Usage::default();
                    let cached = u64_at(stats, "cached");
                    u.input_tokens =
                        u64_at(stats, "input_tokens").or(u64_at(stats, "input")).map(|i| i.saturating_sub(cached.unwrap_or(0)));
                    u.output_tokens = u64_at(stats, "output_tokens");
                    u.cache_read_tokens = cached;
                    p.usage = u;
                }
                if str_at(&ev, "status") == Some("error") {
                    let error = ev.get("error");
                    let why = error.and_then(|e| str_at(e, "message")).unwrap_or("the session failed");
                    let kind = match error.and_then(|e| str_at(e, "type")).unwrap_or_default() {
                        "FatalTurnLimitedError" => FailureKind::MaxTurns,
                        _ if why.contains("max session turns") => FailureKind::MaxTurns,
                        _ if why.contains("API Error") || why.contains("\"code\"") => FailureKind::Api,
                        _ => FailureKind::Error,
                    };
                    p.error = Some((kind, format!("Gemini CLI reported an error result: {}", single_line(why))));
                }
                Some("finished".to_owned())
            }
            _ => None,
        }
    }

    fn usage_so_far(&self) -> Usage {
        self.parsed.usage
    }

    fn finish(self: Box<Self>) -> Parsed {
        let mut p = self.parsed;
        if !self.message.trim().is_empty() {
            p.final_message = Some(self.message);
        }
        p.turns = Some(self.turns + 1).filter(|_| p.finished);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Parsed {
        super::super::parse::parse_fixture(Box::new(GeminiParser::default()), name)
    }

    #[test]
    fn reads_real_gemini_output() {
        let p = fixture("gemini-write.jsonl");
        assert!(p.finished_ok(), "{p:?}");
        assert_eq!(p.session_id.as_deref(), Some("ef2135fa-6de6-4393-8c61-79851823ce95"));
        assert_eq!((p.usage.input_tokens, p.usage.output_tokens, p.usage.cost_usd), (Some(200), Some(40), None));
        assert_eq!(p.final_message.as_deref(), Some("Done: wrote the file."));
        // The model says it wrote the file; the tool was not offered: a refusal, not success.
        let p = fixture("gemini-write-denied-default.jsonl");
        assert_eq!(p.denials.len(), 1, "{p:?}");
        assert!(p.denials[0].starts_with("write_file"), "{:?}", p.denials);
        assert!(!p.finished_ok());
        // auto_edit (`edit`) offers no shell.
        let p = fixture("gemini-shell-denied-auto-edit.jsonl");
        assert!(p.denials.first().is_some_and(|d| d.starts_with("run_shell_command")), "{p:?}");
        let p = fixture("gemini-turn-limit.jsonl");
        assert_eq!(p.error.as_ref().map(|e| e.0), Some(FailureKind::MaxTurns), "{p:?}");
        let p = fixture("gemini-error.jsonl");
        assert_eq!(p.error.as_ref().map(|e| e.0), Some(FailureKind::Api), "{p:?}");
        assert!(p.error.as_ref().is_some_and(|e| e.1.contains("API key not valid")), "{p:?}");
    }
}
