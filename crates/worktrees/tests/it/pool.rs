//! Acquire, recycle, release, cleanup and reset against real git repositories.

use std::path::Path;

use fugue_core::state::SlotStatus;
use fugue_core::{CommandLine, Pattern, PoolSpec, Scope, SeedMode, SparseMode};
use fugue_worktrees::{AcquireRequest, CleanupOptions, ErrorClass, PoolError, ReleaseMode};

use crate::common::{Fixture, commit, git, task, write};

#[test]
fn init_then_exhaustion() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(8));
    let state = pool.init(Some(2), false).expect("init");
    assert_eq!(state.pool_size, 2);
    assert!(state.worktrees.iter().all(|w| w.status == SlotStatus::Free));

    let a = pool.acquire(&AcquireRequest::new(task("a"))).expect("first");
    let b = pool.acquire(&AcquireRequest::new(task("b"))).expect("second");
    assert_ne!(a.slot, b.slot);
    assert_eq!(a.line(), format!("wt-1|{}|auto/a", a.path.display()));
    let err = pool.acquire(&AcquireRequest::new(task("c"))).expect_err("pool of 2 is exhausted");
    assert!(matches!(err, PoolError::Exhausted { size: 2 }), "{err}");
    assert_eq!(err.class(), ErrorClass::Failed);
    // The failed acquire reserved nothing.
    let status = pool.status().expect("status");
    assert_eq!(status.worktrees.iter().filter(|w| w.status == SlotStatus::Busy).count(), 2);
    assert!(status.worktrees.iter().all(|w| w.task_id.as_deref() != Some("c")));

    pool.release(&a.slot, ReleaseMode::KeepBranch).expect("release");
    let c = pool.acquire(&AcquireRequest::new(task("c"))).expect("a slot is free again");
    assert_eq!(c.slot, a.slot);
    assert!(c.warm, "the released slot is recycled, not re-created");
}

#[test]
fn acquire_is_idempotent_per_task() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(3));
    let first = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    write(&first.path, "scratch.txt", "work in progress\n");
    let again = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire again");
    assert_eq!(again.slot, first.slot);
    assert!(again.already_held);
    assert!(first.path.join("scratch.txt").exists(), "re-acquiring a held slot touches nothing");
}

/// A run killed after reserving a slot but before its worktree was added leaves a held slot
/// with no checkout (seen in the crash suite: the resumed task's agent was started in a
/// directory that did not exist). Acquiring it again for its task makes the checkout.
#[test]
fn a_held_slot_without_its_checkout_is_prepared_again() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(3));
    let first = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    std::fs::remove_dir_all(&first.path).expect("remove the slot's directory");
    let again = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire again");
    assert_eq!(again.slot, first.slot);
    assert!(!again.already_held, "re-created, not taken as it was");
    assert!(again.path.join(".git").exists(), "a checkout again");
    assert_eq!(git(&again.path, &["rev-parse", "--abbrev-ref", "HEAD"]), "auto/t");
}

#[test]
fn state_file_has_the_playbook_shape() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(2));
    let a = pool.acquire(&AcquireRequest::new(task("shape"))).expect("acquire");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.state.join("pool-state.json")).expect("state file")).expect("json");
    assert_eq!(json["version"], 1);
    assert_eq!(json["pool_size"], 2);
    let slot = &json["worktrees"][0];
    assert_eq!(slot["id"], "wt-1");
    assert_eq!(slot["status"], "busy");
    assert_eq!(slot["task_id"], "shape");
    assert_eq!(slot["branch"], "auto/shape");
    assert_eq!(slot["path"], a.path.to_string_lossy().as_ref());
    let at = slot["acquired_at"].as_str().expect("timestamp");
    assert!(at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T', "{at}");
}

#[test]
fn release_keeps_unmerged_work_and_discard_deletes() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(2));
    let a = pool.acquire(&AcquireRequest::new(task("feature"))).expect("acquire");
    let work = commit(&a.path, "src/a/new.rs", "new\n", "task work");

    let released = pool.release(&a.slot, ReleaseMode::KeepBranch).expect("release");
    assert_eq!(released.branch.as_deref(), Some("auto/feature"));
    assert!(!released.branch_deleted);
    assert_eq!(fx.head("auto/feature"), work, "the branch keeps its commit");
    // The slot no longer has the branch checked out, so it can be used anywhere.
    assert_eq!(git(&a.path, &["rev-parse", "--abbrev-ref", "HEAD"]), "HEAD");

    // Recycling the slot for another task does not touch the branch.
    let b = pool.acquire(&AcquireRequest::new(task("other"))).expect("recycle");
    assert_eq!(b.slot, a.slot);
    assert!(!b.path.join("src/a/new.rs").exists());
    assert_eq!(fx.head("auto/feature"), work);

    // Cleanup deletes merged branches only.
    pool.release(&b.slot, ReleaseMode::KeepBranch).expect("release");
    let report = pool.cleanup(&CleanupOptions::default()).expect("cleanup");
    assert_eq!(report.kept_branches, ["auto/feature"]);
    assert_eq!(report.deleted_branches, ["auto/other"], "a branch without commits of its own is merged");
    assert!(fx.branch_exists("auto/feature"));
    assert!(!a.path.exists(), "cleanup removes the worktrees");

    // Re-acquiring the task resumes its branch instead of resetting it.
    let again = pool.acquire(&AcquireRequest::new(task("feature"))).expect("re-acquire");
    assert!(again.kept_existing_branch);
    assert!(again.path.join("src/a/new.rs").exists());
    assert_eq!(git(&again.path, &["rev-parse", "HEAD"]), work);

    // Reset keeps it too; only an explicit discard deletes it.
    let (reset, state) = pool.reset(Some(3)).expect("reset");
    assert_eq!(state.pool_size, 3);
    assert!(reset.kept_branches.contains(&"auto/feature".to_owned()));
    assert!(fx.branch_exists("auto/feature"));
    let again = pool.acquire(&AcquireRequest::new(task("feature"))).expect("re-acquire");
    let discarded = pool.release(&again.slot, ReleaseMode::DiscardBranch).expect("discard");
    assert!(discarded.branch_deleted);
    assert!(!fx.branch_exists("auto/feature"));
}

#[test]
fn merged_branch_is_reset_to_the_new_base() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(1));
    let a = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    pool.release(&a.slot, ReleaseMode::KeepBranch).expect("release");
    let newer = commit(&fx.repo, "docs/more.md", "more\n", "base moves on");
    let b = pool.acquire(&AcquireRequest::new(task("t")).base("main")).expect("acquire");
    assert!(!b.kept_existing_branch, "the old branch had nothing of its own");
    assert_eq!(b.base, newer);
    assert_eq!(git(&b.path, &["rev-parse", "HEAD"]), newer);
}

#[test]
fn new_slots_are_seeded_with_the_users_caches_and_recycled_ones_keep_their_own() {
    let fx = Fixture::new();
    // The user's checkout has built: a Rust target/, a node_modules/ and a Python .venv/.
    write(&fx.repo, "target/debug/libdep.rlib", "artifact");
    write(&fx.repo, "node_modules/pkg/index.js", "dep");
    write(&fx.repo, ".venv/bin/python", "not relocatable");
    let seed = [("target/", SeedMode::Copy), ("node_modules/", SeedMode::Hardlink), (".venv/", SeedMode::None)];
    let spec = PoolSpec {
        keep_ignored: vec!["target/".into(), "node_modules/".into(), ".venv/".into()],
        seed: seed.iter().map(|(p, m)| ((*p).to_owned(), *m)).collect(),
        ..fx.spec(1)
    };
    let pool = fx.pool(spec);
    let a = pool.acquire(&AcquireRequest::new(task("first"))).expect("acquire");
    assert!(!a.warm);
    assert_eq!(std::fs::read_to_string(a.path.join("target/debug/libdep.rlib")).expect("seeded"), "artifact");
    let (user, slot) = (fx.repo.join("node_modules/pkg/index.js"), a.path.join("node_modules/pkg/index.js"));
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(std::fs::metadata(&user).expect("stat").ino(), std::fs::metadata(&slot).expect("stat").ino(), "hard-linked");
    assert!(!a.path.join(".venv").exists(), "seed: none");
    let slot_lib = a.path.join("target/debug/libdep.rlib");
    assert_ne!(
        std::fs::metadata(fx.repo.join("target/debug/libdep.rlib")).expect("stat").ino(),
        std::fs::metadata(&slot_lib).expect("stat").ino()
    );
    // The agent builds: a recycled slot keeps its own cache, it is not seeded over.
    std::fs::write(&slot_lib, "rebuilt").expect("write");
    pool.release(&a.slot, ReleaseMode::KeepBranch).expect("release");
    let b = pool.acquire(&AcquireRequest::new(task("second"))).expect("recycle");
    assert!(b.warm);
    assert_eq!(std::fs::read_to_string(b.path.join("target/debug/libdep.rlib")).expect("kept"), "rebuilt");
    assert_eq!(
        std::fs::read_to_string(fx.repo.join("target/debug/libdep.rlib")).expect("user's"),
        "artifact",
        "a copy, never written through"
    );
}

#[test]
fn recycle_keeps_caches_and_cleans_the_rest() {
    let fx = Fixture::new();
    write(&fx.repo, ".env", "SECRET=1\n");
    let setup = CommandLine::parse("sh -c 'echo \"$FUGUE_TASK_ID\" > setup-ran.log'").expect("command");
    let spec = PoolSpec { copy: vec![".env".into(), "missing.txt".into()], setup: vec![setup], ..fx.spec(1) };
    let pool = fx.pool(spec);
    let a = pool.acquire(&AcquireRequest::new(task("first"))).expect("acquire");
    assert!(!a.warm);
    assert_eq!(std::fs::read_to_string(a.path.join(".env")).expect(".env copied"), "SECRET=1\n");
    assert_eq!(std::fs::read_to_string(a.path.join("setup-ran.log")).expect("setup ran"), "first\n");

    // The task leaves a build cache, other ignored files, untracked files and edits.
    write(&a.path, "target/debug/big.bin", "cache");
    write(&a.path, "sub/node_modules/pkg/index.js", "dep");
    write(&a.path, "build.log", "noise");
    write(&a.path, "untracked/new.txt", "junk");
    write(&a.path, "src/a/lib.rs", "edited\n");
    pool.release(&a.slot, ReleaseMode::KeepBranch).expect("release");

    let b = pool.acquire(&AcquireRequest::new(task("second"))).expect("recycle");
    assert!(b.warm);
    assert_eq!(b.path, a.path);
    assert!(b.path.join("target/debug/big.bin").exists(), "target/ is kept");
    assert!(b.path.join("sub/node_modules/pkg/index.js").exists(), "node_modules/ is kept at any depth");
    assert!(!b.path.join("untracked").exists(), "untracked files are cleaned");
    assert_eq!(std::fs::read_to_string(b.path.join("src/a/lib.rs")).expect("read"), "a\n", "edits are reset");
    assert_eq!(std::fs::read_to_string(b.path.join("setup-ran.log")).expect("setup ran again"), "second\n");
    assert!(b.path.join(".env").exists(), "copied again after the clean");
    assert!(!b.path.join("build.log").exists(), "other ignored files are cleaned");
    assert_eq!(git(&b.path, &["rev-parse", "--abbrev-ref", "HEAD"]), "auto/second");
}

#[test]
fn failing_setup_names_command_code_and_stderr_and_frees_the_slot() {
    let fx = Fixture::new();
    let bad = CommandLine::parse("sh -c 'echo compiling >&2; echo missing toolchain >&2; exit 7'").expect("command");
    let pool = fx.pool(PoolSpec { setup: vec![bad], ..fx.spec(1) });
    let err = pool.acquire(&AcquireRequest::new(task("t"))).expect_err("setup fails");
    let msg = err.to_string();
    assert!(msg.contains("sh -c 'echo compiling"), "{msg}");
    assert!(msg.contains("code 7"), "{msg}");
    assert!(msg.contains("missing toolchain"), "{msg}");
    assert_eq!(err.class(), ErrorClass::Failed);
    let state = pool.status().expect("status");
    assert_eq!(state.worktrees[0].status, SlotStatus::Free, "a failed acquire gives the slot back");

    let missing = CommandLine::parse("./no-such-script.sh").expect("command");
    let pool = fx.pool(PoolSpec { setup: vec![missing], ..fx.spec(1) });
    let msg = pool.acquire(&AcquireRequest::new(task("t"))).expect_err("spawn fails").to_string();
    assert!(msg.contains("./no-such-script.sh") && msg.contains("failed to start"), "{msg}");
}

#[test]
fn bad_input_is_reported() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(1));
    let err = pool.acquire(&AcquireRequest::new(task("t")).base("no-such-branch")).expect_err("bad base");
    assert!(matches!(err, PoolError::BaseNotFound { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Input);
    let err = pool.release("wt-9", ReleaseMode::KeepBranch).expect_err("unknown slot");
    assert!(err.to_string().contains("wt-9"), "{err}");
    assert!(matches!(pool.init(Some(0), false), Err(PoolError::InvalidSize { size: 0 })));
    let err = fugue_worktrees::Pool::open(fx.dir.path(), &fx.state, fx.spec(1)).expect_err("not a repository");
    assert_eq!(err.class(), ErrorClass::Input);
}

#[test]
fn shrinking_past_a_busy_slot_is_refused() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(3));
    pool.acquire(&AcquireRequest::new(task("a"))).expect("a");
    let b = pool.acquire(&AcquireRequest::new(task("b"))).expect("b");
    let err = pool.init(Some(1), false).expect_err("wt-2 is busy");
    assert!(err.to_string().contains("wt-2") && err.to_string().contains("`b`"), "{err}");
    pool.release(&b.slot, ReleaseMode::KeepBranch).expect("release");
    let state = pool.init(Some(1), false).expect("shrink");
    assert_eq!(state.pool_size, 1);
    assert!(!b.path.exists(), "the dropped slot's worktree is removed");
    assert!(fx.branch_exists("auto/b"), "its branch is not");
}

#[test]
fn warm_init_creates_every_slot() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(3));
    pool.init(None, true).expect("warm init");
    for n in 1..=3 {
        assert!(pool.dir().join(format!("wt-{n}")).join("README.md").exists());
    }
    let a = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    assert!(a.warm, "a pre-created slot is recycled");
}

#[test]
fn pool_dir_inside_the_repo_is_excluded() {
    let fx = Fixture::new();
    let pool = fx.pool(PoolSpec::default());
    let a = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    assert!(a.path.starts_with(fx.repo.canonicalize().expect("canonical")));
    let exclude = std::fs::read_to_string(fx.repo.join(".git/info/exclude")).expect("exclude");
    assert!(a.path.starts_with(fx.repo.canonicalize().expect("canonical").join(".claude/worktrees")), "the default pool dir");
    assert!(exclude.lines().any(|l| l == "/.claude/worktrees/"), "{exclude}");
    let status = git(&fx.repo, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(!status.contains(".claude/worktrees"), "the slots are not untracked files of the main worktree: {status}");
    // Idempotent: a second pool does not add the line twice.
    fx.pool(PoolSpec::default()).init(None, false).expect("init");
    let exclude = std::fs::read_to_string(fx.repo.join(".git/info/exclude")).expect("exclude");
    assert_eq!(exclude.lines().filter(|l| *l == "/.claude/worktrees/").count(), 1);
}

#[test]
fn sparse_checkout_holds_only_the_scopes() {
    let fx = Fixture::new();
    let pool = fx.pool(PoolSpec { sparse: Some(SparseMode::Scope), ..fx.spec(1) });
    let scope = |ps: &[&str]| -> Scope { ps.iter().map(|p| Pattern::parse(p).expect("pattern")).collect() };
    let req = AcquireRequest::new(task("s")).sparse_scopes([scope(&["src/a/**"]), scope(&[]), scope(&["common/"])]);
    let a = pool.acquire(&req).expect("sparse acquire");
    let has = |p: &str| a.path.join(p).exists();
    assert!(has("src/a/lib.rs") && has("common/types.rs"), "the scopes are checked out");
    assert!(has("README.md") && has("Cargo.toml"), "root files are always there");
    assert!(!has("src/b/lib.rs") && !has("docs/guide.md"), "nothing else is");

    // Recycled for another scope, then for a full checkout.
    pool.release(&a.slot, ReleaseMode::KeepBranch).expect("release");
    let b = pool.acquire(&AcquireRequest::new(task("s2")).sparse_scopes([scope(&["docs/"])])).expect("sparse recycle");
    assert!(b.path.join("docs/guide.md").exists() && !b.path.join("src/a/lib.rs").exists());
    pool.release(&b.slot, ReleaseMode::KeepBranch).expect("release");
    let c = pool.acquire(&AcquireRequest::new(task("s3"))).expect("full recycle");
    assert!(c.path.join("src/b/lib.rs").exists() && c.path.join("docs/guide.md").exists(), "a full checkout again");
}

#[test]
fn threads_acquiring_at_once_get_different_slots() {
    let fx = Fixture::new();
    let spec = fx.spec(4);
    let barrier = std::sync::Barrier::new(4);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (fx, spec, barrier) = (&fx, spec.clone(), &barrier);
                s.spawn(move || {
                    let pool = fx.pool(spec);
                    barrier.wait();
                    pool.acquire(&AcquireRequest::new(task(&format!("thread-{i}")))).expect("acquire")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let mut slots: Vec<&str> = results.iter().map(|a| a.slot.as_str()).collect();
    slots.sort_unstable();
    assert_eq!(slots, ["wt-1", "wt-2", "wt-3", "wt-4"]);
    for a in &results {
        assert_eq!(git(&a.path, &["rev-parse", "--abbrev-ref", "HEAD"]), a.branch);
    }
    let state = fx.pool(fx.spec(4)).status().expect("status");
    assert!(state.worktrees.iter().all(|w| w.status == SlotStatus::Busy));
}

/// A slot whose worktree was deleted behind the pool's back is re-created on acquire.
#[test]
fn deleted_worktree_is_recreated() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(1));
    let a = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    pool.release(&a.slot, ReleaseMode::KeepBranch).expect("release");
    std::fs::remove_dir_all(&a.path).expect("rm");
    let b = pool.acquire(&AcquireRequest::new(task("u"))).expect("acquire");
    assert!(!b.warm);
    assert!(Path::new(&b.path).join("README.md").exists());
}

#[test]
fn the_pool_never_deletes_outside_its_dir() {
    let fx = Fixture::new();
    for dir in [".", "..", ".git/pool"] {
        let err = fugue_worktrees::Pool::open(&fx.repo, &fx.state, PoolSpec { dir: dir.into(), ..PoolSpec::default() }).expect_err(dir);
        assert!(matches!(err, PoolError::InvalidPoolDir { .. }), "{dir}: {err}");
        assert_eq!(err.class(), ErrorClass::Input);
    }
    // A state file edited to point slots at the repository and at a precious directory.
    let pool = fx.pool(fx.spec(2));
    pool.init(None, false).expect("init");
    let precious = fx.dir.path().join("precious");
    write(&precious, "keep.txt", "mine");
    let path = fx.state.join("pool-state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    state["worktrees"][0]["path"] = fx.repo.to_string_lossy().as_ref().into();
    state["worktrees"][1]["path"] = precious.to_string_lossy().as_ref().into();
    std::fs::write(&path, state.to_string()).expect("write");
    let head = fx.head("HEAD");
    let a = pool.acquire(&AcquireRequest::new(task("x"))).expect("acquire moves the slot into the pool dir");
    assert!(a.path.starts_with(pool.dir()));
    assert_eq!(fx.head("HEAD"), head);
    assert_eq!(git(&fx.repo, &["rev-parse", "--abbrev-ref", "HEAD"]), "main", "the main worktree was not touched");
    pool.cleanup(&CleanupOptions::default().force(true)).expect("cleanup");
    pool.reset(None).expect("reset");
    assert!(fx.repo.join("README.md").exists(), "the repository is untouched");
    assert!(precious.join("keep.txt").exists(), "so is everything else outside the pool dir");
}
