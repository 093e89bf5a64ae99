//! The command agent against real processes: argv without a shell, environment and prompt
//! files, stdin, exit codes and signals, output capping, non-UTF-8 output, and process-group
//! cleanup on timeout, on cancellation and after a normal exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fugue_agents::CommandAgent;
use fugue_core::{Agent, AgentContext, AgentError, AgentOutcome, CommandAgentSpec, HumanDuration, PromptInput, TaskId};

mod procs;
use procs::{read_pid, wait_dead, wait_for_file};

fn spec(command: &[&str]) -> CommandAgentSpec {
    CommandAgentSpec {
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        timeout: None,
        env: Default::default(),
        prompt_via: PromptInput::Args,
        confine: None,
    }
}

fn context(dir: &Path, prompt: &str) -> AgentContext {
    let mut ctx = AgentContext::new(TaskId::new("task-7").expect("id"), prompt, dir);
    ctx.log_file = Some(dir.join("logs/task-7.log"));
    ctx
}

#[tokio::test]
async fn shell_syntax_in_the_prompt_arrives_literally() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prompt = "fix it; touch pwned && echo $(touch pwned2) `touch pwned3` \"double\" 'single' {task_id} | cat > x";
    let agent = CommandAgent::new("echo", spec(&["printf", "%s", "{prompt}"]));
    let report = agent.run(context(dir.path(), prompt)).await.expect("runs");
    assert_eq!(report.outcome, AgentOutcome::ReadyForQa);
    assert_eq!(report.exit_code, Some(0));
    assert_eq!(report.output, prompt);
    for f in ["pwned", "pwned2", "pwned3", "x"] {
        assert!(!dir.path().join(f).exists(), "{f} was created: a shell ran");
    }
}

#[tokio::test]
async fn environment_prompt_files_placeholders_and_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"printf '%s|%s|%s|' "$FUGUE_TASK_ID" "$PWD" "$1"; cat "$FUGUE_PROMPT_FILE"; printf '|'; cat "$FUGUE_FEEDBACK_FILE"; printf '|'; cat; printf '|%s|%s' "$2" "$EXTRA""#;
    let mut s = spec(&["sh", "-c", script, "sh", "{task_id}@{worktree}", "{feedback}"]);
    s.prompt_via = PromptInput::Stdin;
    s.env.insert("EXTRA".to_owned(), "from-spec".to_owned());
    let mut ctx = context(dir.path(), "the prompt");
    ctx.feedback = Some("tests fail".to_owned());
    let report = CommandAgent::new("env", s).run(ctx).await.expect("runs");
    let real = std::fs::canonicalize(dir.path()).expect("canonical");
    let expected =
        format!("task-7|{}|task-7@{}|the prompt|tests fail|the prompt|tests fail|from-spec", real.display(), dir.path().display());
    assert_eq!(report.output, expected);
}

#[tokio::test]
async fn prompt_file_placeholder_points_at_the_prompt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = CommandAgent::new("cat", spec(&["cat", "{prompt_file}"])).run(context(dir.path(), "über-prompt\n")).await.expect("runs");
    assert_eq!(report.output, "über-prompt\n");
}

#[tokio::test]
async fn exit_codes_and_signals_are_failed_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report =
        CommandAgent::new("three", spec(&["sh", "-c", "echo oops >&2; exit 3"])).run(context(dir.path(), "p")).await.expect("runs");
    assert_eq!(report.outcome, AgentOutcome::Failed);
    assert_eq!(report.exit_code, Some(3));
    assert!(report.summary.starts_with("agent `three` exited with code 3"), "{}", report.summary);
    assert_eq!(report.output, "oops\n");

    let report = CommandAgent::new("segv", spec(&["sh", "-c", "kill -SEGV $$"])).run(context(dir.path(), "p")).await.expect("runs");
    assert_eq!(report.outcome, AgentOutcome::Failed);
    assert_eq!(report.exit_code, None);
    assert!(report.summary.contains("was killed by SIGSEGV (11)"), "{}", report.summary);
}

#[tokio::test]
async fn spawn_problems_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = CommandAgent::new("ghost", spec(&["fugue-no-such-program-xyz"])).run(context(dir.path(), "p")).await.expect_err("missing");
    assert!(matches!(err, AgentError::Spawn { .. }));
    assert!(err.to_string().contains("program `fugue-no-such-program-xyz` was not found"), "{err}");
    let err = CommandAgent::new("empty", spec(&[])).run(context(dir.path(), "p")).await.expect_err("empty");
    assert!(err.to_string().contains("its command is empty"), "{err}");
    let err = CommandAgent::new("nowhere", spec(&["true"])).run(context(&dir.path().join("missing"), "p")).await.expect_err("no dir");
    assert!(err.to_string().contains("is not a directory"), "{err}");
}

#[tokio::test]
async fn output_is_capped_in_the_report_and_kept_in_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = CommandAgent::new("chatty", spec(&["sh", "-c", "printf START; yes 0123456789 | head -c 1000000; printf END"]))
        .with_output_cap(1000);
    let ctx = context(dir.path(), "p");
    let log = ctx.log_file.clone().expect("log");
    let report = agent.run(ctx).await.expect("runs");
    assert!(report.output.starts_with("START"), "{}", &report.output[..40]);
    assert!(report.output.ends_with("END"));
    assert!(report.output.contains("bytes of output dropped"));
    assert!(report.output.len() < 1100, "{}", report.output.len());
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.starts_with("--- fugue: agent `chatty` for task `task-7` (attempt 1, iteration 0): `sh`"), "{}", &logged[..100]);
    assert!(logged.contains("START") && logged.contains("END\n--- fugue: exit code 0 after"));
    assert!(logged.len() > 1_000_000);
}

#[tokio::test]
async fn non_utf8_output_is_lossy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = CommandAgent::new("bytes", spec(&["printf", "\\377\\376ok\\n"])).run(context(dir.path(), "p")).await.expect("runs");
    assert_eq!(report.output, "\u{fffd}\u{fffd}ok\n");
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"sleep 1000 & echo $! > "$FUGUE_WORKTREE/bg.pid"; echo $$ > "$FUGUE_WORKTREE/main.pid"; wait"#;
    let mut s = spec(&["sh", "-c", script]);
    s.timeout = Some(HumanDuration(Duration::from_millis(800)));
    let agent = CommandAgent::new("sleepy", s).with_grace(Duration::from_millis(200));
    let err = agent.run(context(dir.path(), "p")).await.expect_err("times out");
    assert!(matches!(err, AgentError::Timeout { after, .. } if after == Duration::from_millis(800)), "{err}");
    let (bg, main) = (read_pid(&dir.path().join("bg.pid")), read_pid(&dir.path().join("main.pid")));
    assert!(wait_dead(main), "the agent process {main} survived");
    assert!(wait_dead(bg), "its background child {bg} survived");
}

#[tokio::test]
async fn a_group_ignoring_sigterm_gets_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"trap '' TERM; sleep 1000 & echo $! > "$FUGUE_WORKTREE/bg.pid"; wait"#;
    let mut ctx = context(dir.path(), "p");
    ctx.timeout = Some(Duration::from_millis(800));
    let agent = CommandAgent::new("stubborn", spec(&["sh", "-c", script])).with_grace(Duration::from_millis(100));
    let err = agent.run(ctx).await.expect_err("times out");
    assert!(matches!(err, AgentError::Timeout { .. }), "{err}");
    assert!(wait_dead(read_pid(&dir.path().join("bg.pid"))), "SIGTERM-ignoring child survived");
}

#[tokio::test]
async fn children_left_behind_after_exit_are_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The background child keeps stdout open: the run must still end, and the child with it.
    let script = r#"sleep 1000 & echo $! > "$FUGUE_WORKTREE/bg.pid"; echo done"#;
    let agent = CommandAgent::new("leaky", spec(&["sh", "-c", script])).with_grace(Duration::from_millis(200));
    let ctx = context(dir.path(), "p");
    let log = ctx.log_file.clone().expect("log");
    let report = agent.run(ctx).await.expect("runs");
    assert_eq!(report.outcome, AgentOutcome::ReadyForQa);
    assert_eq!(report.output, "done\n");
    assert!(wait_dead(read_pid(&dir.path().join("bg.pid"))), "the leftover child survived");
    assert!(std::fs::read_to_string(log).expect("log").contains("stopped processes the agent left running"));
}

#[tokio::test]
async fn cancelling_the_future_kills_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"sleep 1000 & echo $! > "$FUGUE_WORKTREE/bg.pid"; wait"#;
    let agent = CommandAgent::new("cancelled", spec(&["sh", "-c", script])).with_grace(Duration::from_millis(100));
    let pid_file: PathBuf = dir.path().join("bg.pid");
    let ctx = context(dir.path(), "p");
    let run = agent.run(ctx);
    tokio::select! {
        _ = run => panic!("the agent finished on its own"),
        () = wait_for_file(&pid_file) => {}
    }
    // `run` is dropped here: the engine's way of cancelling.
    assert!(wait_dead(read_pid(&pid_file)), "the child survived cancellation");
}
