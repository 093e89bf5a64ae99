//! Test fixtures: a throwaway repository with its own git identity, and helpers to run git.
//!
//! The repository's local config sets the identity and turns signing off, so the pool's own
//! git processes (which inherit this process's environment) never depend on a global config.

use std::path::{Path, PathBuf};
use std::process::Command;

use fugue_core::PoolSpec;
use fugue_worktrees::Pool;

pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) repo: PathBuf,
    pub(crate) state: PathBuf,
}

/// Runs git in `dir` and returns its trimmed stdout; panics with stderr on failure.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_raw(dir, args);
    assert!(out.status.success(), "git {args:?} in {} failed: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub(crate) fn git_raw(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "fugue test")
        .env("GIT_AUTHOR_EMAIL", "test@fugue.invalid")
        .env("GIT_COMMITTER_NAME", "fugue test")
        .env("GIT_COMMITTER_EMAIL", "test@fugue.invalid")
        .output()
        .expect("git runs")
}

/// Writes `content` to `rel` in `dir`, creating parents.
pub(crate) fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, content).expect("write");
}

/// Writes, stages and commits one file; returns the new commit.
pub(crate) fn commit(dir: &Path, rel: &str, content: &str, msg: &str) -> String {
    write(dir, rel, content);
    git(dir, &["add", "--", rel]);
    git(dir, &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

impl Fixture {
    /// A repository on `main` with a few tracked files and a `.gitignore` for build caches.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"]);
        for (k, v) in
            [("user.name", "fugue test"), ("user.email", "test@fugue.invalid"), ("commit.gpgsign", "false"), ("core.autocrlf", "false")]
        {
            git(&repo, &["config", k, v]);
        }
        write(&repo, ".gitignore", "target/\nnode_modules/\n*.log\n.env\n");
        write(&repo, "README.md", "readme\n");
        write(&repo, "Cargo.toml", "[package]\n");
        write(&repo, "src/a/lib.rs", "a\n");
        write(&repo, "src/b/lib.rs", "b\n");
        write(&repo, "common/types.rs", "types\n");
        write(&repo, "docs/guide.md", "guide\n");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "initial"]);
        let state = repo.join(".claude");
        Self { dir, repo, state }
    }

    /// A spec with `size` slots in a pool dir outside the repository.
    pub(crate) fn spec(&self, size: u32) -> PoolSpec {
        PoolSpec { size, dir: self.dir.path().join("pool").to_string_lossy().into_owned(), ..PoolSpec::default() }
    }

    pub(crate) fn pool(&self, spec: PoolSpec) -> Pool {
        Pool::open(&self.repo, &self.state, spec).expect("pool opens")
    }

    pub(crate) fn head(&self, rev: &str) -> String {
        git(&self.repo, &["rev-parse", rev])
    }

    pub(crate) fn branch_exists(&self, branch: &str) -> bool {
        git_raw(&self.repo, &["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}")]).status.success()
    }
}

pub(crate) fn task(id: &str) -> fugue_core::TaskId {
    fugue_core::TaskId::new(id).expect("task id")
}
