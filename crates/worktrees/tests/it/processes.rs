//! Real processes sharing one pool: the test binary re-executes itself in "child mode".
//!
//! `child_acquire` does nothing in a normal run. The parent test starts four copies of this
//! binary that run only that test, with `FUGUE_WT_TEST_CHILD` set; each blocks on its standard
//! input until the parent has started all four, so their acquires really race.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use fugue_core::PoolSpec;
use fugue_core::state::SlotStatus;
use fugue_worktrees::{AcquireRequest, Pool};

use crate::common::{Fixture, git, task};

const CHILD_ENV: &str = "FUGUE_WT_TEST_CHILD";
const RESULT: &str = "CHILD_RESULT:";

#[test]
fn child_acquire() {
    let Ok(args) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = args.split('\t').collect();
    let [repo, state, dir, id] = parts[..] else { panic!("bad child args {args:?}") };
    let mut go = String::new();
    std::io::stdin().read_to_string(&mut go).expect("wait for the parent");
    let spec = PoolSpec { size: 4, dir: dir.to_owned(), ..PoolSpec::default() };
    let pool = Pool::open(repo.as_ref(), state.as_ref(), spec).expect("open");
    let acquired = pool.acquire(&AcquireRequest::new(task(id))).expect("acquire");
    println!("{RESULT}{}", acquired.line());
}

#[test]
fn four_processes_acquiring_at_once_get_four_slots() {
    let fx = Fixture::new();
    let exe = std::env::current_exe().expect("test binary");
    let dir = fx.dir.path().join("pool");
    let mut children: Vec<_> = (0..4)
        .map(|i| {
            let args = format!("{}\t{}\t{}\tproc-{i}", fx.repo.display(), fx.state.display(), dir.display());
            Command::new(&exe)
                .args(["--exact", "processes::child_acquire", "--nocapture", "--test-threads=1", "--quiet"])
                .env(CHILD_ENV, args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    // All four are running: release them at once.
    for child in &mut children {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("write");
    }
    let mut lines = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        lines.extend(stdout.lines().filter_map(|l| l.strip_prefix(RESULT)).map(str::to_owned));
    }
    assert_eq!(lines.len(), 4, "{lines:?}");
    let mut slots: Vec<&str> = lines.iter().map(|l| l.split('|').next().expect("slot")).collect();
    slots.sort_unstable();
    assert_eq!(slots, ["wt-1", "wt-2", "wt-3", "wt-4"], "{lines:?}");
    for line in &lines {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(git(fields[1].as_ref(), &["rev-parse", "--abbrev-ref", "HEAD"]), fields[2]);
    }
    let spec = PoolSpec { size: 4, dir: dir.to_string_lossy().into_owned(), ..PoolSpec::default() };
    let state = fx.pool(spec).status().expect("status");
    assert!(state.worktrees.iter().all(|w| w.status == SlotStatus::Busy), "{state:?}");
    let mut tasks: Vec<String> = state.worktrees.iter().filter_map(|w| w.task_id.clone()).collect();
    tasks.sort();
    assert_eq!(tasks, ["proc-0", "proc-1", "proc-2", "proc-3"], "no reservation was lost to a race");
}
