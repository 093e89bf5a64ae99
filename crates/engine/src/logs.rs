//! Human-readable records: per-task logs (`logs/<task>-<timestamp>.md` in the playbook's
//! "thinking log" layout), checkpoints in `auto-memory/` after each phase, and the final
//! report in `logs/`. They are written best-effort: a full disk must not fail a run whose
//! journal is intact, so errors here are swallowed.
//!
//! The task logs and checkpoints are only *built* here, as `(path, text)`; the engine hands
//! them to the state-file writer ([`crate::snapshot::Snapshotter::log`]), which writes them
//! off the loop with its next flush (a forced flush at each synchronization point and at the
//! end waits for them).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use fugue_core::state::DependencyGraph;
use fugue_core::{Phase, Plan, TaskSpec, TaskStatus};

use crate::view::RunView;

fn stamp() -> String {
    fugue_core::time::now().replace([':', '-'], "")
}

/// A file to write: where, and what.
pub(crate) type Doc = (PathBuf, String);

/// The task's log.
pub(crate) fn task_log(state_dir: &Path, view: &RunView, task: &TaskSpec, output: &str) -> Doc {
    let v = view.task(&task.id);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Parallel Task Log\n# Task: {}\n# Part of: fugue run {}\n# Started: {}\n",
        task.display_name(),
        view.execution_id,
        v.started.as_deref().unwrap_or("-")
    );
    let _ = writeln!(s, "## Task Assignment\n{}\n", if task.prompt.is_empty() { "(no prompt)" } else { &task.prompt });
    let _ = writeln!(
        s,
        "## Execution Plan\n- agent: `{}`\n- phase: `{}`\n- modifies: {}\n- reads: {}\n- depends on: {}\n",
        task.agent,
        task.phase,
        list(task.modifies.patterns()),
        list(task.reads.patterns()),
        list(&task.depends_on)
    );
    let _ = writeln!(s, "## Execution Log\n- attempts: {}\n- QA iterations (last attempt): {}", v.attempts, v.iterations);
    for span in &v.busy {
        let _ = writeln!(s, "- busy {} → {} ({:.1}s)", ms(span.start), ms(span.end), (span.end - span.start) as f64 / 1000.0);
    }
    if let Some(e) = &v.last_error {
        let _ = writeln!(s, "- last error: {e}");
    }
    agent_runs(&mut s, v);
    let _ = writeln!(s, "\n## Files Modified\n| File | Change Type |\n|------|-------------|");
    for f in &v.files {
        let _ = writeln!(s, "| {f} | Modified |");
    }
    let _ = writeln!(s, "\n## Issues Encountered\n| Issue | Severity | Gate |\n|-------|----------|------|");
    for g in &v.qa {
        for f in &g.findings {
            let _ = writeln!(
                s,
                "| {}{} | {:?} | {} |",
                f.file.as_deref().map(|p| format!("{p}: ")).unwrap_or_default(),
                f.message.replace('|', "\\|"),
                f.severity,
                g.gate
            );
        }
    }
    let _ = writeln!(s, "\n## QA Review");
    for g in &v.qa {
        let _ = writeln!(s, "- {}: {:?}{}", g.gate, g.verdict, g.score.map(|x| format!(" (score {x:.1})")).unwrap_or_default());
    }
    let status = match v.status {
        TaskStatus::Merged => "Complete",
        TaskStatus::Failed | TaskStatus::Blocked | TaskStatus::MergeConflict => "Failed",
        _ => "Partial",
    };
    let _ =
        writeln!(s, "\n## Completion Report\n- Status: {status} ({})\n- Completed: {}\n", v.status, v.completed.as_deref().unwrap_or("-"));
    if !output.is_empty() {
        let _ = writeln!(s, "## Agent Output\n```text\n{}\n```", output.trim_end());
    }
    // The prompt, findings and output are free text: a secret value must not reach the log.
    let s = match fugue_core::redact::redact_str(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(redacted) => redacted,
    };
    (state_dir.join("logs").join(format!("{}-{}.md", task.id, stamp())), s)
}

/// The checkpoint of a completed phase.
pub(crate) fn checkpoint_phase(state_dir: &Path, view: &RunView, plan: &Plan, phase: Phase) -> Doc {
    let mut s = format!(
        "# Checkpoint: phase `{phase}` complete\n\nRun: {}\n\n| Task | Status | Attempts |\n|------|--------|----------|\n",
        view.execution_id
    );
    for t in plan.tasks.iter().filter(|t| t.phase == phase) {
        let v = view.task(&t.id);
        let _ = writeln!(s, "| {} | {} | {} |", t.id, v.status, v.attempts);
    }
    let next: Vec<&str> = plan.tasks.iter().filter(|t| t.phase > phase).map(|t| t.id.as_str()).collect();
    let _ = writeln!(s, "\nNext: {}", if next.is_empty() { "nothing — the run is complete".to_owned() } else { next.join(", ") });
    (state_dir.join("auto-memory").join(format!("phase-{}-{phase}-summary.md", phase.order())), s)
}

/// The checkpoint of a finished parallel group (`parallel-group-N-summary.md`, as the
/// playbook's checkpoint manager names them).
pub(crate) fn checkpoint_group(state_dir: &Path, view: &RunView, group: &fugue_core::state::ParallelGroup, number: usize) -> Doc {
    let mut s = format!(
        "# Checkpoint: parallel group {number} (`{}`, phase `{}`) complete\n\nRun: {}\n\n| Task | Status | Attempts | Files |\n|------|--------|----------|-------|\n",
        group.group_id, group.phase, view.execution_id
    );
    for t in &group.tasks {
        let v = view.task(&t.id);
        let _ = writeln!(s, "| {} | {} | {} | {} |", t.id, v.status, v.attempts, v.files.len());
    }
    (state_dir.join("auto-memory").join(format!("parallel-group-{number}-summary.md")), s)
}

/// Writes the final report next to the task logs.
pub(crate) fn report_file(state_dir: &Path, view: &RunView, graph: &DependencyGraph) {
    let plan = crate::report::saved_plan(state_dir);
    let report = crate::report::build_for(view, Some(graph), plan.as_ref()).with_disk(state_dir);
    let path = state_dir.join("logs").join(format!("report-{}.md", view.execution_id));
    let _ = fugue_core::state::write_snapshot(&path, report.to_markdown().as_bytes());
}

/// The agent runs' figures: what they spent (unknown figures said so, never 0), their session,
/// and how the last one failed.
fn agent_runs(s: &mut String, v: &crate::view::TaskView) {
    use crate::report::{cost_text, failure_text, tokens_breakdown};
    if v.agent_runs == 0 {
        let _ = writeln!(s, "- agent runs: none finished");
        return;
    }
    let unreported = match v.unreported_runs {
        0 => String::new(),
        n if n == v.agent_runs => " (none reported usage)".to_owned(),
        n => format!(" ({n} reported no usage: the figures below are lower bounds)"),
    };
    let _ = writeln!(s, "- agent runs: {}{unreported}", v.agent_runs);
    let u = &v.usage;
    let _ = writeln!(s, "- tokens: {}", tokens_breakdown(u));
    let _ = writeln!(s, "- cost: {}", cost_text(u.cost_usd));
    let _ = writeln!(s, "- turns: {}", if v.turns == 0 { "unknown".to_owned() } else { v.turns.to_string() });
    if let Some(session) = &v.session {
        let _ = writeln!(s, "- agent session: `{session}`");
    }
    if v.agent_runs > 0 {
        match &v.confined {
            Some(roots) => {
                let _ = writeln!(s, "- confinement (last run): on; writes allowed only beneath: {}", roots.join(", "));
            }
            None => {
                let _ = writeln!(s, "- confinement (last run): off");
            }
        }
    }
    if let Some(kind) = v.failure {
        let _ = writeln!(s, "- last agent run failed: {}", failure_text(kind));
    }
    if !v.denials.is_empty() {
        let _ = writeln!(s, "- refused tool calls (last run): {}", v.denials.len());
        for d in &v.denials {
            let _ = writeln!(s, "  - {}", d.replace('\n', " "));
        }
    }
    if let Some(m) = v.final_message.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        let first: String = m.lines().next().unwrap_or_default().chars().take(300).collect();
        let _ = writeln!(s, "- last agent message: {first}{}", if first.len() < m.len() { " …" } else { "" });
    }
}

fn ms(v: u64) -> String {
    fugue_core::time::rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(v))
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() { "—".to_owned() } else { items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        serde_json::from_value(serde_json::json!({
            "version": 1,
            "agents": { "x": { "command": ["true"] } },
            "tasks": [{ "id": "t", "agent": "x", "prompt": "do it" }],
        }))
        .expect("plan")
    }

    fn section(doc: &Doc) -> &str {
        let log = doc.1.split("## Execution Log\n").nth(1).expect("execution log");
        log.split("\n## ").next().unwrap_or_default()
    }

    #[test]
    fn the_execution_log_has_the_agent_runs_figures_and_failure() {
        let plan = plan();
        let task = &plan.tasks[0];
        let id = task.id.clone();
        let mut view = RunView::default();
        let doc = task_log(Path::new("/s"), &view, task, "");
        assert!(section(&doc).contains("- agent runs: none finished"), "{}", doc.1);
        let t = view.tasks.entry(id).or_default();
        t.agent_runs = 3;
        t.unreported_runs = 1;
        t.usage.input_tokens = Some(12_000);
        t.usage.output_tokens = Some(345);
        t.usage.cost_usd = Some(0.0421);
        t.session = Some("sess-9".into());
        t.failure = Some(fugue_core::FailureKind::PermissionDenied);
        t.denials = vec!["Write /etc/passwd".into()];
        t.final_message = Some("I could not write the file.\nSecond line".into());
        let doc = task_log(Path::new("/s"), &view, task, "");
        let log = section(&doc);
        for line in [
            "- agent runs: 3 (1 reported no usage: the figures below are lower bounds)",
            "- tokens: 12.3k (input 12.0k, output 345, cache read unknown, cache write unknown)",
            "- cost: $0.0421",
            "- turns: unknown",
            "- agent session: `sess-9`",
            "- last agent run failed: permission_denied",
            "- refused tool calls (last run): 1\n  - Write /etc/passwd",
            "- last agent message: I could not write the file. …",
        ] {
            assert!(log.contains(line), "{line:?} in:\n{log}");
        }
        assert!(!log.contains("$0.0000") && !log.contains("turns: 0"), "{log}");
    }
}
