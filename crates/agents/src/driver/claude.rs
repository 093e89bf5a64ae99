//! Claude Code (`@anthropic-ai/claude-code`, checked with 2.1.328).
//!
//! Headless: `claude -p --output-format stream-json --verbose … -- <prompt>`. Permissions:
//! `edit` is `--permission-mode acceptEdits` (edits in the working directory; Claude Code
//! refuses edits under any `.claude/` directory except its own `.claude/worktrees/`, which is
//! why fugue's pool lives there) plus `--allowedTools Bash(<verify command>)` for each of the
//! task's verify commands; `read-only` offers only the Read, Grep and Glob tools; `bypass` is
//! `--permission-mode bypassPermissions`, which Claude Code refuses for root. Sessions
//! continue with `--resume <session_id>`; `CLAUDE_CONFIG_DIR` isolates concurrent sessions.
//!
//! stream-json events read: `system`/`init` (session id), `assistant` (text and `tool_use`
//! blocks, per-message usage), `result` (`subtype`, `is_error`, `num_turns`, `result`,
//! `session_id`, `total_cost_usd`, `usage`, `permission_denials`).

use std::collections::BTreeMap;

use fugue_core::{DriverAgentSpec, FailureKind, Permissions, Usage};
use serde_json::Value;

use super::home::HomeSpec;
use super::parse::{Parsed, StreamParser, describe_tool, json_object, single_line, str_at, u64_at};
use super::{Cli, Invocation};

#[derive(Debug)]
pub(crate) struct Claude;

impl Cli for Claude {
    fn args(&self, spec: &DriverAgentSpec, inv: &Invocation<'_>) -> Vec<String> {
        let mut a: Vec<String> = ["-p", "--output-format", "stream-json", "--verbose"].map(String::from).to_vec();
        if let Some(model) = &spec.model {
            a.extend(["--model".to_owned(), model.clone()]);
        }
        if let Some(n) = spec.max_turns {
            a.extend(["--max-turns".to_owned(), n.to_string()]);
        }
        // Claude Code's own limit (checked with 2.1.328: `--max-budget-usd <amount>`, with
        // `--print` only) stops the session from inside as well; fugue's own check covers CLIs
        // without one and the run's budget.
        if let Some(usd) = inv.budget_usd {
            a.extend(["--max-budget-usd".to_owned(), format!("{usd:.4}")]);
        }
        match inv.permissions {
            Permissions::Edit => {
                a.extend(["--permission-mode".to_owned(), "acceptEdits".to_owned()]);
                // Exact rules for the verify commands (checked with 2.1.328: `Bash(make test)`
                // allows exactly that command); git's own commit commands as prefixes, so that an
                // agent that commits its work anyway is not refused (fugue would commit it).
                let allowed: Vec<String> = inv
                    .verify
                    .iter()
                    .map(|cmd| format!("Bash({cmd})"))
                    .chain(["Bash(git add:*)".to_owned(), "Bash(git commit:*)".to_owned()])
                    .chain(spec.allowed_tools.iter().cloned())
                    .collect();
                a.push("--allowedTools".to_owned());
                a.extend(allowed);
            }
            Permissions::ReadOnly => {
                a.extend(["--permission-mode".to_owned(), "default".to_owned(), "--tools".to_owned(), "Read,Grep,Glob".to_owned()]);
            }
            Permissions::Bypass => {
                a.extend(["--permission-mode".to_owned(), "bypassPermissions".to_owned()]);
                if !spec.allowed_tools.is_empty() {
                    a.push("--allowedTools".to_owned());
                    a.extend(spec.allowed_tools.iter().cloned());
                }
            }
        }
        if !spec.disallowed_tools.is_empty() {
            a.push("--disallowedTools".to_owned());
            a.extend(spec.disallowed_tools.iter().cloned());
        }
        if let Some(session) = inv.resume {
            a.extend(["--resume".to_owned(), session.to_owned()]);
        }
        a.extend(spec.args.iter().cloned());
        a.extend(["--".to_owned(), inv.prompt.to_owned()]);
        a
    }

    fn env(&self, _spec: &DriverAgentSpec, inv: &Invocation<'_>) -> Vec<(String, String)> {
        // Many sessions at once must not race to update the installation.
        let mut env = vec![("DISABLE_AUTOUPDATER".to_owned(), "1".to_owned())];
        if let Some(home) = inv.home {
            env.push(("CLAUDE_CONFIG_DIR".to_owned(), home.to_string_lossy().into_owned()));
            // The login stays the user's own file: Claude Code rotates OAuth refresh tokens,
            // so a copy per slot would go stale (and a symlink is replaced by a file on the
            // first refresh). `CLAUDE_SECURESTORAGE_CONFIG_DIR` moves only the credentials.
            if std::env::var_os("CLAUDE_SECURESTORAGE_CONFIG_DIR").is_none()
                && let Some(user) = HomeSpec::claude().user_dir()
                && user.join(".credentials.json").exists()
            {
                env.push(("CLAUDE_SECURESTORAGE_CONFIG_DIR".to_owned(), user.to_string_lossy().into_owned()));
            }
        }
        env
    }

    fn can_resume(&self) -> bool {
        true
    }

    fn cumulative(&self) -> super::Cumulative {
        // Checked with 2.1.328: on `--resume`, `total_cost_usd` covers the whole session and
        // `usage` this process only.
        super::Cumulative::Cost
    }

    fn parser(&self) -> Box<dyn StreamParser> {
        Box::new(ClaudeParser::default())
    }

    fn refuses(&self, spec: &DriverAgentSpec) -> Option<String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        (spec.permissions == Permissions::Bypass && root && !spec.env.contains_key("IS_SANDBOX")).then(|| {
            "Claude Code refuses `permissions: bypass` (bypassPermissions) when it runs as root: run fugue as a non-root user, or use `permissions: edit` (edits in the worktree and the task's verify commands) with `allowed_tools` for anything more".to_owned()
        })
    }

    fn home(&self) -> Option<HomeSpec> {
        Some(HomeSpec::claude())
    }

    fn state_paths(&self, home: Option<&std::path::Path>) -> Vec<std::path::PathBuf> {
        // The slot's CLAUDE_CONFIG_DIR holds its sessions and `.claude.json` (checked with
        // 2.1.328: a confined run needs nothing else there). An OAuth login stays in the user's
        // own `.credentials.json` (see `env`), rewritten when a token is refreshed: that one
        // file may be written in place (a file rule cannot allow creating or renaming).
        let mut paths: Vec<std::path::PathBuf> = home.map(std::path::Path::to_path_buf).into_iter().collect();
        if home.is_some()
            && std::env::var_os("CLAUDE_SECURESTORAGE_CONFIG_DIR").is_none()
            && let Some(credentials) = HomeSpec::claude().user_dir().map(|u| u.join(".credentials.json")).filter(|c| c.is_file())
        {
            paths.push(credentials);
        }
        paths
    }
}

#[derive(Debug, Default)]
struct ClaudeParser {
    parsed: Parsed,
    /// Usage per assistant message id (a message's blocks repeat its usage).
    live: BTreeMap<String, Usage>,
    last_text: Option<String>,
}

fn usage_of(u: &Value) -> Usage {
    let mut usage = Usage::default();
    usage.input_tokens = u64_at(u, "input_tokens");
    usage.output_tokens = u64_at(u, "output_tokens");
    usage.cache_read_tokens = u64_at(u, "cache_read_input_tokens");
    usage.cache_write_tokens = u64_at(u, "cache_creation_input_tokens");
    usage
}

impl StreamParser for ClaudeParser {
    fn line(&mut self, line: &str) -> Option<String> {
        let ev = Value::Object(json_object(line)?);
        if let Some(id) = str_at(&ev, "session_id") {
            self.parsed.session_id = Some(id.to_owned());
        }
        match str_at(&ev, "type")? {
            "system" if str_at(&ev, "subtype") == Some("init") => {
                Some(format!("started{}", str_at(&ev, "model").map(|m| format!(" ({m})")).unwrap_or_default()))
            }
            "assistant" => {
                let message = ev.get("message")?;
                if let (Some(id), Some(u)) = (str_at(message, "id"), message.get("usage")) {
                    self.live.insert(id.to_owned(), usage_of(u));
                }
                let mut doing = None;
                for block in message.get("content").and_then(Value::as_array).into_iter().flatten() {
                    match str_at(block, "type") {
                        Some("tool_use") => {
                            doing =
                                Some(describe_tool(str_at(block, "name").unwrap_or("tool"), block.get("input").unwrap_or(&Value::Null)));
                        }
                        Some("text") => {
                            if let Some(text) = str_at(block, "text").filter(|t| !t.trim().is_empty()) {
                                self.last_text = Some(text.to_owned());
                                doing = Some(format!("says: {}", single_line(text)));
                            }
                        }
                        _ => {}
                    }
                }
                doing
            }
            "result" => {
                let p = &mut self.parsed;
                p.finished = true;
                p.turns = ev.get("num_turns").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
                if let Some(u) = ev.get("usage") {
                    p.usage = usage_of(u);
                }
                p.usage.cost_usd = ev.get("total_cost_usd").and_then(Value::as_f64);
                if let Some(text) = str_at(&ev, "result") {
                    p.final_message = Some(text.to_owned());
                }
                for d in ev.get("permission_denials").and_then(Value::as_array).into_iter().flatten() {
                    let tool = str_at(d, "tool_name").unwrap_or("tool");
                    p.denials.push(describe_tool(tool, d.get("tool_input").unwrap_or(&Value::Null)));
                }
                let subtype = str_at(&ev, "subtype").unwrap_or_default();
                let is_error = ev.get("is_error").and_then(Value::as_bool).unwrap_or(false) || subtype.starts_with("error");
                if is_error {
                    let words = str_at(&ev, "result").map(str::to_owned).unwrap_or_else(|| {
                        ev.get("errors").map(|e| e.to_string()).unwrap_or_else(|| format!("the session ended with `{subtype}`"))
                    });
                    let kind = if subtype == "error_max_turns" {
                        FailureKind::MaxTurns
                    } else if subtype.contains("budget") {
                        FailureKind::Budget
                    } else if words.contains("API Error") || words.contains("api_error") || words.contains("authentication") {
                        FailureKind::Api
                    } else {
                        FailureKind::Error
                    };
                    let words = match kind {
                        FailureKind::MaxTurns => {
                            format!("Claude Code stopped at its turn limit after {} turn(s) (`{subtype}`)", p.turns.unwrap_or_default())
                        }
                        _ => format!("Claude Code reported an error (`{subtype}`): {}", single_line(&words)),
                    };
                    p.error = Some((kind, words));
                }
                Some(format!("finished ({subtype})"))
            }
            _ => None,
        }
    }

    fn usage_so_far(&self) -> Usage {
        if self.parsed.finished {
            return self.parsed.usage;
        }
        self.live.values().fold(Usage::default(), |a, b| a.add(b))
    }

    fn finish(self: Box<Self>) -> Parsed {
        let mut p = self.parsed;
        if p.final_message.is_none() {
            p.final_message = self.last_text;
        }
        if !p.finished && p.usage.is_unknown() {
            p.usage = self.live.values().fold(Usage::default(), |a, b| a.add(b));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Parsed {
        super::super::parse::parse_lines(Box::new(ClaudeParser::default()), lines.iter().copied())
    }

    #[test]
    fn reads_a_successful_session() {
        let p = parse(&[
            r#"{"type":"system","subtype":"init","session_id":"s-1","model":"claude-sonnet-4-5"}"#,
            r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"tool_use","name":"Write","input":{"file_path":"/w/a.txt","content":"x"}}],"usage":{"input_tokens":10,"output_tokens":5}},"session_id":"s-1"}"#,
            "not json at all",
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"done","session_id":"s-1","total_cost_usd":0.012,"usage":{"input_tokens":100,"output_tokens":20,"cache_read_input_tokens":30,"cache_creation_input_tokens":7},"permission_denials":[]}"#,
        ]);
        assert!(p.finished_ok(), "{p:?}");
        assert_eq!(p.session_id.as_deref(), Some("s-1"));
        assert_eq!(p.turns, Some(2));
        assert_eq!(p.final_message.as_deref(), Some("done"));
        assert_eq!(
            (p.usage.input_tokens, p.usage.output_tokens, p.usage.cache_read_tokens, p.usage.cache_write_tokens),
            (Some(100), Some(20), Some(30), Some(7))
        );
        assert_eq!(p.usage.cost_usd, Some(0.012));
    }

    #[test]
    fn denials_and_error_results_are_named() {
        let p = parse(&[
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":3,"result":"I could not write","session_id":"s","permission_denials":[{"tool_name":"Write","tool_use_id":"t","tool_input":{"file_path":"/w/a.txt"}}]}"#,
        ]);
        assert_eq!(p.denials, ["Write: /w/a.txt"]);
        assert!(!p.finished_ok());
        let p = parse(&[r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":2,"session_id":"s"}"#]);
        assert_eq!(p.error.as_ref().map(|e| e.0), Some(FailureKind::MaxTurns));
        let p = parse(&[r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 500 boom","session_id":"s"}"#]);
        assert_eq!(p.error.as_ref().map(|e| e.0), Some(FailureKind::Api));
    }

    #[test]
    fn silence_is_not_a_result() {
        let p = parse(&["hello"]);
        assert!(!p.finished);
    }

    fn fixture(name: &str) -> Parsed {
        super::super::parse::parse_fixture(Box::new(ClaudeParser::default()), name)
    }

    /// Output captured from the real Claude Code 2.1.328 against the scripted Messages API.
    #[test]
    fn reads_real_claude_output() {
        let p = fixture("claude-write.jsonl");
        assert!(p.finished_ok(), "{p:?}");
        assert!(p.session_id.is_some() && p.turns.is_some_and(|t| t > 0));
        assert!(p.usage.cost_usd.is_some_and(|c| c > 0.0) && p.usage.input_tokens.is_some(), "{p:?}");
        let p = fixture("claude-denied.jsonl");
        assert!(!p.denials.is_empty() && p.denials[0].starts_with("Write"), "{p:?}");
        let p = fixture("claude-max-turns.jsonl");
        assert_eq!(p.error.as_ref().map(|e| e.0), Some(FailureKind::MaxTurns), "{p:?}");
        let p = fixture("claude-api-error.jsonl");
        assert_eq!(p.error.as_ref().map(|e| e.0), Some(FailureKind::Api), "{p:?}");
        let p = fixture("claude-resume.jsonl");
        assert!(p.finished_ok(), "{p:?}");
    }
}
