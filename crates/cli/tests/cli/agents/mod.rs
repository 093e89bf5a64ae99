//! The agent CLIs (Claude Code, Codex) driven directly, not through fugue, against the scripted
//! model server in [`model`]. Each test pins one fact about the installed CLI that fugue relies on
//! (see the facts file written with these tests). A test skips with a loud `SKIPPED:` line when
//! its CLI is not on `PATH`, unless `FUGUE_AGENT_CLIS_REQUIRED=1`, then it fails.
//!
//! Set `FUGUE_CAPTURE_CLI_FIXTURES=1` to (re)write the stdout captures in
//! `crates/agents/tests/fixtures/cli/` from these runs (temp paths become `/tmp/REPO` and
//! `/tmp/HOME`, the server's port `PORT`).

pub(crate) mod model;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use model::{ModelConfig, ScriptedModel};

// ---------------------------------------------------------------------------------------------
// Helpers for any test that drives a real agent CLI

/// `FUGUE_AGENT_CLIS_REQUIRED=1` turns a missing CLI into a test failure.
pub(crate) const CLIS_REQUIRED_ENV: &str = "FUGUE_AGENT_CLIS_REQUIRED";

/// The env var holding the key of Codex's `scripted` provider.
pub(crate) const CODEX_KEY_ENV: &str = "SCRIPTED_KEY";

/// The model name tests pass to Claude Code (`--model`); Claude Code prices it (Sonnet 4.5 list
/// prices), so `total_cost_usd` is non-zero.
pub(crate) const CLAUDE_MODEL: &str = "claude-sonnet-4-5";

/// The model name tests pass to Codex (`-m`). Codex has no metadata for it and says so in a
/// non-fatal `item.completed` of type `error` at the start of each run (`gpt-5.5` avoids that).
pub(crate) const CODEX_MODEL: &str = "gpt-test";

/// Where `name` is on `PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The CLI `name` from `PATH`; `None` after a loud `SKIPPED:` line when it is missing, and a
/// panic instead when `FUGUE_AGENT_CLIS_REQUIRED=1`.
#[expect(clippy::print_stderr, reason = "a skipped test must say so")]
pub(crate) fn require_cli(name: &str, test: &str) -> Option<PathBuf> {
    let found = find_on_path(name);
    if found.is_none() {
        assert!(std::env::var(CLIS_REQUIRED_ENV).as_deref() != Ok("1"), "{test}: `{name}` is not on PATH and {CLIS_REQUIRED_ENV}=1");
        eprintln!("SKIPPED: {test}: `{name}` is not on PATH (set {CLIS_REQUIRED_ENV}=1 to fail)");
    }
    found
}

/// A temp dir for agent homes and repos, under the target dir rather than `/tmp` (Codex warns
/// "Refusing to create helper binaries under temporary dir" for a `CODEX_HOME` under `/tmp`).
/// With `FUGUE_TEST_KEEP=1` the directory (repository, logs, CLI homes) is left for a look.
pub(crate) fn agent_temp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("agent-cli")
        .disable_cleanup(std::env::var_os("FUGUE_TEST_KEEP").is_some())
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir")
}

/// Makes `dir` (created if need be) a git repository on `main` with one empty commit.
pub(crate) fn init_repo(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir repo");
    crate::git(dir, &["init", "-q"]);
    crate::git(dir, &["commit", "-q", "--allow-empty", "-m", "init"]);
}

/// The environment for Claude Code against `model`, with `home` as a fresh `HOME`: API key auth,
/// no non-essential traffic, no retries of failed API calls (10 by default, about 3 minutes), and
/// the server as `HTTPS_PROXY` so any attempt to reach the internet is recorded (a `CONNECT`)
/// and refused. Add `CLAUDE_CONFIG_DIR` for a config dir other than `$HOME/.claude`.
pub(crate) fn claude_env(model: &ScriptedModel, home: &Path) -> Vec<(String, String)> {
    let mut env = offline_env(model, home);
    env.extend(
        [
            ("ANTHROPIC_BASE_URL", model.base_url()),
            ("ANTHROPIC_API_KEY", "sk-ant-scripted".into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_TELEMETRY", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            ("DISABLE_ERROR_REPORTING", "1".into()),
            ("CLAUDE_CODE_MAX_RETRIES", "0".into()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// `home` as `HOME`, and the server as the proxy for everything but loopback, so any attempt
/// to reach the internet is recorded (a `CONNECT`) and refused: the environment every agent
/// CLI test starts from.
pub(crate) fn offline_env(model: &ScriptedModel, home: &Path) -> Vec<(String, String)> {
    let url = model.base_url();
    [("HOME", home.display().to_string()), ("HTTPS_PROXY", url.clone()), ("HTTP_PROXY", url), ("NO_PROXY", "127.0.0.1,localhost".into())]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec()
}

/// The flags of a headless Claude Code run that may edit its working directory:
/// `-p <prompt> --output-format stream-json --verbose --permission-mode acceptEdits --model …`.
pub(crate) fn claude_args(prompt: &str) -> Vec<String> {
    ["-p", prompt, "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits", "--model", CLAUDE_MODEL]
        .map(str::to_owned)
        .to_vec()
}

/// The environment for Codex against `model`: `home` as `HOME`, `codex_home` as `CODEX_HOME`
/// (keep it out of `/tmp`, see [`agent_temp`]), the provider's key, and the server as
/// `HTTPS_PROXY` to catch network attempts. Creates `codex_home`: Codex refuses a `CODEX_HOME`
/// that does not exist.
pub(crate) fn codex_env(model: &ScriptedModel, home: &Path, codex_home: &Path) -> Vec<(String, String)> {
    std::fs::create_dir_all(codex_home).expect("mkdir CODEX_HOME");
    let mut env = offline_env(model, home);
    env.push(("CODEX_HOME".to_owned(), codex_home.display().to_string()));
    env.push((CODEX_KEY_ENV.to_owned(), "sk-scripted".to_owned()));
    env
}

/// The `-c` overrides that point Codex at `model` with no `config.toml`, with no retries, no
/// plugin sync (`git ls-remote` to github.com, chatgpt.com) and no analytics (ab.chatgpt.com),
/// then `-m gpt-test`. They go after `exec` (or after `exec resume`).
pub(crate) fn codex_config_args(model: &ScriptedModel) -> Vec<String> {
    let mut args = codex_provider_args(model);
    for c in [
        "model_providers.scripted.request_max_retries=0",
        "model_providers.scripted.stream_max_retries=0",
        "features.plugins=false",
        "analytics.enabled=false",
    ] {
        args.push("-c".into());
        args.push(c.into());
    }
    args
}

/// Only the provider overrides and `-m` (Codex then retries, syncs plugins and reports
/// analytics as it does by default).
fn codex_provider_args(model: &ScriptedModel) -> Vec<String> {
    let base_url = format!("model_providers.scripted.base_url={}/v1", model.base_url());
    let mut args = Vec::new();
    for c in [
        "model_provider=scripted",
        "model_providers.scripted.name=scripted",
        &base_url,
        &format!("model_providers.scripted.env_key={CODEX_KEY_ENV}"),
        "model_providers.scripted.wire_api=responses",
    ] {
        args.push("-c".into());
        args.push(c.to_owned());
    }
    args.push("-m".into());
    args.push(CODEX_MODEL.into());
    args
}

/// `program` in `cwd` with a clean environment: this process's `PATH` (and the rustup/cargo
/// homes of the real `HOME`, so `cargo` still works under a fresh `HOME`), then `env`. No stdin
/// (with a pipe, `codex exec` appends stdin to the prompt).
pub(crate) fn agent_command(program: &Path, cwd: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd).env_clear().stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    if let Some(real_home) = std::env::var_os("HOME").map(PathBuf::from) {
        for (var, dir) in [("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")] {
            let value = std::env::var_os(var).map_or_else(|| real_home.join(dir), PathBuf::from);
            if value.is_dir() {
                cmd.env(var, value);
            }
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// One finished run of an agent CLI.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// The stdout lines that parse as JSON.
    pub(crate) events: Vec<Value>,
}

impl Run {
    /// The events whose `type` is `kind`.
    pub(crate) fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == kind).collect()
    }

    /// Claude Code's last `result` event.
    pub(crate) fn result(&self) -> &Value {
        self.of_type("result").last().copied().unwrap_or_else(|| panic!("no result: {self:#?}"))
    }

    /// The `tool_result` blocks Claude Code reports (in its `user` events), in order.
    pub(crate) fn tool_results(&self) -> Vec<&Value> {
        self.of_type("user")
            .into_iter()
            .filter_map(|e| e["message"]["content"].as_array())
            .flatten()
            .filter(|b| b["type"] == "tool_result")
            .collect()
    }
}

/// How long one CLI run may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// Starts `cmd` with piped output.
pub(crate) fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn agent CLI")
}

/// Waits for `child` (killed after [`RUN_TIMEOUT`]).
pub(crate) fn finish(mut child: Child) -> Run {
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        drop(out.read_to_string(&mut s));
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        drop(err.read_to_string(&mut s));
        s
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            drop(child.kill());
            panic!("agent CLI still running after {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    let events = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    Run { code: status.code().unwrap_or(-1), stdout, stderr, events }
}

/// Runs `cmd` to the end.
pub(crate) fn run(cmd: Command) -> Run {
    finish(spawn(cmd))
}

/// With `FUGUE_CAPTURE_CLI_FIXTURES=1`, writes `run`'s stdout to
/// `crates/agents/tests/fixtures/cli/<name>`, each `(from, to)` replaced (longest first).
fn capture(name: &str, run: &Run, replace: &[(&str, &str)]) {
    if std::env::var("FUGUE_CAPTURE_CLI_FIXTURES").as_deref() != Ok("1") {
        return;
    }
    let mut pairs = replace.to_vec();
    pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    let mut text = run.stdout.clone();
    for (from, to) in pairs {
        text = text.replace(from, to);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agents/tests/fixtures/cli");
    std::fs::create_dir_all(&dir).expect("fixture dir");
    std::fs::write(dir.join(name), text).expect("write fixture");
}

/// The replacements that make a capture stable.
fn stable(model: &ScriptedModel, root: &Path) -> Vec<(String, &'static str)> {
    let munged = |p: &Path| p.display().to_string().replace(['/', '.'], "-");
    vec![
        (munged(&root.join("repo")), "-tmp-REPO"),
        (munged(root), "-tmp-ROOT"),
        (root.join("repo").display().to_string(), "/tmp/REPO"),
        (root.join("home").display().to_string(), "/tmp/HOME"),
        (root.display().to_string(), "/tmp/ROOT"),
        (model.base_url().trim_start_matches("http://").to_owned(), "127.0.0.1:PORT"),
    ]
}

fn capture_stable(name: &str, run: &Run, model: &ScriptedModel, root: &Path) {
    let pairs = stable(model, root);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    capture(name, run, &pairs);
}

/// The `CONNECT`s the server saw as `HTTPS_PROXY`: attempts to reach the internet.
fn network_attempts(model: &ScriptedModel) -> Vec<String> {
    model.requests().into_iter().filter(|r| r.method == "CONNECT").map(|r| r.path).collect()
}

/// A temp root with `repo/` (a git repo) and `home/`.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    home: PathBuf,
}

fn setup() -> Setup {
    let tmp = agent_temp();
    let root = tmp.path().to_path_buf();
    let repo = root.join("repo");
    let home = root.join("home");
    init_repo(&repo);
    std::fs::create_dir_all(&home).expect("mkdir home");
    Setup { _tmp: tmp, root, repo, home }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn claude(bin: &Path, cwd: &Path, env: &[(String, String)], args: &[String], extra: &[&str]) -> Run {
    let mut cmd = agent_command(bin, cwd, env);
    cmd.args(args).args(extra);
    run(cmd)
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Sonnet 4.5 list price of one turn with the default usage: 1000 in × $3/M, 200 out × $15/M,
/// 300 cache reads × $0.30/M, 100 cache writes × $3.75/M.
const SONNET_TURN_USD: f64 = 0.006_465;

// ---------------------------------------------------------------------------------------------
// Claude Code

/// (a) acceptEdits writes in a git repo; the result event's usage and cost.
#[test]
fn claude_accept_edits_writes_in_a_repo() {
    let Some(bin) = require_cli("claude", "claude_accept_edits_writes_in_a_repo") else {
        return;
    };
    let model = ScriptedModel::start();
    let s = setup();
    let prompt = "Please do it.\n@write src/a.txt hello\\nworld\n@say all good";
    let run = claude(&bin, &s.repo, &claude_env(&model, &s.home), &claude_args(prompt), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(read(&s.repo.join("src/a.txt")), "hello\nworld");
    let init = run.of_type("system")[0];
    assert_eq!(init["subtype"], "init");
    assert_eq!(init["permissionMode"], "acceptEdits");
    assert_eq!(init["model"], CLAUDE_MODEL);
    assert!(init["session_id"].is_string());
    let result = run.result();
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], "all good");
    assert_eq!(result["num_turns"], 3);
    assert_eq!(result["terminal_reason"], "completed");
    assert_eq!(result["permission_denials"], serde_json::json!([]));
    // Three model turns (pwd, Write, final), each 1000/200/300/100 tokens.
    let usage = &result["usage"];
    assert_eq!(usage["input_tokens"], 3000);
    assert_eq!(usage["output_tokens"], 600);
    assert_eq!(usage["cache_read_input_tokens"], 900);
    assert_eq!(usage["cache_creation_input_tokens"], 300);
    let cost = result["total_cost_usd"].as_f64().expect("cost");
    assert!(approx(cost, 3.0 * SONNET_TURN_USD), "cost {cost}");
    assert!(result["modelUsage"][CLAUDE_MODEL]["costUSD"].is_number());
    // The requests: streamed Messages API calls with tools.
    let turns = model.anthropic_turns();
    assert_eq!(turns.len(), 3);
    assert!(turns.iter().all(|t| t.path == "/v1/messages?beta=true" && t.body["stream"] == true));
    let tools = turns[0].tool_names();
    for tool in ["Bash", "Write", "Read", "Edit"] {
        assert!(tools.iter().any(|t| t == tool), "{tool} in {tools:?}");
    }
    assert_eq!(turns[0].header("x-api-key"), Some("sk-ant-scripted"));
    assert!(network_attempts(&model).is_empty(), "{:?}", network_attempts(&model));
    capture_stable("claude-write.jsonl", &run, &model, &s.root);

    // Overwriting a file Claude has not read: Write is refused until a Read.
    std::fs::write(s.repo.join("README.md"), "old\n").expect("README");
    crate::git(&s.repo, &["add", "README.md"]);
    crate::git(&s.repo, &["commit", "-qm", "readme"]);
    let before = model.anthropic_turns().len();
    let run = claude(&bin, &s.repo, &claude_env(&model, &s.home), &claude_args("@write README.md new"), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(read(&s.repo.join("README.md")), "new");
    let results = run.tool_results();
    assert_eq!(results.len(), 4, "pwd, Write (refused), Read, Write: {run:#?}");
    assert_eq!(results[1]["is_error"], true);
    let text = results[1]["content"].as_str().expect("text");
    assert!(text.contains("has not been read yet"), "{text}");
    assert_eq!(model.anthropic_turns().len() - before, 5);
}

/// (a) acceptEdits refuses edits under `.claude/worktree-pool/` ("sensitive file") and allows
/// them in a linked worktree under `.claude/worktrees/`.
#[test]
fn claude_accept_edits_and_dot_claude_worktrees() {
    let Some(bin) = require_cli("claude", "claude_accept_edits_and_dot_claude_worktrees") else {
        return;
    };
    let model = ScriptedModel::start();
    let s = setup();
    crate::git(&s.repo, &["worktree", "add", "-q", ".claude/worktree-pool/wt-1", "-b", "wt-1"]);
    crate::git(&s.repo, &["worktree", "add", "-q", ".claude/worktrees/wt-1", "-b", "wt-2"]);
    let env = claude_env(&model, &s.home);
    let args = claude_args("@write src/x.txt hi");

    let pool = s.repo.join(".claude/worktree-pool/wt-1");
    let run = claude(&bin, &pool, &env, &args, &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(!pool.join("src/x.txt").exists());
    let denial = &run.result()["permission_denials"][0];
    assert_eq!(denial["tool_name"], "Write");
    let refused = run.tool_results()[1];
    assert_eq!(refused["is_error"], true);
    let text = refused["content"].as_str().expect("text");
    assert!(text.contains("which is a sensitive file"), "{text}");

    let own = s.repo.join(".claude/worktrees/wt-1");
    let run = claude(&bin, &own, &env, &args, &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(read(&own.join("src/x.txt")), "hi");
    assert_eq!(run.result()["permission_denials"], serde_json::json!([]));
}

/// (b) Without `--permission-mode` a Write is refused; the run still succeeds (exit 0) and the
/// result lists the denial.
#[test]
fn claude_default_mode_denies_write() {
    let Some(bin) = require_cli("claude", "claude_default_mode_denies_write") else { return };
    let model = ScriptedModel::start();
    let s = setup();
    let args: Vec<String> = ["-p", "@write b.txt hi\n@say fine", "--output-format", "stream-json", "--verbose"].map(str::to_owned).to_vec();
    let run = claude(&bin, &s.repo, &claude_env(&model, &s.home), &args, &["--model", CLAUDE_MODEL]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(!s.repo.join("b.txt").exists());
    let result = run.result();
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], "fine");
    let file_path = s.repo.join("b.txt").display().to_string();
    assert_eq!(
        result["permission_denials"],
        serde_json::json!([{
            "tool_name": "Write",
            "tool_use_id": result["permission_denials"][0]["tool_use_id"],
            "tool_input": { "file_path": file_path, "content": "hi" },
        }])
    );
    // Each denial is also streamed as it happens.
    let denied: Vec<&Value> = run.of_type("system").into_iter().filter(|e| e["subtype"] == "permission_denied").collect();
    assert_eq!(denied.len(), 1, "{run:#?}");
    assert_eq!(denied[0]["tool_name"], "Write");
    assert_eq!(denied[0]["tool_use_id"], result["permission_denials"][0]["tool_use_id"]);
    assert!(denied[0]["message"].as_str().is_some_and(|m| m.starts_with("Claude requested permissions to write to")));
    // `pwd` was allowed even in the default mode; the Write came back as an error result.
    let results = run.tool_results();
    assert_eq!(results[0]["is_error"], false);
    assert_eq!(results[1]["is_error"], true);
    assert_eq!(results[1]["content"], format!("Claude requested permissions to write to {file_path}, but you haven't granted it yet."));
    capture_stable("claude-denied.jsonl", &run, &model, &s.root);
}

/// (c) `--max-turns` (not in `--help`) is accepted; the run ends with `error_max_turns`, exit 1.
#[test]
fn claude_max_turns() {
    let Some(bin) = require_cli("claude", "claude_max_turns") else { return };
    let model = ScriptedModel::start();
    let s = setup();
    let args = claude_args("@loop");
    let run = claude(&bin, &s.repo, &claude_env(&model, &s.home), &args, &["--max-turns", "2"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let result = run.result();
    assert_eq!(result["subtype"], "error_max_turns");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["terminal_reason"], "max_turns");
    assert_eq!(result["stop_reason"], "tool_use");
    assert_eq!(result["errors"], serde_json::json!(["Reached maximum number of turns (2)"]));
    assert_eq!(result["num_turns"], 3);
    assert!(result.get("result").is_none(), "{result}");
    assert_eq!(result["usage"]["input_tokens"], 2000);
    assert_eq!(model.anthropic_turns().len(), 2);
    capture_stable("claude-max-turns.jsonl", &run, &model, &s.root);
}

/// (d) `--resume <session_id>` with a new prompt sends the earlier turns, and `WANT` lines in the
/// new prompt get written. `total_cost_usd` and `modelUsage` then cover the whole session,
/// `usage` only this process.
#[test]
fn claude_resume_carries_turns_and_feedback() {
    let Some(bin) = require_cli("claude", "claude_resume_carries_turns_and_feedback") else {
        return;
    };
    let model = ScriptedModel::start();
    let s = setup();
    let env = claude_env(&model, &s.home);
    let first = claude(&bin, &s.repo, &env, &claude_args("@write a.txt 1\n@say first"), &[]);
    assert_eq!(first.code, 0, "{first:#?}");
    let session = first.result()["session_id"].as_str().expect("session id").to_owned();
    let before = model.anthropic_turns().len();

    let prompt = "QA failed:\nWANT b.txt=2\nWANT sub/c.txt=3";
    let run = claude(&bin, &s.repo, &env, &claude_args(prompt), &["--resume", &session]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(read(&s.repo.join("b.txt")), "2");
    assert_eq!(read(&s.repo.join("sub/c.txt")), "3");
    let result = run.result();
    assert_eq!(result["session_id"], session.as_str());
    assert_eq!(result["result"], "first", "the first prompt's @say");
    // Two Writes (the cwd is known from the first run's pwd) and the final answer.
    let turns = &model.anthropic_turns()[before..];
    assert_eq!(turns.len(), 3);
    let messages = turns[0].body["messages"].as_array().expect("messages");
    let text = serde_json::to_string(messages).expect("json");
    assert!(text.contains("@write a.txt 1"), "earlier prompt carried");
    assert!(text.contains("\"name\":\"Write\""), "earlier tool call carried");
    assert_eq!(turns[0].header("x-claude-code-session-id"), Some(session.as_str()));
    assert_eq!(result["usage"]["input_tokens"], 3000);
    let cost = result["total_cost_usd"].as_f64().expect("cost");
    assert!(approx(cost, 6.0 * SONNET_TURN_USD), "whole session: {cost}");
    assert_eq!(result["modelUsage"][CLAUDE_MODEL]["inputTokens"], 6000);
    assert_eq!(result["model_usage_since_last_result"][CLAUDE_MODEL]["inputTokens"], 3000);
    capture_stable("claude-resume.jsonl", &run, &model, &s.root);
}

/// (e) Which Bash commands acceptEdits allows, and the rule syntax that allows one command.
#[test]
fn claude_bash_permissions() {
    let Some(bin) = require_cli("claude", "claude_bash_permissions") else { return };
    let model = ScriptedModel::start();
    let s = setup();
    std::fs::write(s.repo.join("Makefile"), "test:\n\t@echo make-test-ran\nlint:\n\t@echo lint-ran\n").expect("Makefile");
    let env = claude_env(&model, &s.home);
    // (command, allowed) for each rule set.
    let outcome = |extra: &[&str], commands: &[&str]| -> Vec<(String, bool, String)> {
        let prompt: String = commands.iter().map(|c| format!("@run {c}\n")).collect();
        let run = claude(&bin, &s.repo, &env, &claude_args(&prompt), extra);
        assert_eq!(run.code, 0, "{run:#?}");
        // Each `user` event with a tool result says how permission was decided:
        // `tool_result_meta: [{id, permission_decision: {decision: "accept"|"reject", …}, …}]`.
        let users = run.of_type("user");
        assert_eq!(users.len(), commands.len(), "{run:#?}");
        commands
            .iter()
            .zip(users)
            .map(|(c, u)| {
                let text = u["message"]["content"][0]["content"].as_str().unwrap_or_default().to_owned();
                let meta = &u["tool_result_meta"][0];
                let decision = meta["permission_decision"]["decision"].as_str().unwrap_or_default();
                assert!(decision == "accept" || decision == "reject", "{u}");
                if decision == "reject" {
                    assert_eq!(meta["non_execution_kind"], "user-rejected");
                    assert_eq!(u["message"]["content"][0]["is_error"], true);
                    assert!(text.contains("approval") || text.contains("was blocked"), "{text}");
                }
                ((*c).to_owned(), decision == "accept", text)
            })
            .collect()
    };
    let check = |got: Vec<(String, bool, String)>, want: &[bool]| {
        for ((cmd, allowed, text), want) in got.iter().zip(want) {
            assert_eq!(allowed, want, "{cmd}: {text}");
        }
    };
    // No rule: read-only commands and simple file changes in the cwd are allowed.
    check(
        outcome(
            &[],
            &[
                "pwd",
                "ls",
                "git status --short",
                "echo x > out.txt",
                "mkdir -p d && touch d/f",
                "rm -f out.txt",
                "make test",
                "sh -c 'exit 0'",
                "git add -A",
                "touch /tmp/fugue-agent-cli-outside",
            ],
        ),
        &[true, true, true, true, true, true, false, false, false, false],
    );
    let cmds = ["make test", "make test VERBOSE=1", "make testx", "sh -c 'make test'"];
    // An exact rule allows exactly that command.
    check(outcome(&["--allowedTools", "Bash(make test)"], &cmds), &[true, false, false, false]);
    // `:*` and ` *` are prefix rules.
    check(outcome(&["--allowedTools", "Bash(make test:*)"], &cmds), &[true, true, false, false]);
    check(outcome(&["--allowedTools", "Bash(make test *)"], &cmds), &[true, true, false, false]);
    // A wrapper rule allows anything it wraps.
    check(outcome(&["--allowedTools", "Bash(sh -c *)"], &cmds), &[false, false, false, true]);
    // Compound commands are checked part by part; a rule for the whole also matches it.
    let compound = ["make test && make lint", "make test; make lint", "make test && echo ok", "FOO=1 make test"];
    check(outcome(&["--allowedTools", "Bash(make test)", "Bash(make lint)"], &compound), &[true, true, true, false]);
    check(outcome(&["--allowedTools", "Bash(make test && make lint)"], &compound), &[true, false, false, false]);
    // Several rules: separate arguments, or one comma-separated argument, or --settings.
    let two = ["make test", "git add -A", "sh -c true"];
    let want = [true, true, false];
    check(outcome(&["--allowedTools", "Bash(make test)", "Bash(git add:*)"], &two), &want);
    check(outcome(&["--allowedTools", "Bash(make test),Bash(git add:*)"], &two), &want);
    let settings = r#"{"permissions":{"allow":["Bash(make test)","Bash(git add:*)"]}}"#;
    check(outcome(&["--settings", settings], &two), &want);
}

/// (f) `CLAUDE_CONFIG_DIR` holds everything (`.claude.json` included, `HOME` stays empty);
/// `--resume` works from a second process with the same config dir (even from another cwd) and
/// fails with another config dir.
#[test]
fn claude_config_dir_and_resume() {
    let Some(bin) = require_cli("claude", "claude_config_dir_and_resume") else { return };
    let model = ScriptedModel::start();
    let s = setup();
    let config = s.root.join("config");
    let mut env = claude_env(&model, &s.home);
    env.push(("CLAUDE_CONFIG_DIR".into(), config.display().to_string()));
    let first = claude(&bin, &s.repo, &env, &claude_args("@run ls\n@say x"), &[]);
    assert_eq!(first.code, 0, "{first:#?}");
    let session = first.result()["session_id"].as_str().expect("session").to_owned();
    assert_eq!(std::fs::read_dir(&s.home).expect("home").count(), 0, "HOME untouched");
    assert!(config.join(".claude.json").is_file());
    let project = s.repo.display().to_string().replace(['/', '.'], "-");
    assert!(config.join("projects").join(&project).join(format!("{session}.jsonl")).is_file());
    assert!(config.join("sessions").is_dir());

    let again = claude(&bin, &s.repo, &env, &claude_args("next"), &["--resume", &session]);
    assert_eq!(again.code, 0, "{again:#?}");
    assert_eq!(again.result()["session_id"], session.as_str());
    let elsewhere = s.root.join("other");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let moved = claude(&bin, &elsewhere, &env, &claude_args("next"), &["--resume", &session]);
    assert_eq!(moved.code, 0, "{moved:#?}");

    let mut other = claude_env(&model, &s.home);
    other.push(("CLAUDE_CONFIG_DIR".into(), s.root.join("config2").display().to_string()));
    let lost = claude(&bin, &s.repo, &other, &claude_args("next"), &["--resume", &session]);
    assert_eq!(lost.code, 1, "{lost:#?}");
    let result = lost.result();
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["is_error"], true);
    let missing = format!("No conversation found with session ID: {session}");
    assert_eq!(result["errors"], serde_json::json!([missing]));
    assert!(lost.stderr.contains(&missing), "{}", lost.stderr);
}

/// (f) Five concurrent sessions all succeed, with one shared `HOME` and with a config dir each.
#[test]
fn claude_concurrent_sessions() {
    let Some(bin) = require_cli("claude", "claude_concurrent_sessions") else { return };
    let model = ScriptedModel::start();
    let s = setup();
    for per_session_config in [false, true] {
        let children: Vec<(PathBuf, Child)> = (1..=5)
            .map(|i| {
                let repo = s.root.join(format!("r{per_session_config}{i}"));
                init_repo(&repo);
                let mut env = claude_env(&model, &s.home);
                if per_session_config {
                    let dir = s.root.join(format!("config{i}"));
                    env.push(("CLAUDE_CONFIG_DIR".into(), dir.display().to_string()));
                }
                let mut cmd = agent_command(&bin, &repo, &env);
                cmd.args(claude_args(&format!("@write f.txt {i}")));
                (repo, spawn(cmd))
            })
            .collect();
        for (i, (repo, child)) in children.into_iter().enumerate() {
            let run = finish(child);
            assert_eq!(run.code, 0, "{run:#?}");
            assert_eq!(run.result()["is_error"], false);
            assert_eq!(read(&repo.join("f.txt")), (i + 1).to_string());
        }
    }
}

/// (f) A login is kept in `.credentials.json` in the config dir (`claudeAiOauth`), or in
/// `CLAUDE_SECURESTORAGE_CONFIG_DIR`, or given as `CLAUDE_CODE_OAUTH_TOKEN`; the token goes out
/// as `Authorization: Bearer`. With the file (not the env token) it also tries
/// api.anthropic.com.
#[test]
fn claude_oauth_credentials() {
    let Some(bin) = require_cli("claude", "claude_oauth_credentials") else { return };
    let model = ScriptedModel::start();
    let s = setup();
    let expires =
        (std::time::SystemTime::now() + Duration::from_secs(86_400)).duration_since(std::time::UNIX_EPOCH).expect("time").as_millis();
    let creds = |token: &str| {
        serde_json::json!({ "claudeAiOauth": {
            "accessToken": token, "refreshToken": "sk-ant-ort01-fake", "expiresAt": expires,
            "scopes": ["user:inference", "user:profile"], "subscriptionType": "max" } })
        .to_string()
    };
    // API key env vars out; only the login.
    let base: Vec<(String, String)> = claude_env(&model, &s.home).into_iter().filter(|(k, _)| k != "ANTHROPIC_API_KEY").collect();
    let bearer = |env: Vec<(String, String)>| {
        let before = model.requests().len();
        let run = claude(&bin, &s.repo, &env, &claude_args("hi"), &[]);
        assert_eq!(run.code, 0, "{run:#?}");
        assert_eq!(run.of_type("system")[0]["apiKeySource"], "none");
        let reqs = model.requests();
        let turn = reqs[before..].iter().find(|r| r.is_anthropic_turn()).expect("turn");
        assert_eq!(turn.header("x-api-key"), None);
        let connects = reqs[before..].iter().filter(|r| r.method == "CONNECT").count();
        (turn.header("authorization").map(str::to_owned), connects)
    };

    let config = s.root.join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(config.join(".credentials.json"), creds("sk-ant-oat01-file")).expect("creds");
    let mut env = base.clone();
    env.push(("CLAUDE_CONFIG_DIR".into(), config.display().to_string()));
    let (auth, connects) = bearer(env);
    assert_eq!(auth.as_deref(), Some("Bearer sk-ant-oat01-file"));
    assert!(connects > 0, "tries api.anthropic.com with a login");

    let secure = s.root.join("secure");
    std::fs::create_dir_all(&secure).expect("mkdir");
    std::fs::write(secure.join(".credentials.json"), creds("sk-ant-oat01-secure")).expect("creds");
    let mut env = base.clone();
    env.push(("CLAUDE_CONFIG_DIR".into(), s.root.join("config2").display().to_string()));
    env.push(("CLAUDE_SECURESTORAGE_CONFIG_DIR".into(), secure.display().to_string()));
    assert_eq!(bearer(env).0.as_deref(), Some("Bearer sk-ant-oat01-secure"));
    assert!(!s.root.join("config2/.credentials.json").exists());

    let mut env = base;
    env.push(("CLAUDE_CONFIG_DIR".into(), s.root.join("config3").display().to_string()));
    env.push(("CLAUDE_CODE_OAUTH_TOKEN".into(), "sk-ant-oat01-env".into()));
    let (auth, connects) = bearer(env);
    assert_eq!(auth.as_deref(), Some("Bearer sk-ant-oat01-env"));
    assert_eq!(connects, 0);
}

/// (i) An API error ends the run with exit 1 and a `result` of subtype `success` (sic) with
/// `is_error`, `api_error_status` and the message in `result`.
#[test]
fn claude_api_errors() {
    let Some(bin) = require_cli("claude", "claude_api_errors") else { return };
    let model = ScriptedModel::start();
    let s = setup();
    let env = claude_env(&model, &s.home);
    let run = claude(&bin, &s.repo, &env, &claude_args("@fail 500"), &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let result = run.result();
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["terminal_reason"], "api_error");
    assert_eq!(result["api_error_status"], 500);
    assert_eq!(result["api_error_type"], "api_error");
    assert_eq!(result["total_cost_usd"], 0);
    let text = result["result"].as_str().expect("result text");
    assert!(text.starts_with("API Error: 500 scripted failure (500)."), "{text}");
    let assistant = run.of_type("assistant")[0];
    assert_eq!(assistant["is_api_error_message"], true);
    assert_eq!(assistant["error"], "server_error");
    assert_eq!(assistant["message"]["model"], "<synthetic>");
    capture_stable("claude-api-error.jsonl", &run, &model, &s.root);

    let run = claude(&bin, &s.repo, &env, &claude_args("@fail 400"), &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let result = run.result();
    assert_eq!(result["is_error"], true);
    assert_eq!(result["api_error_status"], 400);
    assert_eq!(result["api_error_type"], "invalid_request_error");
    assert_eq!(result["result"], "API Error: 400 scripted failure (400)");
}

// ---------------------------------------------------------------------------------------------
// Codex

fn codex(bin: &Path, cwd: &Path, env: &[(String, String)], args: &[String]) -> Run {
    let mut cmd = agent_command(bin, cwd, env);
    cmd.args(args);
    run(cmd)
}

/// `exec --json --sandbox workspace-write --skip-git-repo-check <overrides> <prompt>`.
fn codex_exec(model: &ScriptedModel, prompt: &str) -> Vec<String> {
    let mut args: Vec<String> = ["exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check"].map(str::to_owned).to_vec();
    args.extend(codex_config_args(model));
    args.push(prompt.into());
    args
}

/// `exec resume --json --skip-git-repo-check <overrides> [-c sandbox_mode=…] <id> <prompt>`.
fn codex_resume(model: &ScriptedModel, thread: &str, prompt: &str, writable: bool) -> Vec<String> {
    let mut args: Vec<String> = ["exec", "resume", "--json", "--skip-git-repo-check"].map(str::to_owned).to_vec();
    args.extend(codex_config_args(model));
    if writable {
        args.extend(["-c".to_owned(), r#"sandbox_mode="workspace-write""#.to_owned()]);
    }
    args.extend([thread.to_owned(), prompt.to_owned()]);
    args
}

/// (g) With the provider given only as `-c` overrides, `exec` runs `exec_command` in the
/// workspace; the JSONL; no network attempts with the switches, several without.
#[test]
fn codex_exec_writes_with_overrides_only() {
    let Some(bin) = require_cli("codex", "codex_exec_writes_with_overrides_only") else { return };
    let model = ScriptedModel::start();
    let s = setup();
    let codex_home = s.root.join("codex-home");
    let env = codex_env(&model, &s.home, &codex_home);
    let prompt = "Do it.\n@write src/a.txt hello\\nworld\n@say all good";
    let run = codex(&bin, &s.repo, &env, &codex_exec(&model, prompt));
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(read(&s.repo.join("src/a.txt")), "hello\nworld");
    let kinds: Vec<&str> = run.events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "thread.started",
            "item.completed", // the model-metadata warning
            "turn.started",
            "item.started",
            "item.completed",
            "item.completed",
            "turn.completed"
        ]
    );
    assert!(run.events[0]["thread_id"].is_string());
    assert_eq!(run.events[1]["item"]["type"], "error");
    let cmd = &run.events[4]["item"];
    assert_eq!(cmd["type"], "command_execution");
    assert_eq!(cmd["status"], "completed");
    assert_eq!(cmd["exit_code"], 0);
    let command = cmd["command"].as_str().expect("command");
    assert!(command.starts_with("/bin/bash -lc "), "{command}");
    assert_eq!(run.events[5]["item"]["type"], "agent_message");
    assert_eq!(run.events[5]["item"]["text"], "all good");
    // Two requests (the command, the answer), each 1000 in (300 cached) / 200 out.
    assert_eq!(
        run.events[6]["usage"],
        serde_json::json!({ "input_tokens": 2000, "cached_input_tokens": 600,
            "cache_write_input_tokens": 0, "output_tokens": 400, "reasoning_output_tokens": 0 })
    );
    let turns = model.openai_turns();
    assert_eq!(turns.len(), 2);
    assert!(turns[0].tool_names().iter().any(|t| t == "exec_command"));
    assert_eq!(turns[0].body["stream"], true);
    assert_eq!(turns[0].header("authorization"), Some("Bearer sk-scripted"));
    let out = &turns[1].body["input"];
    let output = out.as_array().expect("input").iter().find(|i| i["type"] == "function_call_output");
    assert!(output.is_some(), "{out}");
    assert!(network_attempts(&model).is_empty(), "{:?}", network_attempts(&model));
    // Codex makes no helper binaries under /tmp (and says so); the target dir, where these
    // tests' temp dirs are, may itself be under /tmp in a clone there.
    assert_eq!(run.stderr.contains("Refusing to create helper binaries"), codex_home.starts_with("/tmp"), "{}", run.stderr);
    capture_stable("codex-write.jsonl", &run, &model, &s.root);

    // Without the switches: plugin sync and analytics try github.com and chatgpt.com.
    let quiet = ScriptedModel::start();
    let mut args: Vec<String> = ["exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check"].map(str::to_owned).to_vec();
    args.extend(codex_provider_args(&quiet));
    args.push("@say hi".into());
    let env = codex_env(&quiet, &s.home, &s.root.join("codex-home-2"));
    let run = codex(&bin, &s.repo, &env, &args);
    assert_eq!(run.code, 0, "{run:#?}");
    let attempts = network_attempts(&quiet);
    assert!(attempts.iter().any(|h| h == "github.com:443"), "{attempts:?}");
}

/// (g) `exec resume <thread_id> <prompt>` with `-c sandbox_mode="workspace-write"` carries the
/// earlier turns and can write; without it the resumed turn is read-only; another `CODEX_HOME`
/// does not know the thread. `turn.completed.usage` on resume counts the whole thread.
#[test]
fn codex_resume_carries_turns_and_feedback() {
    let Some(bin) = require_cli("codex", "codex_resume_carries_turns_and_feedback") else {
        return;
    };
    let model = ScriptedModel::start();
    let s = setup();
    let codex_home = s.root.join("codex-home");
    let env = codex_env(&model, &s.home, &codex_home);
    let first = codex(&bin, &s.repo, &env, &codex_exec(&model, "@write a.txt 1\n@say first"));
    assert_eq!(first.code, 0, "{first:#?}");
    let thread = first.events[0]["thread_id"].as_str().expect("thread id").to_owned();
    assert_eq!(read(&s.repo.join("a.txt")), "1");
    let before = model.openai_turns().len();

    let prompt = "QA says:\nWANT b.txt=2";
    let run = codex(&bin, &s.repo, &env, &codex_resume(&model, &thread, prompt, true));
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(read(&s.repo.join("b.txt")), "2");
    assert_eq!(run.events[0]["thread_id"], thread.as_str());
    let turns = &model.openai_turns()[before..];
    assert_eq!(turns.len(), 2);
    let input = serde_json::to_string(&turns[0].body["input"]).expect("json");
    assert!(input.contains("@write a.txt 1"), "earlier prompt carried");
    assert!(input.contains("function_call_output"), "earlier tool output carried");
    let done = run.of_type("turn.completed");
    assert_eq!(done[0]["usage"]["input_tokens"], 4000, "the whole thread");
    capture_stable("codex-resume.jsonl", &run, &model, &s.root);

    // No sandbox override: resume runs read-only.
    let before = model.openai_turns().len();
    let run = codex(&bin, &s.repo, &env, &codex_resume(&model, &thread, "WANT c.txt=3", false));
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(!s.repo.join("c.txt").exists());
    let last = model.openai_turns().pop().expect("turn");
    assert!(model.openai_turns().len() > before);
    let input = serde_json::to_string(&last.body["input"]).expect("json");
    assert!(input.contains("Read-only file system"), "{input}");

    // Another CODEX_HOME does not have the thread.
    let other = codex_env(&model, &s.home, &s.root.join("codex-home-2"));
    let run = codex(&bin, &s.repo, &other, &codex_resume(&model, &thread, "again", true));
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains(&format!("no rollout found for thread id {thread}")), "{}", run.stderr);
}

/// (g) What a `CODEX_HOME` holds after a run, the `/tmp` warning, concurrency on one
/// `CODEX_HOME`, and what `codex login --with-api-key` keeps in `auth.json`.
#[test]
fn codex_home_contents() {
    let Some(bin) = require_cli("codex", "codex_home_contents") else { return };
    let model = ScriptedModel::start();
    let s = setup();
    let codex_home = s.root.join("codex-home");
    let env = codex_env(&model, &s.home, &codex_home);
    let run = codex(&bin, &s.repo, &env, &codex_exec(&model, "@say hi"));
    assert_eq!(run.code, 0, "{run:#?}");
    let thread = run.events[0]["thread_id"].as_str().expect("thread id");
    assert_eq!(std::fs::read_dir(&s.home).expect("home").count(), 0, "HOME untouched");
    for entry in ["sessions", "state_5.sqlite", "installation_id", "skills"] {
        assert!(codex_home.join(entry).exists(), "{entry} in CODEX_HOME");
    }
    // The helper binaries, which Codex refuses to put under /tmp (see below).
    assert_eq!(codex_home.join("tmp/arg0-linux").exists(), !codex_home.starts_with("/tmp"), "tmp/arg0-linux in CODEX_HOME");
    assert!(!codex_home.join("auth.json").exists());
    assert!(!codex_home.join("config.toml").exists());
    let mut rollouts = Vec::new();
    let mut dirs = vec![codex_home.join("sessions")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                rollouts.push(path);
            }
        }
    }
    assert_eq!(rollouts.len(), 1);
    let name = rollouts[0].file_name().expect("name").to_string_lossy().into_owned();
    assert!(name.starts_with("rollout-") && name.ends_with(&format!("-{thread}.jsonl")), "{name}");

    // A CODEX_HOME that does not exist: refused.
    let missing = s.root.join("codex-home-missing");
    let env_missing = codex_env(&model, &s.home, &missing);
    std::fs::remove_dir(&missing).expect("rmdir");
    let run = codex(&bin, &s.repo, &env_missing, &codex_exec(&model, "@say hi"));
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("Error finding codex home: CODEX_HOME points to"), "{}", run.stderr);

    // A CODEX_HOME under /tmp: a warning on stderr, and it carries on.
    let tmp = tempfile::Builder::new().prefix("fugue-codex-home").tempdir_in("/tmp").expect("tmp");
    let env_tmp = codex_env(&model, &s.home, tmp.path());
    let run = codex(&bin, &s.repo, &env_tmp, &codex_exec(&model, "@say hi"));
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("Refusing to create helper binaries under temporary dir"));

    // Five concurrent runs on one CODEX_HOME.
    let children: Vec<(PathBuf, Child)> = (1..=5)
        .map(|i| {
            let repo = s.root.join(format!("r{i}"));
            init_repo(&repo);
            let mut cmd = agent_command(&bin, &repo, &env);
            cmd.args(codex_exec(&model, &format!("@write f.txt {i}")));
            (repo, spawn(cmd))
        })
        .collect();
    for (i, (repo, child)) in children.into_iter().enumerate() {
        let run = finish(child);
        assert_eq!(run.code, 0, "{run:#?}");
        assert_eq!(read(&repo.join("f.txt")), (i + 1).to_string());
    }

    // An API-key login.
    let login_home = s.root.join("codex-login");
    let mut cmd = agent_command(&bin, &s.repo, &codex_env(&model, &s.home, &login_home));
    cmd.args(["login", "--with-api-key"]).stdin(Stdio::piped());
    let mut child = spawn(cmd);
    {
        let mut stdin = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, b"sk-fake-key\n").expect("write key");
    }
    let run = finish(child);
    assert_eq!(run.code, 0, "{run:#?}");
    let auth: Value = serde_json::from_str(&read(&login_home.join("auth.json"))).expect("json");
    assert_eq!(auth, serde_json::json!({ "auth_mode": "apikey", "OPENAI_API_KEY": "sk-fake-key" }));
}

/// (h) A failing model: an `error` event and `turn.failed` with the message, exit 1.
#[test]
fn codex_errors() {
    let Some(bin) = require_cli("codex", "codex_errors") else { return };
    let model = ScriptedModel::start();
    let s = setup();
    let env = codex_env(&model, &s.home, &s.root.join("codex-home"));
    let run = codex(&bin, &s.repo, &env, &codex_exec(&model, "@fail 500"));
    assert_eq!(run.code, 1, "{run:#?}");
    let message = "We\u{2019}re currently experiencing high demand, which may cause temporary errors.";
    let tail: Vec<&Value> = run.events.iter().rev().take(2).collect();
    assert_eq!(tail[1], &serde_json::json!({ "type": "error", "message": message }));
    assert_eq!(tail[0], &serde_json::json!({ "type": "turn.failed", "error": { "message": message } }));
    assert!(run.of_type("turn.completed").is_empty());
    capture_stable("codex-error.jsonl", &run, &model, &s.root);

    let run = codex(&bin, &s.repo, &env, &codex_exec(&model, "@fail 400"));
    assert_eq!(run.code, 1, "{run:#?}");
    let failed = run.of_type("turn.failed");
    let text = failed[0]["error"]["message"].as_str().expect("message");
    let body: Value = serde_json::from_str(text).expect("the response body, verbatim");
    assert_eq!(body["error"]["message"], "scripted failure (400)");

    let run = codex(&bin, &s.repo, &env, &codex_exec(&model, "@fail stream"));
    assert_eq!(run.code, 1, "{run:#?}");
    let failed = run.of_type("turn.failed");
    assert_eq!(failed[0]["error"]["message"], "stream disconnected before completion: scripted failure (stream)");
}

// ---------------------------------------------------------------------------------------------
// The server itself (no CLI needed)

/// The config is used per request and can be changed while serving.
#[test]
fn server_usage_is_configurable() {
    let model = ScriptedModel::start();
    let mut config = model.config();
    config.anthropic_usage.input = 7;
    config.model = Some("claude-haiku-4-5".into());
    model.set_config(config);
    assert_eq!(model.config().anthropic_usage.input, 7);
    let custom = ScriptedModel::start_with(ModelConfig { model: None, ..ModelConfig::default() });
    assert!(custom.base_url().starts_with("http://127.0.0.1:"));
}

/// Serves until the file `$FUGUE_SCRIPTED_MODEL_DUMP.stop` appears, writing the URL to
/// `$FUGUE_SCRIPTED_MODEL_DUMP.url` and each request as a JSON line to
/// `$FUGUE_SCRIPTED_MODEL_DUMP`: for exploring a CLI by hand.
#[test]
#[ignore = "a tool: serves until told to stop"]
fn serve() {
    let dump = PathBuf::from(std::env::var("FUGUE_SCRIPTED_MODEL_DUMP").expect("dump path"));
    let server = ScriptedModel::start();
    std::fs::write(dump.with_extension("url"), server.base_url()).expect("write url");
    let stop = dump.with_extension("stop");
    let mut seen = 0;
    while !stop.exists() {
        let reqs = server.requests();
        if reqs.len() > seen {
            let mut text = String::new();
            for r in &reqs[seen..] {
                let line = serde_json::json!({ "method": r.method, "path": r.path,
                    "headers": r.headers, "body": r.body });
                text.push_str(&line.to_string());
                text.push('\n');
            }
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&dump).expect("open dump");
            std::io::Write::write_all(&mut f, text.as_bytes()).expect("append");
            seen = reqs.len();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
