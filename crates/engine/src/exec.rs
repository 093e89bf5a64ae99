//! Where agents run: the plan's executor, and what the engine records about its jobs.
//!
//! Command agents hand their processes to an [`Executor`]: local process groups, or jobs on a
//! Slurm cluster. Gates and merges always stay on this machine. A cluster job outlives the
//! fugue process that submitted it, so the engine journals each job id the moment the
//! scheduler accepts it (`job_started`, through [`JobJournal`]); `fugue resume` reads the id
//! back from the journal and hands it to the agent, whose executor re-attaches to the job —
//! or collects its result — instead of submitting the same work again.
//!
//! Before the first dispatch, [`preflight`] asks the executor to prove that its processes can
//! write where they will work (the worktree pool, or the repository with `isolation: none`, and
//! the jobs directory): on a cluster those must be on storage every node reaches, and finding
//! out from a failed task an hour in is too late.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fugue_core::{ExecObserver, Executor, ExecutorSpec, TaskId};

use crate::error::EngineError;
use crate::events::Event;

/// The executor a plan asks for; a cluster's job scripts, outputs and prompt files go to
/// `<state dir>/fugue/slurm`.
pub(crate) fn build(spec: &ExecutorSpec, state_dir: &Path) -> Result<Arc<dyn Executor>, EngineError> {
    let jobs_dir = state_dir.join("fugue").join("slurm");
    fugue_agents::executor_from_spec(spec, &jobs_dir).map_err(|e| EngineError::Executor(e.to_string()))
}

/// Checks that `executor`'s processes can write in each of `dirs`.
pub(crate) async fn preflight(executor: &dyn Executor, dirs: &[PathBuf]) -> Result<(), EngineError> {
    for dir in dirs {
        // The pool makes its directory on the first acquire; the check needs it now.
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io("create", dir, e))?;
        executor.preflight(dir).await.map_err(|e| EngineError::Executor(e.to_string()))?;
    }
    Ok(())
}

/// Journals the job of one agent iteration as soon as the scheduler accepts it.
pub(crate) struct JobJournal {
    pub(crate) task: TaskId,
    pub(crate) attempt: u32,
    pub(crate) iteration: u32,
    pub(crate) executor: String,
    pub(crate) send: Arc<dyn Fn(Event) + Send + Sync>,
}

impl std::fmt::Debug for JobJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobJournal").field("task", &self.task).field("attempt", &self.attempt).field("iteration", &self.iteration).finish()
    }
}

impl ExecObserver for JobJournal {
    fn job_started(&self, job_id: &str) {
        (self.send)(Event::JobStarted {
            task: self.task.clone(),
            attempt: self.attempt,
            iteration: self.iteration,
            executor: self.executor.clone(),
            job_id: job_id.to_owned(),
        });
    }
}

/// Journals what a running agent does (`agent_activity`), for progress and `fugue status`: a
/// new line each time the agent starts something new, and usage-only changes at most every
/// [`ActivityJournal::USAGE_EVERY`], so a chatty agent cannot flood the journal.
pub(crate) struct ActivityJournal {
    pub(crate) task: TaskId,
    pub(crate) attempt: u32,
    pub(crate) iteration: u32,
    pub(crate) send: Arc<dyn Fn(Event) + Send + Sync>,
    pub(crate) last: std::sync::Mutex<Option<(String, std::time::Instant)>>,
    /// Where every reading goes first (unthrottled), for the budgets.
    pub(crate) meter: Option<MeterRef>,
}

/// A task's meter in the run's budgets, and the agent whose model prices its readings.
pub(crate) struct MeterRef {
    pub(crate) budgets: Arc<crate::budget::Budgets>,
    pub(crate) index: usize,
    pub(crate) agent: String,
}

impl ActivityJournal {
    pub(crate) const USAGE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
}

impl std::fmt::Debug for ActivityJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityJournal")
            .field("task", &self.task)
            .field("attempt", &self.attempt)
            .field("iteration", &self.iteration)
            .finish()
    }
}

impl fugue_core::ActivityObserver for ActivityJournal {
    fn activity(&self, activity: &fugue_core::Activity) {
        let usage = match &self.meter {
            Some(m) => {
                let (usage, _) = m.budgets.price(&m.agent, activity.usage);
                for e in m.budgets.reading(m.index, usage) {
                    (self.send)(e);
                }
                usage
            }
            None => activity.usage,
        };
        {
            let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = std::time::Instant::now();
            if let Some((doing, at)) = last.as_ref()
                && *doing == activity.doing
                && now.duration_since(*at) < Self::USAGE_EVERY
            {
                return;
            }
            *last = Some((activity.doing.clone(), now));
        }
        (self.send)(Event::AgentActivity {
            task: self.task.clone(),
            attempt: self.attempt,
            iteration: self.iteration,
            doing: activity.doing.clone(),
            usage,
        });
    }
}
