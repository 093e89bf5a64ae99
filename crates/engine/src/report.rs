//! `fugue report`: the execution report of the playbook's "Phase 6", built from the journal.
//!
//! The measured speedup is the sum of the tasks' busy time over the run's wall time: what the
//! parallelism actually bought, printed beside the plan's estimate.
//!
//! What the agents spent (tokens, cost, turns) is shown where they reported it. A figure no
//! agent reported is *unknown*: `null` in the JSON and "unknown" in the text, never 0; a figure
//! some runs reported and others did not is a lower bound, marked `≥`.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use fugue_core::state::DependencyGraph;
use fugue_core::{Budget, FailureKind, OnExhausted, Plan, Spend, TaskId, TaskStatus, Usage};

use crate::events::{BudgetScope, RunOutcome};
use crate::metrics::{Efficiency, efficiency};
use crate::validate::concurrency;
use crate::view::RunView;

/// One row of the task table.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    /// Task id.
    pub id: String,
    /// Status.
    pub status: TaskStatus,
    /// Busy time in seconds.
    pub duration_s: f64,
    /// Attempts.
    pub attempts: u32,
    /// QA iterations of the last attempt.
    pub iterations: u32,
    /// Files changed.
    pub files_changed: usize,
    /// Last review score, if reviewed.
    pub review_score: Option<f64>,
    /// Last error.
    pub error: Option<String>,
    /// Every token figure of every agent run summed (the running one's so far included);
    /// `null` when no run reported tokens.
    pub tokens: Option<u64>,
    /// Cost in US dollars, summed likewise; `null` when no run reported a cost.
    pub cost_usd: Option<f64>,
    /// Model turns over all runs; `null` when no run reported them.
    pub turns: Option<u32>,
    /// The figures behind `tokens` and `cost_usd` (absent fields are unknown).
    pub usage: Usage,
    /// Agent runs that finished.
    pub agent_runs: u32,
    /// Agent runs that reported no usage: with any, `tokens` and `cost_usd` are lower bounds.
    pub unreported_runs: u32,
    /// Agent runs that reported tokens but no cost (a CLI without costs and no price, or a run
    /// stopped before its result): with any, `cost_usd` is a lower bound.
    pub costless_runs: u32,
    /// Why the last agent run failed, when its output said.
    pub failure: Option<FailureKind>,
    /// Tool calls the CLI refused in the last run.
    pub denials: Vec<String>,
    /// The plan's `allow_empty` (the task may finish without changing files); `null` when the
    /// plan was not available to the report.
    pub allow_empty: Option<bool>,
    /// The last QA round rejected the iteration because it changed nothing.
    pub rejected_empty: bool,
    /// What each attempt's agent runs spent, by 1-based attempt.
    pub attempts_usage: Vec<AttemptUsage>,
    /// The task's budget (its own, its agent's or the run's `per_task`), when the plan was
    /// available and set one.
    pub budget: Option<Budget>,
    /// The limit the task's spend reached, if a budget stopped it.
    pub budget_stop: Option<String>,
}

/// What one attempt spent.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptUsage {
    /// 1-based attempt.
    pub attempt: u32,
    /// Its figures (absent fields unknown).
    pub usage: Usage,
}

/// The run's budget against its spend.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetReport {
    /// The limits.
    pub limit: Budget,
    /// The known spend (unknown figures count 0).
    pub spent: Spend,
    /// What happens to running agents when it is spent.
    pub on_exhausted: OnExhausted,
    /// Whether a reading reached it.
    pub reached: bool,
    /// Whether the run ended for want of budget: reached, or too little left to let in the
    /// next task's reservation.
    pub exhausted: bool,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Run id.
    pub execution_id: String,
    /// PARALLEL or SEQUENTIAL.
    pub mode: String,
    /// A, B, C or D.
    pub strategy: String,
    /// Outcome (`running` while in progress).
    pub status: String,
    /// The task table.
    pub tasks: Vec<TaskRow>,
    /// Tasks merged.
    pub merged: usize,
    /// Merge conflicts: task and files.
    pub conflicts: Vec<(String, Vec<String>)>,
    /// Wall time of the run in seconds.
    pub total_s: f64,
    /// Sum of busy time over wall time.
    pub measured_speedup: f64,
    /// Peak agents at once.
    pub peak_concurrency: usize,
    /// The plan's estimated speedup.
    pub estimated_speedup: f64,
    /// Tokens of every task's agent runs; `null` when none reported any.
    pub tokens: Option<u64>,
    /// Cost in US dollars of every run; `null` when none reported one.
    pub cost_usd: Option<f64>,
    /// Model turns of every run; `null` when none reported them.
    pub turns: Option<u32>,
    /// The figures behind `tokens` and `cost_usd`.
    pub usage: Usage,
    /// Agent runs that finished.
    pub agent_runs: u32,
    /// Agent runs that reported no usage (the totals are lower bounds when there are any).
    pub unreported_runs: u32,
    /// Agent runs whose cost came from the plan's `prices`.
    pub priced_runs: u32,
    /// The run's budget, if the plan set one.
    pub budget: Option<BudgetReport>,
    /// The playbook's efficiency metrics.
    pub efficiency: Efficiency,
    /// What the run's slots cost on disk, measured at its end ([`Report::with_disk`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<crate::disk::DiskUsage>,
}

/// A token count: `850`, `12.3k` (as [`Usage::brief`] writes it); "unknown" when not known.
pub fn tokens_text(tokens: Option<u64>) -> String {
    match tokens {
        None => "unknown".to_owned(),
        Some(t) if t >= 10_000 => format!("{:.1}k", t as f64 / 1000.0),
        Some(t) => t.to_string(),
    }
}

/// Every token figure: `15.5k (input 1200, output 300, cache read 14.0k, cache write unknown)`;
/// just "unknown" when none is known.
pub fn tokens_breakdown(u: &Usage) -> String {
    match u.total_tokens() {
        None => "unknown".to_owned(),
        total => format!(
            "{} (input {}, output {}, cache read {}, cache write {})",
            tokens_text(total),
            tokens_text(u.input_tokens),
            tokens_text(u.output_tokens),
            tokens_text(u.cache_read_tokens),
            tokens_text(u.cache_write_tokens)
        ),
    }
}

/// A cost: `$0.0421`; "unknown" when not known.
pub fn cost_text(cost: Option<f64>) -> String {
    cost.map_or_else(|| "unknown".to_owned(), |c| format!("${c:.4}"))
}

/// A failure kind as the journal spells it (`max_turns`).
pub fn failure_text(kind: FailureKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| format!("{kind:?}"))
}

/// A figure for a table cell: "-" when no agent ran, "unknown" when none said, `≥ x` when some
/// runs did not report it (`unreported` of them), the figure itself otherwise.
pub fn figure<T>(value: Option<T>, ran: bool, unreported: u32, text: impl Fn(Option<T>) -> String) -> String {
    match value {
        _ if !ran => "-".to_owned(),
        None => text(None),
        Some(v) if unreported > 0 => format!("≥ {}", text(Some(v))),
        Some(v) => text(Some(v)),
    }
}

/// The plan the run saved in `state_dir` (`fugue/plan.json`), if it is there and readable.
/// Reports read the tasks' `allow_empty` from it.
pub fn saved_plan(state_dir: &Path) -> Option<Plan> {
    let text = std::fs::read_to_string(state_dir.join("fugue").join("plan.json")).ok()?;
    serde_json::from_str(&text).ok()
}

#[expect(clippy::cast_precision_loss, reason = "durations in seconds for display")]
fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The run's budget against what it spent so far (the running agents' live figures
/// included); `None` when the plan sets no run budget.
pub fn budget_report(view: &RunView, plan: &Plan) -> Option<BudgetReport> {
    let b = plan.budget.filter(|b| !b.limit().is_empty())?;
    Some(BudgetReport {
        limit: b.limit(),
        spent: Spend::of(&view.usage().0),
        on_exhausted: b.on_exhausted,
        reached: view.budget_events.iter().any(|h| h.scope == BudgetScope::Run),
        exhausted: view.budget_events.iter().any(|h| h.scope == BudgetScope::Run) || view.outcome == Some(RunOutcome::BudgetExhausted),
    })
}

impl BudgetReport {
    /// `$0.4100 of $2.0000 (20 %), 12000 of 50000 tokens (24 %) — within (on_exhausted: stop)`.
    pub fn text(&self) -> String {
        let share = |spent: f64, limit: f64| if limit > 0.0 { format!(" ({:.0} %)", spent / limit * 100.0) } else { String::new() };
        let mut parts = Vec::new();
        if let Some(usd) = self.limit.usd {
            parts.push(format!("${:.4} of ${usd:.4}{}", self.spent.usd, share(self.spent.usd, usd)));
        }
        if let Some(tokens) = self.limit.tokens {
            #[expect(clippy::cast_precision_loss, reason = "a percentage")]
            let pct = share(self.spent.tokens as f64, tokens as f64);
            parts.push(format!("{} of {tokens} tokens{pct}", self.spent.tokens));
        }
        let state = match (self.reached, self.exhausted) {
            (true, _) => "spent",
            (false, true) => "too little left to let the next task's budget in",
            (false, false) => "within",
        };
        let policy = match self.on_exhausted {
            OnExhausted::Stop => "stop",
            OnExhausted::Finish => "finish",
        };
        format!("{} — {state} (on_exhausted: {policy})", parts.join(", "))
    }
}

/// Builds the report (without the plan: `allow_empty` is unknown).
pub fn build(view: &RunView, graph: Option<&DependencyGraph>) -> Report {
    build_for(view, graph, None)
}

/// Builds the report; with the run's `plan`, tasks that changed no files say whether that
/// was allowed.
pub fn build_for(view: &RunView, graph: Option<&DependencyGraph>, plan: Option<&Plan>) -> Report {
    let allow_empty: HashMap<&TaskId, bool> = plan.map(|p| p.tasks.iter().map(|t| (&t.id, t.allow_empty)).collect()).unwrap_or_default();
    let mut busy_total = 0u64;
    let tasks: Vec<TaskRow> = view
        .order
        .iter()
        .map(|id| {
            let t = view.task(id);
            let usage = t.usage_with_live();
            let busy: u64 = t.busy.iter().map(|s| s.end - s.start).sum();
            busy_total += busy;
            TaskRow {
                id: id.to_string(),
                status: t.status,
                duration_s: secs(busy),
                attempts: t.attempts,
                iterations: t.iterations,
                files_changed: t.files.len(),
                review_score: t.qa.iter().find(|g| g.gate == "review").and_then(|g| g.score),
                error: t.last_error.clone(),
                tokens: usage.total_tokens(),
                cost_usd: usage.cost_usd,
                turns: (t.turns > 0).then_some(t.turns),
                usage,
                agent_runs: t.agent_runs,
                unreported_runs: t.unreported_runs,
                costless_runs: t.costless_runs,
                failure: t.failure,
                denials: t.denials.clone(),
                allow_empty: allow_empty.get(id).copied(),
                rejected_empty: t
                    .qa
                    .iter()
                    .any(|g| g.gate == fugue_quality_gates::CHANGES_CHECK && g.verdict == fugue_core::GateVerdict::Fail),
                attempts_usage: t.attempt_usage.iter().map(|(a, u)| AttemptUsage { attempt: *a, usage: *u }).collect(),
                budget: plan.and_then(|p| p.task(id.as_str()).and_then(|task| p.budget_of(task))),
                budget_stop: t.budget_stop.as_ref().map(|(limit, _)| limit.clone()),
            }
        })
        .collect();
    let (usage, unreported_runs) = view.usage();
    let turns: u32 = tasks.iter().filter_map(|t| t.turns).sum();
    let wall = view.last_ms.saturating_sub(view.first_ms);
    let spans: Vec<_> = view.tasks.values().flat_map(|t| t.busy.clone()).collect();
    let status = match view.outcome {
        Some(RunOutcome::Success) => "success",
        Some(RunOutcome::Failed) => "failed",
        Some(RunOutcome::Interrupted) => "interrupted",
        Some(RunOutcome::BudgetExhausted) => "budget_exhausted",
        None => "running",
    };
    Report {
        execution_id: view.execution_id.clone(),
        mode: view.mode.clone(),
        strategy: graph.map(|g| format!("{:?}", g.execution_strategy.strategy)).unwrap_or_default(),
        status: status.into(),
        merged: tasks.iter().filter(|t| t.status == TaskStatus::Merged).count(),
        conflicts: view
            .order
            .iter()
            .filter_map(|id| {
                view.tasks.get(id).filter(|t| !t.conflict_files.is_empty()).map(|t| (id.to_string(), t.conflict_files.clone()))
            })
            .collect(),
        total_s: secs(wall),
        measured_speedup: if wall == 0 { 0.0 } else { secs(busy_total) / secs(wall) },
        peak_concurrency: concurrency(&spans).max,
        estimated_speedup: graph.map_or(0.0, |g| g.execution_strategy.estimate.speedup),
        tokens: usage.total_tokens(),
        cost_usd: usage.cost_usd,
        turns: (turns > 0).then_some(turns),
        agent_runs: tasks.iter().map(|t| t.agent_runs).sum(),
        unreported_runs,
        priced_runs: view.tasks.values().map(|t| t.priced_runs).sum(),
        budget: plan.and_then(|p| budget_report(view, p)),
        efficiency: efficiency(view),
        disk: None,
        usage,
        tasks,
    }
}

impl Report {
    /// Adds the disk measurement the run in `state_dir` wrote at its end (see `disk`).
    pub fn with_disk(mut self, state_dir: &Path) -> Self {
        self.disk = crate::disk::DiskUsage::load(state_dir);
        self
    }
}

impl TaskRow {
    /// The Files Changed cell: a task that changed nothing says whether it was allowed to.
    fn files_cell(&self) -> String {
        if self.files_changed > 0 || self.status != TaskStatus::Merged {
            return self.files_changed.to_string();
        }
        match self.allow_empty {
            Some(true) => "0 (allowed: `allow_empty`)".to_owned(),
            Some(false) => "0 (not allowed: no `allow_empty`)".to_owned(),
            None => "0".to_owned(),
        }
    }
}

fn icon(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Merged => "✅",
        TaskStatus::Failed | TaskStatus::MergeConflict => "❌",
        TaskStatus::Blocked => "⛔",
        _ => "⏳",
    }
}

impl Report {
    /// The report as Markdown, in the playbook's layout, with secret values redacted.
    pub fn to_markdown(&self) -> String {
        let overall = match self.status.as_str() {
            "success" => "✅ Complete",
            "failed" if self.merged > 0 => "⚠️ Partial",
            "failed" => "❌ Failed",
            "interrupted" => "⏸ Interrupted (resume with `fugue resume`)",
            "budget_exhausted" => "💸 Budget spent (raise it: `fugue resume --budget-usd N` or `--budget-tokens N`)",
            _ => "⏳ Running",
        };
        let mut s = String::new();
        s.push_str("## Parallel Execution Report\n\n");
        s.push_str(&format!(
            "### Execution ID: {}\n### Strategy Used: {} ({})\n### Overall Status: {overall}\n\n",
            self.execution_id, self.strategy, self.mode
        ));
        s.push_str("### Task Summary\n| Task | Status | Duration | Attempts | Files Changed | Review | Tokens | Cost | Turns |\n|------|--------|----------|----------|---------------|--------|--------|------|-------|\n");
        let mut cells = String::new();
        let (mut idle, mut unknown, mut lower) = (false, false, false);
        for t in &self.tasks {
            let review = t.review_score.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"));
            let ran = t.agent_runs > 0 || !t.usage.is_unknown();
            idle |= !ran;
            unknown |= ran && (t.tokens.is_none() || t.cost_usd.is_none() || t.turns.is_none());
            lower |= ran && t.unreported_runs > 0 && (t.tokens.is_some() || t.cost_usd.is_some());
            lower |= ran && t.costless_runs > 0 && t.cost_usd.is_some();
            cells.push_str(&format!(
                "| {} | {} {} | {:.1}s | {} | {} | {} | {} | {} | {} |\n",
                t.id,
                icon(t.status),
                t.status,
                t.duration_s,
                t.attempts,
                t.files_cell(),
                review,
                figure(t.tokens, ran, t.unreported_runs, tokens_text),
                figure(t.cost_usd, ran, t.unreported_runs + t.costless_runs, cost_text),
                // Turns are not summed per figure: a run that reported none adds nothing.
                figure(t.turns, ran, 0, |n| n.map_or_else(|| "unknown".to_owned(), |n| n.to_string())),
            ));
        }
        s.push_str(&cells);
        let legend: Vec<&str> = [
            (idle, "`-` under Tokens, Cost, Turns: no agent ran"),
            (unknown, "unknown: no agent run reported the figure (it is not 0)"),
            (lower, "`≥`: some runs reported no usage, so the figure is a lower bound"),
        ]
        .into_iter()
        .filter_map(|(shown, text)| shown.then_some(text))
        .collect();
        if !legend.is_empty() {
            s.push_str(&format!("\n{}\n", legend.join("; ")));
        }
        s.push_str("\n### Integration Results\n");
        s.push_str(&format!("- Branches merged: {}/{}\n", self.merged, self.tasks.len()));
        if self.conflicts.is_empty() {
            s.push_str("- Conflicts: none\n");
        } else {
            for (t, files) in &self.conflicts {
                s.push_str(&format!("- Conflict: `{t}` in {}\n", files.join(", ")));
            }
        }
        let failed = self
            .tasks
            .iter()
            .filter(|t| t.status != TaskStatus::Merged)
            .filter(|t| t.error.is_some() || t.failure.is_some() || !t.denials.is_empty() || t.rejected_empty);
        for t in failed {
            let mut line = format!("- `{}`: {}", t.id, t.error.as_deref().unwrap_or("no error recorded"));
            if let Some(kind) = t.failure {
                line.push_str(&format!(" — agent failure: {}", failure_text(kind)));
            }
            if !t.denials.is_empty() {
                line.push_str(&format!(" — {} refused tool call(s): {}", t.denials.len(), t.denials.join("; ")));
            }
            if t.rejected_empty {
                line.push_str(match t.allow_empty {
                    Some(true) => " — QA found the last iteration changed nothing",
                    _ => " — QA rejected the last iteration for changing nothing (the task has no `allow_empty: true`)",
                });
            }
            s.push_str(&line);
            s.push('\n');
        }
        s.push_str("\n### Agent Spend\n");
        if self.agent_runs == 0 && self.usage.is_unknown() {
            s.push_str("- No agent run has finished yet.\n");
        } else {
            let ge = if self.unreported_runs > 0 && !self.usage.is_unknown() { "≥ " } else { "" };
            let u = &self.usage;
            s.push_str(&format!("- Tokens: {}{}\n", if self.tokens.is_some() { ge } else { "" }, tokens_breakdown(u)));
            let costless: u32 = self.tasks.iter().map(|t| t.costless_runs).sum();
            let cost_ge = if self.cost_usd.is_some() && (self.unreported_runs > 0 || costless > 0) { "≥ " } else { "" };
            s.push_str(&format!("- Cost: {cost_ge}{}\n", cost_text(self.cost_usd)));
            s.push_str(&format!("- Turns: {}\n", self.turns.map_or_else(|| "unknown".to_owned(), |n| n.to_string())));
            if self.priced_runs > 0 {
                s.push_str(&format!(
                    "- Priced from the plan's `prices`: {} run(s) whose CLI reported tokens but no cost\n",
                    self.priced_runs
                ));
            }
            if let Some(b) = &self.budget {
                s.push_str(&format!("- Run budget: {}\n", b.text()));
            }
            for t in self.tasks.iter().filter(|t| t.budget_stop.is_some()) {
                s.push_str(&format!("- `{}` was stopped by its budget of {}\n", t.id, t.budget_stop.as_deref().unwrap_or("")));
            }
            s.push_str(&format!("- Agent runs: {}", self.agent_runs));
            match self.unreported_runs {
                0 => {}
                n if n == self.agent_runs => s.push_str(" (none reported usage)"),
                n => s.push_str(&format!(" ({n} run(s) reported no usage: the totals are lower bounds)")),
            }
            s.push('\n');
        }
        s.push_str(&format!(
            "\n### Total Duration: {:.1}s\n### Speedup vs Sequential: {:.2}x measured (sum of task time / wall time, peak {} agents), {:.2}x estimated by the plan\n",
            self.total_s, self.measured_speedup, self.peak_concurrency, self.estimated_speedup
        ));
        s.push_str("\n### Efficiency (the playbook's metrics; definitions in DESIGN.md)\n| Metric | Value | Target | Met |\n|--------|-------|--------|-----|\n");
        for (name, m, target) in self.efficiency.rows() {
            let met = match m.met {
                Some(true) => "✅",
                Some(false) => "❌",
                None => "-",
            };
            s.push_str(&format!("| {name} | {} | {target} | {met} |\n", m.text()));
        }
        if let Some(disk) = &self.disk {
            s.push_str(&disk.markdown());
        }
        // Failure reasons quote agent output, which may echo a secret.
        fugue_core::redact::redact_str(&s).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fugue_core::{AgentOutcome, GateReport};

    use crate::events::Event;
    use crate::journal::Record;
    use crate::test_support::{id, rec};

    fn usage(input: Option<u64>, output: Option<u64>, cache_read: Option<u64>, cost: Option<f64>) -> Usage {
        let mut u = Usage::default();
        u.input_tokens = input;
        u.output_tokens = output;
        u.cache_read_tokens = cache_read;
        u.cost_usd = cost;
        u
    }

    fn finished(task: &str, attempt: u32, iteration: u32, usage: Usage, turns: Option<u32>) -> Event {
        Event::AgentFinished {
            task: id(task),
            attempt,
            iteration,
            outcome: AgentOutcome::ReadyForQa,
            summary: "done".into(),
            duration_ms: 10,
            usage,
            session_id: Some(format!("{task}-{attempt}")),
            turns,
            denials: vec![],
            failure: None,
            final_message: None,
            priced: false,
        }
    }

    fn started(task: &str, attempt: u32) -> Event {
        Event::AttemptStarted { task: id(task), attempt, worktree: "/w".into(), branch: None, slot: None }
    }

    /// `a` fails its first attempt, is interrupted in its second after one iteration (its live
    /// figures journaled), and after a resume merges in the third; `b` runs twice, once without
    /// reporting anything; `c` never starts.
    fn journal() -> Vec<Record> {
        let events = vec![
            Event::RunStarted {
                execution_id: "exec-1".into(),
                plan: "plan.yaml".into(),
                base: "main".into(),
                base_commit: "abc".into(),
                mode: "PARALLEL".into(),
                tasks: vec![id("a"), id("b"), id("c")],
                pid: 1,
            },
            started("a", 1),
            started("b", 1),
            finished("a", 1, 0, usage(Some(1000), Some(200), None, Some(0.01)), Some(3)),
            Event::AttemptFailed { task: id("a"), attempt: 1, reason: "QA failed".into() },
            finished("b", 1, 0, Usage::default(), None),
            started("a", 2),
            finished("a", 2, 0, usage(Some(500), Some(100), Some(300), Some(0.005)), Some(2)),
            // The second iteration is running when the orchestrator dies: its last reading was
            // spent, and counts once (the resume settles it).
            Event::AgentActivity {
                task: id("a"),
                attempt: 2,
                iteration: 1,
                doing: "Bash: cargo test".into(),
                usage: usage(Some(40), None, None, Some(0.001)),
            },
            Event::RunResumed { pid: 2 },
            started("a", 3),
            finished("a", 3, 0, usage(Some(10), Some(5), None, None), Some(1)),
            Event::Merged { task: id("a"), commit: "c0ffee".into(), files: vec!["src/a.rs".into()] },
            Event::Status { task: id("a"), status: TaskStatus::Merged },
            finished("b", 1, 1, usage(None, Some(70), None, None), None),
            Event::QaFinished {
                task: id("b"),
                attempt: 1,
                iteration: 1,
                verdict: crate::events::QaVerdict::TaskApproved,
                reports: vec![GateReport::pass("boundary")],
                duration_ms: 1,
            },
            Event::Merged { task: id("b"), commit: "beef".into(), files: vec![] },
            Event::Status { task: id("b"), status: TaskStatus::Merged },
            Event::Status { task: id("c"), status: TaskStatus::Blocked },
            Event::RunFinished { outcome: RunOutcome::Failed },
        ];
        events.into_iter().enumerate().map(|(i, e)| rec(i as u64 + 1, i as u64 * 10, e)).collect()
    }

    #[test]
    fn usage_over_attempts_and_a_resume_adds_up_in_the_json() {
        let view = RunView::from_records(&journal());
        let json = serde_json::to_value(build(&view, None)).expect("json");
        let task = |name: &str| json["tasks"].as_array().and_then(|t| t.iter().find(|t| t["id"] == name)).cloned().expect("task");
        let a = task("a");
        // 1000+200 + 500+100+300 + 40 (the interrupted iteration's last reading) + 10+5.
        assert_eq!(a["tokens"], 2155);
        assert_eq!(a["usage"]["input_tokens"], 1550);
        assert_eq!(a["usage"]["output_tokens"], 305);
        assert_eq!(a["usage"]["cache_read_tokens"], 300);
        assert!(a["usage"].get("cache_write_tokens").is_none(), "unknown, not 0");
        assert!((a["cost_usd"].as_f64().expect("cost") - 0.016).abs() < 1e-9, "{a}");
        let attempts: Vec<(u64, u64)> = a["attempts_usage"]
            .as_array()
            .expect("attempts")
            .iter()
            .map(|x| (x["attempt"].as_u64().unwrap_or(0), x["usage"]["input_tokens"].as_u64().unwrap_or(0)))
            .collect();
        assert_eq!(attempts, [(1, 1000), (2, 540), (3, 10)], "per attempt, the interrupted reading in its attempt");
        assert_eq!(a["turns"], 6);
        assert_eq!((a["agent_runs"].clone(), a["unreported_runs"].clone()), (3.into(), 0.into()));
        let b = task("b");
        assert_eq!(b["tokens"], 70);
        assert!(b["cost_usd"].is_null() && b["turns"].is_null(), "nobody reported them: {b}");
        assert_eq!((b["agent_runs"].clone(), b["unreported_runs"].clone()), (2.into(), 1.into()));
        let c = task("c");
        assert!(c["tokens"].is_null() && c["cost_usd"].is_null());
        assert_eq!(c["agent_runs"], 0);
        // The totals are the tasks' sums.
        assert_eq!(json["tokens"], 2225);
        assert!((json["cost_usd"].as_f64().expect("cost") - 0.016).abs() < 1e-9);
        assert_eq!(json["turns"], 6);
        assert_eq!(json["agent_runs"], 5);
        assert_eq!(json["unreported_runs"], 1);
        assert_eq!(json["usage"]["input_tokens"], 1550);
    }

    #[test]
    fn a_running_agents_live_figures_count_until_it_finishes() {
        let records = journal();
        // Cut right after the activity: the run is live.
        let cut = records.iter().position(|r| matches!(r.event, Event::AgentActivity { .. })).expect("activity") + 1;
        let report = build(&RunView::from_records(&records[..cut]), None);
        assert_eq!(report.tasks[0].tokens, Some(1000 + 200 + 500 + 100 + 300 + 40));
        assert_eq!(report.status, "running");
    }

    #[test]
    fn unknown_figures_print_as_unknown_never_as_zero() {
        let md = build(&RunView::from_records(&journal()), None).to_markdown();
        let row = |task: &str| md.lines().find(|l| l.starts_with(&format!("| {task} |"))).expect("row").to_owned();
        // a: its last run reported tokens but no cost, so its cost is a lower bound.
        assert!(row("a").ends_with("| 2155 | ≥ $0.0160 | 6 |"), "{}", row("a"));
        // b: one of its two runs reported nothing, and nobody reported cost or turns.
        assert!(row("b").ends_with("| ≥ 70 | unknown | unknown |"), "{}", row("b"));
        assert!(row("c").ends_with("| - | - | - |"), "{}", row("c"));
        assert!(md.contains("unknown: no agent run reported the figure (it is not 0)"));
        assert!(md.contains("`≥`: some runs reported no usage"));
        assert!(md.contains("- Tokens: ≥ 2225 (input 1550, output 375, cache read 300, cache write unknown)"), "{md}");
        assert!(md.contains("- Cost: ≥ $0.0160"), "{md}");
        assert!(md.contains("- Agent runs: 5 (1 run(s) reported no usage: the totals are lower bounds)"), "{md}");
        assert!(!md.contains("$0.0000") && !md.contains("| 0 | unknown"), "{md}");
        // Nothing reported at all: every figure is unknown, the totals too.
        let none: Vec<Record> = journal()
            .into_iter()
            .map(|mut r| {
                if let Event::AgentFinished { usage, turns, .. } = &mut r.event {
                    *usage = Usage::default();
                    *turns = None;
                }
                if let Event::AgentActivity { usage, .. } = &mut r.event {
                    *usage = Usage::default();
                }
                r
            })
            .collect();
        let md = build(&RunView::from_records(&none), None).to_markdown();
        assert!(md.contains("- Tokens: unknown\n"), "{md}");
        assert!(md.contains("- Cost: unknown\n- Turns: unknown\n- Agent runs: 5 (none reported usage)"), "{md}");
        // No agent ran: nothing to show.
        let md = build(&RunView::from_records(&journal()[..1]), None).to_markdown();
        assert!(md.contains("- No agent run has finished yet."), "{md}");
    }

    #[test]
    fn failures_and_empty_changes_are_explained() {
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "version": 1,
            "agents": { "x": { "command": ["true"] } },
            "tasks": [
                { "id": "a", "agent": "x" },
                { "id": "b", "agent": "x", "allow_empty": true },
                { "id": "c", "agent": "x" },
            ],
        }))
        .expect("plan");
        let mut records = journal();
        // c: started, the agent hit its turn limit with two refused calls, then QA rejected an
        // empty iteration, and the task failed.
        let n = records.len() as u64;
        let mut c_fail = finished("c", 1, 0, Usage::default(), None);
        if let Event::AgentFinished { failure, denials, outcome, .. } = &mut c_fail {
            *failure = Some(FailureKind::MaxTurns);
            *denials = vec!["Write src/c.rs".into(), "Bash: rm -rf /".into()];
            *outcome = AgentOutcome::Failed;
        }
        let changes = GateReport::fail(fugue_quality_gates::CHANGES_CHECK, vec![]);
        let more = vec![
            started("c", 1),
            Event::QaFinished {
                task: id("c"),
                attempt: 1,
                iteration: 0,
                verdict: crate::events::QaVerdict::TaskRejected,
                reports: vec![changes],
                duration_ms: 1,
            },
            c_fail,
            Event::AttemptFailed { task: id("c"), attempt: 1, reason: "agent failed: out of turns".into() },
            Event::Status { task: id("c"), status: TaskStatus::Failed },
        ];
        let last = records.pop().expect("run finished");
        for (i, e) in more.into_iter().enumerate() {
            records.push(rec(n + i as u64, 1000 + i as u64, e));
        }
        records.push(last);
        let report = build_for(&RunView::from_records(&records), None, Some(&plan));
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["tasks"][1]["allow_empty"], true);
        assert_eq!(json["tasks"][2]["failure"], "max_turns");
        assert_eq!(json["tasks"][2]["rejected_empty"], true);
        let md = report.to_markdown();
        assert!(md.lines().any(|l| l.starts_with("| b |") && l.contains("| 0 (allowed: `allow_empty`) |")), "{md}");
        let line = md.lines().find(|l| l.starts_with("- `c`:")).expect("c's failure");
        assert_eq!(
            line,
            "- `c`: agent failed: out of turns — agent failure: max_turns — 2 refused tool call(s): Write src/c.rs; Bash: rm -rf / — QA rejected the last iteration for changing nothing (the task has no `allow_empty: true`)"
        );
        // Without the plan, whether it was allowed is not claimed.
        let md = build(&RunView::from_records(&records), None).to_markdown();
        assert!(md.lines().any(|l| l.starts_with("| b |") && l.contains(" | 0 | ")), "{md}");
    }
}
