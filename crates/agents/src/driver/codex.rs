//! Codex CLI (`@openai/codex`, checked with 0.169.0).
//!
//! Headless: `codex exec --json --skip-git-repo-check …  -- <prompt>`; continuing:
//! `codex exec resume <thread_id> --json … -- <prompt>`. `exec resume` has no `--sandbox`
//! flag, so the sandbox is set for both with `-c sandbox_mode=…`: `edit` is `workspace-write`
//! (writes in the working directory, commands — the task's verify commands among them — run
//! inside the sandbox), `read-only` is `read-only`, `bypass` is
//! `--dangerously-bypass-approvals-and-sandbox`. The model and provider go in as `-m` and
//! `-c model_provider=…`, the plan's `overrides` as more `-c key=value`. `CODEX_HOME`
//! isolates concurrent sessions (parallel `codex exec` runs interfere through the shared
//! session store, openai/codex#11435); resuming needs the same `CODEX_HOME`, which the
//! per-slot home gives.
//!
//! JSONL events read: `thread.started` (`thread_id`), `turn.started`, `item.started` /
//! `item.completed` (`command_execution`, `agent_message`, `file_change`, `error`),
//! `turn.completed` (`usage`: `input_tokens` including `cached_input_tokens`,
//! `output_tokens`), `turn.failed` and `error`. Codex reports no cost.

use fugue_core::{DriverAgentSpec, FailureKind, Permissions, Usage};
use serde_json::Value;

use super::home::HomeSpec;
use super::parse::{Parsed, StreamParser, json_object, single_line, str_at, u64_at};
use super::{Cli, Invocation};

#[derive(Debug)]
pub(crate) struct Codex;

impl Cli for Codex {
    fn args(&self, spec: &DriverAgentSpec, inv: &Invocation<'_>) -> Vec<String> {
        let mut a = vec!["exec".to_owned()];
        if let Some(session) = inv.resume {
            a.extend(["resume".to_owned(), session.to_owned()]);
        }
        a.extend(["--json".to_owned(), "--skip-git-repo-check".to_owned()]);
        if let Some(model) = &spec.model {
            a.extend(["-m".to_owned(), model.clone()]);
        }
        if let Some(provider) = &spec.provider {
            a.extend(["-c".to_owned(), format!("model_provider={}", toml_string(provider))]);
        }
        match inv.permissions {
            // Codex's Linux sandbox is bubblewrap, which needs a new user namespace, a uid map and
            // new mounts, none of which a Landlock-confined process may make ("bwrap: setting up
            // uid map: Permission denied"; its legacy Landlock backend refuses workspace-write:
            // "filesystem-restricted execution requires bubblewrap", checked with 0.169.0). Under
            // fugue's confinement its own sandbox is off and fugue's ruleset confines the writes
            // (read-only ones too); the network is then not restricted by Codex.
            Permissions::Edit | Permissions::ReadOnly if inv.confined => {
                a.extend(["-c".to_owned(), "sandbox_mode=\"danger-full-access\"".to_owned()]);
            }
            Permissions::Edit => a.extend(["-c".to_owned(), "sandbox_mode=\"workspace-write\"".to_owned()]),
            Permissions::ReadOnly => a.extend(["-c".to_owned(), "sandbox_mode=\"read-only\"".to_owned()]),
            Permissions::Bypass => a.push("--dangerously-bypass-approvals-and-sandbox".to_owned()),
        }
        // Headless: nobody is there to approve anything.
        a.extend(["-c".to_owned(), "approval_policy=\"never\"".to_owned()]);
        for (k, v) in &spec.overrides {
            a.extend(["-c".to_owned(), format!("{k}={v}")]);
        }
        a.extend(spec.args.iter().cloned());
        a.extend(["--".to_owned(), inv.prompt.to_owned()]);
        a
    }

    fn env(&self, _spec: &DriverAgentSpec, inv: &Invocation<'_>) -> Vec<(String, String)> {
        inv.home.map(|h| ("CODEX_HOME".to_owned(), h.to_string_lossy().into_owned())).into_iter().collect()
    }

    fn can_resume(&self) -> bool {
        true
    }

    fn cumulative(&self) -> super::Cumulative {
        // Checked with 0.169.0: on `exec resume`, `turn.completed.usage` is the thread's
        // running total (2000 input tokens after one run, 4000 after the resumed one).
        super::Cumulative::All
    }

    fn parser(&self) -> Box<dyn StreamParser> {
        Box::new(CodexParser::default())
    }

    fn home(&self) -> Option<HomeSpec> {
        Some(HomeSpec::codex())
    }
}

/// `s` as a TOML string literal.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

#[derive(Debug, Default)]
struct CodexParser {
    parsed: Parsed,
    turns: u32,
    /// The last `error` event: Codex prints some (reconnecting) and carries on.
    last_error: Option<String>,
    failed: Option<String>,
}

impl StreamParser for CodexParser {
    fn line(&mut self, line: &str) -> Option<String> {
        let ev = Value::Object(json_object(line)?);
        match str_at(&ev, "type")? {
            "thread.started" => {
                self.parsed.session_id = str_at(&ev, "thread_id").map(str::to_owned);
                Some("started".to_owned())
            }
            "turn.started" => {
                self.turns += 1;
                self.failed = None;
                None
            }
            "turn.completed" => {
                if let Some(u) = ev.get("usage") {
                    let input = u64_at(u, "input_tokens");
                    let cached = u64_at(u, "cached_input_tokens");
                    let mut turn = Usage::default();
                    turn.input_tokens = input.map(|i| i.saturating_sub(cached.unwrap_or(0)));
                    turn.cache_read_tokens = cached;
                    turn.cache_write_tokens = u64_at(u, "cache_write_input_tokens");
                    turn.output_tokens = u64_at(u, "output_tokens");
                    self.parsed.usage = self.parsed.usage.add(&turn);
                }
                self.parsed.finished = true;
                Some("turn completed".to_owned())
            }
            "turn.failed" => {
                let message = ev.get("error").and_then(|e| str_at(e, "message")).map(str::to_owned);
                self.failed = Some(message.or_else(|| self.last_error.clone()).unwrap_or_else(|| "the turn failed".to_owned()));
                Some("turn failed".to_owned())
            }
            "error" => {
                self.last_error = str_at(&ev, "message").map(str::to_owned);
                None
            }
            "item.started" | "item.completed" | "item.updated" => {
                let item = ev.get("item")?;
                let done = str_at(&ev, "type") == Some("item.completed");
                match str_at(item, "type")? {
                    "command_execution" => {
                        let cmd = str_at(item, "command").unwrap_or_default();
                        let failed = item.get("exit_code").and_then(Value::as_i64).is_some_and(|c| c != 0);
                        let out = str_at(item, "aggregated_output").unwrap_or_default();
                        // A git command the sandbox keeps out of the repository's git dir
                        // (a commit: fugue commits anyway) is no refusal of the task's work.
                        let git =
                            cmd.split_whitespace().any(|w| w == "git" || w.ends_with("/git") || w.trim_start_matches(['\'', '"']) == "git");
                        if done && failed && !git && out.contains("Read-only file system") {
                            self.parsed.denials.push(format!("sandbox refused a write: {}", single_line(cmd)));
                        }
                        (!done).then(|| format!("exec: {}", single_line(cmd)))
                    }
                    "agent_message" if done => {
                        let text = str_at(item, "text").unwrap_or_default();
                        self.parsed.final_message = Some(text.to_owned());
                        Some(format!("says: {}", single_line(text)))
                    }
                    "file_change" if done => {
                        let paths: Vec<&str> =
                            item.get("changes").and_then(Value::as_array).into_iter().flatten().filter_map(|c| str_at(c, "path")).collect();
                        Some(format!("edit: {}", paths.join(", ")))
                    }
                    "error" if done => {
                        self.last_error = str_at(item, "message").map(str::to_owned);
                        None
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn usage_so_far(&self) -> Usage {
        self.parsed.usage
    }

    fn finish(self: Box<Self>) -> Parsed {
        let mut p = self.parsed;
        p.turns = (self.turns > 0).then_some(self.turns);
        if let Some(message) = self.failed {
            let kind = if message.contains("status") || message.contains("stream") || message.contains("http") || message.contains("API") {
                FailureKind::Api
            } else {
                FailureKind::Error
            };
            p.error = Some((kind, format!("Codex reported a failed turn: {}", single_line(&message))));
            p.finished = true;
        } else if !p.finished
            && let Some(message) = self.last_error
        {
            p.error = Some((FailureKind::Api, format!("Codex reported an error: {}", single_line(&message))));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Parsed {
        super::super::parse::parse_lines(Box::new(CodexParser::default()), lines.iter().copied())
    }

    #[test]
    fn reads_a_thread() {
        let p = parse(&[
            r#"{"type":"thread.started","thread_id":"th-1"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.started","item":{"id":"i0","type":"command_execution","command":"bash -lc 'mkdir -p src'","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"i1","type":"agent_message","text":"done"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":1000,"cached_input_tokens":300,"output_tokens":200}}"#,
        ]);
        assert!(p.finished_ok(), "{p:?}");
        assert_eq!(p.session_id.as_deref(), Some("th-1"));
        assert_eq!(
            (p.usage.input_tokens, p.usage.cache_read_tokens, p.usage.output_tokens, p.usage.cost_usd),
            (Some(700), Some(300), Some(200), None)
        );
        assert_eq!(p.final_message.as_deref(), Some("done"));
        assert_eq!(p.turns, Some(1));
    }

    #[test]
    fn sandbox_refusals_and_failed_turns_fail() {
        let p = parse(&[
            r#"{"type":"item.completed","item":{"id":"i0","type":"command_execution","command":"mkdir src","aggregated_output":"mkdir: cannot create directory 'src': Read-only file system\n","exit_code":1,"status":"failed"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}"#,
        ]);
        assert_eq!(p.denials, ["sandbox refused a write: mkdir src"]);
        let p = parse(&[
            r#"{"type":"turn.started"}"#,
            r#"{"type":"error","message":"unexpected status 500"}"#,
            r#"{"type":"turn.failed","error":{"message":"unexpected status 500 Internal Server Error"}}"#,
        ]);
        assert_eq!(p.error.as_ref().map(|e| e.0), Some(FailureKind::Api));
    }

    fn fixture(name: &str) -> Parsed {
        super::super::parse::parse_fixture(Box::new(CodexParser::default()), name)
    }

    /// Output captured from the real Codex 0.169.0 against the scripted Responses API.
    #[test]
    fn reads_real_codex_output() {
        let p = fixture("codex-write.jsonl");
        assert!(p.finished_ok(), "{p:?}");
        assert!(p.session_id.is_some(), "{p:?}");
        assert_eq!(p.usage.cost_usd, None, "Codex reports no cost");
        assert!(p.usage.output_tokens.is_some_and(|t| t > 0), "{p:?}");
        let p = fixture("codex-resume.jsonl");
        assert!(p.finished_ok(), "{p:?}");
        let p = fixture("codex-error.jsonl");
        assert!(p.error.is_some() && !p.finished_ok(), "{p:?}");
    }
}
