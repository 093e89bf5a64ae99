//! The CLI drivers end to end: `fugue run plan.yaml` from the repository root (default,
//! relative state and pool dirs), with the real Claude Code and Codex CLIs talking to the
//! scripted model server of `agents::model` on 127.0.0.1. The prompts carry the model's
//! script (`@write`, `@loop`, …; see `agents::model`), and a failing `verify` prints `WANT
//! <file>=<content>` lines that only QA's feedback can carry to the next iteration.
//!
//! Each test skips with a loud `SKIPPED:` line when its CLI is not on `PATH`, unless
//! `FUGUE_AGENT_CLIS_REQUIRED=1` (`.ci/run` sets it and installs the CLIs).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::agents::model::ScriptedModel;
use crate::agents::{CLAUDE_MODEL, CODEX_KEY_ENV, CODEX_MODEL, agent_command, agent_temp, claude_env, codex_env, init_repo, require_cli};
use crate::{GIT_IDENTITY, Output, git};

/// A repository, a fresh HOME, the scripted model and the environment for fugue (shared with
/// `more_drivers`).
pub(crate) struct Setup {
    _tmp: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) repo: PathBuf,
    pub(crate) home: PathBuf,
    pub(crate) model: ScriptedModel,
    pub(crate) env: Vec<(String, String)>,
}

impl Setup {
    /// A setup for `cli` (skipped when it is not on PATH) whose environment `env` makes from
    /// the model and the fresh HOME.
    pub(crate) fn with_env(cli: &str, test: &str, env: impl FnOnce(&ScriptedModel, &Path) -> Vec<(String, String)>) -> Option<Self> {
        require_cli(cli, test)?;
        let tmp = agent_temp();
        let root = tmp.path().to_path_buf();
        let repo = root.join("repo");
        let home = root.join("home");
        std::fs::create_dir_all(&repo).expect("mkdir repo");
        std::fs::create_dir_all(&home).expect("mkdir home");
        init_repo(&repo);
        let model = ScriptedModel::start();
        let env = env(&model, &home);
        Some(Self { _tmp: tmp, root, repo, home, model, env })
    }

    fn claude(test: &str) -> Option<Self> {
        Self::with_env("claude", test, claude_env)
    }

    fn codex(test: &str) -> Option<Self> {
        // The user's own CODEX_HOME; fugue gives each slot one of its own, seeded from it.
        Self::with_env("codex", test, |model, home| codex_env(model, home, &home.join(".codex")))
    }

    /// `fugue ARGS` in the repository root, as a user runs it.
    pub(crate) fn fugue(&self, args: &[&str]) -> Output {
        let mut cmd = agent_command(Path::new(env!("CARGO_BIN_EXE_fugue")), &self.repo, &self.env);
        cmd.env("NO_COLOR", "1").envs(GIT_IDENTITY);
        cmd.args(args).output().expect("run fugue").into()
    }

    pub(crate) fn run(&self, plan: &str) -> Output {
        std::fs::write(self.repo.join("plan.yaml"), plan).expect("write the plan");
        self.fugue(&["run", "plan.yaml"])
    }

    /// The file on `main` (not in a worktree).
    pub(crate) fn on_main(&self, path: &str) -> Option<String> {
        let (ok, text) = crate::git_try(&self.repo, &["show", &format!("main:{path}")]);
        ok.then_some(text)
    }

    pub(crate) fn journal(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.repo.join(".claude/fugue/journal.ndjson")).expect("journal");
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    pub(crate) fn events(&self, kind: &str, task: &str) -> Vec<Value> {
        self.journal().into_iter().filter(|e| e["event"] == kind && e["task"] == task).collect()
    }

    /// The Codex provider, as a plan's `overrides` (values are TOML).
    fn codex_agent(&self, extra: &str) -> String {
        format!(
            "{{ driver: codex, model: {CODEX_MODEL}, provider: scripted, timeout: 2m, env: {{ {CODEX_KEY_ENV}: sk-scripted }}, overrides: {{ \
             'model_providers.scripted.name': '\"scripted\"', 'model_providers.scripted.base_url': '\"{}/v1\"', \
             'model_providers.scripted.env_key': '\"{CODEX_KEY_ENV}\"', 'model_providers.scripted.wire_api': '\"responses\"', \
             'model_providers.scripted.request_max_retries': '0', 'model_providers.scripted.stream_max_retries': '0', \
             'features.plugins': 'false', 'analytics.enabled': 'false' }}{extra} }}",
            self.model.base_url()
        )
    }
}

fn claude_agent(extra: &str) -> String {
    format!("{{ driver: claude, model: {CLAUDE_MODEL}, timeout: 2m{extra} }}")
}

pub(crate) fn assert_ran(out: &Output, code: i32) {
    assert_eq!(out.code, code, "fugue exited {} (want {code})\nstdout:\n{}\nstderr:\n{}", out.code, out.stdout, out.stderr);
}

/// A task whose verify fails until `file` holds `want`, printing the line that says so.
pub(crate) fn fixing_task(id: &str, agent: &str, file: &str, want: &str) -> String {
    format!(
        "  - id: {id}\n    agent: {agent}\n    prompt: \"@write {file} broken\"\n    modifies: [\"{file}\"]\n    \
         verify: [\"sh -c 'grep -qx {want} {file} || {{ echo \\\"WANT {file}={want}\\\"; exit 1; }}'\"]\n"
    )
}

#[test]
fn claude_edits_land_on_main_with_their_cost_in_status_and_report() {
    let Some(s) = Setup::claude("claude_edits_land_on_main") else { return };
    let mut plan =
        format!("version: 1\nparallelization: {{ max_agents: 3, retry_on_failure: 0 }}\nagents:\n  claude: {}\ntasks:\n", claude_agent(""));
    for t in ["alpha", "beta", "gamma"] {
        plan.push_str(&format!(
            "  - {{ id: {t}, agent: claude, prompt: \"@write src/{t}.txt {t} was here\", modifies: [\"src/{t}.txt\"], verify: [\"grep -q {t} src/{t}.txt\"] }}\n"
        ));
    }
    let out = s.run(&plan);
    assert_ran(&out, 0);
    for t in ["alpha", "beta", "gamma"] {
        assert_eq!(s.on_main(&format!("src/{t}.txt")).as_deref(), Some(format!("{t} was here").as_str()), "{}", out.stdout);
        let finished = s.events("agent_finished", t);
        assert_eq!(finished.len(), 1, "{finished:?}");
        let f = &finished[0];
        assert_eq!(f["outcome"], "ready_for_qa", "{f}");
        assert!(f["session_id"].as_str().is_some_and(|id| !id.is_empty()), "{f}");
        assert!(f["usage"]["input_tokens"].as_u64().is_some_and(|n| n >= 1000), "{f}");
        assert!(f["usage"]["cost_usd"].as_f64().is_some_and(|c| c > 0.0), "Claude Code reports a cost: {f}");
        // Progress saw what the agent did while it ran.
        assert!(s.events("agent_activity", t).iter().any(|a| a["doing"].as_str().is_some_and(|d| d.starts_with("Write"))));
    }
    // Worktrees live where Claude Code lets agents edit.
    let started = s.events("attempt_started", "alpha");
    assert!(started[0]["worktree"].as_str().is_some_and(|w| w.contains("/.claude/worktrees/wt-")), "{started:?}");
    // The report and status show what was spent.
    assert!(out.stdout.contains("Agent Spend"), "{}", out.stdout);
    let report: Value = serde_json::from_str(&s.fugue(&["report", "--json"]).stdout).expect("report json");
    let text = report.to_string();
    assert!(text.contains("cost_usd"), "{text}");
    let status = s.fugue(&["status", "--json"]);
    let status: Value = serde_json::from_str(&status.stdout).expect("status json");
    let tasks = status["tasks"].as_array().expect("tasks");
    assert!(tasks.iter().all(|t| t["usage"]["cost_usd"].as_f64().is_some_and(|c| c > 0.0)), "{status}");
    let status_text = s.fugue(&["status"]).stdout;
    assert!(status_text.contains('$'), "{status_text}");
}

#[test]
fn claude_fixes_a_failing_verify_from_qa_feedback_in_the_same_session() {
    let Some(s) = Setup::claude("claude_feedback_by_session") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 0 }}\ngates: {{ max_iterations: 3 }}\nagents:\n  claude: {}\ntasks:\n{}",
        claude_agent(""),
        fixing_task("fix", "claude", "out.txt", "fixed")
    );
    let out = s.run(&plan);
    assert_ran(&out, 0);
    assert_eq!(s.on_main("out.txt").as_deref(), Some("fixed"));
    let runs = s.events("agent_finished", "fix");
    assert_eq!(runs.len(), 2, "one rejected iteration, one fixed: {runs:?}");
    assert_eq!(runs[0]["session_id"], runs[1]["session_id"], "the second run continued the first session: {runs:?}");
    // The continued session sent the earlier turns and the findings as the next prompt.
    let last = s.model.anthropic_turns().into_iter().last().expect("a turn");
    let messages = last.body["messages"].as_array().expect("messages");
    assert!(messages.len() > 3, "earlier turns were sent: {}", messages.len());
    assert!(last.body.to_string().contains("WANT out.txt=fixed"), "the verify output reached the model");
    // Both iterations' cost counted, not the session's running total twice.
    let cost: f64 = runs.iter().filter_map(|r| r["usage"]["cost_usd"].as_f64()).sum();
    let status: Value = serde_json::from_str(&s.fugue(&["status", "--json"]).stdout).expect("status");
    let total = status["tasks"][0]["usage"]["cost_usd"].as_f64().expect("cost");
    assert!((total - cost).abs() < 1e-9, "{total} vs {cost}");
}

#[test]
fn claude_fixes_a_failing_verify_in_a_fresh_run_with_the_findings() {
    let Some(s) = Setup::claude("claude_feedback_fresh") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 0 }}\ngates: {{ max_iterations: 3 }}\nagents:\n  claude: {}\ntasks:\n{}",
        claude_agent(", feedback: fresh"),
        fixing_task("fix", "claude", "out.txt", "fixed")
    );
    let out = s.run(&plan);
    assert_ran(&out, 0);
    assert_eq!(s.on_main("out.txt").as_deref(), Some("fixed"));
    let runs = s.events("agent_finished", "fix");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_ne!(runs[0]["session_id"], runs[1]["session_id"], "a fresh session: {runs:?}");
}

#[test]
fn codex_edits_land_and_a_failing_verify_is_fixed_by_resuming_the_thread() {
    let Some(s) = Setup::codex("codex_edits_and_resume") else { return };
    let mut plan = format!(
        "version: 1\nparallelization: {{ max_agents: 3, retry_on_failure: 0 }}\ngates: {{ max_iterations: 3 }}\nagents:\n  codex: {}\ntasks:\n",
        s.codex_agent("")
    );
    for t in ["one", "two"] {
        plan.push_str(&format!("  - {{ id: {t}, agent: codex, prompt: \"@write src/{t}.txt {t}\", modifies: [\"src/{t}.txt\"] }}\n"));
    }
    plan.push_str(&fixing_task("fix", "codex", "out.txt", "fixed"));
    let out = s.run(&plan);
    assert_ran(&out, 0);
    assert_eq!(s.on_main("src/one.txt").as_deref(), Some("one"));
    assert_eq!(s.on_main("src/two.txt").as_deref(), Some("two"));
    assert_eq!(s.on_main("out.txt").as_deref(), Some("fixed"));
    let runs = s.events("agent_finished", "fix");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["session_id"], runs[1]["session_id"], "`codex exec resume` continued the thread: {runs:?}");
    // Codex reports tokens, not dollars: the cost is unknown, never 0; and a resumed thread's
    // running total is not counted twice.
    for r in &runs {
        assert!(r["usage"]["cost_usd"].is_null(), "{r}");
        assert_eq!(r["usage"]["output_tokens"].as_u64(), Some(runs[0]["usage"]["output_tokens"].as_u64().unwrap_or(0)), "{runs:?}");
    }
    let status = s.fugue(&["status"]).stdout;
    assert!(status.contains("unknown"), "{status}");
}

#[test]
fn a_refused_edit_fails_the_iteration_and_names_the_refusal() {
    let Some(s) = Setup::claude("claude_refused_edit") else { return };
    // The agent tries to write the user's checkout, outside its worktree.
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 0 }}\nagents:\n  claude: {}\ntasks:\n  - {{ id: escape, agent: claude, prompt: \"@write ../../../escaped.txt x\", modifies: [\"escaped.txt\"] }}\n",
        claude_agent("")
    );
    let out = s.run(&plan);
    assert_ran(&out, 1);
    assert!(!s.repo.join("escaped.txt").exists());
    let runs = s.events("agent_finished", "escape");
    assert_eq!(runs[0]["outcome"], "failed", "{runs:?}");
    assert_eq!(runs[0]["failure"], "permission_denied", "{runs:?}");
    assert!(runs[0]["denials"][0].as_str().is_some_and(|d| d.starts_with("Write")), "{runs:?}");
    let failed = s.events("attempt_failed", "escape");
    let reason = failed[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("refused") && reason.contains("allowed_tools"), "{reason}");
}

#[test]
fn a_max_turns_result_fails_the_iteration_with_the_limit_named() {
    let Some(s) = Setup::claude("claude_max_turns") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 0 }}\nagents:\n  claude: {}\ntasks:\n  - {{ id: spin, agent: claude, prompt: \"@loop\", modifies: [\"x/**\"] }}\n",
        claude_agent(", max_turns: 2")
    );
    let out = s.run(&plan);
    assert_ran(&out, 1);
    let runs = s.events("agent_finished", "spin");
    assert_eq!(runs[0]["failure"], "max_turns", "{runs:?}");
    let reason = s.events("attempt_failed", "spin")[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("turn limit") && reason.contains("max_turns: 2"), "{reason}");
}

#[test]
fn an_iteration_without_changes_is_rejected_unless_the_task_allows_it() {
    let Some(s) = Setup::claude("claude_no_change") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 0, min_tasks: 1 }}\ngates: {{ max_iterations: 2 }}\nagents:\n  claude: {}\ntasks:\n\
         \x20 - {{ id: idle, agent: claude, prompt: \"@say nothing to do here\", modifies: [\"idle/**\"] }}\n\
         \x20 - {{ id: survey, agent: claude, prompt: \"@say the survey found nothing\", modifies: [\"docs/**\"], allow_empty: true }}\n",
        claude_agent("")
    );
    let out = s.run(&plan);
    assert_ran(&out, 1);
    let qa = s.events("qa_finished", "idle");
    assert_eq!(qa.len(), 2, "{qa:?}");
    assert!(qa.iter().all(|q| q["verdict"] == "TASK_REJECTED" && q["reports"][0]["gate"] == "changes"), "{qa:?}");
    // The second run was told why.
    assert!(s.model.anthropic_turns().iter().any(|r| r.body.to_string().contains("changed nothing")));
    let reason = s.events("attempt_failed", "idle")[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("changed nothing"), "{reason}");
    // The analysis task that may finish without changes is merged, and the report says so.
    assert!(s.events("merged", "survey").len() == 1);
    let report = s.fugue(&["report"]).stdout;
    assert!(report.contains("allow_empty"), "{report}");
}

#[test]
fn five_concurrent_claude_sessions_in_one_run_all_succeed() {
    let Some(s) = Setup::claude("five_claude_sessions") else { return };
    let mut plan =
        format!("version: 1\nparallelization: {{ max_agents: 5, retry_on_failure: 0 }}\nagents:\n  claude: {}\ntasks:\n", claude_agent(""));
    let ids = ["t1", "t2", "t3", "t4", "t5"];
    for t in ids {
        plan.push_str(&format!("  - {{ id: {t}, agent: claude, prompt: \"@write {t}/done.txt {t}\", modifies: [\"{t}/**\"] }}\n"));
    }
    let out = s.run(&plan);
    assert_ran(&out, 0);
    for t in ids {
        assert_eq!(s.on_main(&format!("{t}/done.txt")).as_deref(), Some(t));
    }
    // Five slots, each with a Claude config dir of its own.
    let sessions = s.repo.join(".claude/fugue/sessions/claude");
    let slots = std::fs::read_dir(&sessions).map(|d| d.count()).unwrap_or(0);
    assert_eq!(slots, 5, "{}", sessions.display());
    // They really ran at once.
    assert!(s.fugue(&["validate"]).code == 0);
}

#[test]
fn a_claude_reviewer_scores_the_change_in_a_read_only_session() {
    let Some(s) = Setup::claude("claude_reviewer") else { return };
    let review = r#"{\"score\": 4, \"findings\": [{\"severity\": \"high\", \"message\": \"the greeting is rude\"}], \"summary\": \"no\"}"#;
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 0 }}\ngates: {{ review: {{ agent: reviewer }}, max_iterations: 1 }}\n\
         agents:\n  claude: {}\n  reviewer: {}\ntasks:\n  - {{ id: greet, agent: claude, prompt: \"@write greet.txt go away\\\\n@review {review}\", modifies: [\"greet.txt\"] }}\n",
        claude_agent(""),
        claude_agent("")
    );
    let out = s.run(&plan);
    assert_ran(&out, 1);
    let qa = s.events("qa_finished", "greet");
    let review = qa[0]["reports"].as_array().and_then(|r| r.iter().find(|g| g["gate"] == "review").cloned()).expect("a review report");
    assert_eq!(review["verdict"], "fail", "{review}");
    assert_eq!(review["score"], 4.0, "{review}");
    assert!(review.to_string().contains("the greeting is rude"), "{review}");
    // The reviewer was offered no tool that writes.
    let reviewer_turn =
        s.model.anthropic_turns().into_iter().find(|r| r.body["messages"].to_string().contains("FUGUE_DIFF_FILE")).expect("review turn");
    let tools = reviewer_turn.tool_names();
    assert!(!tools.iter().any(|t| t == "Write" || t == "Edit" || t == "Bash"), "{tools:?}");
}

#[test]
fn a_command_agent_reads_its_feedback_file_with_the_default_relative_state_dir() {
    let tmp = crate::temp();
    let repo = tmp.path();
    git(repo, &["init", "-q", "-b", "main"]);
    git(repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
    // The agent writes `broken`, then whatever the QA findings it reads from its feedback file ask for.
    let script = r#"if [ -s "$FUGUE_FEEDBACK_FILE" ]; then sed -n 's/^ *WANT out.txt=\(.*\)$/\1/p' "$FUGUE_FEEDBACK_FILE" | head -n1 > out.txt; else echo broken > out.txt; fi"#;
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 0 }}\ngates: {{ review: false, max_iterations: 3 }}\nagents:\n  sh: {{ command: [\"sh\", \"-c\", {script:?}] }}\ntasks:\n{}",
        fixing_task("fix", "sh", "out.txt", "fixed")
    );
    std::fs::write(repo.join("plan.yaml"), plan).expect("plan");
    let out = crate::fugue(repo, &["run", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (_, content) = crate::git_try(repo, &["show", "main:out.txt"]);
    assert_eq!(content, "fixed");
}

/// The starter plan `fugue init --agent AGENT` writes, with its prompts replaced by the scripted
/// model's directives (the real model would read the English).
fn starter_plan(s: &Setup, agent: &str) -> String {
    let init = s.fugue(&["init", "--agent", agent]);
    assert_ran(&init, 0);
    let text = std::fs::read_to_string(s.repo.join("fugue.yaml")).expect("fugue.yaml");
    let scripted = [
        ("Define the shared types and API contracts in common/", "@write common/types.txt pub struct Order;"),
        ("Implement feature A using the contracts in common/", "@write src/feature_a/lib.txt feature A"),
        ("Implement feature B using the contracts in common/", "@write src/feature_b/lib.txt feature B"),
        ("Document features A and B in docs/", "@write docs/features.md # Features A and B"),
    ];
    let mut plan = text.clone();
    for (from, to) in scripted {
        assert!(plan.contains(from), "the starter plan changed: update this test\n{text}");
        plan = plan.replace(from, to);
    }
    plan
}

fn assert_starter_plan_landed(s: &Setup, out: &Output) {
    assert_ran(out, 0);
    for (path, want) in [
        ("common/types.txt", "pub struct Order;"),
        ("src/feature_a/lib.txt", "feature A"),
        ("src/feature_b/lib.txt", "feature B"),
        ("docs/features.md", "# Features A and B"),
    ] {
        assert_eq!(s.on_main(path).as_deref(), Some(want), "{path}\n{}", out.stdout);
    }
}

/// What a new user does: `fugue init --agent claude`, a plan of parallel tasks, `fugue run`.
/// The user's Claude Code reaches its API through their environment.
#[test]
fn the_claude_agent_fugue_init_writes_works_as_it_is() {
    let Some(s) = Setup::claude("fugue_init_claude") else { return };
    let plan = starter_plan(&s, "claude");
    std::fs::write(s.repo.join("fugue.yaml"), plan).expect("write");
    let out = s.fugue(&["run", "fugue.yaml"]);
    assert_starter_plan_landed(&s, &out);
}

/// The same with Codex, whose provider is in the user's own `~/.codex/config.toml`: each slot's
/// CODEX_HOME is seeded from it.
#[test]
fn the_codex_agent_fugue_init_writes_works_as_it_is() {
    let Some(s) = Setup::codex("fugue_init_codex") else { return };
    let home = s.home.clone();
    let config = format!(
        "model = \"{CODEX_MODEL}\"\nmodel_provider = \"scripted\"\n\n[features]\nplugins = false\n\n[analytics]\nenabled = false\n\n\
         [model_providers.scripted]\nname = \"scripted\"\nbase_url = \"{}/v1\"\nenv_key = \"{CODEX_KEY_ENV}\"\nwire_api = \"responses\"\n\
         request_max_retries = 0\nstream_max_retries = 0\n",
        s.model.base_url()
    );
    std::fs::write(home.join(".codex/config.toml"), config).expect("config.toml");
    // The user's own CODEX_HOME is the default one: fugue finds it through HOME.
    let mut s = s;
    s.env.retain(|(k, _)| k != "CODEX_HOME");
    let plan = starter_plan(&s, "codex");
    std::fs::write(s.repo.join("fugue.yaml"), plan).expect("write");
    let out = s.fugue(&["run", "fugue.yaml"]);
    assert_starter_plan_landed(&s, &out);
    let seeded = s.repo.join(".claude/fugue/sessions/codex/wt-1/config.toml");
    assert!(seeded.is_file(), "{}", seeded.display());
}

/// A model that commits its own work (as coding agents like to) is not refused for it under the
/// default `edit` permissions, and its commit lands like fugue's would.
#[test]
fn a_claude_agent_that_commits_its_own_work_is_not_refused() {
    let Some(s) = Setup::claude("claude_commits") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 0 }}\nagents:\n  claude: {}\ntasks:\n  - id: own\n    agent: claude\n    modifies: [\"own.txt\"]\n    prompt: |\n      @write own.txt mine\n      @run git add own.txt\n      @run git commit -q -m 'the agent commits'\n",
        claude_agent("")
    );
    let out = s.run(&plan);
    assert_ran(&out, 0);
    assert_eq!(s.on_main("own.txt").as_deref(), Some("mine"));
    let log = git(&s.repo, &["log", "--format=%s", "main"]);
    assert!(log.contains("the agent commits"), "{log}");
    assert!(s.events("agent_finished", "own")[0]["denials"].is_null());
}
