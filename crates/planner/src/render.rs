//! The human view of a plan, as `fugue plan` shows it.
//!
//! The execution-mode box follows the parallel-orchestrator playbook's "Execution Mode Output":
//! a `┌─┐` box headed `⚡ Execution Mode: PARALLEL` (or `⏳ … SEQUENTIAL` with the reason and
//! the order), the task count, the agents used, every group with its tasks and scopes, and a
//! progress line; then the critical path and the estimate below it. It is built from the
//! execution plan alone (plus the plan's settings and estimates), so it shows any planner's
//! output. Widths are measured in terminal columns (`unicode-width`), long lines are cut with
//! `…` and long lists are shortened, so a 100 000-task plan still prints a readable box.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use fugue_core::state::{ExecutionMode, ParallelGroup, Strategy};
use fugue_core::{ExecutionPlan, HumanDuration, Phase, Plan};
use unicode_width::UnicodeWidthStr;

use crate::build::{DEFAULT_ESTIMATE_MS, estimate_ms, secs};

/// Content columns of the box: at least this many…
const MIN_WIDTH: usize = 58;
/// …and at most this many.
const MAX_WIDTH: usize = 96;
/// Tasks listed per group before "… N more".
const TASKS_PER_GROUP: usize = 12;
/// Groups listed before "… N more groups".
const GROUPS_SHOWN: usize = 40;
/// Tasks named in an order or critical path before it is shortened.
const CHAIN_SHOWN: usize = 12;

/// What each strategy means, for the box.
fn strategy_text(s: Strategy) -> &'static str {
    match s {
        Strategy::A => "A (pure parallel: no dependencies or overlaps inside a phase)",
        Strategy::B => "B (parallel with worktrees: overlapping writers, the merge decides)",
        Strategy::C => "C (phased: each group waits for the groups before it)",
        Strategy::D => "D (sequential: one task at a time)",
    }
}

/// Renders the execution-mode box, the critical path and the estimate.
pub fn render_human(plan: &Plan, exec: &ExecutionPlan) -> String {
    let g = exec.graph();
    let es = &g.execution_strategy;
    let total = g.tasks.len();
    let phases = Phase::ALL.into_iter().filter(|p| g.tasks.iter().any(|t| t.phase == *p)).count();
    let mut lines: Vec<String> = Vec::new();
    match es.mode {
        ExecutionMode::Parallel => {
            lines.push("⚡ Execution Mode: PARALLEL".to_owned());
            lines.push(format!("   Strategy: {}", strategy_text(es.strategy)));
            lines.push(format!(
                "   Tasks: {total} in {phases} {}, {} {}",
                plural(phases, "phase", "phases"),
                es.parallel_groups.len(),
                plural(es.parallel_groups.len(), "group", "groups")
            ));
            let widest = es.parallel_groups.iter().filter(|g| g.phase.is_parallel()).map(|g| g.tasks.len()).max().unwrap_or(1);
            let max_agents = es.max_agents.max(1) as usize;
            if widest > max_agents {
                lines.push(format!("   Agents: {max_agents} (limited by max_agents config)"));
            } else {
                lines.push(format!("   Agents: {widest}"));
            }
            let mut prev: Option<&ParallelGroup> = None;
            for group in es.parallel_groups.iter().take(GROUPS_SHOWN) {
                lines.push(String::new());
                lines.extend(group_lines(group, prev));
                prev = Some(group);
            }
            if es.parallel_groups.len() > GROUPS_SHOWN {
                lines.push(String::new());
                lines.push(format!("   … {} more groups", es.parallel_groups.len() - GROUPS_SHOWN));
            }
        }
        ExecutionMode::Sequential => {
            lines.push("⏳ Execution Mode: SEQUENTIAL".to_owned());
            let par = &plan.parallelization;
            let widest = es.parallel_groups.iter().map(|g| g.tasks.len()).max().unwrap_or(0);
            let (reason, skipping) = if par.enabled {
                (
                    format!("the widest group has {widest} {}, fewer than min_tasks ({})", plural(widest, "task", "tasks"), par.min_tasks),
                    "threshold not met",
                )
            } else {
                ("parallelization is disabled in the plan".to_owned(), "disabled")
            };
            lines.push(format!("   Reason: {reason}"));
            lines.push(format!("   Strategy: {}", strategy_text(es.strategy)));
            lines.push(format!("   Tasks: {total} in {phases} {}", plural(phases, "phase", "phases")));
            let ids: Vec<&str> = es.parallel_groups.iter().flat_map(|g| g.tasks.iter().map(|t| t.id.as_str())).collect();
            lines.extend(wrap_chain("   Order: ", &ids, "          "));
            lines.push(String::new());
            lines.push(format!("   Skipping parallel orchestration ({skipping})"));
        }
    }
    lines.push(String::new());
    lines.push(format!("   Progress: [{}] 0/{total} tasks complete", "░".repeat(16)));

    let mut out = boxed(&lines);
    let est: HashMap<&str, u64> = plan.tasks.iter().map(|t| (t.id.as_str(), estimate_ms(t))).collect();
    let cp: Vec<&str> = es.critical_path.iter().map(|t| t.as_str()).collect();
    let cp_ms = cp.iter().map(|id| est.get(id).copied().unwrap_or(DEFAULT_ESTIMATE_MS)).fold(0u64, u64::saturating_add);
    let _ = writeln!(out, "Critical path: {} ({})", shorten(&cp).join(" → "), duration(secs(cp_ms)));
    let e = &es.estimate;
    let agents = if es.mode == ExecutionMode::Parallel { es.max_agents.max(1) } else { 1 };
    let _ = writeln!(
        out,
        "Estimate: {} sequential, {} with {agents} {} ({:.2}x speedup)",
        duration(e.sequential_s),
        duration(e.parallel_s),
        plural(agents as usize, "agent", "agents"),
        e.speedup
    );
    out
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn duration(s: f64) -> String {
    let ms = if s.is_finite() && s > 0.0 { (s * 1000.0).round() as u64 } else { 0 };
    HumanDuration(Duration::from_millis(ms)).to_string()
}

fn group_lines(group: &ParallelGroup, prev: Option<&ParallelGroup>) -> Vec<String> {
    let kind = if group.phase.is_parallel() { "Parallel Group" } else { "Serial Group" };
    let mut head = format!("   {kind} {}", group.group_id);
    let mut notes = Vec::new();
    if let Some(p) = prev {
        notes.push(format!("after {}", p.group_id));
    }
    if group.can_conflict {
        notes.push("writers overlap: the merge decides".to_owned());
    }
    if !notes.is_empty() {
        let _ = write!(head, " ({})", notes.join("; "));
    }
    head.push(':');
    let mut lines = vec![head];
    let shown = group.tasks.len().min(TASKS_PER_GROUP);
    let more = group.tasks.len() - shown;
    for (k, t) in group.tasks.iter().take(shown).enumerate() {
        let branch = if k + 1 == shown && more == 0 { "└──" } else { "├──" };
        let scope = if t.scope.is_empty() {
            "(writes nothing)".to_owned()
        } else {
            t.scope.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        lines.push(format!("     {branch} {} ({}): {scope}", t.id, t.agent));
    }
    if more > 0 {
        lines.push(format!("     └── … {more} more {}", plural(more, "task", "tasks")));
    }
    lines
}

/// Keeps the first and last few items of a long chain.
fn shorten<'a>(items: &[&'a str]) -> Vec<&'a str> {
    if items.len() <= CHAIN_SHOWN {
        return items.to_vec();
    }
    let mut v: Vec<&str> = items[..CHAIN_SHOWN - 3].to_vec();
    v.push("…");
    v.extend_from_slice(&items[items.len() - 2..]);
    v
}

/// `prefix a → b → …` wrapped to the box width, continuation lines indented.
fn wrap_chain(prefix: &str, items: &[&str], indent: &str) -> Vec<String> {
    let items = shorten(items);
    let mut lines = Vec::new();
    let mut cur = prefix.to_owned();
    for (k, item) in items.iter().enumerate() {
        let piece = if k + 1 < items.len() { format!("{item} → ") } else { (*item).to_owned() };
        if cur.width() + piece.width() > MAX_WIDTH && cur.width() > indent.width() {
            lines.push(cur.trim_end().to_owned());
            cur = indent.to_owned();
        }
        cur.push_str(&piece);
    }
    lines.push(cur);
    lines
}

/// Draws the box around `lines`, cutting lines wider than [`MAX_WIDTH`].
fn boxed(lines: &[String]) -> String {
    let lines: Vec<String> = lines.iter().map(|l| cut(l, MAX_WIDTH)).collect();
    let width = lines.iter().map(|l| l.width()).max().unwrap_or(0).clamp(MIN_WIDTH, MAX_WIDTH);
    let mut out = String::new();
    let _ = writeln!(out, "┌{}┐", "─".repeat(width + 2));
    for l in &lines {
        let _ = writeln!(out, "│ {l}{} │", " ".repeat(width - l.width()));
    }
    let _ = writeln!(out, "└{}┘", "─".repeat(width + 2));
    out
}

fn cut(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}
