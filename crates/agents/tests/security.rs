//! Security properties of agents and plugins, against real processes and real libraries:
//!
//! * shell syntax in a prompt reaches the agent literally — through argv, stdin, the prompt
//!   file and the feedback — and nothing in it is executed;
//! * values of secret-looking `env` entries never reach the task log, the report or an error;
//! * plugin libraries load only from resolved absolute paths, and a library (or directory)
//!   writable by group or others is refused with the fix in the message. The tests run as
//!   root, so these are checks of mode bits, not of `access(2)`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fugue_agents::{CommandAgent, Plugin, PluginError, agent_from_spec, check_plan_agents, open_plugin_in, resolve_plugin_in};
use fugue_core::{Agent, AgentContext, AgentError, AgentOutcome, AgentSpec, CommandAgentSpec, Plan, PromptInput, TaskId};

mod common;

const NASTY: &str = "fix it; touch pwned1 && echo $(touch pwned2) `touch pwned3` \"dq\" 'sq' | tee pwned4 > pwned5\n\
                     second line $HOME ${PATH} \\ \\n & touch pwned6 &\n;rm -rf ./*\n";
const CANARIES: [&str; 6] = ["pwned1", "pwned2", "pwned3", "pwned4", "pwned5", "pwned6"];

fn spec(command: &[&str], prompt_via: PromptInput) -> CommandAgentSpec {
    CommandAgentSpec {
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        timeout: None,
        env: BTreeMap::new(),
        prompt_via,
        confine: None,
    }
}

fn context(dir: &Path, prompt: &str) -> AgentContext {
    let mut ctx = AgentContext::new(TaskId::new("sec-1").expect("id"), prompt, dir);
    ctx.log_file = Some(dir.join("logs/sec-1.log"));
    ctx
}

fn assert_nothing_ran(dir: &Path) {
    for f in CANARIES {
        assert!(!dir.join(f).exists(), "{f} exists: the prompt was run by a shell");
    }
    assert!(dir.join("keep.txt").exists(), "`rm -rf ./*` ran");
}

#[tokio::test]
async fn shell_syntax_reaches_the_agent_literally_through_argv_stdin_and_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("keep.txt"), "x").expect("write");
    // The agent copies what it was given into files: argv word 1 and 2, stdin, the prompt file
    // and the feedback file. `sh -c` runs OUR script; the prompt is only ever a positional
    // parameter or bytes on stdin, which a shell never parses.
    let script = r#"printf %s "$1" > argv1.out; printf %s "$2" > argv2.out; cat > stdin.out; cat "$FUGUE_PROMPT_FILE" > file.out; cat "$FUGUE_FEEDBACK_FILE" > feedback.out"#;
    let agent = CommandAgent::new("copy", spec(&["sh", "-c", script, "sh", "{prompt}", "--msg={prompt}|{feedback}"], PromptInput::Stdin));
    let mut ctx = context(dir.path(), NASTY);
    ctx.feedback = Some(format!("feedback: {NASTY}"));
    let report = agent.run(ctx).await.expect("runs");
    assert_eq!(report.outcome, AgentOutcome::ReadyForQa, "{report:?}");
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect(f);
    assert_eq!(read("argv1.out"), NASTY);
    assert_eq!(read("argv2.out"), format!("--msg={NASTY}|feedback: {NASTY}"));
    assert_eq!(read("stdin.out"), NASTY);
    assert_eq!(read("file.out"), NASTY);
    assert_eq!(read("feedback.out"), format!("feedback: {NASTY}"));
    assert_nothing_ran(dir.path());
}

#[tokio::test]
async fn a_prompt_is_never_a_program_or_an_option_to_a_shell() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("keep.txt"), "x").expect("write");
    // The whole argv is the prompt: the program named is the prompt text itself, which does not
    // exist — no shell is there to split it.
    let agent = CommandAgent::new("whole", spec(&["{prompt}"], PromptInput::Args));
    let err = agent.run(context(dir.path(), NASTY)).await.expect_err("no such program");
    assert!(matches!(err, AgentError::Spawn { .. }), "{err:?}");
    // Placeholders are expanded once: a prompt holding `{prompt}` or `{worktree}` stays literal.
    let agent = CommandAgent::new("echo", spec(&["printf", "%s", "{prompt}"], PromptInput::Args));
    let report = agent.run(context(dir.path(), "{worktree} {prompt} {task_id}")).await.expect("runs");
    assert_eq!(report.output, "{worktree} {prompt} {task_id}");
    assert_nothing_ran(dir.path());
}

const SECRET: &str = "s3cr3t-Value-for-fugue-security-test";

#[tokio::test]
async fn secret_env_values_never_reach_the_log_or_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = spec(
        &[
            "sh",
            "-c",
            // Split across writes (and possibly reads), on both streams, and as a whole line.
            r#"printf 's3cr3t-Val'; sleep 0.05; printf 'ue-for-fugue-security-test\n'; echo "token=$FUGUE_SECTEST_API_TOKEN" >&2; echo "plain=$FUGUE_SECTEST_MODE""#,
        ],
        PromptInput::Args,
    );
    command.env.insert("FUGUE_SECTEST_API_TOKEN".to_owned(), SECRET.to_owned());
    command.env.insert("FUGUE_SECTEST_MODE".to_owned(), "visible-mode-value".to_owned());
    // Building the agent from the plan's spec registers its secrets.
    let agent = agent_from_spec("leaky", &AgentSpec::Command(command), dir.path()).expect("agent");
    let report = agent.run(context(dir.path(), "go")).await.expect("runs");
    assert_eq!(report.outcome, AgentOutcome::ReadyForQa, "{report:?}");
    let log = std::fs::read_to_string(dir.path().join("logs/sec-1.log")).expect("log");
    for (what, text) in [("report", report.output.as_str()), ("log", log.as_str())] {
        assert!(!text.contains(SECRET) && !text.contains("ue-for-fugue-security-test"), "{what} leaks the secret:\n{text}");
        assert_eq!(text.matches("[REDACTED:FUGUE_SECTEST_API_TOKEN]").count(), 2, "{what}:\n{text}");
        assert!(text.contains("plain=visible-mode-value"), "{what} hides a value that is not secret:\n{text}");
    }
}

#[tokio::test]
async fn secrets_in_error_messages_are_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = "/nonexistent/bin/with-secret-path-0xfeedface";
    let mut command = spec(&[program], PromptInput::Args);
    command.env.insert("FUGUE_SECTEST_DEPLOY_KEY".to_owned(), program.to_owned());
    let agent = agent_from_spec("missing", &AgentSpec::Command(command), dir.path()).expect("agent");
    let err = agent.run(context(dir.path(), "go")).await.expect_err("not found");
    let text = err.to_string();
    assert!(!text.contains("0xfeedface") && text.contains("[REDACTED:FUGUE_SECTEST_DEPLOY_KEY]"), "{text}");
    let log = std::fs::read_to_string(dir.path().join("logs/sec-1.log")).expect("log");
    assert!(!log.contains("0xfeedface"), "{log}");
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A private directory holding a copy of `library` (mode 0755 in a 0755 directory).
fn copy_of(library: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    chmod(dir.path(), 0o755);
    let copy = dir.path().join(library.file_name().expect("file name"));
    std::fs::copy(library, &copy).expect("copy");
    chmod(&copy, 0o755);
    (dir, copy)
}

#[test]
fn a_library_writable_by_others_is_refused_with_the_fix() {
    let (_dir, lib) = copy_of(common::codemod());
    chmod(&lib, 0o666);
    let err = Plugin::load(&lib).expect_err("world-writable");
    let canonical = std::fs::canonicalize(&lib).expect("canonical");
    assert!(matches!(&err, PluginError::Untrusted { mode: 0o666, directory: false, .. }), "{err:?}");
    let text = err.to_string();
    let shown = canonical.display().to_string();
    assert!(
        text.starts_with(&format!("refusing to load plugin {shown}: the file {shown} is writable by its group and by others (mode 0666)")),
        "{text}"
    );
    assert!(text.ends_with(&format!("fix it with `chmod go-w {shown}`")), "{text}");

    chmod(&lib, 0o775);
    let err = Plugin::load(&lib).expect_err("group-writable");
    assert!(err.to_string().contains("writable by its group (mode 0775)"), "{err}");

    // Following the advice fixes it.
    chmod(&lib, 0o755);
    let plugin = Plugin::load(&lib).expect("loads once only its owner can write it");
    assert_eq!(plugin.name(), "codemod");
}

#[test]
fn a_library_in_a_directory_writable_by_others_is_refused() {
    let (dir, lib) = copy_of(common::heuristic_review());
    chmod(dir.path(), 0o777);
    let err = Plugin::load(&lib).expect_err("world-writable directory");
    let shown = std::fs::canonicalize(dir.path()).expect("canonical").display().to_string();
    assert!(matches!(&err, PluginError::Untrusted { directory: true, mode: 0o777, .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("its directory {shown} is writable by its group and by others (mode 0777)")), "{err}");
    assert!(err.to_string().ends_with(&format!("`chmod go-w {shown}`")), "{err}");
    // The sticky bit (as on /tmp) stops others from replacing a file they do not own.
    chmod(dir.path(), 0o1777);
    assert!(Plugin::load(&lib).is_ok(), "a sticky directory is trusted");
    chmod(dir.path(), 0o700);
}

#[test]
fn a_symlink_is_judged_by_the_library_it_leads_to() {
    let (real_dir, lib) = copy_of(&common::fixture("trust_raw", "raw_plugin", None, false));
    chmod(&lib, 0o646);
    let links = tempfile::tempdir().expect("tempdir");
    let link = links.path().join("libtrusted-looking.so");
    std::os::unix::fs::symlink(&lib, &link).expect("symlink");
    let err = Plugin::load(&link).expect_err("the target is writable by others");
    assert!(err.to_string().contains("is writable by others (mode 0646)"), "{err}");
    assert!(
        matches!(&err, PluginError::Untrusted { path, .. } if path.starts_with(std::fs::canonicalize(real_dir.path()).expect("canonical")))
    );
}

#[test]
fn a_plan_naming_an_untrusted_library_gets_a_located_error() {
    let (dir, lib) = copy_of(common::codemod());
    chmod(&lib, 0o666);
    let name = lib.file_name().expect("name").to_string_lossy().into_owned();
    let plan: Plan = serde_json::from_value(serde_json::json!({
        "version": 1,
        "agents": {"cm": {"plugin": name}},
        "tasks": [{"id": "t1", "agent": "cm", "modifies": ["src/**"]}]
    }))
    .expect("plan");
    let issues = check_plan_agents(&plan, dir.path());
    let issue = issues.iter().find(|i| i.pointer == "/agents/cm/plugin").unwrap_or_else(|| panic!("{issues:#?}"));
    assert!(issue.is_error());
    assert!(issue.message.contains("refusing to load plugin") && issue.message.contains("chmod go-w"), "{issue:?}");
    assert!(issue.help.as_deref().is_some_and(|h| h.contains("chmod go-w")), "{issue:?}");
}

#[test]
fn names_are_never_handed_to_the_dynamic_loader_search() {
    // `libc.so.6` is found by dlopen's own search (ld.so.cache). The loader must not find it:
    // a path that is not a file relative to the plan's directory is missing, full stop.
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Plugin::load(Path::new("libc.so.6")).expect_err("not a file here");
    assert!(matches!(err, PluginError::Missing { .. }), "{err:?}");
    let err = open_plugin_in(Path::new("libc.so.6"), dir.path(), &[]).expect_err("not in the plan's directory");
    assert!(matches!(&err, PluginError::Missing { path } if path == &dir.path().join("libc.so.6")), "{err:?}");
    // A bare name is only looked up in the search directories, never in the plan's directory
    // nor the working directory.
    let (lib_dir, _lib) = copy_of(common::codemod());
    let err = resolve_plugin_in(Path::new("fugue_plugin_codemod"), lib_dir.path(), &[]).expect_err("not searched");
    assert!(matches!(err, PluginError::NotFound { .. }), "{err:?}");
    let found = resolve_plugin_in(Path::new("codemod"), Path::new("/"), &[lib_dir.path().to_owned()]).expect("in the search path");
    assert!(found.is_absolute() && found.starts_with(lib_dir.path()), "{}", found.display());
    // Relative plan paths come back absolute, so nothing downstream resolves them again.
    let relative = resolve_plugin_in(Path::new("sub/libx.so"), Path::new(""), &[]).expect_err("missing");
    assert!(matches!(&relative, PluginError::Missing { path } if path.is_absolute()), "{relative:?}");
}
