//! Secret values never reach what fugue writes or prints: an agent that echoes a token from its
//! plan `env` (and from fugue's own environment) and then fails, run end to end; the token is
//! looked for in every file under the state dir, in the NDJSON events, in the report and in the
//! HTML report. The one exception is fugue's saved copy of the plan, which resume needs with
//! the agents' `env` intact: it must be readable by its owner only.

use std::path::Path;
use std::process::Command;

use crate::runs::repo;
use crate::{fugue, temp};

const PLAN_SECRET: &str = "plan-secret-0123456789";
const ENV_SECRET: &str = "env-secret-9876543210";

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        // The pool's worktrees hold the user's work itself, which may well contain the value.
        if path.ends_with(".claude/worktrees") {
            continue;
        }
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn secrets_are_redacted_in_logs_events_and_reports() {
    let dir = temp();
    let plan = format!(
        r#"version: 1
base: main
parallelization: {{ max_agents: 2, min_tasks: 2, retry_on_failure: 0 }}
agents:
  leaky:
    command: ["sh", "-c", "echo token is $SERVICE_API_TOKEN and $FUGUE_TEST_PASSWORD; mkdir -p src/$FUGUE_TASK_ID; echo x > src/$FUGUE_TASK_ID/f; exit 3"]
    env: {{ SERVICE_API_TOKEN: "{PLAN_SECRET}" }}
  fine: {{ command: ["sh", "-c", "mkdir -p src/ok && echo $FUGUE_TEST_PASSWORD > src/ok/f"] }}
gates: {{ review: false }}
tasks:
  - {{ id: leak, agent: leaky, prompt: "say {PLAN_SECRET}", modifies: [src/leak/**] }}
  - {{ id: ok, agent: fine, modifies: [src/ok/**] }}
"#
    );
    let repo = repo(dir.path(), &plan);
    let run = Command::new(env!("CARGO_BIN_EXE_fugue"))
        .args(["run", "plan.yaml", "--json"])
        .current_dir(&repo)
        .env("NO_COLOR", "1")
        .env("FUGUE_TEST_PASSWORD", ENV_SECRET)
        .envs(crate::GIT_IDENTITY)
        .output()
        .expect("run fugue");
    assert_eq!(run.status.code(), Some(1), "the leaky task fails: {}", String::from_utf8_lossy(&run.stderr));
    let events = String::from_utf8_lossy(&run.stdout);

    let report = fugue(&repo, &["report"]);
    let html = fugue(&repo, &["report", "--html", "report.html"]);
    assert_eq!(html.code, 0, "{}", html.stderr);
    let mut texts = vec![
        ("events".to_owned(), events.into_owned()),
        ("stderr".to_owned(), String::from_utf8_lossy(&run.stderr).into_owned()),
        ("report".to_owned(), report.stdout),
        ("report.html".to_owned(), std::fs::read_to_string(repo.join("report.html")).expect("html")),
    ];
    let mut files = Vec::new();
    files_under(&repo.join(".claude"), &mut files);
    let agent_log = files.iter().find(|f| f.to_string_lossy().ends_with("leak.agent.log")).expect("the agent log");
    let agent_log = std::fs::read_to_string(agent_log).expect("agent log");
    assert!(
        agent_log.contains("token is [REDACTED:SERVICE_API_TOKEN] and [REDACTED:FUGUE_TEST_PASSWORD]"),
        "the output is logged, with the values replaced: {agent_log}"
    );
    for f in files {
        if f.ends_with("fugue/plan.json") {
            // Resume needs the agents' env: the saved plan keeps it, readable by its owner only.
            let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&f).expect("stat").permissions());
            assert_eq!(mode & 0o777, 0o600, "the saved plan is owner-only");
            continue;
        }
        texts.push((f.display().to_string(), String::from_utf8_lossy(&std::fs::read(&f).expect("read")).into_owned()));
    }
    for (name, text) in &texts {
        assert!(!text.contains(PLAN_SECRET) && !text.contains(ENV_SECRET), "a secret leaked into {name}:\n{text}");
    }
    // The work itself is the user's: the healthy task's file holds what its agent wrote.
    assert_eq!(crate::git(&repo, &["show", "main:src/ok/f"]), ENV_SECRET);
}
