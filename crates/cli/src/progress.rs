//! Live progress of a run: spinners on a terminal, plain lines otherwise, NDJSON with `--json`.
//!
//! The engine sends every journal record through a channel; this module only renders them.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use fugue_core::redact::{redact_json_text, redact_str};
use fugue_core::{TaskId, Usage};
use fugue_engine::journal::Record;
use fugue_engine::{Event, RunView};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Spinners and a bar (a terminal).
    Live,
    /// One line per notable event.
    Plain,
    /// Every record as NDJSON on stdout.
    Json,
    /// Nothing.
    Quiet,
}

impl Style {
    pub(crate) fn pick(json: bool, quiet: bool) -> Self {
        if json {
            Style::Json
        } else if quiet {
            Style::Quiet
        } else if std::io::stderr().is_terminal() {
            Style::Live
        } else {
            Style::Plain
        }
    }
}

/// Renders records until the channel closes.
pub(crate) async fn render(style: Style, total: usize, mut rx: mpsc::UnboundedReceiver<Record>) {
    let multi =
        MultiProgress::with_draw_target(if style == Style::Live { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
    let overall = multi.add(ProgressBar::new(total as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix:.bold} [{bar:30.green/dim}] {pos}/{len} tasks done  {elapsed}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("█▓░"),
    );
    overall.set_prefix("fugue");
    let spinner =
        ProgressStyle::with_template("  {spinner:.cyan} {prefix:<24} {wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let mut lines = Lines::default();
    let start = std::time::Instant::now();
    while let Some(record) = rx.recv().await {
        match style {
            Style::Json => {
                // Every record, `agent_activity` included.
                if let Ok(line) = serde_json::to_string(&record) {
                    println!("{}", redact_json_text(&line));
                }
                continue;
            }
            Style::Quiet => continue,
            Style::Plain => {
                if let Some(line) = lines.line(&record) {
                    eprintln!("[{:>7.1}s] {line}", start.elapsed().as_secs_f64());
                }
                continue;
            }
            Style::Live => {}
        }
        let line = lines.line(&record);
        // O(tasks): only when the spend moved.
        if matches!(record.event, Event::AgentFinished { .. } | Event::AgentActivity { .. })
            && let Some(spent) = spent(&lines.view)
        {
            overall.set_message(spent);
        }
        let Some(task) = record.event.task().map(ToString::to_string) else {
            if let Some(line) = line {
                multi.println(format!("  {line}")).ok();
            }
            continue;
        };
        match &record.event {
            Event::Status { status, task: id } if status.is_terminal() => {
                if let Some(bar) = bars.remove(&task) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                overall.inc(1);
                let mark = if *status == fugue_core::TaskStatus::Merged { "✔" } else { "✘" };
                let usage = lines.view.task(id).usage.brief().map(|b| format!("  ({b})")).unwrap_or_default();
                multi.println(format!("  {mark} {task:<24} {status}{usage}")).ok();
            }
            Event::Status { status, .. } => {
                let bar = bars.entry(task.clone()).or_insert_with(|| {
                    let b = multi.insert_before(&overall, ProgressBar::new_spinner());
                    b.set_style(spinner.clone());
                    b.set_prefix(task.clone());
                    b.enable_steady_tick(Duration::from_millis(100));
                    b
                });
                bar.set_message(status.to_string());
            }
            // Usage-only updates too: the spinner's line is rewritten in place.
            Event::AgentActivity { doing, usage, .. } => {
                if let Some(bar) = bars.get(&task) {
                    bar.set_message(redact_str(&activity_text(doing, usage)).into_owned());
                }
            }
            _ => {
                if let (Some(bar), Some(line)) = (bars.get(&task), line) {
                    bar.set_message(line);
                }
            }
        }
    }
    overall.finish_and_clear();
}

/// The run's spend so far, for the overall bar: `45.1k tokens, $0.1234`.
fn spent(view: &RunView) -> Option<String> {
    let (usage, unreported) = view.usage();
    let brief = usage.brief()?;
    Some(if unreported > 0 { format!("spent ≥ {brief}") } else { format!("spent {brief}") })
}

/// The longest `doing` shown.
const DOING_MAX: usize = 100;

/// `doing` on one line, clipped to [`DOING_MAX`] characters.
fn doing_line(doing: &str) -> String {
    let first = doing.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("working");
    if first.chars().count() > DOING_MAX {
        format!("{}…", first.chars().take(DOING_MAX - 1).collect::<String>())
    } else {
        first.to_owned()
    }
}

/// One line of what an agent does, with its usage so far: `Bash: cargo test (3.2k tokens, $0.0110)`.
fn activity_text(doing: &str, usage: &Usage) -> String {
    let doing = doing_line(doing);
    match usage.brief() {
        Some(b) => format!("{doing} ({b})"),
        None => doing,
    }
}

/// The plain lines of a run: what each agent last did (so that a usage-only update prints
/// nothing) and the run folded so far (for its spend).
#[derive(Default)]
struct Lines {
    /// Per task, the last `doing` printed for its running agent.
    doing: HashMap<TaskId, String>,
    view: RunView,
}

impl Lines {
    /// The line for `record`, secret values redacted (failure reasons and activity quote agent
    /// output), or `None` when it is not worth a line.
    fn line(&mut self, record: &Record) -> Option<String> {
        self.view.apply(record);
        let line = match &record.event {
            Event::AgentActivity { task, doing, usage, .. } => {
                let key = doing_line(doing);
                if self.doing.get(task) == Some(&key) {
                    return None;
                }
                self.doing.insert(task.clone(), key);
                format!("  [{task}] {}", activity_text(doing, usage))
            }
            Event::AgentFinished { task, .. } | Event::AttemptStarted { task, .. } | Event::AttemptFailed { task, .. } => {
                self.doing.remove(task);
                describe(&record.event)?
            }
            Event::RunFinished { .. } => {
                let (usage, unreported) = self.view.usage();
                let mut line = describe(&record.event)?;
                if self.view.tasks.values().any(|t| t.agent_runs > 0) {
                    line.push_str(&format!(" — agents spent {}", usage.brief().unwrap_or_else(|| "unknown".to_owned())));
                    if unreported > 0 {
                        line.push_str(&format!(" ({unreported} run(s) reported no usage)"));
                    }
                }
                line
            }
            e => describe(e)?,
        };
        Some(redact_str(&line).into_owned())
    }
}

fn describe(e: &Event) -> Option<String> {
    Some(match e {
        Event::RunStarted { execution_id, mode, .. } => format!("run {execution_id} started ({mode})"),
        Event::RunResumed { pid } => format!("run resumed by pid {pid}"),
        Event::PhaseStarted { phase } => format!("phase {phase} started"),
        Event::PhaseCompleted { phase } => format!("phase {phase} complete (synchronization point)"),
        // A merge is reported by its own event, with the commit.
        Event::Status { status: fugue_core::TaskStatus::Merged, .. } => return None,
        Event::Status { task, status } => format!("{task}: {status}"),
        Event::AttemptStarted { task, attempt, worktree, .. } => format!("{task}: attempt {attempt} in {worktree}"),
        Event::JobStarted { task, executor, job_id, .. } => format!("{task}: {executor} job {job_id}"),
        Event::AgentFinished { task, iteration, outcome, duration_ms, usage, failure, denials, .. } => {
            let outcome = match failure {
                Some(kind) => format!("{outcome:?}: {}", fugue_engine::report::failure_text(*kind)),
                None => format!("{outcome:?}"),
            };
            let usage = usage.brief().unwrap_or_else(|| "usage unknown".to_owned());
            let denied = if denials.is_empty() { String::new() } else { format!(", {} refused tool call(s)", denials.len()) };
            format!("{task}: agent finished iteration {} ({outcome}, {:.1}s, {usage}{denied})", iteration + 1, *duration_ms as f64 / 1000.0)
        }
        Event::QaFinished { task, verdict, .. } => format!("{task}: QA {verdict:?}"),
        Event::Merged { task, commit, .. } => format!("{task}: merged ({})", &commit[..commit.len().min(10)]),
        Event::MergeConflicted { task, files } => format!("{task}: merge conflict in {}", files.join(", ")),
        Event::AttemptFailed { task, attempt, reason } => format!("{task}: attempt {attempt} failed: {reason}"),
        Event::Interrupted { reason } => format!("interrupted: {reason}"),
        Event::RunFinished { outcome } => format!("run finished: {outcome:?}"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fugue_core::{AgentOutcome, FailureKind, TaskStatus};

    fn id(s: &str) -> TaskId {
        TaskId::new(s).expect("id")
    }

    fn usage(tokens: Option<u64>, cost: Option<f64>) -> Usage {
        let mut u = Usage::default();
        u.input_tokens = tokens;
        u.cost_usd = cost;
        u
    }

    fn activity(task: &str, doing: &str, usage: Usage) -> Event {
        Event::AgentActivity { task: id(task), attempt: 1, iteration: 0, doing: doing.into(), usage }
    }

    fn finished(task: &str, outcome: AgentOutcome, usage: Usage, failure: Option<FailureKind>, denials: &[&str]) -> Event {
        Event::AgentFinished {
            task: id(task),
            attempt: 1,
            iteration: 0,
            outcome,
            summary: "s".into(),
            duration_ms: 1500,
            usage,
            session_id: None,
            turns: None,
            denials: denials.iter().map(|d| (*d).to_owned()).collect(),
            failure,
            final_message: None,
        }
    }

    /// The plain lines of `events`, as `fugue run` prints them without the clock.
    fn plain(events: Vec<Event>) -> String {
        let mut lines = Lines::default();
        let mut out = String::new();
        for (i, event) in events.into_iter().enumerate() {
            let record = Record { seq: i as u64 + 1, ts: format!("2026-01-01T00:00:{:02}.000Z", i % 60), event };
            if let Some(line) = lines.line(&record) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }

    #[test]
    fn plain_lines_show_activity_changes_and_spend_never_zero() {
        let out = plain(vec![
            Event::RunStarted {
                execution_id: "exec-1".into(),
                plan: "plan.yaml".into(),
                base: "main".into(),
                base_commit: "abc".into(),
                mode: "PARALLEL".into(),
                tasks: vec![id("a"), id("b")],
                pid: 1,
            },
            Event::AttemptStarted { task: id("a"), attempt: 1, worktree: "/w/1".into(), branch: None, slot: None },
            activity("a", "Read: src/lib.rs", Usage::default()),
            activity("a", "Bash: cargo test", usage(Some(3_200), Some(0.011))),
            // Usage only: no line.
            activity("a", "Bash: cargo test", usage(Some(4_100), Some(0.014))),
            activity("b", &format!("says: {}\nmore", "x".repeat(150)), usage(Some(12_345), None)),
            finished("a", AgentOutcome::ReadyForQa, usage(Some(15_000), Some(0.0421)), None, &[]),
            // After a finish, the same activity is news again (the next iteration).
            activity("a", "Bash: cargo test", Usage::default()),
            finished("b", AgentOutcome::Failed, Usage::default(), Some(FailureKind::MaxTurns), &["Write src/x.rs", "Bash: rm"]),
            Event::Status { task: id("b"), status: TaskStatus::Failed },
            Event::RunFinished { outcome: fugue_engine::RunOutcome::Failed },
        ]);
        insta::assert_snapshot!(out);
    }

    #[test]
    fn a_secret_in_an_activity_line_is_redacted() {
        let key = "sk-progress-test-abcdefghijklmnopqrstuvwxyz0123456789";
        fugue_core::redact::register("FUGUE_PROGRESS_TEST_KEY", key);
        let out = plain(vec![activity("a", &format!("Bash: curl -H 'x-api-key: {key}'"), Usage::default())]);
        assert!(!out.contains(key), "{out}");
    }
}
