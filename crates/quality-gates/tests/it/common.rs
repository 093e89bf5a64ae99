//! Shared fixtures: temporary git repositories with a task worktree, tasks, plans' gates.

use std::path::{Path, PathBuf};
use std::process::Command;

use fugue_core::{GateContext, GatesSpec, Phase, Scope, TaskId, TaskSpec};
use fugue_quality_gates::gate_context;
use serde_json::json;

/// Runs git in `dir`, panicking with its stderr on failure; returns stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"])
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?} failed in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes `content` at `dir/rel`, creating directories.
pub(crate) fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

/// A repository on `main` with one commit, and a worktree for task `t1` on `auto/t1`.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) repo: PathBuf,
    pub(crate) worktree: PathBuf,
    pub(crate) qa_dir: PathBuf,
    pub(crate) base: String,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "--quiet"]);
        write(&repo, "README.md", "# demo\n");
        write(&repo, ".gitignore", "fixture.data\n*.tmp\ntarget/\n");
        write(&repo, "common/types.txt", "shared\n");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "--quiet", "-m", "initial"]);
        let base = git(&repo, &["rev-parse", "HEAD"]);
        let worktree = dir.path().join("wt");
        git(&repo, &["worktree", "add", "--quiet", "-b", "auto/t1", worktree.to_str().expect("utf-8"), "main"]);
        let qa_dir = dir.path().join("qa");
        Self { dir, repo, worktree, qa_dir, base }
    }

    /// Commits everything in the worktree (as the agent would).
    pub(crate) fn commit(&self, message: &str) -> String {
        git(&self.worktree, &["add", "-A"]);
        git(&self.worktree, &["commit", "--quiet", "-m", message]);
        git(&self.worktree, &["rev-parse", "HEAD"])
    }

    pub(crate) fn head(&self) -> String {
        git(&self.worktree, &["rev-parse", "HEAD"])
    }
}

/// A task `t1` of the implementation phase.
pub(crate) fn task(modifies: &[&str], verify: &[&str]) -> TaskSpec {
    serde_json::from_value(json!({"id": "t1", "agent": "agent", "modifies": modifies, "verify": verify})).expect("task")
}

/// Gates from their plan JSON.
pub(crate) fn gates(value: serde_json::Value) -> GatesSpec {
    serde_json::from_value(value).expect("gates")
}

pub(crate) fn scope(patterns: &[&str]) -> Scope {
    serde_json::from_value(json!(patterns)).expect("scope")
}

/// A context for calling a gate directly on `checkout`.
pub(crate) fn context(checkout: &Path, diff: &str, changed: &[&str], modifies: &[&str]) -> GateContext {
    let mut ctx = gate_context(&TaskId::new("t1").expect("id"), Phase::Implementation, checkout);
    ctx.base_commit = "base".to_owned();
    ctx.head_commit = "head".to_owned();
    ctx.diff = diff.to_owned();
    ctx.changed_files = changed.iter().map(|s| (*s).to_owned()).collect();
    ctx.modifies = scope(modifies);
    ctx
}

/// A unified diff that adds `path` with `body`.
pub(crate) fn added_file(path: &str, body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let mut d = format!("diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n", lines.len());
    for l in lines {
        d.push('+');
        d.push_str(l);
        d.push('\n');
    }
    d
}
