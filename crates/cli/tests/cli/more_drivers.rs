//! The Gemini CLI, opencode and aider drivers end to end: `fugue run plan.yaml` from the
//! repository root (default, relative state and pool dirs), with the real CLIs talking to the
//! scripted model server of `agents::model` on 127.0.0.1 (the Gemini API for Gemini CLI, Chat
//! Completions for opencode and aider). As in `drivers`, the prompts carry the model's script
//! (`@write`, `@run`, `@fail`, …) and a failing `verify` prints a `WANT <file>=<content>` line
//! that only QA's feedback can carry to the next iteration.
//!
//! Each CLI is pointed at the server by environment only: a fresh `HOME` with the user's own
//! configuration in it where the CLI needs one (Gemini's `settings.json` choosing API-key auth),
//! and the CLI's configuration variables in the plan agent's `env` (`GOOGLE_GEMINI_BASE_URL`,
//! `OPENCODE_CONFIG_CONTENT`, `OPENAI_API_BASE`), as a user would write them. The server is also
//! `HTTPS_PROXY`, so any attempt to reach the internet is recorded (a `CONNECT`) and refused.
//!
//! Each test skips with a loud `SKIPPED:` line when its CLI is not on `PATH`, unless
//! `FUGUE_AGENT_CLIS_REQUIRED=1`.

use serde_json::{Value, json};

use crate::Output;
use crate::drivers::{Setup, assert_ran, fixing_task};

/// The model the Gemini agent pins (`-m`): without one Gemini CLI asks its router model first.
const GEMINI_MODEL: &str = "gemini-2.5-flash";

/// opencode's model ids: priced in its config, and not. (An id containing `gpt` would get
/// `apply_patch` in place of `write` and `edit`.)
const OPENCODE_PRICED: &str = "test-model";
const OPENCODE_UNPRICED: &str = "free-model";

/// aider's model (`openai/<id>` goes to `OPENAI_API_BASE`).
const AIDER_MODEL: &str = "openai/gpt-test";

impl Setup {
    /// `cli` with a fresh HOME and the server as the proxy that refuses the internet.
    fn new(cli: &str, test: &str) -> Option<Self> {
        Self::with_env(cli, test, crate::agents::offline_env)
    }

    /// Gemini CLI: the user's `~/.gemini/settings.json` chooses API-key auth (else it exits 41,
    /// "Invalid auth method selected") and turns off update checks and usage statistics.
    fn gemini(test: &str) -> Option<Self> {
        let s = Self::new("gemini", test)?;
        let dir = s.home.join(".gemini");
        std::fs::create_dir_all(&dir).expect("mkdir .gemini");
        let settings = json!({
            "security": { "auth": { "selectedType": "gemini-api-key" } },
            "general": { "enableAutoUpdate": false, "enableAutoUpdateNotification": false },
            "privacy": { "usageStatisticsEnabled": false },
        });
        std::fs::write(dir.join("settings.json"), settings.to_string()).expect("write settings.json");
        Some(s)
    }

    fn gemini_agent(&self) -> String {
        format!(
            "{{ driver: gemini, model: {GEMINI_MODEL}, timeout: 2m, env: {{ GOOGLE_GEMINI_BASE_URL: \"{}\", GEMINI_API_KEY: sk-gemini-test }} }}",
            self.model.base_url()
        )
    }

    /// opencode with the `scripted` provider in `OPENCODE_CONFIG_CONTENT`: one model priced
    /// ($3/M in, $15/M out), one not.
    fn opencode_agent(&self, model: &str) -> String {
        let config = json!({
            "autoupdate": false,
            "share": "disabled",
            "provider": { "scripted": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Scripted",
                "options": { "baseURL": format!("{}/v1", self.model.base_url()), "apiKey": "{env:SCRIPTED_KEY}" },
                "models": {
                    OPENCODE_PRICED: { "name": "Test Model", "cost": { "input": 3, "output": 15 } },
                    OPENCODE_UNPRICED: { "name": "Free Model" },
                },
            } },
        });
        format!(
            "{{ driver: opencode, provider: scripted, model: {model}, timeout: 2m, env: {{ SCRIPTED_KEY: sk-scripted, OPENCODE_CONFIG_CONTENT: {} }} }}",
            serde_json::to_string(&config.to_string()).expect("json")
        )
    }

    /// aider against `OPENAI_API_BASE`, priced through a model metadata file when `priced`.
    fn aider_agent(&self, priced: bool) -> String {
        let args = if priced {
            let file = self.root.join("aider-model-metadata.json");
            let meta = json!({ AIDER_MODEL: {
                "max_input_tokens": 128_000, "max_output_tokens": 8192,
                "input_cost_per_token": 3e-6, "output_cost_per_token": 1.5e-5,
                "litellm_provider": "openai", "mode": "chat",
            } });
            std::fs::write(&file, meta.to_string()).expect("write metadata");
            format!(", args: [\"--model-metadata-file\", \"{}\"]", file.display())
        } else {
            String::new()
        };
        format!(
            "{{ driver: aider, model: {AIDER_MODEL}, timeout: 2m{args}, env: {{ OPENAI_API_BASE: \"{}/v1\", OPENAI_API_KEY: sk-scripted }} }}",
            self.model.base_url()
        )
    }

    /// The `CONNECT`s the server saw as `HTTPS_PROXY`: attempts to reach the internet.
    fn network_attempts(&self) -> Vec<String> {
        self.model.requests().into_iter().filter(|r| r.method == "CONNECT").map(|r| r.path).collect()
    }

    /// The agent log of `task`, for failure messages.
    fn agent_log(&self, task: &str) -> String {
        std::fs::read_to_string(self.repo.join(format!(".claude/logs/{task}.agent.log"))).unwrap_or_default()
    }
}

/// Two parallel writing tasks and the fixing task, all with `agent`.
fn edit_plan(agent_name: &str, agent: &str) -> String {
    let mut plan = format!(
        "version: 1\nparallelization: {{ max_agents: 3, retry_on_failure: 0 }}\ngates: {{ max_iterations: 3 }}\nagents:\n  {agent_name}: {agent}\ntasks:\n"
    );
    for t in ["one", "two"] {
        plan.push_str(&format!(
            "  - {{ id: {t}, agent: {agent_name}, prompt: \"@write src/{t}.txt {t} was here\", modifies: [\"src/{t}.txt\"] }}\n"
        ));
    }
    plan.push_str(&fixing_task("fix", agent_name, "out.txt", "fixed"));
    plan
}

/// The parallel tasks' edits and the fixed file are on main; returns the fixing task's two
/// `agent_finished` events (rejected, then fixed).
fn assert_edits_and_fix(s: &Setup, out: &Output) -> Vec<Value> {
    assert_ran(out, 0);
    for t in ["one", "two"] {
        assert_eq!(s.on_main(&format!("src/{t}.txt")).as_deref(), Some(format!("{t} was here").as_str()), "{}", out.stdout);
        let finished = s.events("agent_finished", t);
        assert_eq!(finished.len(), 1, "{finished:?}");
        assert_eq!(finished[0]["outcome"], "ready_for_qa", "{}", finished[0]);
    }
    assert_eq!(s.on_main("out.txt").as_deref(), Some("fixed"), "{}", s.agent_log("fix"));
    let runs = s.events("agent_finished", "fix");
    assert_eq!(runs.len(), 2, "one rejected iteration, one fixed: {runs:?}");
    let qa = s.events("qa_finished", "fix");
    assert_eq!(qa[0]["verdict"], "TASK_REJECTED", "{qa:?}");
    runs
}

/// The failed iteration of `task`: its `agent_finished` event.
fn failed_run(s: &Setup, task: &str) -> Value {
    let runs = s.events("agent_finished", task);
    assert_eq!(runs.len(), 1, "{runs:?}\n{}", s.agent_log(task));
    assert_eq!(runs[0]["outcome"], "failed", "{}\n{}", runs[0], s.agent_log(task));
    runs[0].clone()
}

fn approx(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

// ---------------------------------------------------------------------------------------------
// Gemini CLI

#[test]
fn gemini_edits_land_and_a_failing_verify_is_fixed_by_resuming_the_session() {
    let Some(s) = Setup::gemini("gemini_edits_and_resume") else { return };
    let out = s.run(&edit_plan("gemini", &s.gemini_agent()));
    let runs = assert_edits_and_fix(&s, &out);
    let session = runs[0]["session_id"].as_str().unwrap_or_default();
    assert!(!session.is_empty(), "{runs:?}");
    assert_eq!(runs[0]["session_id"], runs[1]["session_id"], "`--resume` continued the session: {runs:?}");
    // The resumed session sent the earlier turns, then the findings.
    let last = s.model.gemini_turns().into_iter().rfind(|r| r.text().contains("WANT out.txt=fixed")).expect("a turn");
    assert!(last.path.contains(&format!("/models/{GEMINI_MODEL}:streamGenerateContent")), "{}", last.path);
    let contents = last.body["contents"].as_array().expect("contents");
    assert!(contents.len() > 3, "earlier turns were sent: {}", contents.len());
    assert!(last.text().contains("@write out.txt broken"), "the earlier prompt was sent");
    // Only the pinned model was asked: no router call.
    assert!(
        s.model.requests().iter().all(|r| !r.path.contains("flash-lite")),
        "{:?}",
        s.model.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    // Two model turns per run (the write, the answer), 1000 prompt tokens (300 cached) and 200
    // out each; Gemini CLI reports no cost, so none is made up.
    for r in &runs {
        let u = &r["usage"];
        assert_eq!(
            (u["input_tokens"].as_u64(), u["cache_read_tokens"].as_u64(), u["output_tokens"].as_u64()),
            (Some(1400), Some(600), Some(400)),
            "{r}"
        );
        assert!(u["cost_usd"].is_null(), "{r}");
    }
    // Progress saw the tool calls.
    assert!(s.events("agent_activity", "one").iter().any(|a| a["doing"].as_str().is_some_and(|d| d.starts_with("write_file"))));
    assert!(s.network_attempts().is_empty(), "{:?}", s.network_attempts());
}

#[test]
fn gemini_refused_shell_and_api_errors_fail_the_iteration_with_the_cause() {
    let Some(s) = Setup::gemini("gemini_refusal_and_api_error") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ max_agents: 2, retry_on_failure: 0 }}\ngates: {{ max_iterations: 1 }}\nagents:\n  gemini: {}\ntasks:\n\
         \x20 - {{ id: shell, agent: gemini, prompt: \"@run echo hi > shell.txt\", modifies: [\"shell.txt\"] }}\n\
         \x20 - {{ id: broken, agent: gemini, prompt: \"@fail 400\", modifies: [\"x.txt\"] }}\n",
        s.gemini_agent()
    );
    let out = s.run(&plan);
    assert_ran(&out, 1);
    // `edit` is `--approval-mode auto_edit`: no shell tool; the call comes back as
    // `tool_not_registered` while the CLI exits 0.
    let shell = failed_run(&s, "shell");
    assert_eq!(shell["failure"], "permission_denied", "{shell}");
    assert!(shell["denials"][0].as_str().is_some_and(|d| d.starts_with("run_shell_command")), "{shell}");
    assert!(s.on_main("shell.txt").is_none());
    let offered = s.model.gemini_turns()[0].tool_names();
    assert!(offered.iter().any(|t| t == "write_file") && !offered.iter().any(|t| t == "run_shell_command"), "{offered:?}");
    let reason = s.events("attempt_failed", "shell")[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("refused") && reason.contains("run_shell_command"), "{reason}");
    // HTTP 400: an error result, exit code 144.
    let broken = failed_run(&s, "broken");
    assert_eq!(broken["failure"], "api", "{broken}");
    let reason = s.events("attempt_failed", "broken")[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("scripted failure (400)"), "{reason}");
    // Asked once: a 400 is not retried.
    let asked = s.model.gemini_turns().iter().filter(|r| r.text().contains("@fail 400")).count();
    assert_eq!(asked, 1);
}

// ---------------------------------------------------------------------------------------------
// opencode

#[test]
fn opencode_edits_land_and_a_failing_verify_is_fixed_by_continuing_the_session() {
    let Some(s) = Setup::new("opencode", "opencode_edits_and_session") else { return };
    let out = s.run(&edit_plan("opencode", &s.opencode_agent(OPENCODE_PRICED)));
    let runs = assert_edits_and_fix(&s, &out);
    let session = runs[0]["session_id"].as_str().unwrap_or_default();
    assert!(session.starts_with("ses_"), "{runs:?}");
    assert_eq!(runs[0]["session_id"], runs[1]["session_id"], "`--session` continued the session: {runs:?}");
    let last = s.model.chat_turns().into_iter().rfind(|r| r.text().contains("WANT out.txt=fixed")).expect("a turn");
    let messages = last.body["messages"].as_array().expect("messages");
    assert!(messages.len() > 4, "earlier turns were sent: {}", messages.len());
    assert!(last.text().contains("@write out.txt broken"), "the earlier prompt was sent");
    // The prompt went in verbatim on stdin (an argv prompt would be wrapped in quotes).
    let first = s.model.chat_turns().into_iter().find(|r| r.text().contains("@write src/one.txt")).expect("turn");
    let human = first.body["messages"].as_array().and_then(|m| m.iter().find(|m| m["role"] == "user")).cloned().unwrap_or_default();
    let human = human["content"].as_str().unwrap_or_default();
    assert!(human.starts_with("[fugue] You work on task `one`") && human.ends_with("@write src/one.txt one was here"), "{human}");
    // Two steps per run, 1000 in and 200 out each, priced at $3/M and $15/M: $0.012.
    for r in &runs {
        let u = &r["usage"];
        assert_eq!((u["input_tokens"].as_u64(), u["output_tokens"].as_u64()), (Some(2000), Some(400)), "{r}");
        assert!(approx(u["cost_usd"].as_f64(), 0.012), "{r}");
    }
    assert!(s.events("agent_activity", "one").iter().any(|a| a["doing"].as_str().is_some_and(|d| d.starts_with("write"))));
    // opencode installs `@opencode-ai/plugin` into its config dir in the background on every
    // start (a warning in its log when that fails); nothing else goes out.
    let attempts = s.network_attempts();
    assert!(attempts.iter().all(|a| a == "registry.npmjs.org:443"), "{attempts:?}");
}

#[test]
fn opencode_refused_shell_api_errors_and_unknown_cost() {
    let Some(s) = Setup::new("opencode", "opencode_refusal_and_api_error") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ max_agents: 5, retry_on_failure: 0 }}\ngates: {{ max_iterations: 1 }}\nagents:\n  opencode: {}\ntasks:\n\
         \x20 - {{ id: shell, agent: opencode, prompt: \"@run echo hi > shell.txt\", modifies: [\"shell.txt\"] }}\n\
         \x20 - {{ id: other, agent: opencode, prompt: \"@run echo hi > other.txt\", modifies: [\"other.txt\"], verify: [\"test -f other.txt\"] }}\n\
         \x20 - {{ id: checked, agent: opencode, prompt: \"@write c.txt c\\n@run test -f c.txt\", modifies: [\"c.txt\"], verify: [\"test -f c.txt\"] }}\n\
         \x20 - {{ id: broken, agent: opencode, prompt: \"@fail 400\", modifies: [\"x.txt\"] }}\n\
         \x20 - {{ id: free, agent: opencode, prompt: \"@write free.txt free\", modifies: [\"free.txt\"] }}\n",
        s.opencode_agent(OPENCODE_UNPRICED)
    );
    let out = s.run(&plan);
    assert_ran(&out, 1);
    // `edit` denies other shell commands: the call is refused, the file never written.
    let shell = failed_run(&s, "shell");
    assert_eq!(shell["failure"], "permission_denied", "{shell}");
    assert!(shell["denials"][0].as_str().is_some_and(|d| d.starts_with("bash")), "{shell}");
    assert!(s.on_main("shell.txt").is_none());
    // With a verify command, `bash` is offered for it alone: another command is refused.
    let other = failed_run(&s, "other");
    assert_eq!(other["failure"], "permission_denied", "{other}");
    assert!(other["denials"][0].as_str().is_some_and(|d| d.starts_with("bash: echo hi")), "{other}");
    assert!(s.on_main("other.txt").is_none());
    // The task's own verify command is allowed.
    let checked = &s.events("agent_finished", "checked")[0];
    assert_eq!(checked["outcome"], "ready_for_qa", "{checked}\n{}", s.agent_log("checked"));
    assert!(
        s.agent_log("checked").contains(r#""tool":"bash","callID""#) && s.agent_log("checked").contains(r#""exit":0"#),
        "{}",
        s.agent_log("checked")
    );
    let broken = failed_run(&s, "broken");
    assert_eq!(broken["failure"], "api", "{broken}");
    let reason = s.events("attempt_failed", "broken")[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("scripted failure (400)"), "{reason}");
    // A model without a price: tokens, and no cost (opencode says 0; that is not a price).
    assert_eq!(s.on_main("free.txt").as_deref(), Some("free"));
    let free = &s.events("agent_finished", "free")[0];
    assert_eq!(free["usage"]["input_tokens"].as_u64(), Some(2000), "{free}");
    assert!(free["usage"]["cost_usd"].is_null(), "{free}");
}

// ---------------------------------------------------------------------------------------------
// aider

#[test]
fn aider_edits_land_and_a_failing_verify_is_fixed_in_a_fresh_run() {
    let Some(s) = Setup::new("aider", "aider_edits_and_fresh_run") else { return };
    let out = s.run(&edit_plan("aider", &s.aider_agent(true)));
    let runs = assert_edits_and_fix(&s, &out);
    // aider has no session: the findings went into a fresh run with the task's prompt.
    assert!(runs.iter().all(|r| r["session_id"].is_null()), "{runs:?}");
    let fixed = s.model.chat_turns().into_iter().filter(|r| r.text().contains("WANT out.txt=fixed")).collect::<Vec<_>>();
    assert!(!fixed.is_empty());
    assert!(fixed[0].text().contains("@write out.txt broken"), "the task's prompt came with the findings");
    // One reply per run, 1000 in and 200 out, priced by the metadata file: $0.006.
    for r in &runs {
        let u = &r["usage"];
        assert_eq!((u["input_tokens"].as_u64(), u["output_tokens"].as_u64()), (Some(1000), Some(200)), "{r}");
        assert!(approx(u["cost_usd"].as_f64(), 0.006), "{r}");
    }
    // aider's files stayed out of the worktrees and off main.
    for path in [".gitignore", ".aider.chat.history.md", ".aider.input.history"] {
        assert!(s.on_main(path).is_none(), "{path} on main");
    }
    // With no git identity configured, aider would write one into the repository's shared
    // config (and concurrent runs crash on its lock): it was given one instead.
    let (written, name) = crate::git_try(&s.repo, &["config", "--local", "--get", "user.name"]);
    assert!(!written, "aider wrote user.name = {name} into .git/config");
    assert!(s.network_attempts().is_empty(), "{:?}", s.network_attempts());
}

#[test]
fn aider_api_errors_fail_the_iteration_though_it_exits_0_and_unknown_cost() {
    let Some(s) = Setup::new("aider", "aider_api_error") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ max_agents: 2, retry_on_failure: 0 }}\ngates: {{ max_iterations: 1 }}\nagents:\n  aider: {}\ntasks:\n\
         \x20 - {{ id: broken, agent: aider, prompt: \"@fail 400\", modifies: [\"x.txt\"] }}\n\
         \x20 - {{ id: free, agent: aider, prompt: \"@write free.txt free\", modifies: [\"free.txt\"] }}\n",
        s.aider_agent(false)
    );
    let out = s.run(&plan);
    assert_ran(&out, 1);
    let broken = failed_run(&s, "broken");
    assert_eq!(broken["failure"], "api", "{broken}");
    let reason = s.events("attempt_failed", "broken")[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("scripted failure (400)"), "{reason}");
    // No price known: tokens, and no cost.
    assert_eq!(s.on_main("free.txt").as_deref(), Some("free"));
    let free = &s.events("agent_finished", "free")[0];
    assert_eq!(free["usage"]["input_tokens"].as_u64(), Some(1000), "{free}");
    assert!(free["usage"]["cost_usd"].is_null(), "{free}");
}
