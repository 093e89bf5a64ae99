//! Moving a pool from the old default dir `.claude/worktree-pool` to `.claude/worktrees`.

use std::path::{Path, PathBuf};

use fugue_core::PoolSpec;
use fugue_core::state::SlotStatus;
use fugue_worktrees::{AcquireRequest, CleanupOptions, LEGACY_POOL_DIR, MergeMethod, MergeRequest, Pool, ReleaseMode};

use crate::common::{Fixture, commit, git, task, write};

fn old_spec(size: u32) -> PoolSpec {
    PoolSpec { size, dir: LEGACY_POOL_DIR.into(), ..PoolSpec::default() }
}

fn default_spec(size: u32) -> PoolSpec {
    PoolSpec { size, ..PoolSpec::default() }
}

fn canonical(fx: &Fixture) -> PathBuf {
    fx.repo.canonicalize().expect("canonical repo")
}

/// The worktrees git knows, from `git worktree list --porcelain`.
fn git_worktrees(fx: &Fixture) -> Vec<PathBuf> {
    git(&fx.repo, &["worktree", "list", "--porcelain"]).lines().filter_map(|l| l.strip_prefix("worktree ")).map(PathBuf::from).collect()
}

fn prunable(fx: &Fixture) -> bool {
    git(&fx.repo, &["worktree", "list", "--porcelain"]).lines().any(|l| l.starts_with("prunable"))
}

fn state_json(fx: &Fixture) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fx.state.join("pool-state.json")).expect("state file")).expect("json")
}

fn exclude(fx: &Fixture) -> String {
    std::fs::read_to_string(fx.repo.join(".git/info/exclude")).unwrap_or_default()
}

/// A pool in the old default dir: wt-1 held by `held` (a commit on its branch, a modified
/// tracked file, an untracked file, a build cache), wt-2 free (its task merged and released),
/// and the integration worktree of that merge.
fn old_pool(fx: &Fixture) -> (Pool, String) {
    let pool = fx.pool(old_spec(2));
    assert!(pool.migration().is_none(), "an explicit old dir is not migrated");
    pool.init(None, false).expect("init");
    let held = pool.acquire(&AcquireRequest::new(task("held"))).expect("acquire held");
    let work = commit(&held.path, "src/a/held.rs", "committed\n", "held work");
    write(&held.path, "src/a/lib.rs", "uncommitted edit\n");
    write(&held.path, "notes.txt", "untracked\n");
    write(&held.path, "target/cache.bin", "build cache\n");
    let done = pool.acquire(&AcquireRequest::new(task("done"))).expect("acquire done");
    commit(&done.path, "docs/done.md", "done\n", "done work");
    // A pool of an older fugue (or git) has an integration worktree: the checkout merge makes one.
    let report = pool.merge(&MergeRequest::new(["auto/done"]).target("main").method(MergeMethod::Checkout)).expect("merge");
    assert!(report.is_complete());
    pool.release(&done.slot, ReleaseMode::KeepBranch).expect("release");
    let old = canonical(fx).join(LEGACY_POOL_DIR);
    assert_eq!(held.path, old.join("wt-1"));
    assert!(old.join("wt-2/.git").is_file() && old.join("integration/.git").is_file());
    assert!(exclude(fx).lines().any(|l| l == "/.claude/worktree-pool/"));
    (pool, work)
}

#[test]
fn a_pool_in_the_old_default_dir_moves_to_the_new_one() {
    let fx = Fixture::new();
    let (_, work) = old_pool(&fx);
    let root = canonical(&fx);
    let (old, new) = (root.join(".claude/worktree-pool"), root.join(".claude/worktrees"));

    let pool = fx.pool(default_spec(2));
    assert_eq!(pool.dir(), new);
    let m = pool.migration().expect("the pool was migrated");
    assert_eq!(m.from, old);
    assert_eq!(m.to, new);
    assert_eq!(m.moved, ["wt-1", "wt-2", "integration"]);
    assert!(m.removed.is_empty() && m.left.is_empty(), "{m:?}");
    assert!(m.is_complete() && m.old_dir_removed);

    // On disk and for git: everything is at the new place, nothing at the old one.
    assert!(!old.exists(), "the old dir is removed");
    let listed = git_worktrees(&fx);
    for name in ["wt-1", "wt-2", "integration"] {
        assert!(new.join(name).join(".git").is_file(), "{name} is at the new place");
        assert!(listed.contains(&new.join(name)), "git knows {name} at the new place: {listed:?}");
    }
    assert!(!listed.iter().any(|p| p.starts_with(&old)), "git knows nothing at the old place: {listed:?}");
    assert!(!prunable(&fx));

    // The held slot keeps its task, its branch, its commit, its uncommitted work and its cache.
    let held = new.join("wt-1");
    assert_eq!(git(&held, &["rev-parse", "--abbrev-ref", "HEAD"]), "auto/held");
    assert_eq!(git(&held, &["rev-parse", "HEAD"]), work);
    assert_eq!(std::fs::read_to_string(held.join("src/a/held.rs")).expect("committed file"), "committed\n");
    assert_eq!(std::fs::read_to_string(held.join("src/a/lib.rs")).expect("modified file"), "uncommitted edit\n");
    assert_eq!(std::fs::read_to_string(held.join("notes.txt")).expect("untracked file"), "untracked\n");
    assert!(held.join("target/cache.bin").exists(), "the build cache moved with the slot");
    let status = git(&held, &["status", "--porcelain"]);
    assert!(status.contains("M src/a/lib.rs") && status.contains("?? notes.txt"), "{status}");
    let again = pool.acquire(&AcquireRequest::new(task("held"))).expect("acquire held again");
    assert!(again.already_held);
    assert_eq!((again.slot.as_str(), again.path.as_path()), ("wt-1", held.as_path()));

    // The state file has the new paths; the held slot its task.
    let state = state_json(&fx);
    assert_eq!(state["worktrees"][0]["path"], held.to_string_lossy().as_ref());
    assert_eq!(state["worktrees"][0]["status"], "busy");
    assert_eq!(state["worktrees"][0]["task_id"], "held");
    assert_eq!(state["worktrees"][0]["branch"], "auto/held");
    assert_eq!(state["worktrees"][1]["path"], new.join("wt-2").to_string_lossy().as_ref());
    assert_eq!(state["worktrees"][1]["status"], "free");

    // info/exclude: the old line replaced by the new one.
    let ex = exclude(&fx);
    assert!(ex.lines().any(|l| l == "/.claude/worktrees/") && !ex.contains("worktree-pool"), "{ex}");
    let main_status = git(&fx.repo, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(!main_status.contains(".claude/worktrees"), "{main_status}");

    // A second open is a no-op.
    let before = (std::fs::read(fx.state.join("pool-state.json")).expect("state"), git_worktrees(&fx), ex);
    let pool = fx.pool(default_spec(2));
    assert!(pool.migration().is_none(), "nothing left to migrate");
    assert_eq!((std::fs::read(fx.state.join("pool-state.json")).expect("state"), git_worktrees(&fx), exclude(&fx)), before);

    // And the pool works at the new place: the free slot is recycled warm.
    let b = pool.acquire(&AcquireRequest::new(task("next"))).expect("acquire");
    assert_eq!(b.path, new.join("wt-2"));
    assert!(b.warm, "the moved slot is recycled, not re-created");
    assert!(pool.health().expect("health").is_healthy());
}

#[test]
fn an_explicit_old_dir_is_left_alone() {
    let fx = Fixture::new();
    let (_, work) = old_pool(&fx);
    let old = canonical(&fx).join(LEGACY_POOL_DIR);
    let before = (std::fs::read(fx.state.join("pool-state.json")).expect("state"), git_worktrees(&fx), exclude(&fx));

    let pool = fx.pool(old_spec(2));
    assert!(pool.migration().is_none());
    assert_eq!(pool.dir(), old);
    assert_eq!((std::fs::read(fx.state.join("pool-state.json")).expect("state"), git_worktrees(&fx), exclude(&fx)), before);
    assert!(!canonical(&fx).join(".claude/worktrees").exists());
    let held = pool.acquire(&AcquireRequest::new(task("held"))).expect("acquire");
    assert!(held.already_held && held.path == old.join("wt-1"));
    assert_eq!(git(&held.path, &["rev-parse", "HEAD"]), work);
    // So is any dir other than the default one.
    let elsewhere = fx.pool(fx.spec(2));
    assert!(elsewhere.migration().is_none());
    assert!(old.join("wt-1/notes.txt").exists());
}

/// Slots git refuses to move: a locked held slot stays (and keeps working), a locked clean
/// free slot is removed and re-created lazily, a locked free slot with work in it stays. Once
/// unlocked and released, the next open moves the rest.
#[test]
fn slots_that_cannot_be_moved_are_handled_safely() {
    let fx = Fixture::new();
    let root = canonical(&fx);
    let (old, new) = (root.join(LEGACY_POOL_DIR), root.join(".claude/worktrees"));
    let pool = fx.pool(old_spec(3));
    pool.init(None, true).expect("warm init");
    let held = pool.acquire(&AcquireRequest::new(task("busy"))).expect("acquire");
    assert_eq!(held.slot, "wt-1");
    write(&held.path, "wip.txt", "work in progress\n");
    write(&old.join("wt-3"), "scratch.txt", "left by someone\n");
    for n in 1..=3 {
        git(&fx.repo, &["worktree", "lock", "--reason", "test", &old.join(format!("wt-{n}")).to_string_lossy()]);
    }

    let pool = fx.pool(default_spec(3));
    let m = pool.migration().expect("migration ran");
    assert!(m.moved.is_empty(), "{m:?}");
    assert_eq!(m.removed, ["wt-2"], "the clean free slot was removed");
    let left: Vec<&str> = m.left.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(left, ["wt-1", "wt-3"]);
    assert!(!m.is_complete() && !m.old_dir_removed);
    let (l1, l3) = (&m.left[0], &m.left[1]);
    assert_eq!(l1.task.as_deref(), Some("busy"));
    assert!(l1.reason.contains("locked") && l1.reason.contains("`busy`"), "{}", l1.reason);
    assert!(l1.to_string().contains(&old.join("wt-1").display().to_string()), "{l1}");
    assert!(l3.reason.contains("uncommitted") && l3.reason.contains("scratch.txt"), "{}", l3.reason);

    // Nothing was lost, the held slot still works where it is, the removed one is gone.
    assert_eq!(std::fs::read_to_string(old.join("wt-1/wip.txt")).expect("wip"), "work in progress\n");
    assert!(old.join("wt-3/scratch.txt").exists());
    assert!(!old.join("wt-2").exists() && !git_worktrees(&fx).contains(&old.join("wt-2")));
    let again = pool.acquire(&AcquireRequest::new(task("busy"))).expect("acquire held");
    assert!(again.already_held && again.path == old.join("wt-1"));
    let state = pool.status().expect("status");
    assert_eq!(state.worktrees[1].path, new.join("wt-2").to_string_lossy());
    assert_eq!(state.worktrees[1].status, SlotStatus::Free);
    // Both exclude lines stay while the old dir holds worktrees.
    let ex = exclude(&fx);
    assert!(ex.contains("/.claude/worktree-pool/") && ex.contains("/.claude/worktrees/"), "{ex}");

    // The user unlocks, the task is released, the scratch file committed away (deleted here).
    for n in [1, 3] {
        git(&fx.repo, &["worktree", "unlock", &old.join(format!("wt-{n}")).to_string_lossy()]);
    }
    pool.release("wt-1", ReleaseMode::KeepBranch).expect("release");
    std::fs::remove_file(old.join("wt-3/scratch.txt")).expect("rm");
    let pool = fx.pool(default_spec(3));
    let m = pool.migration().expect("migration ran again");
    assert_eq!(m.moved, ["wt-1", "wt-3"]);
    assert!(m.is_complete() && m.old_dir_removed, "{m:?}");
    assert!(new.join("wt-1/wip.txt").exists(), "a released slot's leftovers move with it (recycling cleans them)");
    assert!(fx.branch_exists("auto/busy"));
    assert!(!old.exists() && !exclude(&fx).contains("worktree-pool"));
    assert!(pool.health().expect("health").is_healthy());
    // The removed slot is re-created at the new place by its next acquire.
    let got: Vec<_> = (0..3).map(|i| pool.acquire(&AcquireRequest::new(task(&format!("t{i}")))).expect("acquire")).collect();
    assert!(got.iter().all(|a| a.path.starts_with(&new)));
    assert!(got.iter().any(|a| a.slot == "wt-2" && !a.warm));
}

/// A migration that stopped half-way — git had renamed a slot but not yet updated its pointer
/// to it, the state still had the old path — is finished by the next open.
#[test]
fn a_crashed_migration_is_finished_by_the_next_open() {
    let fx = Fixture::new();
    let (_, work) = old_pool(&fx);
    let root = canonical(&fx);
    let (old, new) = (root.join(LEGACY_POOL_DIR), root.join(".claude/worktrees"));
    // What `git worktree move` leaves when killed after its rename.
    std::fs::create_dir_all(&new).expect("mkdir");
    std::fs::rename(old.join("wt-1"), new.join("wt-1")).expect("rename");
    assert!(prunable(&fx), "git lost the slot");

    let pool = fx.pool(default_spec(2));
    let m = pool.migration().expect("migration ran");
    assert_eq!(m.moved, ["wt-1", "wt-2", "integration"]);
    assert!(m.is_complete() && m.old_dir_removed, "{m:?}");
    assert!(!prunable(&fx), "git knows the renamed slot again");
    assert!(git_worktrees(&fx).contains(&new.join("wt-1")));
    let held = pool.acquire(&AcquireRequest::new(task("held"))).expect("acquire held");
    assert!(held.already_held && held.path == new.join("wt-1"));
    assert_eq!(git(&held.path, &["rev-parse", "HEAD"]), work);
    assert!(git(&held.path, &["status", "--porcelain"]).contains("M src/a/lib.rs"), "the index survived");

    // Stopped after the slots and the state, before the old dir and its exclude line went.
    std::fs::create_dir_all(&old).expect("mkdir");
    let ex = exclude(&fx);
    std::fs::write(fx.repo.join(".git/info/exclude"), format!("{ex}/.claude/worktree-pool/\n")).expect("write");
    let state = std::fs::read(fx.state.join("pool-state.json")).expect("state");
    let pool = fx.pool(default_spec(2));
    let m = pool.migration().expect("migration ran");
    assert!(m.moved.is_empty() && m.is_complete() && m.old_dir_removed, "{m:?}");
    assert!(!old.exists());
    assert_eq!(exclude(&fx), ex);
    assert_eq!(std::fs::read(fx.state.join("pool-state.json")).expect("state"), state);
    assert!(fx.pool(default_spec(2)).migration().is_none());
}

/// The default dir is also where Claude Code keeps its own worktrees: the pool never touches them.
#[test]
fn other_worktrees_in_the_pool_dir_are_not_the_pools() {
    let fx = Fixture::new();
    let pool = fx.pool(default_spec(2));
    let feature = pool.dir().join("feature");
    git(&fx.repo, &["worktree", "add", "-q", "-b", "feature", &feature.to_string_lossy()]);
    write(&feature, "mine.txt", "the user's\n");
    let a = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    assert_eq!(a.path, pool.dir().join("wt-1"));
    assert!(pool.health().expect("health").is_healthy());
    pool.repair().expect("repair");
    let report = pool.cleanup(&CleanupOptions::default().force(true)).expect("cleanup");
    assert!(!report.removed_worktrees.contains(&feature), "{report:?}");
    pool.reset(None).expect("reset");
    assert!(feature.join("mine.txt").exists(), "cleanup and reset leave it alone");
    assert!(git_worktrees(&fx).contains(&feature));
    assert_eq!(git(&feature, &["rev-parse", "--abbrev-ref", "HEAD"]), "feature");
    assert!(!Path::new(&a.path).exists());
}

/// git refuses to move a worktree with submodules: a free one is removed (it held no work), a
/// held one stays where it is.
#[test]
fn slots_with_submodules_are_removed_when_free_and_left_when_held() {
    let fx = Fixture::new();
    let sub = fx.dir.path().join("sub");
    std::fs::create_dir_all(&sub).expect("mkdir");
    git(&sub, &["init", "-q", "-b", "main"]);
    commit(&sub, "s.txt", "s\n", "sub");
    git(&fx.repo, &["-c", "protocol.file.allow=always", "submodule", "add", "-q", &sub.to_string_lossy(), "sub"]);
    git(&fx.repo, &["commit", "-q", "-m", "add sub"]);
    let root = canonical(&fx);
    let (old, new) = (root.join(LEGACY_POOL_DIR), root.join(".claude/worktrees"));
    let pool = fx.pool(old_spec(2));
    let a = pool.acquire(&AcquireRequest::new(task("a"))).expect("acquire");
    let b = pool.acquire(&AcquireRequest::new(task("b"))).expect("acquire");
    for s in [&a, &b] {
        git(&s.path, &["-c", "protocol.file.allow=always", "submodule", "update", "--init", "-q"]);
    }
    pool.release(&b.slot, ReleaseMode::KeepBranch).expect("release");

    let pool = fx.pool(default_spec(2));
    let m = pool.migration().expect("migration ran");
    assert_eq!(m.removed, ["wt-2"], "{m:?}");
    assert_eq!(m.left.len(), 1, "{m:?}");
    assert_eq!((m.left[0].name.as_str(), m.left[0].task.as_deref()), ("wt-1", Some("a")));
    assert!(m.left[0].reason.contains("submodules"), "{}", m.left[0].reason);
    assert!(old.join("wt-1/sub/s.txt").exists() && !old.join("wt-2").exists());
    assert!(fx.branch_exists("auto/b"), "removing the slot kept its branch");
    let c = pool.acquire(&AcquireRequest::new(task("c"))).expect("acquire");
    assert_eq!(c.path, new.join("wt-2"));
    assert!(!c.warm);
}
