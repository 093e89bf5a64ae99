//! Real processes contending for one repository.
//!
//! The test binary re-executes itself as the child (the `child_process` test does nothing unless
//! `FUGUE_LOCKS_CHILD` is set), so the contenders are genuine separate processes with their own
//! pids and file descriptors, exactly like two `fugue run`s. A child reports on stdout and holds
//! what it took until its stdin closes (or until it is killed, to simulate a crash).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use fugue_core::Pattern;
use fugue_core::state::{LockMode, files};
use fugue_locks::{ClaimSet, FileStore, LockManager, LockPolicy, RunLock, RunLockError, StaleReason, TryAcquire};

const CHILD: &str = "FUGUE_LOCKS_CHILD";
const STATE: &str = "FUGUE_LOCKS_STATE";
/// Exit code of a child that was refused the run lock.
const REFUSED: i32 = 7;

/// The child side. `run`: take the run lock and hold it. `locks`: also open the lock manager
/// on the state dir and hold a write lock for task `a` on `src/a/**`.
#[test]
fn child_process() {
    let Some(mode) = std::env::var_os(CHILD) else { return };
    let state = std::path::PathBuf::from(std::env::var_os(STATE).expect("state dir"));
    let run_id = format!("run-{}", std::process::id());
    let lock = match RunLock::acquire(&state, run_id.clone()) {
        Ok(lock) => lock,
        Err(e) => {
            println!("refused: {e}");
            std::process::exit(REFUSED);
        }
    };
    println!("locked {}", std::process::id());
    if mode == "locks" {
        let opened = LockManager::open(lock.info(), LockPolicy::default(), Box::new(FileStore::new(&state))).expect("open manager");
        let claims = ClaimSet::new().write(Pattern::parse("src/a/**").expect("pattern"));
        let answer = opened.manager.try_acquire("a", &claims).expect("try_acquire");
        assert!(matches!(answer, TryAcquire::Granted(_)), "{answer:?}");
        println!("held");
    }
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(lock);
    std::process::exit(0);
}

struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

fn spawn(mode: &str, state: &Path) -> Proc {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_process", "--nocapture", "--test-threads", "1"])
        .env(CHILD, mode)
        .env(STATE, state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    Proc { child, out }
}

impl Proc {
    /// The first report starting with one of `markers`, from the marker to the end of its line
    /// (the test harness prints `test child_process ... ` before it on the same line).
    fn expect_line(&mut self, markers: &[&str]) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).expect("read child stdout");
            assert!(n > 0, "child ended before printing one of {markers:?}");
            if let Some(at) = markers.iter().filter_map(|m| line.find(m)).min() {
                return line[at..].trim_end().to_owned();
            }
        }
    }

    /// Closes stdin and waits for a clean exit.
    fn finish(mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let status = self.child.wait().expect("wait child");
        assert!(status.success(), "child exited with {status}");
    }

    /// Kills the child (a crash) and reaps it.
    fn crash(mut self) -> u32 {
        let pid = self.child.id();
        self.child.kill().expect("kill child");
        self.child.wait().expect("reap child");
        pid
    }
}

#[test]
fn second_process_is_refused_naming_the_holder_then_succeeds_after_it_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join(".claude");

    let mut first = spawn("run", &state);
    let line = first.expect_line(&["locked", "refused"]);
    assert_eq!(line, format!("locked {}", first.child.id()));

    let mut second = spawn("run", &state);
    let refusal = second.expect_line(&["locked", "refused"]);
    assert!(refusal.starts_with("refused: "), "{refusal}");
    assert!(refusal.contains(&format!("fugue process {}", first.child.id())), "names the holder's pid: {refusal}");
    assert_eq!(second.child.wait().expect("wait").code(), Some(REFUSED));

    // This process contends the same way, and can see the holder without touching the lock.
    match RunLock::acquire(&state, "parent") {
        Err(RunLockError::Held { holder: Some(h), .. }) => assert_eq!(h.pid, first.child.id()),
        other => panic!("expected the lock to be held by the first child, got {other:?}"),
    }
    assert_eq!(RunLock::holder(&state).map(|h| h.pid), Some(first.child.id()));

    first.finish();
    assert_eq!(RunLock::holder(&state), None);
    let mut third = spawn("run", &state);
    assert_eq!(third.expect_line(&["locked", "refused"]), format!("locked {}", third.child.id()));
    third.finish();
    let lock = RunLock::acquire(&state, "parent").expect("free after every child exited");
    assert_eq!(lock.info().run_id, "parent");
}

#[test]
fn a_crashed_run_releases_the_run_lock_and_its_locks_are_reclaimed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join(".claude");

    let mut crashed = spawn("locks", &state);
    crashed.expect_line(&["held", "refused"]);
    let snapshot = std::fs::read_to_string(state.join(files::RESOURCE_LOCKS)).expect("snapshot written");
    assert!(snapshot.contains("\"src/a/**\""), "{snapshot}");
    let pid = crashed.crash();

    // The kernel dropped the run lock with the process; the record it left names a dead pid.
    assert_eq!(RunLock::holder(&state), None);
    let lock = RunLock::acquire(&state, "resume").expect("run lock free after the crash");
    let opened = LockManager::open(lock.info(), LockPolicy::default(), Box::new(FileStore::new(&state))).expect("open");
    assert_eq!(opened.reclaimed.len(), 1, "{:?}", opened.reclaimed);
    let stale = &opened.reclaimed[0];
    assert_eq!(stale.record.agent_id, "a");
    assert_eq!(stale.record.mode, LockMode::Write);
    assert_eq!(stale.reason, StaleReason::PidGone { pid });
    assert!(stale.to_string().contains(&format!("pid {pid}")), "{stale}");

    // The path is free again, and the file says so.
    let claims = ClaimSet::new().write(Pattern::parse("src/a/b.rs").expect("pattern"));
    assert!(matches!(opened.manager.try_acquire("b", &claims), Ok(TryAcquire::Granted(_))));
    let after: fugue_core::state::ResourceLocks =
        serde_json::from_str(&std::fs::read_to_string(state.join(files::RESOURCE_LOCKS)).expect("read")).expect("parse");
    assert_eq!(after.locks.len(), 1);
    assert_eq!(after.locks[0].agent_id, "b");
    assert_eq!(after.locks[0].run_id.as_deref(), Some("resume"));
    assert_eq!(after.locks[0].pid, Some(std::process::id()));
}
