//! The merge coordinator against real repositories.

use fugue_worktrees::{AcquireRequest, BranchOutcome, MergeMethod, MergeRequest, PoolError, ReleaseMode, TargetUpdate};
use serde_json::json;

use crate::common::{Fixture, commit, git, task, write};

/// Subjects of the first-parent history of `rev`, newest first.
fn subjects(fx: &Fixture, rev: &str) -> Vec<String> {
    git(&fx.repo, &["log", "--first-parent", "--format=%s", rev]).lines().map(str::to_owned).collect()
}

/// Both ways of computing a merge: every guarantee is checked for each.
const METHODS: [MergeMethod; 2] = [MergeMethod::MergeTree, MergeMethod::Checkout];

/// Moves the main worktree off `main` so the target is checked out nowhere.
fn detach_main(fx: &Fixture) {
    git(&fx.repo, &["checkout", "-q", "--detach"]);
}

#[test]
fn merges_in_the_order_given_and_moves_the_ref() {
    for method in METHODS {
        let fx = Fixture::new();
        detach_main(&fx);
        let pool = fx.pool(fx.spec(3));
        for (t, file) in [("a", "src/a/x.rs"), ("b", "src/b/x.rs"), ("c", "docs/x.md")] {
            let w = pool.acquire(&AcquireRequest::new(task(t)).base("main")).expect("acquire");
            commit(&w.path, file, t, &format!("work {t}"));
        }
        let old = fx.head("main");
        let report = pool.merge(&MergeRequest::new(["auto/c", "auto/a", "auto/b"]).method(method).target("main")).expect("merge");
        assert!(report.is_complete());
        assert_eq!(report.update, TargetUpdate::RefUpdated);
        assert_eq!(report.old, old);
        assert_eq!(fx.head("main"), report.new);
        assert_eq!(
            subjects(&fx, "main")[..3],
            ["Merge branch 'auto/b' into main", "Merge branch 'auto/a' into main", "Merge branch 'auto/c' into main"]
        );
        // --no-ff: every merge is a merge commit even though each could fast-forward.
        assert_eq!(git(&fx.repo, &["rev-list", "--merges", "--count", &format!("{old}..main")]), "3");

        // Idempotent: merging again changes nothing.
        let again =
            pool.merge(&MergeRequest::for_tasks(&[task("c"), task("a"), task("b")]).method(method).target("main")).expect("merge again");
        assert_eq!(again.branches.iter().map(|b| b.branch.as_str()).collect::<Vec<_>>(), ["auto/c", "auto/a", "auto/b"]);
        assert!(again.branches.iter().all(|b| b.outcome == BranchOutcome::AlreadyMerged));
        assert_eq!(again.update, TargetUpdate::Unchanged);
        assert_eq!(fx.head("main"), report.new);
    }
}

#[test]
fn pool_merge_follows_the_dependency_graph() {
    for method in METHODS {
        let fx = Fixture::new();
        detach_main(&fx);
        let pool = fx.pool(fx.spec(3));
        // Pool order is api, schema; the graph says schema before api.
        for t in ["api", "schema"] {
            let w = pool.acquire(&AcquireRequest::new(task(t)).base("main")).expect("acquire");
            commit(&w.path, &format!("{t}.txt"), t, t);
        }
        assert_eq!(pool.busy_branches_in_merge_order().expect("order"), ["auto/api", "auto/schema"], "no graph: pool order");
        let graph = json!({
            "version": 1,
            "tasks": [
                {"id": "api", "phase": "implementation", "agent": "x", "modifies": [], "reads": [], "depends_on": ["schema"]},
                {"id": "schema", "phase": "implementation", "agent": "x", "modifies": [], "reads": [], "depends_on": []}
            ],
            "edges": [{"from": "schema", "to": "api", "reason": "declared"}],
            "execution_strategy": {"mode": "SEQUENTIAL", "strategy": "D", "max_agents": 1, "parallel_groups": [], "critical_path": [],
                "estimate": {"sequential_s": 2.0, "parallel_s": 2.0, "speedup": 1.0}}
        });
        std::fs::write(fx.state.join("DEPENDENCY_GRAPH.json"), graph.to_string()).expect("graph");
        let order = pool.busy_branches_in_merge_order().expect("order");
        assert_eq!(order, ["auto/schema", "auto/api"]);
        pool.merge(&MergeRequest::new(order).method(method).target("main")).expect("merge");
        assert_eq!(subjects(&fx, "main")[..2], ["Merge branch 'auto/api' into main", "Merge branch 'auto/schema' into main"]);

        std::fs::write(fx.state.join("DEPENDENCY_GRAPH.json"), "{ not json").expect("graph");
        assert!(matches!(pool.busy_branches_in_merge_order(), Err(PoolError::CorruptState { .. })));
    }
}

#[test]
fn conflict_is_aborted_reported_and_the_branch_kept() {
    for method in METHODS {
        let fx = Fixture::new();
        detach_main(&fx);
        let pool = fx.pool(fx.spec(4));
        let mut tips = Vec::new();
        for (t, text) in [("one", "one\n"), ("two", "two\n"), ("three", "three\n")] {
            let w = pool.acquire(&AcquireRequest::new(task(t)).base("main")).expect("acquire");
            // one and two both rewrite README.md; three touches something else.
            let file = if t == "three" { "docs/three.md" } else { "README.md" };
            tips.push(commit(&w.path, file, text, t));
        }
        let report = pool.merge(&MergeRequest::new(["auto/one", "auto/two", "auto/three"]).method(method).target("main")).expect("merge");
        assert!(!report.is_complete());
        assert_eq!(report.branches[0].outcome, BranchOutcome::Merged);
        assert_eq!(report.branches[1].outcome, BranchOutcome::Conflict { files: vec!["README.md".into()] });
        assert_eq!(report.branches[2].outcome, BranchOutcome::Merged, "independent branches still merge");
        assert_eq!(
            report.conflicts().map(|(b, f)| (b.to_owned(), f.to_vec())).collect::<Vec<_>>(),
            [("auto/two".to_owned(), vec!["README.md".to_owned()])]
        );
        assert_eq!(fx.head("auto/two"), tips[1], "the conflicting branch is untouched");
        assert_eq!(git(&fx.repo, &["show", "main:README.md"]), "one");
        assert!(git(&fx.repo, &["show", "main:docs/three.md"]).contains("three"));
        assert_eq!(report.method, method);
        let it = pool.integration_dir();
        if method == MergeMethod::Checkout {
            // The integration worktree is left clean, with no merge in progress.
            assert_eq!(git(&it, &["status", "--porcelain"]), "");
            assert!(!crate::common::git_raw(&it, &["rev-parse", "-q", "--verify", "MERGE_HEAD"]).status.success());
        } else {
            assert!(!it.exists(), "merge-tree checks nothing out");
        }

        // stop_on_conflict leaves the rest untried.
        let w = pool.acquire(&AcquireRequest::new(task("four")).base("main")).expect("acquire");
        commit(&w.path, "docs/four.md", "four", "four");
        let report =
            pool.merge(&MergeRequest::new(["auto/two", "auto/four"]).method(method).target("main").stop_on_conflict(true)).expect("merge");
        assert!(matches!(report.branches[0].outcome, BranchOutcome::Conflict { .. }));
        assert_eq!(report.branches[1].outcome, BranchOutcome::NotAttempted);
        assert_eq!(report.update, TargetUpdate::Unchanged);
    }
}

#[test]
fn target_checked_out_in_a_clean_main_worktree_is_fast_forwarded() {
    for method in METHODS {
        let fx = Fixture::new();
        let pool = fx.pool(fx.spec(2));
        let w = pool.acquire(&AcquireRequest::new(task("feat"))).expect("acquire");
        commit(&w.path, "src/a/feat.rs", "feat\n", "feat");
        // Untracked files in the main worktree do not make it dirty.
        write(&fx.repo, "notes.txt", "mine\n");
        let report = pool.merge(&MergeRequest::new(["auto/feat"]).method(method)).expect("merge into the checked-out main");
        assert_eq!(report.target, "main");
        assert!(
            matches!(&report.update, TargetUpdate::FastForwarded { worktree } if *worktree == fx.repo.canonicalize().expect("canonical"))
        );
        assert_eq!(fx.head("main"), report.new);
        assert_eq!(fx.head("HEAD"), report.new);
        assert_eq!(std::fs::read_to_string(fx.repo.join("src/a/feat.rs")).expect("the file is in the main worktree"), "feat\n");
        assert_eq!(git(&fx.repo, &["status", "--porcelain", "--untracked-files=no"]), "");
        assert!(fx.repo.join("notes.txt").exists());
    }
}

#[test]
fn target_checked_out_in_a_dirty_worktree_is_refused() {
    for method in METHODS {
        let fx = Fixture::new();
        let pool = fx.pool(fx.spec(2));
        let w = pool.acquire(&AcquireRequest::new(task("feat"))).expect("acquire");
        commit(&w.path, "src/a/feat.rs", "feat\n", "feat");
        write(&fx.repo, "README.md", "uncommitted edit\n");
        let before = fx.head("main");
        let err = pool.merge(&MergeRequest::new(["auto/feat"]).method(method).target("main")).expect_err("dirty target worktree");
        match &err {
            PoolError::TargetDirty { target, files, .. } => {
                assert_eq!(target, "main");
                assert_eq!(files, &["README.md"]);
            }
            other => panic!("expected TargetDirty, got {other}"),
        }
        assert!(err.to_string().contains("not moved"), "{err}");
        assert_eq!(fx.head("main"), before, "the ref is not moved");
        assert_eq!(std::fs::read_to_string(fx.repo.join("README.md")).expect("read"), "uncommitted edit\n");
    }
}

#[test]
fn target_checked_out_in_another_linked_worktree() {
    for method in METHODS {
        let fx = Fixture::new();
        let pool = fx.pool(fx.spec(2));
        // `release` is checked out in a linked worktree outside the pool.
        git(&fx.repo, &["branch", "release"]);
        let main_before = fx.head("main");
        let other = fx.dir.path().join("release-wt");
        git(&fx.repo, &["worktree", "add", "-q", other.to_str().expect("utf-8"), "release"]);
        let w = pool.acquire(&AcquireRequest::new(task("fix")).base("release")).expect("acquire");
        commit(&w.path, "src/b/fix.rs", "fix\n", "fix");
        let report = pool.merge(&MergeRequest::new(["auto/fix"]).method(method).target("release")).expect("merge");
        assert!(matches!(report.update, TargetUpdate::FastForwarded { .. }));
        assert!(other.join("src/b/fix.rs").exists());
        assert_eq!(fx.head("main"), main_before, "main is untouched");
    }
}

#[test]
fn missing_branches_and_targets() {
    for method in METHODS {
        let fx = Fixture::new();
        detach_main(&fx);
        let pool = fx.pool(fx.spec(1));
        let report = pool.merge(&MergeRequest::new(["auto/ghost"]).method(method).target("main")).expect("merge");
        assert_eq!(report.branches[0].outcome, BranchOutcome::Missing);
        assert!(!report.is_complete());
        let err = pool.merge(&MergeRequest::new(["auto/ghost"]).method(method).target("nope")).expect_err("no target");
        assert!(matches!(err, PoolError::TargetNotFound { .. }), "{err}");
        let err = pool.merge(&MergeRequest::new(["auto/ghost"]).method(method)).expect_err("detached main has no default target");
        assert!(matches!(err, PoolError::NoTarget), "{err}");
    }
}

#[test]
fn merge_then_release_and_cleanup_deletes_merged_branches() {
    let fx = Fixture::new();
    detach_main(&fx);
    let pool = fx.pool(fx.spec(2));
    let w = pool.acquire(&AcquireRequest::new(task("done")).base("main")).expect("acquire");
    commit(&w.path, "docs/done.md", "done", "done");
    let u = pool.acquire(&AcquireRequest::new(task("pending")).base("main")).expect("acquire");
    commit(&u.path, "docs/pending.md", "pending", "pending");
    pool.merge(&MergeRequest::new(["auto/done"]).method(MergeMethod::Checkout).target("main")).expect("merge");
    pool.release(&w.slot, ReleaseMode::KeepBranch).expect("release");
    pool.release(&u.slot, ReleaseMode::KeepBranch).expect("release");
    let report = pool.cleanup(&fugue_worktrees::CleanupOptions::default().base("main")).expect("cleanup");
    assert_eq!(report.deleted_branches, ["auto/done"]);
    assert_eq!(report.kept_branches, ["auto/pending"]);
    assert!(!pool.integration_dir().exists(), "cleanup removes the integration worktree");
}

#[test]
fn auto_picks_merge_tree_on_this_git_and_checks_nothing_out() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(2));
    let w = pool.acquire(&AcquireRequest::new(task("feat"))).expect("acquire");
    commit(&w.path, "src/a/feat.rs", "feat\n", "feat");
    let (detected, why) = MergeMethod::detect();
    let report = pool.merge(&MergeRequest::new(["auto/feat"])).expect("merge");
    assert_eq!(report.method, detected);
    if detected == MergeMethod::MergeTree {
        assert!(why.is_none());
        assert!(!pool.integration_dir().exists(), "no integration worktree");
        let worktrees = git(&fx.repo, &["worktree", "list", "--porcelain"]);
        assert!(!worktrees.contains("integration"), "{worktrees}");
    } else {
        assert!(why.is_some_and(|w| w.contains("2.38")));
    }
}

#[test]
fn merge_tree_names_every_conflicting_file_and_writes_nothing_visible() {
    let fx = Fixture::new();
    detach_main(&fx);
    let pool = fx.pool(fx.spec(3));
    // On main: README.md changed, docs/guide.md changed; the task deletes the guide and
    // rewrites the README: a content conflict and a modify/delete conflict.
    let main_dir = fx.dir.path().join("main-wt");
    git(&fx.repo, &["worktree", "add", "-q", main_dir.to_str().expect("utf-8"), "main"]);
    let w = pool.acquire(&AcquireRequest::new(task("x")).base("main")).expect("acquire");
    commit(&w.path, "README.md", "task\n", "task readme");
    git(&w.path, &["rm", "-q", "docs/guide.md"]);
    git(&w.path, &["commit", "-q", "-m", "task removes the guide"]);
    commit(&main_dir, "README.md", "main\n", "main readme");
    commit(&main_dir, "docs/guide.md", "newer guide\n", "main guide");
    git(&fx.repo, &["worktree", "remove", main_dir.to_str().expect("utf-8")]);
    let (main_before, branch_before) = (fx.head("main"), fx.head("auto/x"));
    let refs_before = git(&fx.repo, &["for-each-ref"]);
    let report = pool.merge(&MergeRequest::new(["auto/x"]).method(MergeMethod::MergeTree).target("main")).expect("merge");
    assert_eq!(report.branches[0].outcome, BranchOutcome::Conflict { files: vec!["README.md".into(), "docs/guide.md".into()] });
    assert_eq!(report.update, TargetUpdate::Unchanged);
    assert_eq!((fx.head("main"), fx.head("auto/x")), (main_before, branch_before), "nothing moved");
    assert_eq!(git(&fx.repo, &["for-each-ref"]), refs_before, "no ref was written");
}

#[test]
fn a_branch_brought_in_by_an_earlier_one_is_not_merged_twice() {
    for method in METHODS {
        let fx = Fixture::new();
        detach_main(&fx);
        let pool = fx.pool(fx.spec(3));
        let w = pool.acquire(&AcquireRequest::new(task("base")).base("main")).expect("acquire");
        commit(&w.path, "docs/base.md", "base", "base");
        // `top` is built on `base`: merging top brings base in.
        let u = pool.acquire(&AcquireRequest::new(task("top")).base("auto/base")).expect("acquire");
        commit(&u.path, "docs/top.md", "top", "top");
        let old = fx.head("main");
        let report = pool.merge(&MergeRequest::new(["auto/top", "auto/base"]).method(method).target("main")).expect("merge");
        assert_eq!(report.branches[0].outcome, BranchOutcome::Merged);
        assert_eq!(report.branches[1].outcome, BranchOutcome::AlreadyMerged, "{method:?}");
        assert_eq!(git(&fx.repo, &["rev-list", "--merges", "--count", &format!("{old}..main")]), "1");
    }
}

#[test]
fn merge_commits_have_the_merge_parents_tree_and_identity() {
    let fx = Fixture::new();
    detach_main(&fx);
    let pool = fx.pool(fx.spec(2));
    let w = pool.acquire(&AcquireRequest::new(task("t")).base("main")).expect("acquire");
    let tip = commit(&w.path, "src/a/t.rs", "t\n", "t");
    let old = fx.head("main");
    let report = pool.merge(&MergeRequest::new(["auto/t"]).method(MergeMethod::MergeTree).target("main")).expect("merge");
    assert_eq!(git(&fx.repo, &["rev-parse", "main^1", "main^2"]), format!("{old}\n{tip}"));
    // The identity git has here (the environment's, else the repository's), as `git merge` uses.
    let var = std::process::Command::new("git").arg("-C").arg(&fx.repo).args(["var", "GIT_COMMITTER_IDENT"]).output().expect("git var");
    let ident = String::from_utf8_lossy(&var.stdout).trim().to_owned();
    let ident = ident.rsplitn(3, ' ').nth(2).expect("name <email> time zone");
    assert_eq!(git(&fx.repo, &["show", "-s", "--format=%cn <%ce>|%s", "main"]), format!("{ident}|Merge branch 'auto/t' into main"));
    // The tree is what `git merge` makes: here, the branch's tree.
    assert_eq!(git(&fx.repo, &["rev-parse", "main^{tree}"]), git(&fx.repo, &["rev-parse", "auto/t^{tree}"]));
    assert_eq!(git(&fx.repo, &["reflog", "-1", "--format=%gs", "main"]), "fugue: merge 1 task branch(es) into main");
    assert_eq!(report.new, fx.head("main"));
}
