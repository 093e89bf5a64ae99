//! Health checks and repairs against real repositories.

use std::time::{Duration, SystemTime};

use fugue_core::state::SlotStatus;
use fugue_worktrees::{AcquireRequest, Problem, ReleaseMode};

use crate::common::{Fixture, commit, git, task};

/// The slot's `index.lock`, made to look left behind (an hour old).
fn plant_old_lock(path: &std::path::Path) -> std::path::PathBuf {
    let gitdir = git(path, &["rev-parse", "--absolute-git-dir"]);
    let lock = std::path::Path::new(&gitdir).join("index.lock");
    let f = std::fs::File::create(&lock).expect("create lock");
    f.set_modified(SystemTime::now() - Duration::from_secs(3600)).expect("age the lock");
    lock
}

#[test]
fn healthy_pool_reports_nothing() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(2));
    pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    let report = pool.health().expect("health");
    assert!(report.is_healthy(), "{:?}", report.problems);
}

#[test]
fn stale_index_lock_is_detected_and_repaired() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(2));
    let a = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    let lock = plant_old_lock(&a.path);
    // git itself is stuck on it.
    let out = crate::common::git_raw(&a.path, &["commit", "--allow-empty", "-q", "-m", "x"]);
    assert!(!out.status.success(), "the planted lock blocks git");

    let report = pool.health().expect("health");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(matches!(&report.problems[0], Problem::StaleIndexLock { lock: l, .. } if *l == lock));

    let repair = pool.repair().expect("repair");
    assert_eq!(repair.repaired.len(), 1);
    assert!(repair.remaining.is_empty(), "{:?}", repair.remaining);
    assert!(!lock.exists());
    commit(&a.path, "after.txt", "ok", "git works again");
}

#[test]
fn a_lock_held_by_a_live_process_is_not_stale() {
    if !std::path::Path::new("/proc/self/fd").exists() {
        return; // The rule without /proc is age-only; covered by the unit tests.
    }
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(1));
    let a = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    let lock = plant_old_lock(&a.path);
    let held = std::fs::File::open(&lock).expect("open");
    let mut holder = std::process::Command::new("sleep").arg("30").stdin(held).spawn().expect("spawn");
    let report = pool.health();
    let repair = pool.repair();
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(report.expect("health").is_healthy(), "the lock belongs to a live process");
    assert!(repair.expect("repair").repaired.is_empty());
    assert!(lock.exists(), "a live process's lock is never removed");

    // Acquire on a slot with a live lock fails clearly instead of waiting or breaking it.
    pool.release(&a.slot, ReleaseMode::KeepBranch).expect("release");
    let held = std::fs::File::open(&lock).expect("open");
    let mut holder = std::process::Command::new("sleep").arg("30").stdin(held).spawn().expect("spawn");
    let err = pool.acquire(&AcquireRequest::new(task("u")));
    let _ = holder.kill();
    let _ = holder.wait();
    let msg = err.expect_err("locked slot").to_string();
    assert!(msg.contains("index.lock") && msg.contains("wt-1"), "{msg}");
    // Once the holder is gone, acquire removes the stale lock itself.
    let ok = pool.acquire(&AcquireRequest::new(task("u"))).expect("acquire after the holder died");
    assert!(ok.warm && !lock.exists());
}

#[test]
fn missing_slot_dir_and_prunable_admin_dir() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(2));
    let a = pool.acquire(&AcquireRequest::new(task("busy"))).expect("acquire");
    let work = commit(&a.path, "w.txt", "w", "work");
    let b = pool.acquire(&AcquireRequest::new(task("idle"))).expect("acquire");
    pool.release(&b.slot, ReleaseMode::KeepBranch).expect("release");
    std::fs::remove_dir_all(&a.path).expect("rm busy slot");
    std::fs::remove_dir_all(&b.path).expect("rm free slot");

    let report = pool.health().expect("health");
    let kinds: Vec<&str> = report
        .problems
        .iter()
        .map(|p| match p {
            Problem::MissingSlotDir { .. } => "missing",
            Problem::Prunable { .. } => "prunable",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "missing").count(), 1, "{:?}", report.problems);
    assert_eq!(kinds.iter().filter(|k| **k == "prunable").count(), 2, "{:?}", report.problems);
    assert!(!kinds.contains(&"other"));

    let repair = pool.repair().expect("repair");
    assert!(repair.remaining.is_empty(), "{:?}", repair.remaining);
    assert_eq!(git(&a.path, &["rev-parse", "HEAD"]), work, "the busy slot is restored on its branch");
    assert_eq!(pool.status().expect("status").worktrees[0].status, SlotStatus::Busy);
    assert!(pool.health().expect("health").is_healthy());
}

#[test]
fn branch_checked_out_twice_is_detected_and_repaired() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(2));
    let a = pool.acquire(&AcquireRequest::new(task("dup"))).expect("acquire");
    let b = pool.acquire(&AcquireRequest::new(task("other"))).expect("acquire");
    // Someone forces the same branch into the second slot.
    git(&b.path, &["checkout", "-q", "--ignore-other-worktrees", "auto/dup"]);

    let report = pool.health().expect("health");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    match &report.problems[0] {
        Problem::BranchCheckedOutTwice { branch, worktrees } => {
            assert_eq!(branch, "refs/heads/auto/dup");
            assert_eq!(worktrees.len(), 2);
        }
        other => panic!("unexpected {other}"),
    }
    let repair = pool.repair().expect("repair");
    assert!(repair.remaining.is_empty(), "{:?}", repair.remaining);
    assert_eq!(git(&a.path, &["rev-parse", "--abbrev-ref", "HEAD"]), "auto/dup", "the owner keeps it");
    assert_eq!(git(&b.path, &["rev-parse", "--abbrev-ref", "HEAD"]), "HEAD", "the intruder is detached");
}

#[test]
fn broken_slots_and_stray_dirs_are_repaired() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(2));
    pool.init(None, false).expect("init");
    let path = fx.state.join("pool-state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    state["worktrees"][0]["status"] = "broken".into();
    std::fs::write(&path, state.to_string()).expect("write");
    let stray = pool.dir().join("wt-2");
    std::fs::create_dir_all(stray.join("junk")).expect("mkdir");

    let report = pool.health().expect("health");
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    let repair = pool.repair().expect("repair");
    assert_eq!(repair.repaired.len(), 2);
    assert!(repair.remaining.is_empty());
    assert!(!stray.exists());
    assert_eq!(pool.status().expect("status").worktrees[0].status, SlotStatus::Free);
    let a = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    assert_eq!(a.slot, "wt-1");
}

#[test]
fn a_head_lock_left_by_a_killed_git_is_cleared_for_the_slots_next_task_and_for_its_own() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(1));
    let a = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    let gitdir = git(&a.path, &["rev-parse", "--absolute-git-dir"]);
    let plant = || {
        let lock = std::path::Path::new(&gitdir).join("HEAD.lock");
        let f = std::fs::File::create(&lock).expect("create lock");
        f.set_modified(SystemTime::now() - Duration::from_secs(3600)).expect("age the lock");
        lock
    };
    // A resumed task gets its held slot back without the dead git's lock.
    let lock = plant();
    let again = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire the held slot");
    assert!(again.already_held && !lock.exists());
    git(&a.path, &["commit", "-q", "--allow-empty", "-m", "HEAD can move"]);
    // The next task of a recycled slot too.
    pool.release(&a.slot, ReleaseMode::KeepBranch).expect("release");
    let lock = plant();
    let b = pool.acquire(&AcquireRequest::new(task("u"))).expect("acquire after a killed git");
    assert!(b.warm && !lock.exists());
}
