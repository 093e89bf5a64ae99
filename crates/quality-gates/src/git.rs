//! The git plumbing QA needs, over the `git` CLI.
//!
//! Every call is `git -C <dir> …` with paths NUL-separated (`-z`) so no quoting rules apply,
//! `GIT_DIR`-style variables removed (a host running inside a hook must not redirect us), no
//! terminal prompts, and a time limit. Diffs are three-dot (`base...head`: from the merge base),
//! so a task branch that merged a newer base is judged on its own changes only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// A git command that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitFailure {
    pub(crate) command: String,
    pub(crate) dir: PathBuf,
    pub(crate) message: String,
    /// The exit code, when git ran and exited.
    pub(crate) code: Option<i32>,
}

impl std::fmt::Display for GitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`git {}` failed in {}: {}", self.command, self.dir.display(), self.message)
    }
}

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

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("git");
        c.arg("-C")
            .arg(&self.dir)
            // Fugue's own commits must not each spawn `git maintenance run --auto` (several a
            // task, on the critical path); the user's next git command maintains the repository.
            .args(["-c", "core.quotepath=off", "-c", "color.ui=false", "-c", "maintenance.auto=false"])
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Bookkeeping commits carry fugue's identity whatever the environment says.
        for var in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_COMMON_DIR",
            "GIT_PREFIX",
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "GIT_COMMITTER_NAME",
            "GIT_COMMITTER_EMAIL",
        ] {
            c.env_remove(var);
        }
        c
    }

    fn failure(&self, args: &[&str], message: impl Into<String>) -> GitFailure {
        GitFailure { command: args.join(" "), dir: self.dir.clone(), message: message.into(), code: None }
    }

    /// Runs `git args` and returns its stdout.
    pub(crate) async fn run(&self, args: &[&str]) -> Result<String, GitFailure> {
        let out = tokio::time::timeout(self.timeout, self.command(args).output())
            .await
            .map_err(|_| self.failure(args, format!("timed out after {:?}", self.timeout)))?
            .map_err(|e| {
                self.failure(args, if e.kind() == std::io::ErrorKind::NotFound { "git is not installed".to_owned() } else { e.to_string() })
            })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let msg = if err.trim().is_empty() { format!("exit status {}", out.status) } else { err.trim().to_owned() };
            return Err(GitFailure { code: out.status.code(), ..self.failure(args, msg) });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `git args` and returns at most `cap` bytes of its stdout, and whether it was cut.
    pub(crate) async fn run_capped(&self, args: &[&str], cap: usize) -> Result<(String, bool), GitFailure> {
        let work = async {
            let mut child = self.command(args).spawn().map_err(|e| self.failure(args, e.to_string()))?;
            let mut stdout = child.stdout.take().ok_or_else(|| self.failure(args, "no stdout"))?;
            let mut stderr = child.stderr.take().ok_or_else(|| self.failure(args, "no stderr"))?;
            let mut buf = Vec::new();
            let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
            let mut taken = (&mut stdout).take(limit);
            let read = taken.read_to_end(&mut buf);
            let mut err = Vec::new();
            let (read, _) = tokio::join!(read, stderr.read_to_end(&mut err));
            read.map_err(|e| self.failure(args, e.to_string()))?;
            let truncated = buf.len() > cap;
            if truncated {
                buf.truncate(cap);
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Ok((String::from_utf8_lossy(&buf).into_owned(), true));
            }
            let status = child.wait().await.map_err(|e| self.failure(args, e.to_string()))?;
            if !status.success() {
                return Err(self.failure(args, String::from_utf8_lossy(&err).trim().to_owned()));
            }
            Ok((String::from_utf8_lossy(&buf).into_owned(), false))
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| self.failure(args, format!("timed out after {:?}", self.timeout)))?
    }

    /// The full commit id of `rev`.
    pub(crate) async fn commit_of(&self, rev: &str) -> Result<String, GitFailure> {
        let spec = format!("{rev}^{{commit}}");
        Ok(self.run(&["rev-parse", "--verify", "--quiet", &spec]).await?.trim().to_owned())
    }

    /// The branch checked out (`refs/heads/` stripped), or `None` when HEAD is detached.
    pub(crate) async fn current_branch(&self) -> Result<Option<String>, GitFailure> {
        match self.run(&["symbolic-ref", "-q", "HEAD"]).await {
            Ok(r) => Ok(Some(r.trim().strip_prefix("refs/heads/").unwrap_or(r.trim()).to_owned())),
            // `symbolic-ref -q` exits 1, silently, on a detached HEAD.
            Err(e) if e.code == Some(1) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Paths changed from the merge base of `base` and `head` to `head`.
    pub(crate) async fn changed(&self, base: &str, head: &str) -> Result<Vec<String>, GitFailure> {
        let range = format!("{base}...{head}");
        let out = self.run(&["diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", &range, "--"]).await?;
        Ok(split_nul(&out))
    }

    /// The unified diff from the merge base of `base` and `head` to `head`, at most `cap`
    /// bytes, cut at a file boundary; the flag says whether it was cut.
    pub(crate) async fn diff(&self, base: &str, head: &str, cap: usize) -> Result<(String, bool), GitFailure> {
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
    pub(crate) async fn uncommitted(&self) -> Result<Vec<String>, GitFailure> {
        let out =
            self.run(&["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules=none"]).await?;
        let mut paths: Vec<String> = split_nul(&out).into_iter().filter_map(|e| e.get(3..).map(str::to_owned)).collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// `git add -A` and a commit with fugue's identity; hooks and signing are skipped because
    /// they belong to people, not to a bookkeeping commit.
    pub(crate) async fn commit_all(&self, message: &str) -> Result<String, GitFailure> {
        self.run(&["add", "-A"]).await?;
        self.run(&[
            "-c",
            "user.name=fugue",
            "-c",
            "user.email=fugue@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--no-verify",
            "--quiet",
            "-m",
            message,
        ])
        .await?;
        self.commit_of("HEAD").await
    }
}

fn split_nul(out: &str) -> Vec<String> {
    out.split('\0').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}
