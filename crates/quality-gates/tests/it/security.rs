//! A task cannot escape the repository with a symlink: QA, end to end on a real repository,
//! rejects a committed link whose target lies outside the checkout — relative, absolute, or
//! through a chain of links — and names it in the boundary gate's findings.

use std::path::PathBuf;
use std::time::Duration;

use fugue_core::{Boundaries, GateReport, GatesSpec, QaVerdict, Severity, TaskSpec};
use fugue_quality_gates::{GateSettings, Qa, QaOutcome, QaRequest};
use serde_json::json;

use crate::common::git;

/// A repository with one commit and task `t1`'s worktree on `auto/t1`.
struct Repo {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    worktree: PathBuf,
    qa_dir: PathBuf,
    base: String,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("src")).expect("mkdir");
        std::fs::create_dir_all(repo.join("other")).expect("mkdir");
        git(&repo, &["init", "--quiet"]);
        std::fs::write(repo.join("src/lib.txt"), "inside\n").expect("write");
        std::fs::write(repo.join("other/private.txt"), "another task's file\n").expect("write");
        std::fs::write(dir.path().join("outside.txt"), "next to the repository\n").expect("write");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "--quiet", "-m", "initial"]);
        let base = git(&repo, &["rev-parse", "HEAD"]);
        let worktree = dir.path().join("wt");
        git(&repo, &["worktree", "add", "--quiet", "-b", "auto/t1", worktree.to_str().expect("utf-8"), "main"]);
        let qa_dir = dir.path().join("qa");
        Self { _dir: dir, repo, worktree, qa_dir, base }
    }

    fn link(&self, rel: &str, target: &str) {
        let path = self.worktree.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, path).expect("symlink");
    }

    fn commit(&self) {
        git(&self.worktree, &["add", "-A"]);
        git(&self.worktree, &["commit", "--quiet", "-m", "links"]);
    }

    async fn verify(&self) -> QaOutcome {
        let task: TaskSpec = serde_json::from_value(json!({"id": "t1", "agent": "agent", "modifies": ["src/**"]})).expect("task");
        let gates: GatesSpec = serde_json::from_value(json!({"review": false})).expect("gates");
        let settings = GateSettings::default().with_grace(Duration::from_millis(100));
        let qa = Qa::new(gates, &Boundaries::default(), &self.qa_dir, settings);
        let req = QaRequest::new(&task, &self.repo, &self.worktree, "auto/t1", &self.base);
        qa.verify(&req).await.expect("QA runs")
    }
}

fn boundary(outcome: &QaOutcome) -> &GateReport {
    outcome.reports.iter().find(|r| r.gate == "boundary").unwrap_or_else(|| panic!("no boundary report in {outcome:#?}"))
}

/// The files the boundary gate flagged as symlinks leaving the checkout.
fn escaping(outcome: &QaOutcome) -> Vec<String> {
    boundary(outcome)
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Critical && f.message.contains("outside the checkout"))
        .filter_map(|f| f.file.clone())
        .collect()
}

#[tokio::test]
async fn committed_symlinks_leading_out_of_the_repository_are_rejected() {
    let r = Repo::new();
    r.link("src/up", "../../outside.txt");
    r.link("src/deep/er/up", "../../../../../outside.txt");
    r.link("src/abs", "/etc/passwd");
    r.link("src/home", "/root");
    r.link("src/to-dir", "..");
    r.link("src/chain", "to-dir/../outside.txt");
    r.link("src/ok", "lib.txt");
    r.commit();
    let outcome = r.verify().await;
    assert_eq!(outcome.verdict, QaVerdict::TaskRejected, "{outcome:#?}");
    let mut flagged = escaping(&outcome);
    flagged.sort();
    assert_eq!(flagged, ["src/abs", "src/chain", "src/deep/er/up", "src/home", "src/up"], "{:#?}", boundary(&outcome));
    let feedback = outcome.feedback.as_deref().unwrap_or_default();
    assert!(feedback.contains("src/up") && feedback.contains("symlink to `../../outside.txt`"), "{feedback}");
}

#[tokio::test]
async fn an_absolute_link_into_the_agents_own_worktree_is_rejected() {
    let r = Repo::new();
    let inside = r.worktree.join("src/lib.txt");
    r.link("src/self", inside.to_str().expect("utf-8"));
    r.commit();
    let outcome = r.verify().await;
    // The link names the agent's worktree, not QA's fresh checkout: outside the checkout it is
    // judged in, so it is rejected too (a committed absolute link is never portable anyway).
    assert_eq!(escaping(&outcome), ["src/self"], "{:#?}", boundary(&outcome));
}

#[tokio::test]
async fn a_link_placed_outside_the_scope_is_rejected_as_out_of_scope() {
    let r = Repo::new();
    r.link("other/sneaky", "../src/lib.txt");
    r.commit();
    let outcome = r.verify().await;
    assert_eq!(outcome.verdict, QaVerdict::TaskRejected);
    let files: Vec<_> = boundary(&outcome).findings.iter().filter_map(|f| f.file.as_deref()).collect();
    assert_eq!(files, ["other/sneaky"]);
}

/// A link inside the task's scope that points at another in-repo path outside the scope
/// (`src/peek -> ../other/private.txt`) is accepted: writes through it show up in git as
/// changes to `other/…`, which the gate rejects for the task that makes them. A link into
/// `.git` is different: whoever later writes through it edits the repository's own metadata
/// (hooks, config), so the gate treats it as leaving the checkout.
#[tokio::test]
async fn a_symlink_into_git_metadata_is_rejected() {
    let r = Repo::new();
    r.link("src/hooks", "../.git/hooks");
    r.link("src/config", "../.git/config");
    r.commit();
    let outcome = r.verify().await;
    let mut flagged = escaping(&outcome);
    flagged.sort();
    assert_eq!(flagged, ["src/config", "src/hooks"], "{:#?}", boundary(&outcome));
}
