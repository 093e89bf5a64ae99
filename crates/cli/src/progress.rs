//! Live progress of a run: spinners on a terminal, plain lines otherwise, NDJSON with `--json`.
//!
//! The engine sends every journal record through a channel; this module only renders them.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use fugue_core::redact::{redact_json_text, redact_str};
use fugue_engine::Event;
use fugue_engine::journal::Record;
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
        ProgressStyle::with_template("{prefix:.bold} [{bar:30.green/dim}] {pos}/{len} tasks done  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("█▓░"),
    );
    overall.set_prefix("fugue");
    let spinner =
        ProgressStyle::with_template("  {spinner:.cyan} {prefix:<24} {wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let start = std::time::Instant::now();
    while let Some(record) = rx.recv().await {
        match style {
            Style::Json => {
                if let Ok(line) = serde_json::to_string(&record) {
                    println!("{}", redact_json_text(&line));
                }
                continue;
            }
            Style::Quiet => continue,
            Style::Plain => {
                if let Some(line) = plain_line(&record.event) {
                    eprintln!("[{:>7.1}s] {line}", start.elapsed().as_secs_f64());
                }
                continue;
            }
            Style::Live => {}
        }
        let Some(task) = record.event.task().map(ToString::to_string) else {
            if let Some(line) = plain_line(&record.event) {
                multi.println(format!("  {line}")).ok();
            }
            continue;
        };
        match &record.event {
            Event::Status { status, .. } if status.is_terminal() => {
                if let Some(bar) = bars.remove(&task) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                overall.inc(1);
                let mark = if *status == fugue_core::TaskStatus::Merged { "✔" } else { "✘" };
                multi.println(format!("  {mark} {task:<24} {status}")).ok();
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
            other => {
                if let (Some(bar), Some(line)) = (bars.get(&task), plain_line(other)) {
                    bar.set_message(line);
                }
            }
        }
    }
    overall.finish_and_clear();
}

/// One line for `e`, secret values redacted (failure reasons quote agent output).
fn plain_line(e: &Event) -> Option<String> {
    describe(e).map(|line| redact_str(&line).into_owned())
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
        Event::AgentFinished { task, iteration, outcome, duration_ms, .. } => {
            format!("{task}: agent finished iteration {} ({outcome:?}, {:.1}s)", iteration + 1, *duration_ms as f64 / 1000.0)
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
