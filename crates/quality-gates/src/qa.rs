//! QA: judging one iteration of a task's work, independently of the agent's own checkout.
//!
//! [`Qa::verify`] goes through three steps:
//!
//! 0. **Space.** When the file system holding the agent's worktree is full, the round is blocked
//!    (the environment, not the agent): a write cut short by the full disk can leave a file
//!    empty while the agent still exits 0.
//! 1. **The agent's worktree.** It must still be on the task branch. Every path the branch
//!    changed since the base and every uncommitted or untracked (not ignored) file must pass
//!    the boundary rules; if one does not, the work is rejected *before* anything is
//!    committed, so an out-of-scope file never lands on the branch. Otherwise whatever the
//!    agent left uncommitted is committed (`git add -A`, fugue's identity, no hooks).
//! 2. **A clean checkout.** The branch head is checked out in a separate, clean worktree under
//!    the QA directory (a QA slot `<qa_dir>/q-N`, see "Warm QA"), and every gate runs there, concurrently: the
//!    boundary gate, review (unless `review: false`), tests (when there are commands or a
//!    coverage requirement), docs (when configured) and any extra gates. A file the work
//!    needs but that exists only in the agent's worktree — ignored, so never committed —
//!    is missing here, and the gates that need it fail. When no gate of the round needs a
//!    fresh checkout (`QualityGate::needs_fresh_checkout`: the boundary gate and a docs gate
//!    without commands judge only the change), the gates run in the agent's worktree, just
//!    committed, instead: a checkout of the whole repository per task is what a large
//!    repository cannot afford when nothing reads it.
//! 3. **The verdict.** Blocked when a gate could not judge (the environment; no iteration
//!    burnt), rejected when a gate failed (with the feedback text for the agent's next
//!    iteration), approved otherwise.
//!
//! **Warm QA.** The checkouts are a pool of their own, `<qa_dir>/q-1…q-N`, keyed by slot, not
//! by task: a round takes the first free warm slot (an exclusive `flock` on `q-N.lock`, which
//! a crash releases), else a new one, and holds it until its gates are done. When the settings
//! keep ignored build caches (the plan's `pool.keep_ignored`), a slot outlives the round and the
//! run: the next round, of any task and any later run, resets it to its head (`checkout
//! --detach --force`, which rewrites only the files that differ) and cleans everything but
//! those caches (`clean -ffdx -e <cache>…`), so its build is incremental. A slot that cannot be
//! reset — a crash left it half-made or locked, its registration is gone — is replaced. A new
//! slot is seeded (`pool.seed`, see `fugue_worktrees::seed_caches`) from the user's checkout,
//! else from a free warm slot, with copies even where the plan says hard links: QA's caches
//! are written by QA's own builds and the user's, never by an agent, which is what keeps
//! "only committed files decide" true with warm caches. Without kept caches a slot is removed
//! after each round, as before. The iteration loop itself belongs to the engine;
//! [`QaOutcome::feedback`] is what it passes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use fugue_core::{
    Boundaries, Finding, GateContext, GateReport, GateVerdict, GatesSpec, Phase, Plan, QaVerdict, QualityGate, Scope, SeedMode, Severity,
    TaskId, TaskSpec,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::boundary::{BOUNDARY_GATE, BoundaryGate, boundary_findings};
use crate::docs::DocsGate;
use crate::elapsed_ms;
use crate::feedback::{format_feedback, qa_verdict, summarize};
use crate::git::{Git, GitError};
use crate::review::{ReviewGate, Reviewer, ReviewerError};
use crate::settings::GateSettings;
use crate::test_gate::TestsGate;

/// Why QA itself could not run (as opposed to a gate being blocked). The engine should treat
/// it like [`QaVerdict::QaBlocked`]: the agent is not at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QaError {
    /// A git command failed.
    #[error("failed to {action}: {failure}")]
    Git {
        /// What QA was doing.
        action: String,
        /// The git failure, with its command, directory and message.
        failure: String,
    },
    /// A file-system operation failed.
    #[error("failed to {action}: {source}")]
    Io {
        /// What QA was doing.
        action: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The plan's reviewer could not be built.
    #[error(transparent)]
    Reviewer(#[from] ReviewerError),
    /// A path fugue cannot pass to git.
    #[error("failed to use {0} as a QA checkout directory: the path is not valid UTF-8; choose another state directory")]
    NonUtf8Path(PathBuf),
}

fn git_error(action: impl Into<String>) -> impl FnOnce(GitError) -> QaError {
    let action = action.into();
    move |f| QaError::Git { action, failure: f.to_string() }
}

/// One QA round's inputs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QaRequest<'a> {
    /// The task.
    pub task: &'a TaskSpec,
    /// The repository (any checkout of it; the fresh checkout is added from here).
    pub repo: &'a Path,
    /// The agent's worktree.
    pub worktree: &'a Path,
    /// The task branch the worktree must be on (`auto/<id>`).
    pub branch: &'a str,
    /// The commit the task branched from.
    pub base_commit: &'a str,
    /// The task's phase runs in parallel (the plan's `common` paths are then read-only).
    pub parallel: bool,
    /// The 0-based QA iteration, for the commit message.
    pub iteration: u32,
}

impl<'a> QaRequest<'a> {
    /// A request with `parallel` taken from the task's phase policy and iteration 0.
    pub fn new(task: &'a TaskSpec, repo: &'a Path, worktree: &'a Path, branch: &'a str, base_commit: &'a str) -> Self {
        Self { task, repo, worktree, branch, base_commit, parallel: task.phase.is_parallel(), iteration: 0 }
    }

    /// Sets whether the phase runs in parallel (false in SEQUENTIAL mode).
    pub fn parallel(mut self, parallel: bool) -> Self {
        self.parallel = parallel;
        self
    }

    /// Sets the QA iteration.
    pub fn iteration(mut self, iteration: u32) -> Self {
        self.iteration = iteration;
        self
    }
}

/// What one QA round decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QaOutcome {
    /// Approved, rejected or blocked.
    pub verdict: QaVerdict,
    /// Every gate's report, in gate order (boundary, review, tests, docs, extras).
    pub reports: Vec<GateReport>,
    /// The judged commit: the branch head after QA committed leftovers.
    pub head_commit: String,
    /// Paths the branch changed since the base (with the leftovers, when QA stopped before
    /// committing them).
    pub changed_files: Vec<String>,
    /// The commit QA made of work the agent left uncommitted, if any.
    pub committed: Option<String>,
    /// For a rejection: the text for the agent's next iteration (`{feedback}`).
    pub feedback: Option<String>,
    /// One line for logs: the verdict and why.
    pub summary: String,
    /// How long QA took.
    pub duration_ms: u64,
}

/// Builds a [`GateContext`] (its fields are public but the struct is `#[non_exhaustive]`, so
/// it is made from a minimal document and then filled in).
pub fn gate_context(task_id: &TaskId, phase: Phase, checkout: &Path) -> GateContext {
    let seed = serde_json::json!({
        "task_id": task_id.as_str(), "phase": phase, "checkout": "", "base_commit": "", "head_commit": "",
        "changed_files": [], "diff": "", "modifies": [], "common": [], "config": {}
    });
    let mut ctx: GateContext = match serde_json::from_value(seed) {
        Ok(ctx) => ctx,
        // The seed is built from a valid TaskId and Phase, which always deserialise.
        Err(e) => unreachable!("the gate context seed does not deserialise: {e}"),
    };
    ctx.checkout = checkout.to_owned();
    ctx
}

/// Runs `gates` concurrently on `ctx`; a gate that errs or panics gives a blocked report.
/// Reports come back in the order of `gates`, each with its duration.
pub async fn run_gates(gates: &[Arc<dyn QualityGate>], ctx: &GateContext) -> Vec<GateReport> {
    let ctx = Arc::new(ctx.clone());
    let mut set = JoinSet::new();
    let mut slots: Vec<(String, Option<GateReport>)> = Vec::with_capacity(gates.len());
    let mut ids = std::collections::HashMap::new();
    for (i, gate) in gates.iter().enumerate() {
        let (gate, ctx) = (Arc::clone(gate), Arc::clone(&ctx));
        slots.push((gate.name().to_owned(), None));
        let handle = set.spawn(async move {
            let started = Instant::now();
            let result = gate.check(&ctx).await;
            (result, elapsed_ms(started))
        });
        ids.insert(handle.id(), i);
    }
    while let Some(joined) = set.join_next_with_id().await {
        let (id, report) = match joined {
            Ok((id, (Ok(mut report), took))) => {
                if report.duration_ms == 0 {
                    report.duration_ms = took;
                }
                (id, Ok(report))
            }
            Ok((id, (Err(e), took))) => (id, Err((e.to_string(), took))),
            Err(e) => (e.id(), Err((format!("the gate panicked or was aborted: {e}"), 0))),
        };
        let Some(&i) = ids.get(&id) else { continue };
        let name = slots[i].0.clone();
        slots[i].1 = Some(report.unwrap_or_else(|(message, took)| blocked_report(&name, message, took)));
    }
    slots.into_iter().map(|(name, r)| r.unwrap_or_else(|| blocked_report(&name, "the gate produced no report".to_owned(), 0))).collect()
}

/// The name QA's free-space check reports under.
const DISK_CHECK: &str = "disk";

/// The name of QA's check that an iteration changed something.
pub const CHANGES_CHECK: &str = "changes";

/// `Some(message)` when the file system holding `dir` has no space left for this process.
fn full_disk(dir: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs(3) reads a NUL-terminated path and fills the struct it is given.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; both pointers are valid for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    // Root may write into the blocks reserved for it.
    let free = if root { st.f_bfree } else { st.f_bavail };
    (free == 0).then(|| {
        format!(
            "the file system holding {} is full, so the agent's writes may have been cut short: free some space, then `fugue resume`",
            dir.display()
        )
    })
}

fn blocked_report(gate: &str, message: String, duration_ms: u64) -> GateReport {
    GateReport {
        verdict: GateVerdict::Blocked,
        duration_ms,
        ..GateReport::fail(gate, vec![Finding { severity: Severity::High, file: None, line: None, message }])
    }
}

/// The QA of a plan: its gates, boundaries and reviewer, and where fresh checkouts go.
#[derive(Clone)]
pub struct Qa {
    gates: GatesSpec,
    common: Scope,
    reviewer: Option<Arc<Reviewer>>,
    extra: Vec<Arc<dyn QualityGate>>,
    qa_dir: PathBuf,
    settings: Arc<GateSettings>,
}

impl std::fmt::Debug for Qa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qa")
            .field("gates", &self.gates)
            .field("common", &self.common)
            .field("reviewer", &self.reviewer)
            .field("extra", &self.extra.iter().map(|g| g.name().to_owned()).collect::<Vec<_>>())
            .field("qa_dir", &self.qa_dir)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Qa {
    /// QA with these gates and boundaries, the heuristic reviewer when review is on, and fresh
    /// checkouts under `qa_dir`.
    pub fn new(gates: GatesSpec, boundaries: &Boundaries, qa_dir: impl Into<PathBuf>, settings: GateSettings) -> Self {
        let reviewer = gates.review.as_on().map(|_| Arc::new(Reviewer::heuristic()));
        Self { gates, common: boundaries.common.clone(), reviewer, extra: Vec::new(), qa_dir: qa_dir.into(), settings: Arc::new(settings) }
    }

    /// QA for `plan` (whose file is in `plan_dir`): its reviewer is built (and a plugin loaded)
    /// once, here.
    pub fn from_plan(plan: &Plan, plan_dir: &Path, qa_dir: impl Into<PathBuf>, mut settings: GateSettings) -> Result<Self, QaError> {
        settings.confine = settings.confine.or(plan.confine);
        let mut qa = Self::new(plan.gates.clone(), &plan.boundaries, qa_dir, settings);
        if let Some(spec) = plan.gates.review.as_on() {
            qa.reviewer = Some(Arc::new(Reviewer::from_plan(spec, &plan.agents, plan_dir, &qa.settings)?));
        }
        Ok(qa)
    }

    /// Replaces the reviewer (review must be on in the gates for it to run).
    pub fn with_reviewer(mut self, reviewer: Reviewer) -> Self {
        self.reviewer = Some(Arc::new(reviewer));
        self
    }

    /// Adds a gate (a gate plugin, say) run after the built-in ones.
    pub fn with_gate(mut self, gate: Arc<dyn QualityGate>) -> Self {
        self.extra.push(gate);
        self
    }

    /// The settings.
    pub fn settings(&self) -> &GateSettings {
        &self.settings
    }

    /// The plan's `max_iterations`.
    pub fn max_iterations(&self) -> u32 {
        self.gates.max_iterations
    }

    /// Where the fresh checkouts go.
    pub fn qa_dir(&self) -> &Path {
        &self.qa_dir
    }

    /// The gates a task's work goes through, in report order.
    pub fn gates_for(&self, task: &TaskSpec, parallel: bool) -> Vec<Arc<dyn QualityGate>> {
        let mut gates: Vec<Arc<dyn QualityGate>> = vec![Arc::new(BoundaryGate::new(parallel))];
        if let (Some(spec), Some(reviewer)) = (self.gates.review.as_on(), &self.reviewer) {
            gates.push(Arc::new(ReviewGate::new(spec.clone(), Arc::clone(reviewer), Arc::clone(&self.settings))));
        }
        if let Some(tests) = TestsGate::new(self.gates.tests.as_ref(), &task.verify, Arc::clone(&self.settings)) {
            gates.push(Arc::new(tests));
        }
        if let Some(docs) = &self.gates.docs {
            gates.push(Arc::new(DocsGate::new(docs, Arc::clone(&self.settings))));
        }
        gates.extend(self.extra.iter().cloned());
        gates
    }

    /// Judges one iteration of `req.task`'s work (see the module docs).
    pub async fn verify(&self, req: &QaRequest<'_>) -> Result<QaOutcome, QaError> {
        let started = Instant::now();
        let timeout = self.settings.command_timeout;
        let wt = Git::new(req.worktree, timeout);
        let task = req.task;

        // 0. A full disk cuts writes short without every agent noticing: nothing written
        // there is judged (the environment's fault, not the agent's).
        if let Some(message) = full_disk(req.worktree) {
            let head = wt.commit_of("HEAD").await.unwrap_or_default();
            let report = blocked_report(DISK_CHECK, message, elapsed_ms(started));
            return Ok(self.finish(started, vec![report], head, Vec::new(), None));
        }

        // 1. The agent's worktree: on the branch, in bounds, then committed.
        let on = wt.current_branch().await.map_err(git_error(format!("read the branch of the worktree {}", req.worktree.display())))?;
        if on.as_deref() != Some(req.branch) {
            let head = wt.commit_of("HEAD").await.unwrap_or_default();
            let what = on.map_or_else(|| "a detached HEAD".to_owned(), |b| format!("branch `{b}`"));
            let finding = Finding {
                severity: Severity::Critical,
                file: None,
                line: None,
                message: format!(
                    "the worktree has {what} checked out instead of the task branch `{}`: check out `{}` again and commit there",
                    req.branch, req.branch
                ),
            };
            let report = GateReport { duration_ms: elapsed_ms(started), ..GateReport::fail(BOUNDARY_GATE, vec![finding]) };
            return Ok(self.finish(started, vec![report], head, Vec::new(), None));
        }
        let leftovers = wt.uncommitted().await.map_err(git_error(format!("list uncommitted files in {}", req.worktree.display())))?;
        let committed_paths =
            wt.changed(req.base_commit, "HEAD").await.map_err(git_error(format!("list the changes of branch `{}`", req.branch)))?;
        let mut all_paths = committed_paths.clone();
        all_paths.extend(leftovers.iter().cloned());
        all_paths.sort();
        all_paths.dedup();
        let findings = boundary_findings(&all_paths, req.worktree, &task.modifies, &self.common, req.parallel);
        if !findings.is_empty() {
            let head = wt.commit_of("HEAD").await.map_err(git_error("read the worktree's HEAD"))?;
            let report = GateReport { duration_ms: elapsed_ms(started), ..GateReport::fail(BOUNDARY_GATE, findings) };
            return Ok(self.finish(started, vec![report], head, all_paths, None));
        }
        if all_paths.is_empty() && !task.allow_empty {
            // An agent that refused, gave up quietly or misunderstood exits 0 all the same:
            // a change is the evidence of work, and "nothing" is not approved.
            let head = wt.commit_of("HEAD").await.map_err(git_error("read the worktree's HEAD"))?;
            let finding = Finding {
                severity: Severity::High,
                file: None,
                line: None,
                message: format!(
                    "this iteration changed nothing: no file differs from the base commit {} and nothing was left uncommitted in the checkout. Do the task's work here (create or edit the files it asks for, within {}); if task `{}` only reports and may finish without changes, set `allow_empty: true` on it in the plan",
                    &req.base_commit[..req.base_commit.len().min(10)],
                    if task.modifies.patterns().is_empty() {
                        "its scope".to_owned()
                    } else {
                        task.modifies.patterns().iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
                    },
                    task.id
                ),
            };
            let report = GateReport { duration_ms: elapsed_ms(started), ..GateReport::fail(CHANGES_CHECK, vec![finding]) };
            return Ok(self.finish(started, vec![report], head, Vec::new(), None));
        }
        let committed = if leftovers.is_empty() {
            None
        } else {
            let message = format!(
                "fugue: commit work left uncommitted by task {} (QA iteration {})\n\n{} file(s): {}",
                task.id,
                req.iteration + 1,
                leftovers.len(),
                leftovers.iter().take(20).cloned().collect::<Vec<_>>().join(", ")
            );
            Some(wt.commit_all(&message).await.map_err(git_error(format!("commit the uncommitted work in {}", req.worktree.display())))?)
        };
        let head = wt.commit_of("HEAD").await.map_err(git_error("read the worktree's HEAD"))?;

        // 2. Every gate in a fresh checkout of the head.
        let repo = Git::new(req.repo, timeout);
        let changed =
            repo.changed(req.base_commit, &head).await.map_err(git_error(format!("list the changes of branch `{}`", req.branch)))?;
        let (diff, cut) = repo.diff(req.base_commit, &head, self.settings.diff_cap).await.map_err(git_error("read the task's diff"))?;
        if cut {
            tracing::warn!(task = %task.id, cap = self.settings.diff_cap, "the diff is longer than the cap; reviewers see its first files only");
        }
        let gates = self.gates_for(task, req.parallel);
        // Gates that judge only the change need no checkout of the whole repository: the
        // agent's worktree, just committed, holds the change.
        let fresh = gates.iter().any(|g| g.needs_fresh_checkout());
        let lease = if fresh { Some(self.lease_checkout(&repo, &head).await?) } else { None };
        let checkout = lease.as_ref().map_or_else(|| req.worktree.to_owned(), |l| l.dir.clone());
        let mut ctx = gate_context(&task.id, task.phase, &checkout);
        ctx.base_commit = req.base_commit.to_owned();
        ctx.head_commit = head.clone();
        ctx.changed_files = changed.clone();
        ctx.diff = diff;
        ctx.modifies = task.modifies.clone();
        ctx.common = self.common.clone();
        let reports = run_gates(&gates, &ctx).await;
        if let Some(lease) = lease
            && self.settings.keep_ignored.is_empty()
        {
            remove_checkout(&repo, &lease.dir).await;
        }

        // 3. The verdict.
        Ok(self.finish(started, reports, head, changed, committed))
    }

    fn finish(
        &self,
        started: Instant,
        reports: Vec<GateReport>,
        head: String,
        changed: Vec<String>,
        committed: Option<String>,
    ) -> QaOutcome {
        let verdict = qa_verdict(&reports);
        let feedback = (verdict == QaVerdict::TaskRejected).then(|| format_feedback(&reports, Some(&head)));
        QaOutcome {
            verdict,
            summary: summarize(verdict, &reports),
            reports,
            head_commit: head,
            changed_files: changed,
            committed,
            feedback,
            duration_ms: elapsed_ms(started),
        }
    }

    /// A clean checkout of `head` in a QA slot held until the lease is dropped: a warm slot
    /// reset and cleaned when the settings keep caches and it can be, else a new one, seeded.
    async fn lease_checkout(&self, repo: &Git, head: &str) -> Result<Lease, QaError> {
        std::fs::create_dir_all(&self.qa_dir)
            .map_err(|source| QaError::Io { action: format!("create the QA directory {}", self.qa_dir.display()), source })?;
        let lease = self.take_slot()?;
        let dir = lease.dir.clone();
        let dir_str = dir.to_str().ok_or_else(|| QaError::NonUtf8Path(dir.clone()))?.to_owned();
        if !self.settings.keep_ignored.is_empty() && dir.join(".git").is_file() {
            let g = Git::new(&dir, self.settings.command_timeout);
            let mut clean: Vec<&str> = vec!["clean", "-ffdxq"];
            for keep in &self.settings.keep_ignored {
                clean.extend(["-e", keep.as_str()]);
            }
            let reset = async {
                g.run(&["checkout", "--detach", "--force", "--quiet", head]).await?;
                g.run(&clean).await
            };
            match reset.await {
                Ok(_) => return Ok(lease),
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "failed to recycle the QA checkout; making a new one"),
            }
        }
        remove_checkout(repo, &dir).await;
        {
            let _admin = worktree_admin_lock(repo).await;
            repo.run(&["worktree", "add", "--detach", "--force", "--quiet", &dir_str, head])
                .await
                .map_err(git_error(format!("create a fresh checkout of {head} at {}", dir.display())))?;
        }
        if !self.settings.keep_ignored.is_empty() && !self.settings.seed.is_empty() {
            self.seed(repo, &dir).await;
        }
        Ok(lease)
    }

    /// Takes a QA slot: the lowest free one that exists (warm), else the lowest number with no
    /// checkout. "Free" is an exclusive `flock` on `q-N.lock`, taken without waiting; the
    /// kernel drops it when its holder dies, so a crash never leaves a slot taken.
    fn take_slot(&self) -> Result<Lease, QaError> {
        let mut existing: Vec<u32> = self.slot_numbers();
        existing.sort_unstable();
        for n in existing.iter().copied().chain((1..=u32::MAX).filter(|n| !existing.contains(n))) {
            if let Some(lock) = self.try_lock_slot(n)? {
                return Ok(Lease { dir: self.qa_dir.join(format!("q-{n}")), _lock: lock });
            }
        }
        Err(QaError::Io {
            action: format!("find a free QA slot in {}", self.qa_dir.display()),
            source: std::io::Error::other("every slot number is taken"),
        })
    }

    /// The numbers of the QA slots that have a directory.
    fn slot_numbers(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(&self.qa_dir) else { return Vec::new() };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("q-")).and_then(|n| n.parse().ok()))
            .collect()
    }

    /// The lock of slot `n` if no one holds it.
    fn try_lock_slot(&self, n: u32) -> Result<Option<std::fs::File>, QaError> {
        let path = self.qa_dir.join(format!("q-{n}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| QaError::Io { action: format!("open the QA slot lock {}", path.display()), source })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => {
                Err(QaError::Io { action: format!("lock the QA slot {}", path.display()), source })
            }
        }
    }

    /// Seeds a new slot's caches from the user's checkout, then what is still missing from a
    /// free warm slot (held while it is read, so no build writes it meanwhile). A failure is
    /// logged: the slot then builds cold.
    async fn seed(&self, repo: &Git, dir: &Path) {
        let caches: Vec<(String, SeedMode)> = self
            .settings
            .seed
            .iter()
            // QA's caches are its own: a hard link would let whoever writes the source through it.
            .map(|(p, m)| (p.clone(), if *m == SeedMode::Hardlink { SeedMode::Copy } else { *m }))
            .collect();
        let mut sources: Vec<(PathBuf, Option<std::fs::File>)> = Vec::new();
        if let Ok(top) = repo.run(&["rev-parse", "--show-toplevel"]).await {
            sources.push((PathBuf::from(top.trim()), None));
        }
        for n in self.slot_numbers() {
            let other = self.qa_dir.join(format!("q-{n}"));
            if other != dir
                && let Ok(Some(lock)) = self.try_lock_slot(n)
            {
                sources.push((other, Some(lock)));
                break;
            }
        }
        let dest = dir.to_owned();
        let seeded = tokio::task::spawn_blocking(move || {
            let mut done = Vec::new();
            for (src, _held) in &sources {
                match fugue_worktrees::seed_caches(src, &dest, &caches) {
                    Ok(r) => done.extend(r.seeded.into_iter().map(|c| format!("{c} from {}", src.display()))),
                    Err(e) => tracing::warn!(dir = %dest.display(), error = %e, "a QA cache is not seeded"),
                }
            }
            done
        })
        .await
        .unwrap_or_default();
        tracing::debug!(dir = %dir.display(), seeded = ?seeded, "seeded a new QA checkout");
    }

    /// The QA slots' directories (`q-1…`), in slot order.
    pub fn checkouts(&self) -> Vec<PathBuf> {
        let mut numbers = self.slot_numbers();
        numbers.sort_unstable();
        numbers.into_iter().map(|n| self.qa_dir.join(format!("q-{n}"))).collect()
    }

    /// The end of a run. Without kept caches every QA checkout is removed; with them the free
    /// ones stay warm for the next run, and only leftovers that are no slot (the per-task
    /// checkouts of older versions) are removed.
    pub async fn remove_checkouts(&self, repo: &Path) {
        let repo = Git::new(repo, self.settings.command_timeout);
        let Ok(entries) = std::fs::read_dir(&self.qa_dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".lock") {
                continue;
            }
            let slot = name.strip_prefix("q-").and_then(|n| n.parse::<u32>().ok());
            match slot {
                Some(_) if !self.settings.keep_ignored.is_empty() => {}
                Some(n) => {
                    // Held by a round of another process: not ours to remove.
                    if let Ok(Some(_lock)) = self.try_lock_slot(n) {
                        remove_checkout(&repo, &path).await;
                    }
                }
                None => remove_checkout(&repo, &path).await,
            }
        }
    }
}

/// A QA slot held for one round; dropping it frees the slot.
#[derive(Debug)]
struct Lease {
    dir: PathBuf,
    _lock: std::fs::File,
}

/// The exclusive lock every fugue process takes around `git worktree add/remove/prune` in a
/// repository (the pool takes the same file): concurrent `worktree add`s can read each other's
/// half-written admin files and fail. `None` when the lock cannot be had; the caller goes on
/// unlocked rather than failing QA.
async fn worktree_admin_lock(repo: &Git) -> Option<std::fs::File> {
    let common = repo.run(&["rev-parse", "--path-format=absolute", "--git-common-dir"]).await.ok()?;
    let path = PathBuf::from(common.trim()).join("fugue-worktrees.lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).ok()?;
        file.lock().ok()?;
        Some(file)
    })
    .await
    .ok()
    .flatten()
}

/// Removes a QA checkout and its worktree registration; failures are logged, not fatal (the
/// next use replaces it).
async fn remove_checkout(repo: &Git, dir: &Path) {
    let _admin = worktree_admin_lock(repo).await;
    if dir.exists() {
        if let Some(d) = dir.to_str() {
            let _ = repo.run(&["worktree", "remove", "--force", "--force", d]).await;
        }
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "failed to remove a QA checkout");
        }
    }
    let _ = repo.run(&["worktree", "prune"]).await;
}
