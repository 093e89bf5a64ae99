//! The playbook state files, derived from the run view and written atomically — but not on
//! every event, and not by the loop.
//!
//! Rewriting `PARALLEL_STATUS.json` (O(tasks)) on each of O(tasks) events would make a run
//! quadratic. The [`Snapshotter`] marks files dirty as events arrive and writes them when
//! asked to `flush`: the engine flushes after a burst of events (at most every `interval`,
//! stretched so that serializing a large table takes at most a twentieth of the time), at
//! every synchronization point, and at the end. The journal, not these files, is what a
//! resume trusts, and the engine commits it before it flushes, so no file runs ahead of it.
//!
//! The loop only serializes. Writing happens on one writer thread, in order: on this kind of
//! disk replacing a file (temp file, rename over the old one) costs about a millisecond, and a
//! short task's log, the lock table and the state files were several of those per task on the
//! loop's path between a task's end and the next dispatch. Task logs are queued as tasks end
//! and handed over with the next flush; the lock table ([`LockManager::deferred`]) is written
//! by the same thread after the state files. A forced flush waits until everything queued is
//! on disk and reports the first error since the previous forced flush; a crash in between
//! leaves the previous complete files, which the next run or resume rewrites from the journal.
//!
//! `BOUNDARIES.json` is the exception to "every flush": each task's `cannot_modify` lists the
//! other writers of its phase, so the file grows with the square of the tasks, and its only
//! moving part is each boundary's status. It is rewritten at forced flushes only — the start,
//! every synchronization point, the end — where the statuses of a whole phase settle.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fugue_core::Plan;
use fugue_core::state::{BoundariesFile, BoundaryStatus, WorkflowState, files, write_snapshot};
#[cfg(doc)]
use fugue_core::state::{ParallelStatus, TaskEntry};
use fugue_locks::LockManager;

use crate::view::RunView;

/// What the writer thread does, in order.
enum Job {
    /// Replace a file atomically; a failure is reported at the next barrier.
    File(PathBuf, Vec<u8>),
    /// Replace a file atomically, best-effort (task logs: a full disk must not fail a run
    /// whose journal is intact).
    Log(PathBuf, Vec<u8>),
    /// Write the lock table if it changed.
    Locks(LockManager),
    /// Answer once every earlier job is done, with the first error since the last barrier.
    Barrier(mpsc::SyncSender<Option<std::io::Error>>),
}

/// The writer thread and its queue.
#[derive(Debug)]
struct Writer {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// State files queued and not yet written.
    pending: Arc<AtomicUsize>,
}

impl Writer {
    fn spawn() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let pending = Arc::new(AtomicUsize::new(0));
        let written = Arc::clone(&pending);
        let thread = std::thread::Builder::new().name("fugue-snapshots".to_owned()).spawn(move || {
            let mut first_error: Option<std::io::Error> = None;
            for job in rx {
                let result = match job {
                    Job::File(path, bytes) => {
                        let result = write_snapshot(&path, &bytes);
                        written.fetch_sub(1, AtomicOrdering::AcqRel);
                        result
                    }
                    Job::Log(path, bytes) => {
                        let _ = write_snapshot(&path, &bytes);
                        Ok(())
                    }
                    Job::Locks(locks) => locks.flush().map(|_| ()).map_err(std::io::Error::other),
                    Job::Barrier(reply) => {
                        let _ = reply.send(first_error.take());
                        Ok(())
                    }
                };
                if let Err(e) = result {
                    first_error.get_or_insert(e);
                }
            }
        })?;
        Ok(Self { tx: Some(tx), thread: Some(thread), pending })
    }

    /// Are state files from an earlier flush still waiting to be written?
    fn busy(&self) -> bool {
        self.pending.load(AtomicOrdering::Acquire) > 0
    }

    fn send(&self, job: Job) -> std::io::Result<()> {
        let file = matches!(job, Job::File(..));
        if file {
            self.pending.fetch_add(1, AtomicOrdering::AcqRel);
        }
        let sent = match &self.tx {
            Some(tx) => tx.send(job).map_err(|_| std::io::Error::other("the state-file writer thread is gone")),
            None => Err(std::io::Error::other("the state-file writer is closed")),
        };
        if sent.is_err() && file {
            self.pending.fetch_sub(1, AtomicOrdering::AcqRel);
        }
        sent
    }

    /// Waits for every queued write; the first error since the last barrier.
    fn barrier(&self) -> std::io::Result<()> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Job::Barrier(reply))?;
        match answer.recv() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => Err(std::io::Error::other("the state-file writer thread is gone")),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish what is queued and end.
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes the state files from a [`RunView`], coalescing writes.
#[derive(Debug)]
pub struct Snapshotter {
    dir: PathBuf,
    interval: Duration,
    /// `interval`, or longer when serializing the tables takes long (many tasks).
    spacing: Duration,
    last: Option<Instant>,
    dirty: bool,
    boundaries: Option<BoundariesFile>,
    locks: Option<LockManager>,
    logs: Vec<(PathBuf, Vec<u8>)>,
    writer: Writer,
    writes: u64,
    /// Bytes of the last `PARALLEL_STATUS.json`.
    status_size: usize,
}

impl Snapshotter {
    /// Snapshots into `state_dir`, at most once per `interval` unless forced.
    pub fn new(state_dir: &Path, interval: Duration) -> std::io::Result<Self> {
        Ok(Self {
            dir: state_dir.to_owned(),
            interval,
            spacing: interval,
            last: None,
            dirty: true,
            boundaries: None,
            locks: None,
            logs: Vec::new(),
            writer: Writer::spawn()?,
            writes: 0,
            status_size: 0,
        })
    }

    /// Also maintain `BOUNDARIES.json` (statuses follow the tasks).
    pub fn with_boundaries(mut self, b: BoundariesFile) -> Self {
        self.boundaries = Some(b);
        self
    }

    /// Also write the lock table (a [deferred](LockManager::deferred) manager) at each flush.
    pub fn set_locks(&mut self, locks: LockManager) {
        self.locks = Some(locks);
    }

    /// Something changed.
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// Queues a task log (a new file, best-effort) for the next flush.
    pub fn log(&mut self, path: PathBuf, text: String) {
        self.logs.push((path, text.into_bytes()));
        self.dirty = true;
    }

    /// How many times the files were written.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Whether [`flush`](Self::flush) would write now.
    pub fn due(&self, force: bool) -> bool {
        // Not while the previous state files are still queued: a slow disk must not pile up
        // copies of a large table in memory.
        self.dirty && (force || (!self.writer.busy() && self.last.is_none_or(|l| l.elapsed() >= self.spacing)))
    }

    /// Writes if dirty and the interval has passed (or `force`). A forced flush returns once
    /// everything is on disk (and reports a failed write of any flush since the last forced
    /// one); the others return once the files are queued.
    pub fn flush(&mut self, view: &RunView, plan: &Plan, force: bool) -> std::io::Result<bool> {
        if !self.due(force) {
            return Ok(false);
        }
        let started = Instant::now();
        self.write(view, plan, force)?;
        self.dirty = false;
        self.last = Some(Instant::now());
        // A zero interval asks for every flush to write (tests); otherwise keep the writing
        // under a twentieth of the run's time, however large the tables grow.
        if !self.interval.is_zero() {
            self.spacing = self.interval.max(started.elapsed() * 20);
        }
        self.writes += 1;
        if force {
            self.writer.barrier()?;
        }
        Ok(true)
    }

    fn write(&mut self, view: &RunView, plan: &Plan, force: bool) -> std::io::Result<()> {
        let workflow = WorkflowState {
            current_phase: view.current_phase,
            completed_phases: view.completed_phases.clone(),
            active_parallel_tasks: view.active(),
            execution_id: Some(view.execution_id.clone()),
            updated: Some(fugue_core::time::now()),
        };
        self.writer.send(Job::File(self.dir.join(files::WORKFLOW_STATE), json(&workflow)?))?;
        let status = StatusRef {
            execution_id: &view.execution_id,
            phase: view.current_phase,
            started: &view.started,
            tasks: TasksRef { plan, view },
        };
        let bytes = json_sized(&status, self.status_size)?;
        self.status_size = bytes.len();
        self.writer.send(Job::File(self.dir.join(files::PARALLEL_STATUS), bytes))?;
        if let Some(b) = self.boundaries.as_mut().filter(|_| force) {
            for (id, boundary) in b.0.iter_mut() {
                boundary.status = match view.tasks.get(id).map(|t| t.status) {
                    Some(fugue_core::TaskStatus::Merged) => BoundaryStatus::Released,
                    Some(s) if s.is_unsuccessful() => BoundaryStatus::NeedsRecovery,
                    _ => BoundaryStatus::Active,
                };
            }
            self.writer.send(Job::File(self.dir.join(files::BOUNDARIES), json(b)?))?;
        }
        if let Some(locks) = &self.locks {
            self.writer.send(Job::Locks(locks.clone()))?;
        }
        for (path, bytes) in self.logs.drain(..) {
            self.writer.send(Job::Log(path, bytes))?;
        }
        Ok(())
    }
}

impl Drop for Snapshotter {
    fn drop(&mut self) {
        // However the run ends, the lock table on disk should not keep releases it missed.
        if let Some(locks) = self.locks.take() {
            let _ = self.writer.send(Job::Locks(locks));
        }
    }
}

/// Pretty JSON with a trailing newline, as the playbook files are written.
fn json<T: serde::Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    json_sized(value, 0)
}

/// [`json`] into a buffer sized for `last` bytes (the previous size of the same file), so a
/// large table is not built by doubling (up to twice its size at the peak).
fn json_sized<T: serde::Serialize>(value: &T, last: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(if last == 0 { 0 } else { last + last / 16 + 4096 });
    serde_json::to_writer_pretty(&mut bytes, value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    // Queued until written: hold the file's size, not the buffer's.
    bytes.shrink_to_fit();
    Ok(bytes)
}

/// [`ParallelStatus`] by reference: the same JSON (a test compares them) without a copy of
/// every task's strings and gate reports for each snapshot (megabytes at 10,000 tasks).
#[derive(serde::Serialize)]
struct StatusRef<'a> {
    execution_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<fugue_core::Phase>,
    started: &'a str,
    tasks: TasksRef<'a>,
}

struct TasksRef<'a> {
    plan: &'a Plan,
    view: &'a RunView,
}

impl serde::Serialize for TasksRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.plan.tasks.iter().map(|t| {
            let v = self.view.task(&t.id);
            EntryRef {
                id: &t.id,
                name: t.display_name(),
                agent: &t.agent,
                status: v.status,
                paths: t.modifies.patterns(),
                started: v.started.as_deref(),
                completed: v.completed.as_deref(),
                attempts: v.attempts,
                iterations: v.iterations,
                branch: v.branch.as_deref(),
                worktree: v.worktree.as_deref(),
                qa: &v.qa,
                usage: v.usage_with_live(),
                session_id: v.session.as_deref(),
                activity: v.activity.as_ref().map(|(doing, usage)| ActivityRef { doing, usage }),
            }
        }))
    }
}

/// [`TaskEntry`] by reference.
#[derive(serde::Serialize)]
struct EntryRef<'a> {
    id: &'a fugue_core::TaskId,
    name: &'a str,
    agent: &'a str,
    status: fugue_core::TaskStatus,
    paths: &'a [fugue_core::Pattern],
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed: Option<&'a str>,
    attempts: u32,
    iterations: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    branch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worktree: Option<&'a str>,
    qa: &'a [fugue_core::GateReport],
    #[serde(skip_serializing_if = "fugue_core::Usage::is_unknown")]
    usage: fugue_core::Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activity: Option<ActivityRef<'a>>,
}

/// [`TaskActivity`](fugue_core::state::TaskActivity) by reference.
#[derive(serde::Serialize)]
struct ActivityRef<'a> {
    doing: &'a str,
    #[serde(skip_serializing_if = "fugue_core::Usage::is_unknown")]
    usage: &'a fugue_core::Usage,
}

#[cfg(test)]
mod tests {
    use super::*;
    use fugue_core::state::{BoundaryStatus, TaskBoundary};

    fn plan() -> Plan {
        serde_json::from_value(serde_json::json!({
            "version": 1,
            "agents": { "a": { "command": ["true"] } },
            "tasks": [{ "id": "t", "agent": "a", "modifies": ["src/**"] }],
        }))
        .expect("plan")
    }

    #[test]
    fn the_borrowed_status_is_the_status_file() {
        use fugue_core::state::{ParallelStatus, TaskEntry};
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "version": 1,
            "agents": { "a": { "command": ["true"] } },
            "tasks": [
                { "id": "t", "name": "The T", "agent": "a", "modifies": ["src/**", "docs/x.md"] },
                { "id": "u", "agent": "a", "depends_on": ["t"] },
            ],
        }))
        .expect("plan");
        let mut view = RunView { execution_id: "exec-1".to_owned(), started: "2026-11-22T00:00:00.000Z".to_owned(), ..RunView::default() };
        view.current_phase = Some(fugue_core::Phase::Implementation);
        let t = fugue_core::TaskId::new("t").expect("id");
        let mut tv = crate::view::TaskView::default();
        tv.status = fugue_core::TaskStatus::Merged;
        tv.attempts = 2;
        tv.iterations = 1;
        tv.started = Some("2026-11-22T00:00:01.000Z".to_owned());
        tv.completed = Some("2026-11-22T00:00:02.000Z".to_owned());
        tv.branch = Some("auto/t".to_owned());
        tv.worktree = Some("/pool/wt-1".to_owned());
        tv.qa = vec![fugue_core::GateReport::pass("boundary")];
        tv.usage.input_tokens = Some(1200);
        tv.usage.cost_usd = Some(0.25);
        let mut live = fugue_core::Usage::default();
        live.output_tokens = Some(30);
        tv.session = Some("sess-1".to_owned());
        tv.activity = Some(("Bash: cargo test".to_owned(), live));
        view.tasks.insert(t, tv);
        let owned = ParallelStatus {
            execution_id: view.execution_id.clone(),
            phase: view.current_phase,
            started: view.started.clone(),
            tasks: plan
                .tasks
                .iter()
                .map(|t| {
                    let v = view.task(&t.id);
                    TaskEntry {
                        id: t.id.clone(),
                        name: t.display_name().to_owned(),
                        agent: t.agent.clone(),
                        status: v.status,
                        paths: t.modifies.patterns().to_vec(),
                        started: v.started.clone(),
                        completed: v.completed.clone(),
                        attempts: v.attempts,
                        iterations: v.iterations,
                        branch: v.branch.clone(),
                        worktree: v.worktree.clone(),
                        qa: v.qa.clone(),
                        usage: v.usage_with_live(),
                        session_id: v.session.clone(),
                        activity: v.activity.clone().map(|(doing, usage)| fugue_core::state::TaskActivity { doing, usage }),
                    }
                })
                .collect(),
        };
        let borrowed = StatusRef {
            execution_id: &view.execution_id,
            phase: view.current_phase,
            started: &view.started,
            tasks: TasksRef { plan: &plan, view: &view },
        };
        let a = json(&owned).expect("owned");
        assert_eq!(
            String::from_utf8(json_sized(&borrowed, 10).expect("borrowed")).expect("utf-8"),
            String::from_utf8(a.clone()).expect("utf-8")
        );
        let back: ParallelStatus = serde_json::from_slice(&a).expect("reads back");
        assert_eq!(back, owned);
        // Known figures are written, unknown ones left out (never written as 0), and a task
        // that has spent nothing known has no `usage` at all.
        let text = String::from_utf8(a).expect("utf-8");
        assert!(text.contains(r#""input_tokens": 1200"#) && text.contains(r#""output_tokens": 30"#), "{text}");
        assert!(!text.contains("cache_read_tokens"), "{text}");
        assert!(text.contains(r#""doing": "Bash: cargo test""#) && text.contains(r#""session_id": "sess-1""#), "{text}");
        assert_eq!(text.matches(r#""usage""#).count(), 2, "t's total and its activity's; none for u: {text}");
    }

    #[test]
    fn boundaries_are_rewritten_at_forced_flushes_only() {
        let dir = tempfile::tempdir().expect("dir");
        let mut b = BoundariesFile::default();
        b.0.insert(
            fugue_core::TaskId::new("t").expect("id"),
            TaskBoundary {
                dependencies: vec![],
                can_modify: vec![],
                cannot_modify: vec![],
                parallel_safe: true,
                status: BoundaryStatus::Active,
            },
        );
        let mut snap = Snapshotter::new(dir.path(), Duration::ZERO).expect("writer").with_boundaries(b);
        let (view, plan) = (RunView::default(), plan());
        assert!(snap.due(false));
        assert!(snap.flush(&view, &plan, true).expect("flush"));
        let path = dir.path().join(files::BOUNDARIES);
        assert!(path.exists());
        std::fs::remove_file(&path).expect("rm");
        snap.touch();
        assert!(snap.flush(&view, &plan, false).expect("flush"));
        assert!(dir.path().join(files::PARALLEL_STATUS).exists());
        assert!(!path.exists(), "an interval flush leaves BOUNDARIES.json alone");
        assert!(!snap.due(false), "nothing changed since");
        snap.touch();
        assert!(snap.flush(&view, &plan, true).expect("flush"));
        assert!(path.exists());
        assert_eq!(snap.writes(), 3);
    }

    #[test]
    fn logs_and_the_lock_table_are_written_by_the_next_flush_and_on_disk_after_a_forced_one() {
        let dir = tempfile::tempdir().expect("dir");
        let run = fugue_locks::RunInfo::current("r");
        let locks =
            fugue_locks::LockManager::open(&run, fugue_locks::LockPolicy::default(), Box::new(fugue_locks::FileStore::new(dir.path())))
                .expect("locks")
                .manager
                .deferred();
        let mut snap = Snapshotter::new(dir.path(), Duration::from_secs(3600)).expect("writer");
        snap.set_locks(locks.clone());
        let (view, plan) = (RunView::default(), plan());
        assert!(snap.flush(&view, &plan, true).expect("flush"));
        let claims = fugue_locks::ClaimSet::from_scopes(
            &fugue_core::Scope(vec![fugue_core::Pattern::parse("src/**").expect("pattern")]),
            &fugue_core::Scope::default(),
        );
        assert!(matches!(locks.try_acquire("t", &claims).expect("acquire"), fugue_locks::TryAcquire::Granted(_)));
        let log = dir.path().join("logs").join("t.md");
        snap.log(log.clone(), "# log\n".to_owned());
        assert!(!snap.flush(&view, &plan, false).expect("flush"), "the interval has not passed");
        assert!(!log.exists(), "queued until the next flush");
        assert!(snap.flush(&view, &plan, true).expect("flush"));
        assert_eq!(std::fs::read_to_string(&log).expect("log"), "# log\n");
        let table = std::fs::read_to_string(dir.path().join(files::RESOURCE_LOCKS)).expect("locks");
        assert!(table.contains("src/**"), "{table}");
    }
}
