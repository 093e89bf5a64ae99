//! `fugue validate`: prove from the journal what the playbooks only ask for.
//!
//! The playbooks tell a model "NEVER claim parallel execution then run serially" and "NEVER
//! allow two agents to modify the same file". Here both are checked against what actually
//! happened: the busy intervals the journal recorded for every task, the planned graph
//! (`DEPENDENCY_GRAPH.json`, which carries the conflict edges and scopes), and the files each
//! merge changed. Every check either holds or yields a [`Finding`] that names the tasks and
//! the times involved.

use serde::Serialize;

use fugue_core::state::{DependencyGraph, EdgeReason, ExecutionMode};
use fugue_core::{Budget, Pattern, Phase, Plan, Spend, TaskId, TaskStatus};

use crate::view::{RunView, Span};

/// One violated rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which rule (`conflict-overlap`, `serial-overlap`, `not-parallel`, `out-of-scope`,
    /// `merge-order`, `phase-order`).
    pub rule: String,
    /// What happened.
    pub message: String,
}

/// Concurrency figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Concurrency {
    /// The most tasks busy at once.
    pub max: usize,
    /// Average number of busy tasks over the time any was busy.
    pub mean: f64,
}

/// What `validate` found.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// The run.
    pub execution_id: String,
    /// Over the whole run.
    pub concurrency: Concurrency,
    /// Per parallel phase that ran.
    pub phases: Vec<(Phase, Concurrency)>,
    /// Checks performed.
    pub checks: usize,
    /// Violations.
    pub findings: Vec<Finding>,
}

impl Validation {
    /// True when no rule was violated.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Max and mean concurrency of a set of intervals.
pub fn concurrency(spans: &[Span]) -> Concurrency {
    let mut points: Vec<(u64, i32)> = spans.iter().filter(|s| s.end > s.start).flat_map(|s| [(s.start, 1), (s.end, -1)]).collect();
    points.sort_by_key(|&(t, d)| (t, d));
    let (mut cur, mut max, mut area, mut busy) = (0i32, 0i32, 0u128, 0u128);
    let mut last = points.first().map_or(0, |p| p.0);
    for (t, d) in points {
        if cur > 0 {
            area += u128::from(t - last) * u128::try_from(cur).unwrap_or(0);
            busy += u128::from(t - last);
        }
        cur += d;
        max = max.max(cur);
        last = t;
    }
    #[expect(clippy::cast_precision_loss, reason = "a ratio of durations")]
    let mean = if busy == 0 { 0.0 } else { area as f64 / busy as f64 };
    Concurrency { max: usize::try_from(max).unwrap_or(0), mean }
}

fn overlap(a: &[Span], b: &[Span]) -> Option<(Span, Span)> {
    a.iter().flat_map(|x| b.iter().map(move |y| (*x, *y))).find(|(x, y)| x.start < y.end && y.start < x.end)
}

fn fmt_ms(ms: u64, origin: u64) -> String {
    format!("+{:.3}s", ms.saturating_sub(origin) as f64 / 1000.0)
}

/// Checks the run in `view` against the planned `graph`.
pub fn validate(view: &RunView, graph: &DependencyGraph) -> Validation {
    let mut findings = Vec::new();
    let mut checks = 0;
    let origin = view.first_ms;
    let busy = |id: &TaskId| view.tasks.get(id).map(|t| t.busy.clone()).unwrap_or_default();

    // No two conflicting tasks at once.
    for e in &graph.edges {
        if matches!(e.reason, EdgeReason::WriteWrite | EdgeReason::WriteRead | EdgeReason::Serial(_)) {
            checks += 1;
            if let Some((x, y)) = overlap(&busy(&e.from), &busy(&e.to)) {
                findings.push(Finding {
                    rule: "conflict-overlap".into(),
                    message: format!(
                        "`{}` ({}..{}) and `{}` ({}..{}) ran at the same time although they conflict ({})",
                        e.from,
                        fmt_ms(x.start, origin),
                        fmt_ms(x.end, origin),
                        e.to,
                        fmt_ms(y.start, origin),
                        fmt_ms(y.end, origin),
                        e.reason
                    ),
                });
            }
        }
        // Dependency order of merges and starts.
        if matches!(e.reason, EdgeReason::Declared | EdgeReason::Phase) {
            let (from, to) = (view.tasks.get(&e.from), view.tasks.get(&e.to));
            if let (Some(from), Some(to)) = (from, to) {
                checks += 1;
                if let (Some(fm), Some(tm)) = (from.merged_at, to.merged_at)
                    && tm < fm
                {
                    findings.push(Finding {
                        rule: "merge-order".into(),
                        message: format!("`{}` was merged before its dependency `{}`", e.to, e.from),
                    });
                }
                if let (Some(fm), Some(first)) = (from.merged_at, to.busy.first())
                    && first.start < fm
                {
                    findings.push(Finding {
                        rule: "dependency-order".into(),
                        message: format!(
                            "`{}` started at {} before its dependency `{}` was merged at {}",
                            e.to,
                            fmt_ms(first.start, origin),
                            e.from,
                            fmt_ms(fm, origin)
                        ),
                    });
                }
            }
        }
    }

    // Serial phases ran serially; parallel phases really overlapped.
    let mut phases = Vec::new();
    for phase in Phase::ALL {
        let members: Vec<&TaskId> = graph.tasks.iter().filter(|t| t.phase == phase).map(|t| &t.id).collect();
        if members.is_empty() {
            continue;
        }
        let spans: Vec<Span> = members.iter().flat_map(|id| busy(id)).collect();
        let c = concurrency(&spans);
        checks += 1;
        if !phase.is_parallel() && c.max > 1 {
            findings.push(Finding {
                rule: "serial-overlap".into(),
                message: format!("serial phase `{phase}` had {} tasks running at once", c.max),
            });
        }
        if phase.is_parallel() {
            let widest =
                graph.execution_strategy.parallel_groups.iter().filter(|g| g.phase == phase).map(|g| g.tasks.len()).max().unwrap_or(0);
            let ran = members.iter().filter(|id| !busy(id).is_empty()).count();
            if graph.execution_strategy.mode == ExecutionMode::Parallel
                && graph.execution_strategy.max_agents > 1
                && widest > 1
                && ran > 1
                && c.max < 2
            {
                findings.push(Finding {
                    rule: "not-parallel".into(),
                    message: format!(
                        "phase `{phase}` was planned PARALLEL (a group of {widest} tasks) but never had two tasks running at once"
                    ),
                });
            }
            phases.push((phase, c));
        }
        // Synchronization point: nothing of a later phase started before this phase ended.
        let end = spans.iter().map(|s| s.end).max();
        if let Some(end) = end {
            for t in graph.tasks.iter().filter(|t| t.phase > phase) {
                if let Some(first) = busy(&t.id).first().filter(|s| s.start < end) {
                    checks += 1;
                    findings.push(Finding {
                        rule: "phase-order".into(),
                        message: format!(
                            "`{}` (phase `{}`) started at {} before phase `{phase}` ended at {}",
                            t.id,
                            t.phase,
                            fmt_ms(first.start, origin),
                            fmt_ms(end, origin)
                        ),
                    });
                }
            }
        }
    }

    // Every merged diff stayed in its scope.
    for t in &graph.tasks {
        let Some(v) = view.tasks.get(&t.id) else { continue };
        if v.status != TaskStatus::Merged {
            continue;
        }
        checks += 1;
        let outside: Vec<&String> = v.files.iter().filter(|f| !t.modifies.iter().any(|p: &Pattern| p.matches(f))).collect();
        if !outside.is_empty() {
            findings.push(Finding {
                rule: "out-of-scope".into(),
                message: format!(
                    "`{}` merged changes outside its `modifies`: {}",
                    t.id,
                    outside.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    let all: Vec<Span> = view.tasks.values().flat_map(|t| t.busy.clone()).collect();
    Validation { execution_id: view.execution_id.clone(), concurrency: concurrency(&all), phases, checks, findings }
}

/// Checks `validate` does and the budgets of the run's saved `plan` on top: every task within
/// its budget but for the step of the reading that stopped it, every admission within the run's
/// budget, and the run's spend within its budget but for the steps that stopped agents (the
/// guarantee the engine's `budget` module documents).
pub fn validate_with_plan(view: &RunView, graph: &DependencyGraph, plan: Option<&Plan>) -> Validation {
    let mut v = validate(view, graph);
    if let Some(plan) = plan {
        let (checks, findings) = budgets(view, plan);
        v.checks += checks;
        v.findings.extend(findings);
    }
    v
}

/// Floating-point slack for dollar sums.
const USD_EPSILON: f64 = 1e-9;

fn over(spent: Spend, limit: Budget, slack: Spend) -> Option<String> {
    if let Some(usd) = limit.usd
        && spent.usd > usd + slack.usd + USD_EPSILON
    {
        return Some(format!("${:.4} against ${usd:.4} (+ ${:.4} allowed for the steps in flight)", spent.usd, slack.usd));
    }
    if let Some(tokens) = limit.tokens
        && spent.tokens > tokens.saturating_add(slack.tokens)
    {
        return Some(format!("{} tokens against {tokens} (+ {} allowed for the steps in flight)", spent.tokens, slack.tokens));
    }
    None
}

fn budgets(view: &RunView, plan: &Plan) -> (usize, Vec<Finding>) {
    let mut checks = 0;
    let mut findings = Vec::new();
    for task in &plan.tasks {
        let Some(limit) = plan.budget_of(task) else { continue };
        checks += 1;
        let t = view.task(&task.id);
        let step = t.budget_stop.as_ref().map(|(_, step)| *step).unwrap_or_default();
        if let Some(by) = over(Spend::of(&t.usage), limit, step) {
            findings.push(Finding {
                rule: "task-budget".into(),
                message: format!("`{}` spent {by}: more than its budget and the reading that reached it", task.id),
            });
        }
    }
    for r in &view.reservations {
        checks += 1;
        let after = r.claimed.plus(r.reserved);
        if let Some(by) = over(after, r.limit, Spend::default()) {
            findings.push(Finding {
                rule: "run-budget-admission".into(),
                message: format!(
                    "`{}` was dispatched holding {} with {} already claimed: {by}",
                    r.task,
                    r.reserved.brief_in(&r.limit),
                    r.claimed.brief_in(&r.limit)
                ),
            });
        }
    }
    if let Some(limit) = plan.budget.map(|b| b.limit()).filter(|b| !b.is_empty()) {
        checks += 1;
        let (usage, _) = view.usage();
        // Every reading that stopped an agent or spent the run may have gone one step over.
        let slack = view.budget_events.iter().fold(Spend::default(), |s, h| s.plus(h.step).plus(h.in_flight));
        let finish_uncapped = plan.budget.is_some_and(|b| b.on_exhausted == fugue_core::OnExhausted::Finish)
            && plan.tasks.iter().any(|t| plan.budget_of(t).is_none());
        if let Some(by) = over(Spend::of(&usage), limit, slack)
            && !finish_uncapped
        {
            findings.push(Finding { rule: "run-budget".into(), message: format!("the run spent {by}") });
        }
    }
    (checks, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use fugue_core::state::{EdgeRecord, Estimate, ExecutionStrategy, GraphTask, Strategy};

    use crate::test_support::{id, rec};

    fn graph(reason: EdgeReason) -> DependencyGraph {
        let task = |t: &str, dir: &str| GraphTask {
            id: id(t),
            phase: Phase::Implementation,
            agent: "x".into(),
            modifies: vec![Pattern::parse(dir).expect("pattern")],
            reads: vec![],
            depends_on: vec![],
        };
        DependencyGraph {
            version: 1,
            tasks: vec![task("a", "src/**"), task("b", "src/**")],
            edges: vec![EdgeRecord { from: id("a"), to: id("b"), reason }],
            execution_strategy: ExecutionStrategy {
                mode: ExecutionMode::Parallel,
                strategy: Strategy::C,
                max_agents: 2,
                parallel_groups: vec![],
                critical_path: vec![],
                estimate: Estimate { sequential_s: 0.0, parallel_s: 0.0, speedup: 1.0 },
            },
        }
    }

    /// A journal in which `a` and `b` ran from 0-100 ms and 50-150 ms.
    fn overlapping_run() -> RunView {
        let start = |t: &str| Event::AttemptStarted { task: id(t), attempt: 1, worktree: "/w".into(), branch: None, slot: None };
        let done = |t: &str| Event::Status { task: id(t), status: TaskStatus::Merged };
        RunView::from_records(&[
            rec(
                1,
                0,
                Event::RunStarted {
                    execution_id: "e".into(),
                    plan: "p".into(),
                    base: "main".into(),
                    base_commit: "c".into(),
                    mode: "PARALLEL".into(),
                    tasks: vec![id("a"), id("b")],
                    pid: 1,
                },
            ),
            rec(2, 0, start("a")),
            rec(3, 50, start("b")),
            rec(4, 100, done("a")),
            rec(5, 150, done("b")),
        ])
    }

    #[test]
    fn flags_conflicting_tasks_that_overlapped() {
        let v = validate(&overlapping_run(), &graph(EdgeReason::WriteWrite));
        assert!(
            v.findings.iter().any(|f| f.rule == "conflict-overlap" && f.message.contains("`a`") && f.message.contains("`b`")),
            "{:?}",
            v.findings
        );
        assert_eq!(v.concurrency.max, 2);
    }

    #[test]
    fn independent_overlap_is_fine_and_proves_parallelism() {
        let mut g = graph(EdgeReason::WriteWrite);
        g.edges.clear();
        let v = validate(&overlapping_run(), &g);
        assert!(v.ok(), "{:?}", v.findings);
        assert!(v.phases.iter().any(|(p, c)| *p == Phase::Implementation && c.max == 2));
    }

    #[test]
    fn concurrency_of_intervals() {
        let s = |a, b| Span { start: a, end: b };
        let c = concurrency(&[s(0, 10), s(5, 15), s(20, 30)]);
        assert_eq!(c.max, 2);
        assert!((c.mean - 1.2).abs() < 1e-9, "{}", c.mean);
        assert_eq!(concurrency(&[]).max, 0);
    }

    fn budget_plan() -> Plan {
        serde_json::from_value(serde_json::json!({
            "version": 1,
            "budget": { "tokens": 10000 },
            "agents": { "c": { "driver": "claude" } },
            "tasks": [{ "id": "a", "agent": "c", "budget": { "tokens": 4000 } }, { "id": "b", "agent": "c" }]
        }))
        .expect("plan")
    }

    fn spent(task: &str, tokens: u64) -> Event {
        let mut usage = fugue_core::Usage::default();
        usage.output_tokens = Some(tokens);
        Event::AgentFinished {
            task: id(task),
            attempt: 1,
            iteration: 0,
            outcome: fugue_core::AgentOutcome::Failed,
            summary: String::new(),
            duration_ms: 1,
            usage,
            session_id: None,
            turns: None,
            denials: vec![],
            failure: None,
            final_message: None,
            priced: false,
        }
    }

    fn rules(events: Vec<Event>) -> Vec<String> {
        let records: Vec<_> = events.into_iter().enumerate().map(|(i, e)| rec(i as u64 + 1, i as u64, e)).collect();
        let (_, findings) = budgets(&RunView::from_records(&records), &budget_plan());
        findings.into_iter().map(|f| f.rule).collect()
    }

    fn tokens(n: u64) -> Spend {
        Spend { usd: 0.0, tokens: n }
    }

    #[test]
    fn a_task_over_its_budget_is_a_finding_unless_the_reading_that_reached_it_explains_it() {
        assert_eq!(rules(vec![spent("a", 3999)]), Vec::<String>::new());
        assert_eq!(rules(vec![spent("a", 4500)]), ["task-budget"], "over, and fugue never stopped it");
        let stop = Event::BudgetExceeded {
            scope: crate::events::BudgetScope::Task,
            task: id("a"),
            limit: "4000 tokens".into(),
            spent: tokens(4200),
            step: tokens(400),
            in_flight: tokens(400),
        };
        assert_eq!(rules(vec![stop.clone(), spent("a", 4500)]), Vec::<String>::new(), "within the step and one in flight");
        assert_eq!(rules(vec![stop, spent("a", 5000)]), ["task-budget"], "more than the bound");
    }

    #[test]
    fn admissions_and_the_run_total_are_checked_against_the_run_budget() {
        let limit = fugue_core::Budget { usd: None, tokens: Some(10000) };
        let ok = Event::BudgetReserved { task: id("a"), reserved: tokens(4000), claimed: tokens(6000), limit };
        let over = Event::BudgetReserved { task: id("a"), reserved: tokens(4000), claimed: tokens(6001), limit };
        assert_eq!(rules(vec![ok]), Vec::<String>::new());
        assert_eq!(rules(vec![over]), ["run-budget-admission"]);
        assert_eq!(rules(vec![spent("b", 10500)]), ["run-budget"], "the run went over with nothing to explain it");
    }
}
