//! The Slurm executor against a real cluster: the single-node one `scripts/slurm-dev.sh start`
//! sets up. Every scenario runs twice, through slurmrestd (`rest`) and through the CLI (`cli`).
//!
//! Without a reachable cluster each test says so loudly on stderr and returns; with
//! `FUGUE_SLURM_REQUIRED=1` (CI) it fails instead, naming what is missing. The cluster is
//! found through `FUGUE_SLURM_DIR` (default `/tmp/fugue-slurm`): its `slurmrestd.sock`, and
//! `sinfo` working (SLURM_CONF, or the script's /etc/slurm/slurm.conf link).
//!
//! A crashed orchestrator is simulated by `mem::forget`ting a run future after its job was
//! submitted: the cancel guard never runs, as when the process dies.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fugue_agents::SlurmExecutor;
use fugue_core::{ExecError, ExecObserver, Executor, ProcessOutcome, ProcessSpec, SlurmSpec};

#[derive(Debug, Clone, Copy)]
enum Via {
    Rest,
    Cli,
}

fn slurm_dir() -> PathBuf {
    std::env::var_os("FUGUE_SLURM_DIR").map_or_else(|| PathBuf::from("/tmp/fugue-slurm"), PathBuf::from)
}

/// A node state (`sinfo -o %T`) that runs jobs: up and responding (no `*`), even if busy.
fn node_usable(state: &str) -> bool {
    !state.contains('*') && ["idle", "mixed", "allocated", "completing"].iter().any(|s| state.starts_with(s))
}

/// The slurmrestd address, or why there is no usable cluster.
fn cluster() -> Result<String, String> {
    let socket = slurm_dir().join("slurmrestd.sock");
    let sinfo = Command::new("sinfo").args(["-h", "-o", "%T"]).output();
    match sinfo {
        Err(e) => return Err(format!("`sinfo` cannot run ({e}): Slurm's client commands are not installed")),
        Ok(out) if !out.status.success() => {
            return Err(format!(
                "`sinfo` failed: {} (is slurmctld running? is SLURM_CONF set?)",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(out) if !String::from_utf8_lossy(&out.stdout).split_whitespace().any(node_usable) => {
            return Err(format!("no node is up: sinfo says `{}`", String::from_utf8_lossy(&out.stdout).trim()));
        }
        Ok(_) => {}
    }
    if !socket.exists() {
        return Err(format!("slurmrestd's socket {} does not exist", socket.display()));
    }
    Ok(format!("unix:{}", socket.display()))
}

/// The executor for `via`, or `None` (after saying so) when there is no cluster.
#[expect(clippy::print_stderr, reason = "a skipped test must say so where the test output shows it")]
fn executor(via: Via, jobs: &Path) -> Option<SlurmExecutor> {
    let rest = match cluster() {
        Ok(rest) => rest,
        Err(why) => {
            if std::env::var("FUGUE_SLURM_REQUIRED").is_ok_and(|v| v == "1") {
                panic!("FUGUE_SLURM_REQUIRED=1 but there is no usable Slurm cluster: {why}; run scripts/slurm-dev.sh start");
            }
            eprintln!("SKIPPED: no Slurm cluster — run scripts/slurm-dev.sh start ({why})");
            return None;
        }
    };
    let spec = SlurmSpec { rest: matches!(via, Via::Rest).then_some(rest), ..SlurmSpec::default() };
    let executor =
        SlurmExecutor::new(&spec, jobs).expect("executor").with_poll_interval(Duration::from_millis(50), Duration::from_millis(400));
    assert_eq!(executor.uses_rest(), matches!(via, Via::Rest));
    Some(executor)
}

/// Records the job ids it hears of.
#[derive(Debug, Default)]
struct Ids(Mutex<Vec<String>>);

impl ExecObserver for Ids {
    fn job_started(&self, job_id: &str) {
        self.0.lock().expect("lock").push(job_id.to_owned());
    }
}

impl Ids {
    fn all(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

fn sh(label: &str, script: &str, cwd: &Path) -> ProcessSpec {
    ProcessSpec::new(label, vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()], cwd)
}

/// The scheduler's state for a job (`scontrol`), or `None` once it forgot it.
fn job_state(id: &str) -> Option<String> {
    let out = Command::new("scontrol").args(["show", "job", "-o", id]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().find_map(|w| w.strip_prefix("JobState=")).map(str::to_owned)
}

/// Polls until the job's state satisfies `want` (bounded).
async fn wait_state(id: &str, want: impl Fn(&str) -> bool) -> String {
    for _ in 0..600 {
        if let Some(state) = job_state(id).filter(|s| want(s)) {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} never reached the wanted state (now {:?})", job_state(id));
}

async fn wait_file(path: &Path) {
    for _ in 0..600 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never appeared", path.display());
}

type RunFuture<'a> = Pin<Box<dyn std::future::Future<Output = Result<ProcessOutcome, ExecError>> + Send + 'a>>;

/// Starts a run and drives it until its job id is known; returns the still-pending future.
async fn submitted<'a>(executor: &'a SlurmExecutor, spec: ProcessSpec, ids: &Arc<Ids>) -> RunFuture<'a> {
    let mut run: RunFuture<'a> = Box::pin(executor.run_observed(spec, Some(Arc::clone(ids) as Arc<dyn ExecObserver>)));
    for _ in 0..600 {
        if !ids.all().is_empty() {
            return run;
        }
        tokio::select! {
            result = &mut run => panic!("the run ended before it was observed: {result:?}"),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    panic!("no job id was reported");
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

async fn succeeds_with_output(via: Via) {
    let jobs = tempfile::tempdir().expect("tempdir");
    let Some(executor) = executor(via, jobs.path()) else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let log = work.path().join("logs/t1.log");
    let mut spec = sh("t1", "echo out; echo err >&2; printf 'env=%s stdin=' \"$FUGUE_X\"; cat", work.path());
    spec.env.insert("FUGUE_X".to_owned(), "x y".to_owned());
    spec.stdin = Some(b"fed".to_vec());
    spec.log_file = Some(log.clone());
    spec.log_header = Some("--- header line".to_owned());
    spec.timeout = Some(Duration::from_secs(60));
    let ids = Arc::new(Ids::default());
    let outcome = executor.run_observed(spec, Some(Arc::clone(&ids) as Arc<dyn ExecObserver>)).await.expect("run");
    assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
    assert!(outcome.success());
    assert_eq!(outcome.output, "out\nerr\nenv=x y stdin=fed");
    let id = outcome.job_id.clone().expect("job id");
    assert_eq!(ids.all(), vec![id.clone()]);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.starts_with("--- header line\n--- fugue: submitted as Slurm job "), "{text}");
    assert!(text.contains("out\nerr\nenv=x y stdin=fed\n--- fugue: exit code 0 after "), "{text}");
    assert!(text.trim_end().ends_with(&format!("(Slurm job {id})")), "{text}");
    assert_eq!(std::fs::read_dir(jobs.path()).expect("jobs").count(), 0, "the job directory is removed");
}

async fn reports_exit_codes_and_signals(via: Via) {
    let jobs = tempfile::tempdir().expect("tempdir");
    let Some(executor) = executor(via, jobs.path()) else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let (code, signal, missing) = tokio::join!(
        executor.run(sh("exit7", "echo failing; exit 7", work.path())),
        executor.run(sh("sig", "kill -USR1 $$", work.path())),
        executor.run(ProcessSpec::new("missing", vec!["fugue-no-such-program".to_owned()], work.path())),
    );
    let code = code.expect("run");
    assert_eq!((code.exit_code, code.signal, code.output.as_str()), (Some(7), None, "failing\n"));
    let signal = signal.expect("run");
    assert_eq!((signal.exit_code, signal.signal), (None, Some(libc::SIGUSR1)));
    match missing {
        Err(ExecError::Spawn { kind, program, .. }) => {
            assert_eq!((kind, program.as_str()), (std::io::ErrorKind::NotFound, "fugue-no-such-program"));
        }
        other => panic!("expected a spawn error, got {other:?}"),
    }
}

async fn times_out_and_cancels(via: Via) {
    let jobs = tempfile::tempdir().expect("tempdir");
    let Some(executor) = executor(via, jobs.path()) else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let mut spec = sh("slow", "echo started; exec sleep 60", work.path());
    spec.timeout = Some(Duration::from_secs(2));
    let ids = Arc::new(Ids::default());
    let outcome = executor.run_observed(spec, Some(Arc::clone(&ids) as Arc<dyn ExecObserver>)).await.expect("run");
    assert!(outcome.timed_out && !outcome.success(), "{outcome:?}");
    assert!(outcome.output.starts_with("started\n"), "{outcome:?}");
    assert!(outcome.duration_ms >= 2000, "{outcome:?}");
    let id = outcome.job_id.expect("job id");
    let state = wait_state(&id, |s| s != "RUNNING" && s != "PENDING").await;
    assert!(state.starts_with("CANCELLED") || state == "COMPLETING", "job {id} is {state}");
}

async fn dropping_the_future_cancels_the_job(via: Via) {
    let jobs = tempfile::tempdir().expect("tempdir");
    let Some(executor) = executor(via, jobs.path()) else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let ids = Arc::new(Ids::default());
    let run = submitted(&executor, sh("dropme", "touch started; sleep 60", work.path()), &ids).await;
    let id = ids.all()[0].clone();
    wait_file(&work.path().join("started")).await;
    assert_eq!(job_state(&id).as_deref(), Some("RUNNING"));
    drop(run);
    let state = wait_state(&id, |s| s != "RUNNING").await;
    assert!(state.starts_with("CANCELLED") || state == "COMPLETING", "job {id} is {state}");
}

async fn attaches_to_a_running_job(via: Via) {
    let jobs = tempfile::tempdir().expect("tempdir");
    let Some(executor) = executor(via, jobs.path()) else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let script = "echo run >> runs; echo first-half; while [ ! -e go ]; do sleep 0.05; done; echo second-half";
    let ids = Arc::new(Ids::default());
    let run = submitted(&executor, sh("attach", script, work.path()), &ids).await;
    let id = ids.all()[0].clone();
    std::mem::forget(run); // the orchestrator "crashes"; its job runs on
    wait_state(&id, |s| s == "RUNNING").await;

    let mut spec = sh("attach", script, work.path());
    spec.attach_job = Some(id.clone());
    let again = Arc::new(Ids::default());
    let resumed = executor.run_observed(spec, Some(Arc::clone(&again) as Arc<dyn ExecObserver>));
    let release = async {
        for _ in 0..600 {
            if !again.all().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::write(work.path().join("go"), "").expect("go");
    };
    let (outcome, ()) = tokio::join!(resumed, release);
    let outcome = outcome.expect("attached run");
    assert_eq!(again.all(), vec![id.clone()], "the observer hears of the same job again");
    assert_eq!(outcome.job_id.as_deref(), Some(id.as_str()));
    assert_eq!((outcome.exit_code, outcome.output.as_str()), (Some(0), "first-half\nsecond-half\n"));
    assert_eq!(count_lines(&work.path().join("runs")), 1, "nothing was submitted again");
}

async fn collects_a_finished_job(via: Via) {
    let jobs = tempfile::tempdir().expect("tempdir");
    let Some(executor) = executor(via, jobs.path()) else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let script = "echo run >> runs; echo result; exit 3";
    let ids = Arc::new(Ids::default());
    let run = submitted(&executor, sh("done", script, work.path()), &ids).await;
    let id = ids.all()[0].clone();
    std::mem::forget(run);
    wait_state(&id, |s| s == "FAILED" || s == "COMPLETED").await;

    let mut spec = sh("done", script, work.path());
    spec.attach_job = Some(id.clone());
    let again = Arc::new(Ids::default());
    let outcome = executor.run_observed(spec, Some(Arc::clone(&again) as Arc<dyn ExecObserver>)).await.expect("collected");
    assert_eq!(outcome.job_id.as_deref(), Some(id.as_str()));
    assert_eq!((outcome.exit_code, outcome.output.as_str()), (Some(3), "result\n"));
    assert_eq!(count_lines(&work.path().join("runs")), 1, "nothing was submitted again");
    assert!(again.all().is_empty(), "a finished job is not reported as started");
}

async fn resubmits_unknown_and_cancelled_jobs(via: Via) {
    let jobs = tempfile::tempdir().expect("tempdir");
    let Some(executor) = executor(via, jobs.path()) else { return };
    let work = tempfile::tempdir().expect("tempdir");
    // The first run marks and sleeps; a run after it finds the mark and finishes.
    let script = "echo run >> runs; if [ -e mark ]; then echo second; else touch mark; sleep 60; fi";
    let ids = Arc::new(Ids::default());
    let run = submitted(&executor, sh("again", script, work.path()), &ids).await;
    let first = ids.all()[0].clone();
    std::mem::forget(run);
    wait_file(&work.path().join("mark")).await;
    assert!(Command::new("scancel").arg(&first).status().expect("scancel").success());
    wait_state(&first, |s| s.starts_with("CANCELLED")).await;

    let mut spec = sh("again", script, work.path());
    spec.attach_job = Some(first.clone());
    let outcome = executor.run(spec).await.expect("resubmitted");
    let second = outcome.job_id.clone().expect("job id");
    assert_ne!(second, first);
    assert_eq!((outcome.exit_code, outcome.output.as_str()), (Some(0), "second\n"));
    assert_eq!(count_lines(&work.path().join("runs")), 2);

    // A job id nobody knows: run afresh.
    let mut spec = sh("again", script, work.path());
    spec.attach_job = Some("987654321".to_owned());
    let outcome = executor.run(spec).await.expect("fresh");
    assert_ne!(outcome.job_id.as_deref(), Some("987654321"));
    assert_eq!((outcome.exit_code, outcome.output.as_str()), (Some(0), "second\n"));
    assert_eq!(count_lines(&work.path().join("runs")), 3);
}

async fn keeps_prompt_characters_literal(via: Via) {
    let jobs = tempfile::tempdir().expect("tempdir");
    let Some(executor) = executor(via, jobs.path()) else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let prompt = "Fix $(touch pwned-dollar) and `touch pwned-tick`; it's \"quoted\" \\ $HOME *\nline two ; exit 9";
    let argv = ["printf", "%s|", prompt, "--flag='x'"].map(str::to_owned).to_vec();
    let mut spec = ProcessSpec::new("literal", argv, work.path());
    spec.stdin = Some(prompt.as_bytes().to_vec());
    let outcome = executor.run(spec).await.expect("run");
    assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
    assert_eq!(outcome.output, format!("{prompt}|--flag='x'|"));
    assert!(!work.path().join("pwned-dollar").exists() && !work.path().join("pwned-tick").exists());
}

async fn preflight_checks_the_pool_dir(via: Via) {
    let jobs = tempfile::tempdir().expect("tempdir");
    let Some(executor) = executor(via, jobs.path()) else { return };
    let pool = tempfile::tempdir().expect("tempdir");
    executor.preflight(pool.path()).await.expect("a shared, writable dir passes");
    assert_eq!(std::fs::read_dir(pool.path()).expect("pool").count(), 0, "preflight leaves nothing behind");

    for bad in [pool.path().join("does-not-exist"), PathBuf::from("/proc")] {
        let err = executor.preflight(&bad).await.expect_err("must fail");
        let text = err.to_string();
        assert!(matches!(err, ExecError::Scheduler { .. }), "{err:?}");
        assert!(text.contains(&bad.display().to_string()) && text.contains("pool.dir must be on storage every node can write"), "{text}");
    }
}

macro_rules! both {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn rest() {
                    super::$scenario(super::Via::Rest).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn cli() {
                    super::$scenario(super::Via::Cli).await;
                }
            }
        )*
    };
}

both!(
    succeeds_with_output,
    reports_exit_codes_and_signals,
    times_out_and_cancels,
    dropping_the_future_cancels_the_job,
    attaches_to_a_running_job,
    collects_a_finished_job,
    resubmits_unknown_and_cancelled_jobs,
    keeps_prompt_characters_literal,
    preflight_checks_the_pool_dir,
);
