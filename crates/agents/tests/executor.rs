//! The `Executor` seam: what the command agent asks an executor for (a recording fake stands
//! in for one), how each outcome becomes a report or an error, and the local executor driven
//! directly through the trait against real processes.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fugue_agents::{CommandAgent, LocalExecutor, agent_from_spec_with};
use fugue_core::{
    Agent, AgentContext, AgentError, AgentOutcome, AgentSpec, CommandAgentSpec, ExecError, Executor, HumanDuration, ProcessOutcome,
    ProcessSpec, PromptInput, TaskId, async_trait,
};

mod procs;
use procs::{read_pid, wait_dead, wait_for_file};

/// What the fake saw: the spec, and the prompt and feedback files' contents while it ran.
#[derive(Debug, Clone)]
struct Seen {
    spec: ProcessSpec,
    prompt_file: Option<String>,
    feedback_file: Option<String>,
}

/// An executor that records each spec and answers with `reply`.
#[derive(Debug)]
struct Recording {
    seen: Mutex<Vec<Seen>>,
    reply: fn() -> Result<ProcessOutcome, ExecError>,
}

impl Recording {
    fn new(reply: fn() -> Result<ProcessOutcome, ExecError>) -> Arc<Self> {
        Arc::new(Self { seen: Mutex::new(Vec::new()), reply })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Executor for Recording {
    fn name(&self) -> &str {
        "recording"
    }

    async fn run(&self, spec: ProcessSpec) -> Result<ProcessOutcome, ExecError> {
        let read = |key: &str| spec.env.get(key).and_then(|p| std::fs::read_to_string(p).ok());
        let seen = Seen { prompt_file: read("FUGUE_PROMPT_FILE"), feedback_file: read("FUGUE_FEEDBACK_FILE"), spec: spec.clone() };
        self.seen.lock().expect("lock").push(seen);
        (self.reply)()
    }
}

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

fn ok_with(outcome: ProcessOutcome) -> Result<ProcessOutcome, ExecError> {
    Ok(outcome.with_output("the output\n", 0))
}

#[tokio::test]
async fn the_executor_receives_the_spec_of_the_template() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prompt = "fix it; $(rm -rf /) \"q\"";
    let mut s = spec(&["claude", "-p", "{prompt}", "--id={task_id}", "{prompt_file}", "--in", "{worktree}", "{feedback}"]);
    s.prompt_via = PromptInput::Stdin;
    s.timeout = Some(HumanDuration(Duration::from_secs(90)));
    s.env.insert("EXTRA".to_owned(), "from-spec".to_owned());
    s.env.insert("FUGUE_TASK_ID".to_owned(), "spoofed".to_owned());
    let fake = Recording::new(|| ok_with(ProcessOutcome::exited(0)));
    let agent = CommandAgent::new("claude", s)
        .with_executor(fake.clone())
        .with_grace(Duration::from_millis(300))
        .with_output_cap(1000)
        .with_log_cap(5000);
    assert_eq!(agent.executor().name(), "recording");
    let mut ctx = context(dir.path(), prompt);
    ctx.feedback = Some("tests fail".to_owned());
    ctx.env.insert("FROM_CTX".to_owned(), "ctx".to_owned());
    ctx.env.insert("EXTRA".to_owned(), "from-ctx".to_owned());
    ctx.attempt = 2;
    let report = agent.run(ctx).await.expect("runs");
    assert_eq!(report.outcome, AgentOutcome::ReadyForQa);

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let Seen { spec, prompt_file, feedback_file } = &seen[0];
    let worktree = dir.path().to_str().expect("utf-8 temp dir");
    let prompt_path = spec.env["FUGUE_PROMPT_FILE"].clone();
    assert_eq!(
        spec.argv,
        ["claude", "-p", prompt, "--id=task-7", &prompt_path, "--in", worktree, "tests fail"].map(str::to_owned).to_vec()
    );
    assert_eq!(spec.cwd, dir.path());
    assert_eq!(spec.label, "task-7");
    // A confined run (the default where the kernel has Landlock) also gets its TMPDIR and git
    // settings, and the spec says what it may write.
    let keys: BTreeSet<&str> =
        spec.env.keys().map(String::as_str).filter(|k| !k.starts_with("GIT_CONFIG_") && !["TMPDIR", "TMP", "TEMP"].contains(k)).collect();
    assert_eq!(keys, BTreeSet::from(["EXTRA", "FROM_CTX", "FUGUE_FEEDBACK_FILE", "FUGUE_PROMPT_FILE", "FUGUE_TASK_ID", "FUGUE_WORKTREE"]));
    if let Some(confine) = &spec.confine {
        assert!(confine.write.contains(&dir.path().to_path_buf()), "{confine:?}");
        assert!(confine.write.contains(&Path::new(&spec.env["TMPDIR"]).to_path_buf()), "{confine:?}");
        assert!(!Path::new(&spec.env["TMPDIR"]).exists(), "the private temp dir outlived the run");
    }
    assert_eq!(spec.confine.is_some(), fugue_agents::confine::support().enforced());
    assert_eq!(spec.env["FUGUE_TASK_ID"], "task-7", "the plan cannot override fugue's variables");
    assert_eq!(spec.env["EXTRA"], "from-ctx", "the context's env wins over the spec's");
    assert_eq!(spec.env["FUGUE_WORKTREE"], worktree);
    assert_eq!(spec.stdin.as_deref(), Some(prompt.as_bytes()));
    assert_eq!(spec.timeout, Some(Duration::from_secs(90)));
    assert_eq!((spec.grace, spec.output_cap, spec.log_cap), (Duration::from_millis(300), 1000, 5000));
    assert_eq!(spec.log_file.as_deref(), Some(dir.path().join("logs/task-7.log").as_path()));
    let header = spec.log_header.as_deref().expect("header");
    assert!(
        header.starts_with("--- fugue: agent `claude` for task `task-7` (attempt 2, iteration 0): `claude` with 7 argument(s)"),
        "{header}"
    );
    assert_eq!(prompt_file.as_deref(), Some(prompt), "the prompt file exists while the process runs");
    assert_eq!(feedback_file.as_deref(), Some("tests fail"));
    assert!(!Path::new(&prompt_path).exists(), "the prompt file outlived the run");
}

#[tokio::test]
async fn the_context_timeout_wins_and_args_mode_has_no_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = spec(&["aider", "--message", "{prompt}"]);
    s.timeout = Some(HumanDuration(Duration::from_secs(90)));
    let fake = Recording::new(|| ok_with(ProcessOutcome::exited(0)));
    let mut ctx = context(dir.path(), "p");
    ctx.timeout = Some(Duration::from_secs(5));
    CommandAgent::new("aider", s).with_executor(fake.clone()).run(ctx).await.expect("runs");
    let spec = &fake.seen()[0].spec;
    assert_eq!(spec.timeout, Some(Duration::from_secs(5)));
    assert_eq!(spec.stdin, None);
    assert_eq!(spec.argv, ["aider", "--message", "p"]);
}

/// Runs an agent whose executor answers `reply`, with a 42 s timeout in its spec.
async fn run_with(reply: fn() -> Result<ProcessOutcome, ExecError>) -> Result<fugue_core::AgentReport, AgentError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = spec(&["agent-cli", "{prompt}"]);
    s.timeout = Some(HumanDuration(Duration::from_secs(42)));
    CommandAgent::new("fake", s).with_executor(Recording::new(reply)).run(context(dir.path(), "p")).await
}

#[tokio::test]
async fn outcomes_map_to_reports_and_errors() {
    let report = run_with(|| ok_with(ProcessOutcome::exited(0))).await.expect("exit 0");
    assert_eq!((report.outcome, report.exit_code), (AgentOutcome::ReadyForQa, Some(0)));
    assert!(report.summary.starts_with("agent `fake` exited with code 0 after"), "{}", report.summary);
    assert_eq!(report.output, "the output\n");

    let report = run_with(|| ok_with(ProcessOutcome::exited(3))).await.expect("exit 3");
    assert_eq!((report.outcome, report.exit_code), (AgentOutcome::Failed, Some(3)));
    assert!(report.summary.starts_with("agent `fake` exited with code 3 after"), "{}", report.summary);
    assert_eq!(report.output, "the output\n");

    let report = run_with(|| ok_with(ProcessOutcome::killed_by(9))).await.expect("signal 9");
    assert_eq!((report.outcome, report.exit_code), (AgentOutcome::Failed, None));
    assert!(report.summary.starts_with("agent `fake` was killed by SIGKILL (9) after"), "{}", report.summary);

    let report = run_with(|| ok_with(ProcessOutcome::default())).await.expect("no code, no signal");
    assert_eq!(report.outcome, AgentOutcome::Failed);
    assert!(report.summary.contains("ended in an unknown way"), "{}", report.summary);

    let err = run_with(|| ok_with(ProcessOutcome::timed_out())).await.expect_err("timed out");
    assert!(matches!(&err, AgentError::Timeout { agent, after } if agent == "fake" && *after == Duration::from_secs(42)), "{err}");
}

#[tokio::test]
async fn executor_errors_map_to_agent_errors() {
    fn spawn(kind: ErrorKind) -> Result<ProcessOutcome, ExecError> {
        Err(ExecError::Spawn { program: "agent-cli".to_owned(), cwd: PathBuf::from("/w"), kind, message: "boom".to_owned() })
    }
    let err = run_with(|| spawn(ErrorKind::NotFound)).await.expect_err("not found");
    assert!(matches!(err, AgentError::Spawn { .. }));
    assert!(
        err.to_string().contains("program `agent-cli` was not found: install it or put it on PATH, or fix `agents.fake.command`"),
        "{err}"
    );
    let err = run_with(|| spawn(ErrorKind::PermissionDenied)).await.expect_err("denied");
    assert!(err.to_string().contains("program `agent-cli` is not executable"), "{err}");
    let err = run_with(|| spawn(ErrorKind::NotADirectory)).await.expect_err("no cwd");
    assert!(err.to_string().contains("the worktree /w is not a directory"), "{err}");
    let err = run_with(|| spawn(ErrorKind::Other)).await.expect_err("other");
    assert!(err.to_string().contains("could not run `agent-cli`: boom"), "{err}");

    let err = run_with(|| {
        Err(ExecError::Scheduler { executor: "slurm".to_owned(), label: "task-7".to_owned(), message: "queue full".to_owned() })
    })
    .await
    .expect_err("scheduler");
    assert!(matches!(err, AgentError::Spawn { .. }));
    assert!(err.to_string().contains("failed to run `task-7` on slurm: queue full"), "{err}");

    let err = run_with(|| Err(ExecError::Io { action: "open the task log /x".to_owned(), source: std::io::Error::other("disk full") }))
        .await
        .expect_err("io");
    assert!(matches!(err, AgentError::Io { .. }));
    assert_eq!(err.to_string(), "failed to open the task log /x: disk full");
}

#[tokio::test]
async fn plan_agents_can_take_an_executor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = Recording::new(|| ok_with(ProcessOutcome::exited(0)));
    let agent =
        agent_from_spec_with("impl", &AgentSpec::Command(spec(&["codex", "exec", "{prompt}"])), dir.path(), fake.clone()).expect("builds");
    agent.run(context(dir.path(), "go")).await.expect("runs");
    assert_eq!(fake.seen()[0].spec.argv, ["codex", "exec", "go"]);
}

// --- The local executor, through the trait.

fn sh(script: &str, dir: &Path) -> ProcessSpec {
    ProcessSpec::new("t", vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()], dir)
}

#[tokio::test]
async fn local_runs_a_spec_to_completion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = sh(r#"printf '%s|%s|' "$PWD" "$X"; cat; echo; exit 4"#, dir.path());
    spec.env.insert("X".to_owned(), "from env".to_owned());
    spec.stdin = Some(b"from stdin".to_vec());
    spec.log_file = Some(dir.path().join("logs/t.log"));
    spec.log_header = Some("--- header".to_owned());
    let executor = LocalExecutor::new();
    assert_eq!(executor.name(), "local");
    let outcome = executor.run(spec).await.expect("runs");
    let real = std::fs::canonicalize(dir.path()).expect("canonical");
    assert_eq!((outcome.exit_code, outcome.signal, outcome.timed_out), (Some(4), None, false));
    assert_eq!(outcome.output, format!("{}|from env|from stdin\n", real.display()));
    assert_eq!(outcome.dropped_bytes, 0);
    assert_eq!(outcome.job_id, None);
    assert!(!outcome.success());
    let log = std::fs::read_to_string(dir.path().join("logs/t.log")).expect("log");
    assert!(log.starts_with(&format!("--- header\n{}|from env|from stdin\n--- fugue: exit code 4 after", real.display())), "{log}");
}

#[tokio::test]
async fn local_caps_output_and_reports_signals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = sh("printf START; head -c 100000 /dev/zero | tr '\\0' x; printf END", dir.path());
    spec.output_cap = 100;
    let outcome = LocalExecutor.run(spec).await.expect("runs");
    assert!(outcome.success());
    assert_eq!(outcome.dropped_bytes, 100_008 - 100);
    assert!(outcome.output.starts_with("START") && outcome.output.ends_with("END"), "{}", outcome.output);
    assert!(outcome.output.contains("[… 99908 bytes of output dropped …]"), "{}", outcome.output);

    let outcome = LocalExecutor.run(sh("echo oops >&2; exit 1", dir.path())).await.expect("runs");
    assert_eq!((outcome.exit_code, outcome.output.as_str()), (Some(1), "oops\n"), "stderr is captured too");

    let outcome = LocalExecutor.run(sh("kill -KILL $$", dir.path())).await.expect("runs");
    assert_eq!((outcome.exit_code, outcome.signal, outcome.timed_out), (None, Some(9), false));
}

#[tokio::test]
async fn local_timeout_stops_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = sh(r#"sleep 1000 & echo $! > bg.pid; wait"#, dir.path());
    spec.timeout = Some(Duration::from_millis(800));
    spec.grace = Duration::from_millis(100);
    spec.log_file = Some(dir.path().join("t.log"));
    let outcome = LocalExecutor.run(spec).await.expect("runs");
    assert!(outcome.timed_out && outcome.exit_code.is_none() && !outcome.success(), "{outcome:?}");
    assert!(wait_dead(read_pid(&dir.path().join("bg.pid"))), "the background child survived the timeout");
    let log = std::fs::read_to_string(dir.path().join("t.log")).expect("log");
    assert!(log.contains("--- fugue: timed out after 800ms; the process group was stopped"), "{log}");
}

#[tokio::test]
async fn local_dropped_future_kills_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = sh(r#"echo $$ > main.pid; sleep 1000 & echo $! > bg.pid; wait"#, dir.path());
    spec.grace = Duration::from_millis(100);
    let bg_file = dir.path().join("bg.pid");
    let executor: Arc<dyn Executor> = Arc::new(LocalExecutor);
    let run = executor.run(spec);
    tokio::select! {
        _ = run => panic!("the process finished on its own"),
        () = wait_for_file(&bg_file) => {}
    }
    // `run` is dropped here: cancellation.
    let (main, bg) = (read_pid(&dir.path().join("main.pid")), read_pid(&bg_file));
    assert!(wait_dead(main), "the process {main} survived cancellation");
    assert!(wait_dead(bg), "its child {bg} survived cancellation");
}

#[tokio::test]
async fn local_spawn_failures_have_kinds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kind = |r: Result<ProcessOutcome, ExecError>| match r {
        Err(ExecError::Spawn { kind, .. }) => kind,
        other => panic!("expected a spawn error, got {other:?}"),
    };
    let empty = ProcessSpec::new("t", Vec::new(), dir.path());
    assert_eq!(kind(LocalExecutor.run(empty).await), ErrorKind::InvalidInput);
    let missing = ProcessSpec::new("t", vec!["fugue-no-such-program-xyz".to_owned()], dir.path());
    let err = LocalExecutor.run(missing).await;
    assert!(matches!(&err, Err(e) if e.to_string().starts_with("failed to start `fugue-no-such-program-xyz` in ")), "{err:?}");
    assert_eq!(kind(err), ErrorKind::NotFound);
    let nowhere = ProcessSpec::new("t", vec!["true".to_owned()], dir.path().join("missing"));
    assert_eq!(kind(LocalExecutor.run(nowhere).await), ErrorKind::NotADirectory);
    let script = dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\n").expect("write");
    let denied = ProcessSpec::new("t", vec![script.to_string_lossy().into_owned()], dir.path());
    assert_eq!(kind(LocalExecutor.run(denied).await), ErrorKind::PermissionDenied);
}
