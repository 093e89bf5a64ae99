//! Budgets while agents run: the task's and the run's, checked at every usage reading.
//!
//! Agents report what they spend as they go (a driver's parser reads the CLI's stream; every
//! new figure reaches [`Budgets::reading`] through the iteration's activity observer, on the
//! thread that pumps the agent's output). The meter keeps, per task, what its finished runs
//! spent (*settled*, from the journal, so a resumed run does not start at zero) and the
//! running iteration's latest reading (*live*); a reading is priced by the plan's `prices`
//! first when the CLI gives tokens but no cost.
//!
//! **The task budget** (the task's, else its agent's, else the run's `per_task`) covers the
//! task over all its attempts and iterations. The first reading that reaches it stops the
//! agent (its process group or job, by dropping the run) and fails the attempt with `budget`;
//! no retry follows. A CLI with a limit of its own (Claude Code's `--max-budget-usd`) gets
//! what is left as well.
//!
//! **The run budget** is enforced by admission and by readings:
//! - a task is dispatched only if `claimed + reserved <= limit`, where `reserved` is its
//!   budget left (0 for a task without one) and `claimed` is what the run has spent plus, for
//!   each task in flight, the larger of its spend and its reservation. So tasks with budgets
//!   can never together break the run's budget, whatever order they finish in;
//! - every reading also checks the run's total: when it reaches the limit the run's budget is
//!   spent: nothing more is dispatched, and the agents in flight are stopped
//!   (`on_exhausted: stop`, the default) or left to finish (`finish`).
//!
//! The guarantee, checked by `fugue validate` from the journal: a task spends at most its
//! budget plus the step of the reading that reached it plus one more step in flight (the
//! largest it took: the answer that may already be on its way when the agent is stopped); the
//! run at most its budget plus, for each `budget_exceeded`, its `step` and `in_flight` (one
//! step per agent stopped). With `finish`, an agent without a task budget runs on after the
//! run's budget is spent, unbounded: `fugue plan` warns about that combination. Spend is what
//! the CLIs report; a step is as coarse as the CLI's reports (Claude Code: every model answer;
//! Codex: every turn; a command agent reports nothing, and nothing stops it).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

use fugue_core::{Budget, OnExhausted, Plan, Prices, RunBudget, Spend, TaskId, Usage, priced};

use crate::events::{BudgetScope, Event};
use crate::view::RunView;

/// Why a running agent was stopped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    /// The task's budget is spent.
    Task { limit: String },
    /// The run's budget is spent.
    Run { limit: String },
}

/// Whether a task may be dispatched under the run's budget.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Dispatch it; the event records the reservation (none without a run budget).
    Admitted(Option<Box<Event>>),
    /// Leave it pending: the run's budget (or the task's own) has no room for it.
    Refused,
}

#[derive(Debug)]
struct Meter {
    task: TaskId,
    settled: Spend,
    live: Usage,
    cap: Option<Budget>,
    reserved: Spend,
    running: bool,
    stop: watch::Sender<Option<Stop>>,
    /// The largest increment one reading of this task has brought: what one more step in
    /// flight may add after a stop.
    max_step: Spend,
}

impl Meter {
    fn spent(&self) -> Spend {
        self.settled.plus(Spend::of(&self.live))
    }

    /// What the task holds against the run's budget while it runs.
    fn claim(&self) -> Spend {
        if self.running { self.spent().max(self.settled.plus(self.reserved)) } else { self.spent() }
    }
}

#[derive(Debug, Default)]
struct State {
    meters: HashMap<usize, Meter>,
    spent: bool,
    refused: bool,
}

/// The run's meters (one per task that ran); shared by the loop and the pipelines.
#[derive(Debug)]
pub(crate) struct Budgets {
    run: Option<RunBudget>,
    prices: Prices,
    models: HashMap<String, String>,
    state: Mutex<State>,
    spent_tx: watch::Sender<bool>,
}

impl Budgets {
    /// Meters for `plan`, starting from what the journal says each task spent.
    pub(crate) fn new(plan: &Plan, view: &RunView) -> Self {
        let mut state = State::default();
        for (i, t) in plan.tasks.iter().enumerate() {
            let settled = Spend::of(&view.task(&t.id).usage);
            state.meters.insert(
                i,
                Meter {
                    task: t.id.clone(),
                    settled,
                    live: Usage::default(),
                    cap: plan.budget_of(t),
                    reserved: Spend::default(),
                    running: false,
                    stop: watch::channel(None).0,
                    max_step: Spend::default(),
                },
            );
        }
        let models = plan.agents.iter().filter_map(|(name, a)| a.model().map(|m| (name.clone(), m.to_owned()))).collect();
        let budgets =
            Self { run: plan.budget, prices: plan.prices.clone(), models, state: Mutex::new(state), spent_tx: watch::channel(false).0 };
        // A run resumed with its budget already spent stays spent until it is raised.
        let over = budgets.run_exceeded(&budgets.lock()).is_some();
        if over {
            budgets.lock().spent = true;
            budgets.spent_tx.send_replace(true);
        }
        budgets
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `usage` with a cost from the plan's `prices` for `agent`'s model, if the CLI gave none.
    pub(crate) fn price(&self, agent: &str, usage: Usage) -> (Usage, bool) {
        priced(usage, self.models.get(agent).map(String::as_str), &self.prices)
    }

    /// The run's limits, if it has a budget.
    pub(crate) fn run_limit(&self) -> Option<Budget> {
        self.run.map(|b| b.limit()).filter(|b| !b.is_empty())
    }

    fn total(state: &State) -> Spend {
        state.meters.values().fold(Spend::default(), |s, m| s.plus(m.spent()))
    }

    fn run_exceeded(&self, state: &State) -> Option<String> {
        self.run_limit()?.exceeded(Self::total(state))
    }

    /// Whether task `index` may start now; registers it as running when it may.
    pub(crate) fn admit(&self, index: usize) -> Admission {
        let mut state = self.lock();
        let Some(m) = state.meters.get(&index) else { return Admission::Admitted(None) };
        if m.cap.is_some_and(|c| c.exceeded(m.spent()).is_some()) {
            state.refused = true;
            return Admission::Refused;
        }
        let need = match m.cap {
            Some(cap) => {
                let left = cap.left(m.spent());
                Spend { usd: left.usd.unwrap_or(0.0), tokens: left.tokens.unwrap_or(0) }
            }
            None => Spend::default(),
        };
        let event = match self.run_limit() {
            None => None,
            Some(limit) => {
                let claimed = state.meters.values().fold(Spend::default(), |s, m| s.plus(m.claim()));
                let fits_usd = limit.usd.is_none_or(|l| claimed.usd < l && claimed.usd + need.usd <= l);
                let fits_tokens = limit.tokens.is_none_or(|l| claimed.tokens < l && claimed.tokens.saturating_add(need.tokens) <= l);
                if state.spent || !fits_usd || !fits_tokens {
                    state.refused = true;
                    return Admission::Refused;
                }
                // Only the limits the run has are reserved against.
                let reserved = Spend {
                    usd: if limit.usd.is_some() { need.usd } else { 0.0 },
                    tokens: if limit.tokens.is_some() { need.tokens } else { 0 },
                };
                Some(Box::new(Event::BudgetReserved { task: m.task.clone(), reserved, claimed, limit }))
            }
        };
        if let Some(m) = state.meters.get_mut(&index) {
            m.running = true;
            m.reserved = need;
            m.live = Usage::default();
            m.stop.send_replace(None);
        }
        Admission::Admitted(event)
    }

    /// What task `index` may still spend (for the agent's own limit), if it has a budget.
    pub(crate) fn left(&self, index: usize) -> Option<Budget> {
        let state = self.lock();
        let m = state.meters.get(&index)?;
        m.cap.map(|c| c.left(m.spent()))
    }

    /// Why task `index` must not start another agent run now, if it must not.
    pub(crate) fn blocked(&self, index: usize) -> Option<Stop> {
        let state = self.lock();
        let m = state.meters.get(&index)?;
        if let Some(limit) = m.cap.and_then(|c| c.exceeded(m.spent())) {
            return Some(Stop::Task { limit });
        }
        if state.spent && self.run.is_some_and(|r| r.on_exhausted == OnExhausted::Stop) {
            return Some(Stop::Run { limit: self.run_limit().map(|b| b.brief()).unwrap_or_default() });
        }
        None
    }

    /// A receiver that says when the running agent of task `index` must stop.
    pub(crate) fn stop_signal(&self, index: usize) -> watch::Receiver<Option<Stop>> {
        let state = self.lock();
        match state.meters.get(&index) {
            Some(m) => m.stop.subscribe(),
            None => watch::channel(None).1,
        }
    }

    /// A receiver that turns true when the run's budget is spent.
    #[cfg(test)]
    pub(crate) fn spent_signal(&self) -> watch::Receiver<bool> {
        self.spent_tx.subscribe()
    }

    /// Whether the run's budget is spent, or a task was left pending for want of budget.
    pub(crate) fn exhausted(&self) -> bool {
        let state = self.lock();
        state.spent || state.refused
    }

    /// A new reading of task `index`'s running iteration (its usage so far, priced). Returns the
    /// `budget_exceeded` events it caused, to journal.
    pub(crate) fn reading(&self, index: usize, live: Usage) -> Vec<Event> {
        let mut state = self.lock();
        let mut events = Vec::new();
        let Some(m) = state.meters.get_mut(&index) else { return events };
        let before = m.spent();
        m.live = live;
        let now = m.spent();
        let step = now.minus(before);
        if step == Spend::default() {
            return events;
        }
        m.max_step = m.max_step.max(step);
        if m.stop.borrow().is_none()
            && let Some(limit) = m.cap.and_then(|c| c.exceeded(now))
        {
            let in_flight = m.max_step;
            events.push(Event::BudgetExceeded {
                scope: BudgetScope::Task,
                task: m.task.clone(),
                limit: limit.clone(),
                spent: now,
                step,
                in_flight,
            });
            m.stop.send_replace(Some(Stop::Task { limit }));
        }
        let task = m.task.clone();
        if !state.spent
            && let Some(limit) = self.run_exceeded(&state)
        {
            state.spent = true;
            self.spent_tx.send_replace(true);
            let stopping = self.run.is_some_and(|r| r.on_exhausted == OnExhausted::Stop);
            let in_flight = if stopping {
                state.meters.values().filter(|m| m.running).fold(Spend::default(), |s, m| s.plus(m.max_step))
            } else {
                Spend::default()
            };
            events.push(Event::BudgetExceeded {
                scope: BudgetScope::Run,
                task,
                limit: limit.clone(),
                spent: Self::total(&state),
                step,
                in_flight,
            });
            if stopping {
                for m in state.meters.values().filter(|m| m.running) {
                    if m.stop.borrow().is_none() {
                        m.stop.send_replace(Some(Stop::Run { limit: limit.clone() }));
                    }
                }
            }
        }
        events
    }

    /// The running iteration of task `index` ended and reported `usage` (its whole spend):
    /// it moves from live to settled. A run that ended without a report settles its last
    /// reading (pass `None`).
    pub(crate) fn settle(&self, index: usize, usage: Option<Usage>) -> Vec<Event> {
        let live = {
            let state = self.lock();
            match state.meters.get(&index) {
                Some(m) => m.live,
                None => return Vec::new(),
            }
        };
        // The report's figures are the run's final reading: checked like any other.
        let events = match usage {
            Some(u) if u != live => self.reading(index, u),
            _ => Vec::new(),
        };
        let mut state = self.lock();
        if let Some(m) = state.meters.get_mut(&index) {
            m.settled = m.settled.plus(Spend::of(&m.live));
            m.live = Usage::default();
        }
        events
    }

    /// The live reading of task `index`'s running iteration (priced).
    pub(crate) fn live(&self, index: usize) -> Usage {
        self.lock().meters.get(&index).map(|m| m.live).unwrap_or_default()
    }

    /// Task `index`'s pipeline ended: its reservation is given back.
    pub(crate) fn ended(&self, index: usize) {
        let mut state = self.lock();
        if let Some(m) = state.meters.get_mut(&index) {
            m.settled = m.settled.plus(Spend::of(&m.live));
            m.live = Usage::default();
            m.running = false;
            m.reserved = Spend::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_plan_str(text: &str) -> Result<Plan, String> {
        fugue_core::load::load_str("plan.yaml", text, &fugue_core::load::LoadOptions::default()).map(|l| l.plan).map_err(|e| e.to_string())
    }

    fn plan(yaml: &str) -> Plan {
        let head = "version: 1\nagents:\n  a: { command: [\"true\"] }\n";
        parse_plan_str(&format!("{head}{yaml}")).expect("plan")
    }

    fn tokens(n: u64) -> Usage {
        let mut u = Usage::default();
        u.output_tokens = Some(n);
        u
    }

    #[test]
    fn a_task_is_stopped_at_the_first_reading_that_reaches_its_budget() {
        let p = plan("tasks:\n  - { id: t, agent: a, budget: { tokens: 1000 } }\n");
        let b = Budgets::new(&p, &RunView::default());
        assert!(matches!(b.admit(0), Admission::Admitted(None)));
        let stop = b.stop_signal(0);
        assert!(b.reading(0, tokens(600)).is_empty());
        assert_eq!(b.left(0), Some(Budget { usd: None, tokens: Some(400) }));
        let events = b.reading(0, tokens(1300));
        assert!(
            matches!(&events[..], [Event::BudgetExceeded { scope: BudgetScope::Task, step, spent, .. }] if step.tokens == 700 && spent.tokens == 1300)
        );
        assert_eq!(*stop.borrow(), Some(Stop::Task { limit: "1000 tokens".into() }));
        b.settle(0, None);
        assert!(matches!(b.blocked(0), Some(Stop::Task { .. })), "no further iteration");
    }

    #[test]
    fn admission_reserves_each_task_budget_and_never_oversubscribes_the_run() {
        let mut yaml = String::from("budget: { tokens: 2500 }\ntasks:\n");
        for i in 0..4 {
            yaml.push_str(&format!("  - {{ id: t{i}, agent: a, budget: {{ tokens: 1000 }} }}\n"));
        }
        let b = Budgets::new(&plan(&yaml), &RunView::default());
        assert!(matches!(b.admit(0), Admission::Admitted(Some(_))));
        assert!(matches!(b.admit(1), Admission::Admitted(Some(_))));
        assert!(matches!(b.admit(2), Admission::Refused), "2000 held + 1000 > 2500");
        // t0 finishes cheaply: its reservation comes back, and t2 fits.
        b.reading(0, tokens(100));
        b.settle(0, None);
        b.ended(0);
        assert!(
            matches!(b.admit(2), Admission::Admitted(Some(e)) if matches!(*e, Event::BudgetReserved { claimed, .. } if claimed.tokens == 1100))
        );
        assert!(b.exhausted(), "a refusal is remembered for the run's outcome");
    }

    #[test]
    fn the_run_budget_stops_every_running_agent_at_once_under_stop() {
        let b = Budgets::new(
            &plan("budget: { tokens: 1000 }\ntasks:\n  - { id: x, agent: a }\n  - { id: y, agent: a }\n"),
            &RunView::default(),
        );
        assert!(matches!(b.admit(0), Admission::Admitted(_)));
        assert!(matches!(b.admit(1), Admission::Admitted(_)));
        let (sx, sy) = (b.stop_signal(0), b.stop_signal(1));
        b.reading(0, tokens(500));
        let events = b.reading(1, tokens(600));
        assert!(matches!(&events[..], [Event::BudgetExceeded { scope: BudgetScope::Run, spent, .. }] if spent.tokens == 1100));
        assert!(matches!(*sx.borrow(), Some(Stop::Run { .. })) && matches!(*sy.borrow(), Some(Stop::Run { .. })));
        assert!(*b.spent_signal().borrow());
        assert!(matches!(b.admit(0), Admission::Refused));
    }

    #[test]
    fn finish_lets_running_agents_go_on_and_a_resume_starts_from_the_journal() {
        let p = plan("budget: { tokens: 1000, on_exhausted: finish }\ntasks:\n  - { id: x, agent: a }\n");
        let b = Budgets::new(&p, &RunView::default());
        assert!(matches!(b.admit(0), Admission::Admitted(_)));
        let sx = b.stop_signal(0);
        b.reading(0, tokens(1200));
        assert!(sx.borrow().is_none(), "finish: the agent runs on");
        assert!(b.blocked(0).is_none());
        // A resumed run's meters start from the journal's spend.
        let mut view = RunView::default();
        view.tasks.entry(TaskId::new("x").expect("id")).or_default().usage = tokens(1200);
        let resumed = Budgets::new(&p, &view);
        assert!(*resumed.spent_signal().borrow(), "already spent");
    }

    #[test]
    fn readings_are_priced_by_the_agents_model() {
        let p = parse_plan_str(
            "version: 1\nagents:\n  c: { driver: codex, model: m }\nprices:\n  m: { input: 1.0, output: 10.0 }\ntasks:\n  - { id: t, agent: c }\n",
        )
        .expect("plan");
        let b = Budgets::new(&p, &RunView::default());
        let mut usage = tokens(100_000);
        usage.input_tokens = Some(1_000_000);
        let (u, from_table) = b.price("c", usage);
        assert!(from_table);
        assert_eq!(u.cost_usd, Some(2.0));
    }
}
