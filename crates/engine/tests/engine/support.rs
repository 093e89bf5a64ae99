//! Test helpers: a temp git repository and plans with scripted agents.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use fugue_core::{GateReport, QaVerdict};
use fugue_engine::qa::{Verifier, VerifyRequest, VerifyResult};

pub(crate) struct Repo {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub(crate) fn repo() -> Repo {
    let dir = tempfile::tempdir().expect("temp");
    let path = dir.path().join("repo");
    std::fs::create_dir_all(path.join("src")).expect("mkdir");
    git(&path, &["init", "-q"]);
    std::fs::write(path.join("README.md"), "demo\n").expect("write");
    std::fs::write(path.join(".gitignore"), ".claude/\n").expect("write");
    git(&path, &["add", "-A"]);
    git(&path, &["commit", "-qm", "init"]);
    Repo { _dir: dir, path }
}

/// Approves everything after committing what the agent left (a stand-in for the gates where a
/// test is about dispatching, not QA).
pub(crate) struct CommitAndApprove;

#[async_trait]
impl Verifier for CommitAndApprove {
    async fn verify(&self, req: VerifyRequest) -> Result<VerifyResult, String> {
        let wt = req.worktree.clone();
        if req.branch.is_some() {
            git(&wt, &["add", "-A"]);
            let status = git(&wt, &["status", "--porcelain"]);
            if !status.is_empty() {
                git(&wt, &["commit", "-qm", "agent work"]);
            }
        }
        Ok(VerifyResult::new(QaVerdict::TaskApproved, vec![GateReport::pass("test")], String::new(), Vec::new()))
    }
}

pub(crate) fn approve() -> Arc<dyn Verifier> {
    Arc::new(CommitAndApprove)
}
