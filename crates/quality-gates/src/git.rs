//! The git plumbing QA needs, over fugue's one git runner ([`fugue_core::git`]).
//!
//! Every call is `git -C <dir> …` with paths NUL-separated (`-z`) so no quoting rules apply,
//! `GIT_DIR`-style variables removed (a host running inside a hook must not redirect us), no
//! terminal prompts, and a time limit — all of it the core runner's, so QA's git behaves like
//! the pool's and the engine's. Diffs are three-dot (`base...head`: from the merge base), so a
//! task branch that merged a newer base is judged on its own changes only.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) use fugue_core::git::GitError;

/// Runs git in one directory with one time limit.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    pub(crate) dir: PathBuf,
    pub(crate) timeout: Duration,
}

impl Git {
    pub(crate) fn new(dir: &Path, timeout: Duration) -> Self {
        Self { dir: dir.to_owned(), timeout }
    }

    fn command(&self, args: &[&str]) -> fugue_core::git::GitCommand {
        fugue_core::git::Git::default().cmd(&self.dir).args(args).timeout(self.timeout)
    }

    /// Runs `git args` and returns its stdout.
    pub(crate) async fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.command(args).run_async().await?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `git args` and returns at most `cap` bytes of its stdout, and whether it was cut.
    pub(crate) async fn run_capped(&self, args: &[&str], cap: usize) -> Result<(String, bool), GitError> {
        let (out, cut) = self.command(args).run_capped_async(cap).await?;
        Ok((String::from_utf8_lossy(&out.stdout).into_owned(), cut))
    }

    /// The full commit id of `rev`.
    pub(crate) async fn commit_of(&self, rev: &str) -> Result<String, GitError> {
        let spec = format!("{rev}^{{commit}}");
        Ok(self.run(&["rev-parse", "--verify", "--quiet", &spec]).await?.trim().to_owned())
    }

    /// The branch checked out (`refs/heads/` stripped), or `None` when HEAD is detached.
    pub(crate) async fn current_branch(&self) -> Result<Option<String>, GitError> {
        match self.run(&["symbolic-ref", "-q", "HEAD"]).await {
            Ok(r) => Ok(Some(r.trim().strip_prefix("refs/heads/").unwrap_or(r.trim()).to_owned())),
            // `symbolic-ref -q` exits 1, silently, on a detached HEAD.
            Err(e) if e.code() == Some(1) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Paths changed from the merge base of `base` and `head` to `head`.
    pub(crate) async fn changed(&self, base: &str, head: &str) -> Result<Vec<String>, GitError> {
        let range = format!("{base}...{head}");
        let out = self.run(&["diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", &range, "--"]).await?;
        Ok(split_nul(&out))
    }

    /// The unified diff from the merge base of `base` and `head` to `head`, at most `cap`
    /// bytes, cut at a file boundary; the flag says whether it was cut.
    pub(crate) async fn diff(&self, base: &str, head: &str, cap: usize) -> Result<(String, bool), GitError> {
        let range = format!("{base}...{head}");
        let (mut text, cut) =
            self.run_capped(&["diff", "--no-color", "--no-ext-diff", "--no-renames", "--no-textconv", &range, "--"], cap).await?;
        if cut {
            let boundary = text.rfind("\ndiff --git ").map_or(0, |i| i + 1);
            text.truncate(boundary);
        }
        Ok((text, cut))
    }

    /// Uncommitted changes and untracked files (not ignored ones), one path each.
    pub(crate) async fn uncommitted(&self) -> Result<Vec<String>, GitError> {
        let out =
            self.run(&["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules=none"]).await?;
        let mut paths: Vec<String> = split_nul(&out).into_iter().filter_map(|e| e.get(3..).map(str::to_owned)).collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// `git add -A` and a commit with fugue's identity (whatever the environment says); hooks
    /// and signing are skipped because they belong to people, not to a bookkeeping commit.
    pub(crate) async fn commit_all(&self, message: &str) -> Result<String, GitError> {
        self.run(&["add", "-A"]).await?;
        self.command(&["-c", "commit.gpgsign=false", "commit", "--no-verify", "--quiet", "-m", message])
            .fugue_identity()
            .run_async()
            .await?;
        self.commit_of("HEAD").await
    }
}

fn split_nul(out: &str) -> Vec<String> {
    out.split('\0').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}
