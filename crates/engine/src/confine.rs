//! The git side of confinement: a confined agent commits on a detached HEAD, and fugue moves
//! its branch.
//!
//! A commit on a branch rewrites the branch's ref through a lock file and a rename in
//! `.git/refs/heads/auto/`, and Landlock can grant that only for the whole directory, which
//! holds every other task's branch too (see `fugue_agents::confine`). So a confined agent is
//! never given `refs/`: before it runs, [`detach`] parks its worktree's HEAD (a file in the
//! worktree's own git dir, `.git/worktrees/<slot>/HEAD`) at the branch tip, so whatever the
//! agent commits moves only that HEAD. When it has exited, [`adopt`] — fugue, unconfined —
//! points `auto/<task>` at the worktree's HEAD and attaches HEAD to the branch again, so the
//! QA commit of leftovers, the gates and the merge see the branch exactly as if the agent had
//! committed on it. `adopt` is idempotent and also runs when a resumed task gets its held
//! slot back: a run killed while its agent worked leaves the slot detached, with the agent's
//! commits on HEAD only.

use std::path::Path;

use tokio::process::Command;

async fn git(worktree: &Path, args: &[&str]) -> Result<(bool, String), String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(worktree)
        .args(["-c", "maintenance.auto=false"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(|e| format!("failed to run git (is it installed?): {e}"))?;
    let text = if out.status.success() { &out.stdout } else { &out.stderr };
    Ok((out.status.success(), String::from_utf8_lossy(text).trim().to_owned()))
}

async fn git_ok(worktree: &Path, args: &[&str]) -> Result<String, String> {
    match git(worktree, args).await? {
        (true, out) => Ok(out),
        (false, err) => Err(format!("failed to run `git {}` in {}: {err}", args.join(" "), worktree.display())),
    }
}

/// Refuses a worktree that is no longer a linked worktree (an agent deleted its `.git` file):
/// `git -C` there would find the enclosing repository and move *its* HEAD.
fn linked(worktree: &Path) -> Result<(), String> {
    if worktree.join(".git").is_file() {
        Ok(())
    } else {
        Err(format!(
            "the worktree {} is no longer a git worktree (its `.git` file is gone): the attempt starts again in a fresh slot",
            worktree.display()
        ))
    }
}

/// Detaches `worktree`'s HEAD at its current commit, for a confined agent.
pub(crate) async fn detach(worktree: &Path) -> Result<(), String> {
    linked(worktree)?;
    git_ok(worktree, &["update-ref", "--no-deref", "-m", "fugue: detach HEAD for a confined agent", "HEAD", "HEAD"]).await.map(drop)
}

/// Points `branch` at `worktree`'s HEAD and attaches HEAD to it, when HEAD is detached (or on
/// another branch). Returns true when it moved anything.
pub(crate) async fn adopt(worktree: &Path, branch: &str) -> Result<bool, String> {
    linked(worktree)?;
    let full = format!("refs/heads/{branch}");
    let (attached, on) = git(worktree, &["symbolic-ref", "-q", "HEAD"]).await?;
    if attached && on == full {
        return Ok(false);
    }
    let head = git_ok(worktree, &["rev-parse", "--verify", "-q", "HEAD^{commit}"]).await?;
    git_ok(worktree, &["update-ref", "-m", "fugue: the confined agent's commits", &full, &head]).await?;
    git_ok(worktree, &["symbolic-ref", "-m", "fugue: back on the task branch", "HEAD", &full]).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[tokio::test]
    async fn the_agents_detached_commits_become_its_branch() {
        let tmp = tempfile::tempdir().expect("temp");
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        sh(&repo, &["init", "-q"]);
        sh(&repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
        let wt = tmp.path().join("wt-1");
        sh(&repo, &["worktree", "add", "-q", "-b", "auto/t1", wt.to_str().expect("utf8")]);
        detach(&wt).await.expect("detach");
        assert!(
            std::process::Command::new("git").args(["symbolic-ref", "-q", "HEAD"]).current_dir(&wt).status().is_ok_and(|s| !s.success())
        );
        std::fs::write(wt.join("a"), "1").expect("write");
        sh(&wt, &["add", "a"]);
        sh(&wt, &["commit", "-q", "-m", "the agent's"]);
        let head = sh(&wt, &["rev-parse", "HEAD"]);
        assert!(adopt(&wt, "auto/t1").await.expect("adopt"));
        assert_eq!(sh(&repo, &["rev-parse", "auto/t1"]), head);
        assert_eq!(sh(&wt, &["symbolic-ref", "HEAD"]), "refs/heads/auto/t1");
        // Again: nothing to do.
        assert!(!adopt(&wt, "auto/t1").await.expect("adopt"));
        // A worktree whose `.git` is gone is refused, never resolved to the enclosing repository.
        let gone = repo.join("sub");
        std::fs::create_dir_all(&gone).expect("mkdir");
        assert!(adopt(&gone, "auto/t1").await.is_err());
        assert_eq!(sh(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/main");
        assert_eq!(sh(&repo, &["rev-parse", "main"]), sh(&repo, &["rev-parse", "auto/t1~1"]));
    }
}
