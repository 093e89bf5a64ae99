//! The dispatcher: `fugue run` and `fugue resume`.
//!
//! One loop owns all run state — the [`PhaseMachine`], the [`RunView`], the journal and the
//! snapshots — and every change goes through it, in order: journal first (written at once,
//! fsynced by the journal's syncer in group commits), then the in-memory view, then (coalesced) the state files, task logs and lock table, which one
//! writer thread puts on disk off the loop ([`Snapshotter`]). Task pipelines run as tokio
//! tasks and only *report* (through a channel); they never touch run state themselves. That
//! keeps the journal a faithful, totally ordered history, which is what makes resume exact.
//!
//! The loop: dispatch every ready task (dependencies merged, phase current, critical path
//! first) up to `max_agents` (one in SEQUENTIAL mode); wait for the next report; apply it;
//! repeat until the machine says the run is finished. A task pipeline is: path locks
//! (FIFO-fair), a worktree from the pool, then up to `max_iterations` rounds of agent → QA,
//! then the merge queue (one merge at a time, into the base, in the order tasks are approved —
//! which respects dependency order because a task only starts after its dependencies merged),
//! then release of the slot and the locks. A failed attempt is retried with back-off up to
//! `retry_on_failure` times; then the task fails and the machine blocks what depends on it.
//!
//! Cancellation: the first Ctrl-C (or [`RunControl::interrupt`]) stops dispatching and drops
//! every running pipeline — agents die with their process groups — journals `interrupted` and
//! leaves a state `fugue resume` picks up. Resume replays the journal, puts interrupted
//! attempts back to pending with their attempt count kept, re-enters approved tasks at the
//! merge step (the merge is idempotent: a branch already in the base is skipped), reclaims
//! dead locks and busy slots, and continues.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinSet;

use fugue_core::state::{DependencyGraph, ExecutionMode, files, write_json_atomic};
use fugue_core::{
    Agent, AgentContext, AgentOutcome, Isolation, MachineEvent, OverlapPolicy, PhaseMachine, Plan, QaVerdict, TaskSpec, TaskStatus,
};
use fugue_locks::{ClaimSet, FileStore, LockManager, LockPolicy, RunInfo, RunLock};
use fugue_planner::{DefaultPlanner, SealedPlan};
use fugue_worktrees::{AcquireRequest, BranchOutcome, MergeRequest, Pool, ReleaseMode};

use crate::budget::{Admission, Budgets, Stop};
use crate::error::EngineError;
use crate::events::{Event, RunOutcome};
use crate::git;
use crate::journal::{self, Journal, Record};
use crate::logs;
use crate::qa::{Verifier, VerifyRequest};
use crate::snapshot::Snapshotter;
use crate::view::RunView;

/// How to run.
#[derive(Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// The repository.
    pub repo: PathBuf,
    /// The state dir (absolute, or relative to the current directory).
    pub state_dir: PathBuf,
    /// The plan file's directory (relative plugin paths resolve against it).
    pub plan_dir: PathBuf,
    /// The plan file, for the record.
    pub plan_file: String,
    /// Judges each iteration; `None` runs the built-in gates.
    pub verifier: Option<Arc<dyn Verifier>>,
    /// Receives every journal record as it is written (live progress).
    pub progress: Option<mpsc::UnboundedSender<Record>>,
    /// fsync the journal (group commits by a syncer thread, at most `journal::SYNC_LAG` after
    /// each write; on by default, off only for benchmarks).
    pub fsync: bool,
    /// Base back-off between attempts (doubled per attempt, capped at 30 s).
    pub backoff: Duration,
    /// Minimum time between two state-file snapshots.
    pub snapshot_interval: Duration,
    /// Agents to use instead of those built from the plan (by name): for embedders and tests.
    pub agents: HashMap<String, Arc<dyn Agent>>,
    /// For a resume: the run's budget raised (or lowered) to these limits, each one given
    /// replacing the saved plan's.
    pub budget: Option<fugue_core::Budget>,
    control: RunControl,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions").field("repo", &self.repo).field("state_dir", &self.state_dir).finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Options for running in `repo` with its state in `state_dir`.
    pub fn new(repo: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            repo: repo.into(),
            state_dir: state_dir.into(),
            plan_dir: PathBuf::from("."),
            plan_file: String::new(),
            verifier: None,
            progress: None,
            fsync: true,
            backoff: Duration::from_millis(200),
            snapshot_interval: Duration::from_millis(250),
            agents: HashMap::new(),
            budget: None,
            control: RunControl::new(),
        }
    }

    /// A handle to interrupt the run.
    pub fn control(&self) -> RunControl {
        self.control.clone()
    }
}

/// Interrupts a run from outside (a signal handler, a UI).
#[derive(Debug, Clone)]
pub struct RunControl {
    tx: Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl RunControl {
    fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Self { tx: Arc::new(tx), rx }
    }

    /// Stop dispatching, stop running agents, leave a resumable state.
    pub fn interrupt(&self) {
        let _ = self.tx.send(true);
    }

    async fn interrupted(&mut self) {
        while !*self.rx.borrow() {
            if self.rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunSummary {
    /// Success, failed, or interrupted.
    pub outcome: RunOutcome,
    /// Everything the journal says.
    pub view: RunView,
    /// The planned graph.
    pub graph: DependencyGraph,
}

/// What a task pipeline reports to the loop.
#[derive(Debug)]
enum Msg {
    Event(Event),
    Status(usize, TaskStatus),
    /// Agent output of the last iteration, for the task log.
    Output(usize, String),
}

/// How a pipeline ended.
#[derive(Debug)]
struct TaskEnd {
    index: usize,
    status: TaskStatus,
}

struct Shared {
    plan: Arc<Plan>,
    repo: PathBuf,
    state_dir: PathBuf,
    base: String,
    pool: Option<Pool>,
    locks: LockManager,
    agents: HashMap<String, Arc<dyn Agent>>,
    executor: Arc<dyn fugue_core::Executor>,
    verifier: Arc<dyn Verifier>,
    merge_lock: Mutex<()>,
    backoff: Duration,
    /// The task and run budgets' meters.
    budgets: Arc<Budgets>,
    /// Commits fugue put on the base (and the tips it started from): anything else on the
    /// base's first-parent chain came from outside, and approved work is judged again before
    /// it merges onto it. `None` when tasks run with `isolation: none`, whose commits land on
    /// the base directly and cannot be told apart.
    ours: Option<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// Starts a new run of `plan`.
pub async fn run(plan: Plan, opts: RunOptions) -> Result<RunSummary, EngineError> {
    let state_dir = opts.state_dir.clone();
    let journal_path = state_dir.join(files::JOURNAL);
    let replay = journal::read(&journal_path)?;
    let prev = RunView::from_records(&replay.records);
    if !replay.records.is_empty() && prev.outcome != Some(RunOutcome::Success) && prev.outcome != Some(RunOutcome::Failed) {
        return Err(EngineError::Unfinished { execution_id: prev.execution_id, state_dir });
    }
    let sealed = DefaultPlanner::new().plan_sealed(&plan).map_err(EngineError::Plan)?;
    let execution_id = format!("exec-{}-{}", fugue_core::time::now().replace([':', '-'], "").trim_end_matches('Z'), std::process::id());
    let run_lock = RunLock::acquire(&state_dir, &execution_id).map_err(|e| EngineError::RunLock(e.to_string()))?;
    // A finished run's journal is archived so the new run starts a fresh history.
    if !replay.records.is_empty() {
        let archive = state_dir.join("fugue").join(format!("journal-{}.ndjson", prev.execution_id));
        std::fs::rename(&journal_path, &archive).map_err(|e| EngineError::io("archive the previous journal", &journal_path, e))?;
    }
    let base = match &plan.base {
        Some(b) => b.clone(),
        None => git::current_branch(&opts.repo).await?,
    };
    let base_commit = git::rev_parse(&opts.repo, &base).await?;
    git::check_index_unlocked(&opts.repo).await?;
    git::exclude_runtime_state(&opts.repo, &state_dir).await?;
    let plan_path = state_dir.join("fugue").join("plan.json");
    write_json_atomic(&plan_path, &plan).map_err(|e| EngineError::io("save the plan", &state_dir, e))?;
    // The copy resume runs from holds the agents' `env`, secrets included: owner-only, like any
    // credentials file (it is state, not a log or report, so it is not redacted).
    std::fs::set_permissions(&plan_path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| EngineError::io("protect the saved plan", &plan_path, e))?;
    write_json_atomic(&state_dir.join(files::DEPENDENCY_GRAPH), sealed.graph()).map_err(|e| EngineError::io("write", &state_dir, e))?;
    let mut journal = Journal::open(&journal_path, &journal::Replay::default())?;
    if !opts.fsync {
        journal = journal.without_fsync();
    }
    let start = Event::RunStarted {
        execution_id: execution_id.clone(),
        plan: opts.plan_file.clone(),
        base: base.clone(),
        base_commit,
        mode: format!("{:?}", sealed.graph().execution_strategy.mode).to_uppercase(),
        tasks: plan.tasks.iter().map(|t| t.id.clone()).collect(),
        pid: std::process::id(),
    };
    drive(plan, sealed, opts, journal, RunView::default(), vec![start], base, execution_id, run_lock).await
}

/// Continues the interrupted run recorded in `opts.state_dir`.
pub async fn resume(opts: RunOptions) -> Result<RunSummary, EngineError> {
    let state_dir = opts.state_dir.clone();
    let journal_path = state_dir.join(files::JOURNAL);
    let replay = crate::read_journal(&state_dir)?;
    let view = RunView::from_records(&replay.records);
    if replay.records.is_empty() || view.execution_id.is_empty() {
        return Err(EngineError::NothingToResume { state_dir });
    }
    if matches!(view.outcome, Some(RunOutcome::Success | RunOutcome::Failed)) {
        return Err(EngineError::AlreadyFinished { execution_id: view.execution_id });
    }
    let plan_path = state_dir.join("fugue").join("plan.json");
    let text = std::fs::read_to_string(&plan_path).map_err(|e| EngineError::io("read the saved plan", &plan_path, e))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| EngineError::Corrupt {
        path: plan_path.clone(),
        message: format!(
            "{e}; it is fugue's copy of the run's plan: restore it from a backup, or move {}/fugue aside to start over",
            state_dir.display()
        ),
    })?;
    check_saved_plan(&plan, &view, &opts).map_err(|message| EngineError::Corrupt { path: plan_path.clone(), message })?;
    let mut plan = plan;
    if let Some(raised) = opts.budget {
        let mut budget = plan.budget.unwrap_or_default();
        budget.usd = raised.usd.or(budget.usd);
        budget.tokens = raised.tokens.or(budget.tokens);
        plan.budget = Some(budget);
        // Kept for the next resume too: the saved plan is the run's plan.
        write_json_atomic(&plan_path, &plan).map_err(|e| EngineError::io("save the plan", &state_dir, e))?;
        std::fs::set_permissions(&plan_path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| EngineError::io("protect the saved plan", &plan_path, e))?;
    }
    let sealed = DefaultPlanner::new().plan_sealed(&plan).map_err(EngineError::Plan)?;
    let run_lock = RunLock::acquire(&state_dir, &view.execution_id).map_err(|e| EngineError::RunLock(e.to_string()))?;
    // Derived from the saved plan: rewritten, in case it was lost or moved aside as damaged.
    write_json_atomic(&state_dir.join(files::DEPENDENCY_GRAPH), sealed.graph()).map_err(|e| EngineError::io("write", &state_dir, e))?;
    let mut journal = Journal::open(&journal_path, &replay)?;
    if !opts.fsync {
        journal = journal.without_fsync();
    }
    git::check_index_unlocked(&opts.repo).await?;
    let base = view.base.clone();
    let execution_id = view.execution_id.clone();
    drive(plan, sealed, opts, journal, view, vec![Event::RunResumed { pid: std::process::id() }], base, execution_id, run_lock).await
}

/// The saved plan must still be the plan of the journaled run: fugue wrote it, but a file
/// edited or damaged since would make a resume run different tasks — or silently skip some.
fn check_saved_plan(plan: &Plan, view: &RunView, opts: &RunOptions) -> Result<(), String> {
    let fix = "restore the file from a backup, or move the state dir's fugue/ aside to start over";
    if plan.version != 1 {
        return Err(format!("/version: unsupported plan version {} (fugue writes 1); {fix}", plan.version));
    }
    for (i, t) in plan.tasks.iter().enumerate() {
        if !plan.agents.contains_key(&t.agent) && !opts.agents.contains_key(&t.agent) {
            return Err(format!("/tasks/{i}/agent: unknown agent `{}` (not a key of /agents); {fix}", t.agent));
        }
    }
    let saved: Vec<&fugue_core::TaskId> = plan.tasks.iter().map(|t| &t.id).collect();
    let journaled: Vec<&fugue_core::TaskId> = view.order.iter().collect();
    if saved != journaled {
        let missing: Vec<String> = journaled.iter().filter(|t| !saved.contains(t)).map(|t| format!("`{t}`")).collect();
        let extra: Vec<String> = saved.iter().filter(|t| !journaled.contains(t)).map(|t| format!("`{t}`")).collect();
        return Err(format!(
            "its tasks are not those the journal's run started with (missing: {}; not in the run: {}); {fix}",
            if missing.is_empty() { "none".to_owned() } else { missing.join(", ") },
            if extra.is_empty() { "none".to_owned() } else { extra.join(", ") },
        ));
    }
    Ok(())
}

struct Loop {
    journal: Journal,
    view: RunView,
    snap: Snapshotter,
    progress: Option<mpsc::UnboundedSender<Record>>,
    plan: Arc<Plan>,
    outputs: HashMap<usize, String>,
    state_dir: PathBuf,
    /// Per parallel group: its member tasks, and how many of them (in order) are known to have
    /// ended — a terminal status is final, so the count only grows.
    groups: Vec<(Vec<usize>, usize)>,
}

impl Loop {
    /// Journals `event` (written now; durable after the next [`commit`](Self::commit), or
    /// within the syncer's lag after [`commit_soon`](Self::commit_soon)) and
    /// applies it to the view.
    fn emit(&mut self, event: Event) -> Result<(), EngineError> {
        let record = self.journal.write(event)?;
        self.view.apply(&record);
        self.snap.touch();
        if let Some(p) = &self.progress {
            let _ = p.send(record);
        }
        Ok(())
    }

    /// Makes every journaled event durable, waiting: before a snapshot derived from them is
    /// written, so none ever runs ahead of the durable journal.
    fn commit(&mut self) -> Result<(), EngineError> {
        self.journal.sync()?;
        Ok(())
    }

    /// Hands every journaled event to the syncer without waiting (see `journal`), once per turn
    /// of the loop. They are already written, so a killed fugue loses none of them.
    fn commit_soon(&mut self) -> Result<(), EngineError> {
        self.journal.sync_soon()?;
        Ok(())
    }

    fn flush(&mut self, force: bool) -> Result<(), EngineError> {
        if !self.snap.due(force) {
            return Ok(());
        }
        self.commit()?;
        self.snap.flush(&self.view, &self.plan, force).map_err(|e| EngineError::io("write the state files in", &self.state_dir, e))?;
        Ok(())
    }

    fn machine_events(&mut self, events: Vec<MachineEvent>) -> Result<(), EngineError> {
        for e in events {
            match e {
                MachineEvent::PhaseStarted(phase) => self.emit(Event::PhaseStarted { phase })?,
                MachineEvent::PhaseCompleted(phase) => {
                    self.emit(Event::PhaseCompleted { phase })?;
                    let (path, text) = logs::checkpoint_phase(&self.state_dir, &self.view, &self.plan, phase);
                    self.snap.log(path, text);
                    self.flush(true)?;
                }
                MachineEvent::Blocked(ids) => {
                    for id in ids {
                        self.emit(Event::Status { task: id, status: TaskStatus::Blocked })?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[expect(clippy::too_many_arguments, reason = "the two entry points share this one driver")]
async fn drive(
    plan: Plan,
    sealed: SealedPlan,
    mut opts: RunOptions,
    journal: Journal,
    view: RunView,
    opening: Vec<Event>,
    base: String,
    execution_id: String,
    _run_lock: RunLock,
) -> Result<RunSummary, EngineError> {
    let state_dir = opts.state_dir.clone();
    let resuming = !view.execution_id.is_empty();
    // One copy of the plan for the loop and every pipeline (10,000 tasks are megabytes).
    let plan = Arc::new(plan);
    let boundaries = fugue_planner::boundaries(&plan, sealed.execution_plan());
    let mut lp = Loop {
        journal,
        view,
        snap: Snapshotter::new(&state_dir, opts.snapshot_interval)
            .map_err(|e| EngineError::io("start the state-file writer for", &state_dir, e))?
            .with_boundaries(boundaries),
        progress: opts.progress.take(),
        plan: Arc::clone(&plan),
        outputs: HashMap::new(),
        state_dir: state_dir.clone(),
        groups: group_members(&sealed, plan.tasks.len()),
    };
    for e in opening {
        lp.emit(e)?;
    }
    // After the opening events: a resumed run's meters start from everything journaled,
    // the last readings of the runs the dead orchestrator left included.
    let budgets = Arc::new(Budgets::new(&plan, &lp.view));

    // Locks: reclaim what a dead run left, then open this run's table.
    let run_info = RunInfo::current(&execution_id);
    let opened = LockManager::open(&run_info, LockPolicy::from_boundaries(&plan.boundaries), Box::new(FileStore::new(&state_dir)))
        .map_err(|e| EngineError::Locks(e.to_string()))?;
    // The table is written with the state files, not on every grant and release.
    let locks = opened.manager.deferred();
    lp.snap.set_locks(locks.clone());

    let needs_pool = plan.tasks.iter().any(|t| plan.isolation_of(t) == Isolation::Worktree);
    let pool = if needs_pool {
        let repo = opts.repo.clone();
        let sd = state_dir.clone();
        let spec = plan.pool.clone();
        Some(
            tokio::task::spawn_blocking(move || Pool::open(&repo, &sd, spec))
                .await
                .map_err(EngineError::join)?
                .map_err(|e| EngineError::Pool(e.to_string()))?,
        )
    } else {
        None
    };

    let executor = crate::exec::build(&plan.executor, &state_dir)?;
    let mut agents = opts.agents.clone();
    for (name, spec) in &plan.agents {
        if !agents.contains_key(name) {
            let a = fugue_agents::agent_from_spec_confined(name, spec, &opts.plan_dir, executor.clone(), plan.confine_of(name))
                .map_err(|e| EngineError::Agent(format!("agent `{name}`: {e}")))?;
            agents.insert(name.clone(), a);
        }
    }
    let verifier: Arc<dyn Verifier> = match opts.verifier.clone() {
        Some(v) => v,
        None => Arc::new(crate::gates::GatesVerifier::new(&plan, &opts.plan_dir, &state_dir).map_err(EngineError::Agent)?),
    };
    let mode = sealed.graph().execution_strategy.mode;
    let shared = Arc::new(Shared {
        plan: Arc::clone(&plan),
        repo: opts.repo.clone(),
        // Agents run in their worktrees, not here: every path handed to them (logs, prompt and
        // feedback files, session dirs) must be absolute.
        state_dir: std::path::absolute(&state_dir).unwrap_or_else(|_| state_dir.clone()),
        base,
        pool,
        locks,
        agents,
        executor: executor.clone(),
        verifier,
        merge_lock: Mutex::new(()),
        backoff: opts.backoff,
        budgets: budgets.clone(),
        ours: plan.tasks.iter().all(|t| plan.isolation_of(t) == Isolation::Worktree).then(|| {
            let mut ours: std::collections::HashSet<String> = lp.view.tasks.values().filter_map(|t| t.merge_commit.clone()).collect();
            ours.insert(lp.view.base_commit.clone());
            std::sync::Mutex::new(ours)
        }),
    });

    let mut work_dirs: Vec<PathBuf> = match &shared.pool {
        Some(pool) => vec![pool.dir().to_path_buf()],
        None => vec![shared.repo.clone()],
    };
    // Driven CLIs keep their per-slot config and sessions there: a cluster's nodes write it too.
    if plan.agents.values().any(|a| matches!(a, fugue_core::AgentSpec::Driver(d) if d.isolate_sessions)) {
        work_dirs.push(shared.state_dir.join("fugue").join("sessions"));
    }
    crate::exec::preflight(executor.as_ref(), &work_dirs).await?;

    let mut machine = PhaseMachine::from_plan(sealed.execution_plan()).with_priorities(sealed.priorities());
    let mut resume_at: HashMap<usize, ResumeAt> = HashMap::new();
    if resuming {
        reconcile(&mut lp, &mut machine, &shared, &mut resume_at).await?;
    } else {
        let first: Vec<MachineEvent> = machine.current_phase().map(MachineEvent::PhaseStarted).into_iter().collect();
        lp.machine_events(first)?;
    }
    lp.flush(true)?;

    let max_agents = if mode == ExecutionMode::Sequential { 1 } else { plan.parallelization.max_agents.max(1) as usize };
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut running: JoinSet<TaskEnd> = JoinSet::new();
    let mut control = opts.control.clone();
    let mut parallel_phase = None;
    let mut interrupted = None;

    loop {
        // Common paths are read-only exactly while a parallel phase runs.
        let phase_parallel = machine.current_phase().map(|p| p.is_parallel());
        if phase_parallel != parallel_phase {
            parallel_phase = phase_parallel;
            shared.locks.set_parallel_phase(phase_parallel == Some(true)).map_err(|e| EngineError::Locks(e.to_string()))?;
        }
        // Dispatch the best ready tasks into the free slots (the machine answers in O(slots)).
        let ready = machine.next_ready(max_agents.saturating_sub(machine.active_count()));
        for i in ready {
            // Under a budget, a task starts only if what it may spend fits (see `budget`).
            match budgets.admit(i) {
                Admission::Refused => continue,
                Admission::Admitted(reserved) => {
                    if let Some(e) = reserved {
                        lp.emit(*e)?;
                    }
                }
            }
            let events = machine.set_status(i, TaskStatus::InProgress).map_err(|e| EngineError::Internal(e.to_string()))?;
            let task = plan.tasks[i].clone();
            lp.emit(Event::Status { task: task.id.clone(), status: TaskStatus::InProgress })?;
            lp.machine_events(events)?;
            let at =
                resume_at.remove(&i).unwrap_or(ResumeAt { attempt: lp.view.task(&task.id).attempts + 1, merge_only: false, job: None });
            let shared = shared.clone();
            let tx = tx.clone();
            running.spawn(async move { pipeline(shared, i, task, at, tx).await });
        }
        if running.is_empty() {
            break;
        }
        lp.commit_soon()?;
        lp.flush(false)?;
        tokio::select! {
            biased;
            () = control.interrupted() => {
                interrupted = Some("interrupted by the user".to_owned());
                break;
            }
            Some(msg) = rx.recv() => {
                apply(&mut lp, &mut machine, &plan, msg)?;
                // Take the whole burst before going round: one commit covers it.
                while let Ok(msg) = rx.try_recv() {
                    apply(&mut lp, &mut machine, &plan, msg)?;
                }
            }
            Some(end) = running.join_next() => {
                while let Ok(msg) = rx.try_recv() {
                    apply(&mut lp, &mut machine, &plan, msg)?;
                }
                let end = end.map_err(EngineError::join)?;
                finish_task(&mut lp, &mut machine, &plan, end, &sealed)?;
            }
        }
    }

    // Agents stopped by a budget (or by the interrupt below) are gone before the run ends.
    let stopped_agents = || async {
        let _ = tokio::task::spawn_blocking(fugue_agents::wait_for_stopped_agents).await;
    };
    if let Some(reason) = interrupted {
        running.abort_all();
        while running.join_next().await.is_some() {}
        stopped_agents().await;
        while let Ok(msg) = rx.try_recv() {
            let _ = apply(&mut lp, &mut machine, &plan, msg);
        }
        lp.emit(Event::Interrupted { reason })?;
        lp.flush(true)?;
        shared.verifier.finish(&shared.repo).await;
        return Ok(RunSummary { outcome: RunOutcome::Interrupted, view: lp.view, graph: sealed.graph().clone() });
    }
    let outcome = if (0..machine.len()).all(|i| machine.status(i) == TaskStatus::Merged) {
        RunOutcome::Success
    } else if budgets.exhausted() && (0..machine.len()).any(|i| machine.status(i) == TaskStatus::Pending) {
        // Work is left that only the budget kept from running: resumable with a raised one.
        RunOutcome::BudgetExhausted
    } else {
        RunOutcome::Failed
    };
    shared.verifier.finish(&shared.repo).await;
    stopped_agents().await;
    lp.emit(Event::RunFinished { outcome })?;
    lp.flush(true)?;
    // Measured before the cleanup below removes the slots: what the run's slots cost.
    crate::disk::record(&state_dir, shared.pool.as_ref().map(|p| p.dir().to_path_buf()), plan.pool.keep_ignored.clone()).await;
    logs::report_file(&state_dir, &lp.view, sealed.graph());
    if plan.parallelization.auto_cleanup
        && outcome == RunOutcome::Success
        && let Some(pool) = shared.pool.clone()
    {
        let _ = tokio::task::spawn_blocking(move || pool.cleanup(&fugue_worktrees::CleanupOptions::default())).await;
    }
    Ok(RunSummary { outcome, view: lp.view, graph: sealed.graph().clone() })
}

fn apply(lp: &mut Loop, machine: &mut PhaseMachine, plan: &Plan, msg: Msg) -> Result<(), EngineError> {
    match msg {
        Msg::Event(e) => lp.emit(e),
        Msg::Output(i, out) => {
            lp.outputs.insert(i, out);
            Ok(())
        }
        Msg::Status(i, status) => {
            let events = machine.set_status(i, status).map_err(|e| EngineError::Internal(e.to_string()))?;
            lp.emit(Event::Status { task: plan.tasks[i].id.clone(), status })?;
            lp.machine_events(events)
        }
    }
}

fn finish_task(lp: &mut Loop, machine: &mut PhaseMachine, plan: &Plan, end: TaskEnd, sealed: &SealedPlan) -> Result<(), EngineError> {
    if end.status == TaskStatus::Pending {
        // Stopped by the run's budget: back to pending, for a resume with a raised budget.
        let events = machine.restore(end.index, TaskStatus::Pending);
        lp.emit(Event::Status { task: plan.tasks[end.index].id.clone(), status: TaskStatus::Pending })?;
        return lp.machine_events(events);
    }
    if machine.status(end.index) != end.status {
        let events = machine.set_status(end.index, end.status).map_err(|e| EngineError::Internal(e.to_string()))?;
        lp.emit(Event::Status { task: plan.tasks[end.index].id.clone(), status: end.status })?;
        lp.machine_events(events)?;
    }
    let output = lp.outputs.remove(&end.index).unwrap_or_default();
    let (path, text) = logs::task_log(&lp.state_dir, &lp.view, &plan.tasks[end.index], &output);
    lp.snap.log(path, text);
    // A parallel group is done when all of its tasks have ended: checkpoint it.
    if let Some(g) = sealed.group_of(end.index)
        && let Some((members, ended)) = lp.groups.get_mut(g)
    {
        // Resume the scan where the last one stopped: O(tasks) over the whole run.
        while members.get(*ended).is_some_and(|&i| machine.status(i).is_terminal()) {
            *ended += 1;
        }
        if *ended == members.len()
            && let Some(group) = sealed.graph().execution_strategy.parallel_groups.get(g)
        {
            let (path, text) = logs::checkpoint_group(&lp.state_dir, &lp.view, group, g + 1);
            lp.snap.log(path, text);
        }
    }
    Ok(())
}

/// The members of each parallel group, none of them known to have ended yet.
fn group_members(sealed: &SealedPlan, tasks: usize) -> Vec<(Vec<usize>, usize)> {
    let mut groups: Vec<(Vec<usize>, usize)> = Vec::new();
    for i in 0..tasks {
        if let Some(g) = sealed.group_of(i) {
            if groups.len() <= g {
                groups.resize_with(g + 1, Default::default);
            }
            groups[g].0.push(i);
        }
    }
    groups
}

/// Brings a replayed machine in line with the journal and git before continuing.
async fn reconcile(
    lp: &mut Loop,
    machine: &mut PhaseMachine,
    shared: &Arc<Shared>,
    resume_at: &mut HashMap<usize, ResumeAt>,
) -> Result<(), EngineError> {
    let plan = &shared.plan;
    for (i, t) in plan.tasks.iter().enumerate() {
        // An earlier resume may itself have died after journaling its tasks back to pending:
        // what a task had reached is read from its facts (merge commit, approval, attempts),
        // not from that status, or a second crash would redo — and re-merge — finished work.
        let v = lp.view.task(&t.id);
        let attempt = v.attempts.max(1);
        if v.status.is_terminal() {
            machine.restore(i, v.status);
            continue;
        }
        if v.merge_commit.is_some() {
            // Merged, but the crash came before its status was journaled.
            machine.restore(i, TaskStatus::Merged);
            lp.emit(Event::Status { task: t.id.clone(), status: TaskStatus::Merged })?;
            continue;
        }
        if v.status == TaskStatus::Pending && v.attempts == 0 {
            continue;
        }
        let at = if v.approved == Some(attempt) {
            // Approved before the crash: only the merge is left (idempotent).
            ResumeAt { attempt, merge_only: true, job: None }
        } else {
            // Interrupted mid-attempt: run the same attempt again, re-attaching to its cluster
            // job if one may still be running.
            ResumeAt { attempt, merge_only: false, job: v.job.clone().filter(|j| j.attempt == attempt) }
        };
        resume_at.insert(i, at);
        if v.status != TaskStatus::Pending {
            lp.emit(Event::Status { task: t.id.clone(), status: TaskStatus::Pending })?;
        }
    }
    // Agents the dead run started live in process groups of their own and may still work in
    // the worktrees the resumed attempts are about to use: stop them first, or two agents would
    // edit one checkout. Only pool worktrees (absolute paths) are searched, and only for local
    // agents: a cluster job is re-attached to, not stopped.
    for (i, t) in plan.tasks.iter().enumerate() {
        let Some(worktree) = lp.view.task(&t.id).worktree.clone().map(PathBuf::from) else { continue };
        let local = shared.executor.name() == "local" && resume_at.get(&i).is_some_and(|at| at.job.is_none());
        if !local || !worktree.is_absolute() || worktree == shared.repo {
            continue;
        }
        let stopped = fugue_agents::stop_leftover_agents(&worktree, fugue_agents::CommandAgent::DEFAULT_GRACE).await;
        if stopped > 0 {
            tracing::warn!(task = %t.id, stopped, worktree = %worktree.display(), "stopped agents a killed run left running");
        }
    }
    // Slots the dead run held for tasks that are over go back to the pool.
    if let Some(pool) = shared.pool.clone() {
        let done: Vec<String> = plan.tasks.iter().filter(|t| lp.view.task(&t.id).status.is_terminal()).map(|t| t.id.to_string()).collect();
        tokio::task::spawn_blocking(move || -> Result<(), fugue_worktrees::PoolError> {
            for slot in pool.status()?.worktrees {
                if slot.task_id.as_ref().is_some_and(|t| done.contains(t)) {
                    pool.release(&slot.id, ReleaseMode::KeepBranch)?;
                }
            }
            Ok(())
        })
        .await
        .map_err(EngineError::join)?
        .map_err(|e| EngineError::Pool(e.to_string()))?;
    }
    let phase: Vec<MachineEvent> = machine.current_phase().map(MachineEvent::PhaseStarted).into_iter().collect();
    lp.machine_events(phase)
}

/// Where a resumed task picks up: its attempt, whether only the merge is left, and the
/// cluster job its interrupted iteration runs as.
#[derive(Debug)]
struct ResumeAt {
    attempt: u32,
    merge_only: bool,
    job: Option<crate::view::JobRef>,
}

/// One task, from locks to merge. Returns the terminal status.
async fn pipeline(shared: Arc<Shared>, index: usize, task: TaskSpec, at: ResumeAt, tx: mpsc::UnboundedSender<Msg>) -> TaskEnd {
    let send = |m: Msg| {
        let _ = tx.send(m);
    };
    let max_attempts = shared.plan.parallelization.retry_on_failure + 1;
    let ResumeAt { mut attempt, mut merge_only, mut job } = at;
    let releases = Releases::default();
    // However the pipeline ends, its reservation under the run's budget is given back.
    struct Ended<'a>(&'a Budgets, usize);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            self.0.ended(self.1);
        }
    }
    let _ended = Ended(&shared.budgets, index);
    loop {
        match attempt_once(&shared, index, &task, attempt, merge_only, job.take(), &tx, &releases).await {
            Ok(status) => return TaskEnd { index, status },
            Err(AttemptError { reason, retry, pending }) => {
                send(Msg::Event(Event::AttemptFailed { task: task.id.clone(), attempt, reason }));
                if pending {
                    releases.wait().await;
                    return TaskEnd { index, status: TaskStatus::Pending };
                }
                if !retry || attempt >= max_attempts {
                    return TaskEnd { index, status: TaskStatus::Failed };
                }
                if let Some(stop) = shared.budgets.blocked(index) {
                    let pending = matches!(stop, Stop::Run { .. });
                    send(Msg::Event(Event::AttemptFailed { task: task.id.clone(), attempt, reason: stop_reason(&stop) }));
                    return TaskEnd { index, status: if pending { TaskStatus::Pending } else { TaskStatus::Failed } };
                }
                // The failed attempt's slot must be back (and its branch free) before the
                // retry asks for one.
                releases.wait().await;
                let factor = 1u32 << (attempt - 1).min(8);
                tokio::time::sleep((shared.backoff * factor).min(Duration::from_secs(30))).await;
                attempt += 1;
                // A new attempt does the work again: what was approved is what failed to merge.
                merge_only = false;
                send(Msg::Status(index, TaskStatus::InProgress));
            }
        }
    }
}

struct AttemptError {
    reason: String,
    retry: bool,
    /// Stopped by the run's budget: the task goes back to pending, not to failed.
    pending: bool,
}

impl AttemptError {
    fn retry(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), retry: true, pending: false }
    }
    fn fatal(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), retry: false, pending: false }
    }
    /// A budget stop: the task's fails the task; the run's leaves it for a resume.
    fn budget(stop: &Stop) -> Self {
        Self { reason: stop_reason(stop), retry: false, pending: matches!(stop, Stop::Run { .. }) }
    }
}

/// `budget: …`: what an attempt stopped by a budget failed of.
fn stop_reason(stop: &Stop) -> String {
    match stop {
        Stop::Task { limit } => format!(
            "budget: the task's budget of {limit} is spent (raise `budget` on the task or its agent, or the run's `budget.per_task`)"
        ),
        Stop::Run { limit } => {
            format!("budget: the run's budget of {limit} is spent; the task is left for `fugue resume --budget-usd/--budget-tokens`")
        }
    }
}

/// Waits until the agent of this task must stop.
async fn stopped(rx: &mut watch::Receiver<Option<Stop>>) -> Stop {
    loop {
        if let Some(stop) = rx.borrow_and_update().clone() {
            return stop;
        }
        if rx.changed().await.is_err() {
            // The meter is gone (the run is ending): never fire.
            std::future::pending::<()>().await;
        }
    }
}

/// Slot releases an attempt's [`Cleanup`] started on the blocking pool.
#[derive(Default)]
struct Releases(std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>);

impl Releases {
    fn push(&self, handle: tokio::task::JoinHandle<()>) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(handle);
    }

    async fn wait(&self) {
        let handles = std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for h in handles {
            let _ = h.await;
        }
    }
}

/// Releases a task's slot and locks however the attempt ends.
struct Cleanup<'a> {
    shared: Arc<Shared>,
    owner: String,
    slot: Option<String>,
    releases: &'a Releases,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.shared.locks.release(&self.owner);
        if let (Some(pool), Some(slot)) = (self.shared.pool.clone(), self.slot.take()) {
            // Blocking git calls in drop: hand them to the blocking pool when inside a runtime.
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    self.releases.push(h.spawn_blocking(move || {
                        let _ = pool.release(&slot, ReleaseMode::KeepBranch);
                    }));
                }
                Err(_) => {
                    let _ = pool.release(&slot, ReleaseMode::KeepBranch);
                }
            }
        }
    }
}

#[expect(clippy::too_many_arguments, reason = "one attempt's inputs, handed over by its pipeline")]
async fn attempt_once(
    shared: &Arc<Shared>,
    index: usize,
    task: &TaskSpec,
    attempt: u32,
    merge_only: bool,
    mut job: Option<crate::view::JobRef>,
    tx: &mpsc::UnboundedSender<Msg>,
    releases: &Releases,
) -> Result<TaskStatus, AttemptError> {
    let send = |m: Msg| {
        let _ = tx.send(m);
    };
    let plan = &shared.plan;
    let isolation = plan.isolation_of(task);
    let owner = task.id.to_string();
    // Locks: isolated overlapping writers (strategy B) only take read claims; the merge decides.
    let claims = if plan.parallelization.overlap == OverlapPolicy::Isolate && isolation == Isolation::Worktree {
        ClaimSet::from_scopes(
            &fugue_core::Scope::default(),
            &task.modifies.patterns().iter().chain(task.reads.patterns()).cloned().collect(),
        )
    } else {
        ClaimSet::for_task(task)
    };
    let grant = shared.locks.acquire(&owner, &claims).await.map_err(|e| AttemptError::fatal(format!("failed to lock paths: {e}")))?;
    send(Msg::Event(Event::LocksGranted {
        task: task.id.clone(),
        writes: grant.claims.iter().filter(|c| c.mode == fugue_core::state::LockMode::Write).map(|c| c.resource.to_string()).collect(),
        reads: grant.claims.iter().filter(|c| c.mode == fugue_core::state::LockMode::Read).map(|c| c.resource.to_string()).collect(),
    }));
    let mut cleanup = Cleanup { shared: shared.clone(), owner: owner.clone(), slot: None, releases };

    let (worktree, branch) = match (&shared.pool, isolation) {
        (Some(pool), Isolation::Worktree) => {
            let pool = pool.clone();
            let req = AcquireRequest::new(task.id.clone()).base(shared.base.clone());
            let acq = tokio::task::spawn_blocking(move || pool.acquire(&req))
                .await
                .map_err(|e| AttemptError::retry(e.to_string()))?
                .map_err(|e| AttemptError::retry(format!("failed to get a worktree: {e}")))?;
            cleanup.slot = Some(acq.slot.clone());
            if acq.already_held {
                // A run killed while its confined agent worked left the agent's commits on the
                // slot's detached HEAD: they become the branch before anything else looks.
                crate::confine::adopt(&acq.path, &acq.branch).await.map_err(AttemptError::retry)?;
            }
            send(Msg::Event(Event::AttemptStarted {
                task: task.id.clone(),
                attempt,
                worktree: acq.path.display().to_string(),
                branch: Some(acq.branch.clone()),
                slot: Some(acq.slot.clone()),
            }));
            (acq.path, Some(acq.branch))
        }
        _ => {
            send(Msg::Event(Event::AttemptStarted {
                task: task.id.clone(),
                attempt,
                worktree: shared.repo.display().to_string(),
                branch: None,
                slot: None,
            }));
            (shared.repo.clone(), None)
        }
    };
    let base_commit = git::rev_parse(&shared.repo, &shared.base).await.map_err(|e| AttemptError::retry(e.to_string()))?;

    // The files QA saw the branch change; a verifier that does not report them (or a resumed
    // merge) makes the merge step ask git.
    let mut approved_files: Vec<String> = Vec::new();
    let mut qa_rounds = 0;
    if !merge_only {
        let agent =
            shared.agents.get(&task.agent).cloned().ok_or_else(|| AttemptError::fatal(format!("unknown agent `{}`", task.agent)))?;
        let spec_timeout = plan.agents.get(&task.agent).and_then(|a| a.timeout());
        let mut feedback: Option<String> = None;
        // The session of the previous iteration, which a driver continues with the findings.
        let mut session: Option<String> = None;
        let max_iterations = plan.gates.max_iterations.max(1);
        // A re-attached job continues the iteration it was submitted for.
        let mut iteration = job.as_ref().map_or(0, |j| j.iteration);
        let mut blocked_retries = 0;
        // A confined agent commits on a detached HEAD; fugue moves the branch (see `confine`).
        let confined = branch.as_deref().filter(|_| {
            matches!(plan.agents.get(&task.agent), Some(fugue_core::AgentSpec::Command(_) | fugue_core::AgentSpec::Driver(_)))
                && fugue_agents::confine::will_confine(&plan.confine_of(&task.agent))
        });
        loop {
            if let Some(stop) = shared.budgets.blocked(index) {
                return Err(AttemptError::budget(&stop));
            }
            let mut ctx = AgentContext::new(task.id.clone(), task.prompt.clone(), worktree.clone());
            ctx.budget = shared.budgets.left(index);
            ctx.task_name = task.display_name().to_owned();
            ctx.modifies = task.modifies.clone();
            ctx.reads = task.reads.clone();
            ctx.feedback = feedback.clone();
            ctx.attempt = attempt;
            ctx.iteration = iteration;
            ctx.timeout = spec_timeout;
            ctx.config = match plan.agents.get(&task.agent) {
                Some(fugue_core::AgentSpec::Plugin(p)) => fugue_core::merge_config(p.config.as_ref(), task.config.as_ref()),
                _ => task.config.clone().unwrap_or_else(|| serde_json::json!({})),
            };
            ctx.log_file = Some(shared.state_dir.join("logs").join(format!("{}.agent.log", task.id)));
            ctx.session = session.clone();
            ctx.verify = task.verify.iter().map(|c| c.as_str().to_owned()).collect();
            ctx.sessions_dir = Some(shared.state_dir.join("fugue").join("sessions"));
            let activity_tx = tx.clone();
            ctx.activity = Some(Arc::new(crate::exec::ActivityJournal {
                task: task.id.clone(),
                attempt,
                iteration,
                send: Arc::new(move |e| {
                    let _ = activity_tx.send(Msg::Event(e));
                }),
                last: std::sync::Mutex::new(None),
                meter: Some(crate::exec::MeterRef { budgets: shared.budgets.clone(), index, agent: task.agent.clone() }),
            }));
            ctx.resume_job = job.take().map(|j| j.job_id);
            let jobs_tx = tx.clone();
            ctx.job_observer = Some(Arc::new(crate::exec::JobJournal {
                task: task.id.clone(),
                attempt,
                iteration,
                executor: shared.executor.name().to_owned(),
                send: Arc::new(move |e| {
                    let _ = jobs_tx.send(Msg::Event(e));
                }),
            }));
            let started = std::time::Instant::now();
            if confined.is_some() {
                crate::confine::detach(&worktree).await.map_err(AttemptError::retry)?;
            }
            let mut stop_rx = shared.budgets.stop_signal(index);
            let mut run = agent.run(ctx);
            let ended = tokio::select! {
                r = &mut run => Ok(r),
                stop = stopped(&mut stop_rx) => Err(stop),
            };
            // Dropping the run stops the agent (its process group or job) if a budget cut it
            // short; its commits are adopted only once it is gone.
            drop(run);
            if ended.is_err() {
                let _ = tokio::task::spawn_blocking(fugue_agents::wait_for_stopped_agents).await;
            }
            if let Some(branch) = confined {
                crate::confine::adopt(&worktree, branch).await.map_err(AttemptError::retry)?;
            }
            let report = match ended {
                Ok(Ok(report)) => report,
                Ok(Err(e)) => {
                    // No report: what the run spent is its last reading, journaled exactly.
                    let live = shared.budgets.live(index);
                    if !live.is_unknown() {
                        send(Msg::Event(Event::AgentActivity {
                            task: task.id.clone(),
                            attempt,
                            iteration,
                            doing: "ended without a report".to_owned(),
                            usage: live,
                        }));
                    }
                    for e in shared.budgets.settle(index, None) {
                        send(Msg::Event(e));
                    }
                    return Err(AttemptError::retry(e.to_string()));
                }
                Err(stop) => {
                    let live = shared.budgets.live(index);
                    shared.budgets.settle(index, None);
                    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    send(Msg::Event(Event::AgentFinished {
                        task: task.id.clone(),
                        attempt,
                        iteration,
                        outcome: AgentOutcome::Failed,
                        summary: format!("stopped by fugue: {}", stop_reason(&stop)),
                        duration_ms,
                        usage: live,
                        session_id: None,
                        turns: None,
                        denials: Vec::new(),
                        failure: Some(fugue_core::FailureKind::Budget),
                        final_message: None,
                        priced: false,
                    }));
                    return Err(AttemptError::budget(&stop));
                }
            };
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let (usage, priced) = shared.budgets.price(&task.agent, report.usage);
            for e in shared.budgets.settle(index, Some(usage)) {
                send(Msg::Event(e));
            }
            send(Msg::Output(index, report.output.clone()));
            send(Msg::Event(Event::AgentFinished {
                task: task.id.clone(),
                attempt,
                iteration,
                outcome: report.outcome,
                summary: report.summary.clone(),
                duration_ms,
                usage,
                session_id: report.session_id.clone(),
                turns: report.turns,
                denials: report.denials.clone(),
                failure: report.failure,
                final_message: report.final_message.as_deref().map(|m| clip(m, 2000)),
                priced,
            }));
            if let Some(write) = report.confined.clone() {
                send(Msg::Event(Event::AgentConfined { task: task.id.clone(), attempt, iteration, write }));
            }
            if report.session_id.is_some() {
                session.clone_from(&report.session_id);
            }
            if report.outcome == AgentOutcome::Failed {
                return Err(AttemptError::retry(format!("agent failed: {}", report.summary)));
            }
            send(Msg::Status(index, TaskStatus::ReadyForQa));
            let result = qa_round(shared, task, attempt, iteration, &worktree, branch.clone(), &base_commit, &send).await?;
            qa_rounds = iteration + 1;
            match result.verdict {
                QaVerdict::TaskApproved => {
                    approved_files = result.changed_files;
                    send(Msg::Status(index, TaskStatus::QaApproved));
                    break;
                }
                QaVerdict::QaBlocked => {
                    // Not the agent's fault: no iteration burnt; one more try, then give up.
                    blocked_retries += 1;
                    if blocked_retries > 1 {
                        return Err(AttemptError::fatal(format!("QA blocked by the environment: {}", result.feedback)));
                    }
                    send(Msg::Status(index, TaskStatus::InProgress));
                }
                QaVerdict::TaskRejected => {
                    send(Msg::Status(index, TaskStatus::QaRejected));
                    iteration += 1;
                    if iteration >= max_iterations {
                        return Err(AttemptError::retry(format!("QA rejected the work {iteration} time(s), last: {}", rejection(&result))));
                    }
                    feedback = Some(result.feedback);
                    send(Msg::Status(index, TaskStatus::InProgress));
                }
            }
        }
    } else {
        send(Msg::Status(index, TaskStatus::ReadyForQa));
        send(Msg::Status(index, TaskStatus::QaApproved));
    }

    // Merge queue: one merge at a time into the base.
    let Some(branch) = branch else {
        let head = git::rev_parse(&shared.repo, "HEAD").await.unwrap_or_default();
        send(Msg::Event(Event::Merged { task: task.id.clone(), commit: head, files: Vec::new() }));
        return Ok(TaskStatus::Merged);
    };
    let _queue = shared.merge_lock.lock().await;
    if !merge_only
        && let Some(status) = reverify_if_base_moved(shared, task, attempt, qa_rounds, &worktree, &branch, &base_commit, &send).await?
    {
        return Ok(status);
    }
    let pool = shared.pool.clone().ok_or_else(|| AttemptError::fatal("no pool"))?;
    let files = if approved_files.is_empty() {
        git::changed_files(&shared.repo, &base_commit, &branch).await.unwrap_or_default()
    } else {
        approved_files
    };
    let req = MergeRequest::new([branch.clone()]).target(shared.base.clone());
    let report = tokio::task::spawn_blocking(move || pool.merge(&req))
        .await
        .map_err(|e| AttemptError::fatal(e.to_string()))?
        .map_err(|e| AttemptError::fatal(format!("failed to merge {branch}: {e}")))?;
    match report.branches.first().map(|b| &b.outcome) {
        Some(BranchOutcome::Merged | BranchOutcome::AlreadyMerged) => {
            if let Some(ours) = &shared.ours {
                ours.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(report.new.clone());
            }
            send(Msg::Event(Event::Merged { task: task.id.clone(), commit: report.new.clone(), files }));
            Ok(TaskStatus::Merged)
        }
        Some(BranchOutcome::Conflict { files }) => {
            send(Msg::Event(Event::MergeConflicted { task: task.id.clone(), files: files.clone() }));
            Ok(TaskStatus::MergeConflict)
        }
        Some(BranchOutcome::Missing) => Err(AttemptError::retry(format!(
            "the task branch {} is gone (deleted during the run?): the attempt is run again from the base",
            report.branches.first().map_or("", |b| b.branch.as_str())
        ))),
        other => Err(AttemptError::fatal(format!("merge into {} did not happen: {other:?}", report.target))),
    }
}

/// One QA round: the verifier judges the checkout against `base_commit`, and the verdict is
/// journaled.
#[expect(clippy::too_many_arguments, reason = "the attempt's state, passed through")]
async fn qa_round(
    shared: &Arc<Shared>,
    task: &TaskSpec,
    attempt: u32,
    iteration: u32,
    worktree: &Path,
    branch: Option<String>,
    base_commit: &str,
    send: &impl Fn(Msg),
) -> Result<crate::qa::VerifyResult, AttemptError> {
    let started = std::time::Instant::now();
    let req = VerifyRequest {
        task: task.clone(),
        phase_parallel: task.phase.is_parallel(),
        repo: shared.repo.clone(),
        worktree: worktree.to_path_buf(),
        branch,
        base_commit: base_commit.to_owned(),
        iteration,
    };
    let result = shared.verifier.verify(req).await.map_err(|e| AttemptError::retry(format!("QA could not run: {e}")))?;
    send(Msg::Event(Event::QaFinished {
        task: task.id.clone(),
        attempt,
        iteration,
        verdict: result.verdict,
        reports: result.reports.clone(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }));
    Ok(result)
}

/// Judges approved work again when someone else moved the base since the attempt started:
/// QA saw the branch against a base that is no longer the one it merges onto. The new tip is
/// merged into the task branch (a conflict ends the task as a merge conflict) and the gates
/// run once more against it; a rejection fails the attempt, so it retries as configured.
/// `Some(status)` ends the attempt; `None` goes on to the merge.
#[expect(clippy::too_many_arguments, reason = "the attempt's state, passed through")]
async fn reverify_if_base_moved(
    shared: &Arc<Shared>,
    task: &TaskSpec,
    attempt: u32,
    iteration: u32,
    worktree: &Path,
    branch: &str,
    base_commit: &str,
    send: &impl Fn(Msg),
) -> Result<Option<TaskStatus>, AttemptError> {
    let Some(ours) = &shared.ours else { return Ok(None) };
    let tip = git::rev_parse(&shared.repo, &shared.base).await.map_err(|e| AttemptError::retry(e.to_string()))?;
    if tip == base_commit {
        return Ok(None);
    }
    let landed = git::first_parent_since(&shared.repo, base_commit, &tip).await.map_err(|e| AttemptError::retry(e.to_string()))?;
    let outside: Vec<String> = {
        let ours = ours.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        landed.into_iter().filter(|c| !ours.contains(c)).collect()
    };
    let Some(first) = outside.first() else { return Ok(None) };
    let moved = format!("{} moved outside fugue ({} commit(s), e.g. {})", shared.base, outside.len(), &first[..first.len().min(10)]);
    if let Err(files) = git::merge_into(worktree, &tip).await.map_err(|e| AttemptError::retry(format!("{moved}: {e}")))? {
        send(Msg::Event(Event::MergeConflicted { task: task.id.clone(), files }));
        return Ok(Some(TaskStatus::MergeConflict));
    }
    // The task stays approved meanwhile: the status machine has no way back, and the verdict
    // below either confirms it or fails the attempt.
    let result = qa_round(shared, task, attempt, iteration, worktree, Some(branch.to_owned()), &tip, send).await?;
    if result.verdict != QaVerdict::TaskApproved {
        return Err(AttemptError::retry(format!("{moved}, and QA on the new tip said {:?}: {}", result.verdict, rejection(&result))));
    }
    Ok(None)
}

/// What QA found, in one line: the first finding of the first gate that did not pass (the
/// feedback's first line is only its header).
fn rejection(result: &crate::qa::VerifyResult) -> String {
    let finding = result
        .reports
        .iter()
        .filter(|r| r.verdict != fugue_core::GateVerdict::Pass)
        .find_map(|r| r.findings.first().map(|f| format!("{}: {}", r.gate, first_line(&f.message))));
    clip(&finding.unwrap_or_else(|| first_line(&result.feedback).to_owned()), 300)
}

/// `s` cut to at most `max` characters.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// The state dir's journal path.
pub fn journal_path(state_dir: &Path) -> PathBuf {
    state_dir.join(files::JOURNAL)
}
