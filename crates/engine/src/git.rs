//! The few git questions the engine asks directly (the pool does the rest).
//!
//! Every call goes through fugue's one git runner ([`fugue_core::git`]), asynchronously: the
//! same scrubbed environment (a `GIT_DIR` or `GIT_INDEX_FILE` inherited from a hook cannot send
//! a command to another repository) and the same error, naming the command, its exit code and
//! stderr.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fugue_core::git::{Git, GitError, RevResolver};

use crate::error::EngineError;

impl From<GitError> for EngineError {
    fn from(e: GitError) -> Self {
        EngineError::Git(e.to_string())
    }
}

async fn git(repo: &Path, args: &[&str]) -> Result<String, EngineError> {
    Ok(Git::default().cmd(repo).args(args).run_async().await?.text().trim().to_owned())
}

/// The branch checked out in `repo`.
pub(crate) async fn current_branch(repo: &Path) -> Result<String, EngineError> {
    let b = git(repo, &["symbolic-ref", "--short", "HEAD"])
        .await
        .map_err(|_| EngineError::Git(format!("{} is not on a branch (detached HEAD?): set `base:` in the plan", repo.display())))?;
    Ok(b)
}

/// Refuses to start while `repo`'s index is locked. Every merge into a checked-out base
/// needs the index; finding a lock left by a dead git only at the first merge would waste
/// every agent's work up to it.
pub(crate) async fn check_index_unlocked(repo: &Path) -> Result<(), EngineError> {
    let lock = git(repo, &["rev-parse", "--git-path", "index.lock"]).await?;
    let lock = repo.join(lock);
    if lock.exists() {
        return Err(EngineError::Git(format!(
            "failed to start: {} exists, so git commands in {} will fail: wait for the git command that holds it to finish, or, if no git process is running there, remove the file",
            lock.display(),
            repo.display()
        )));
    }
    Ok(())
}

/// The commits on the first-parent chain from `from` (excluded) to `to`: what landed on a
/// branch between two of its tips.
pub(crate) async fn first_parent_since(repo: &Path, from: &str, to: &str) -> Result<Vec<String>, EngineError> {
    let out = git(repo, &["rev-list", "--first-parent", &format!("{from}..{to}")]).await?;
    Ok(out.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

/// Merges `commit` into the branch checked out in `worktree`. A conflict is undone and its
/// files returned.
pub(crate) async fn merge_into(worktree: &Path, commit: &str) -> Result<Result<(), Vec<String>>, EngineError> {
    // A merge commit needs an identity; a machine without one still gets its merges.
    let identity: &[&str] = if git(worktree, &["var", "GIT_COMMITTER_IDENT"]).await.is_ok() {
        &[]
    } else {
        &["-c", "user.name=fugue", "-c", "user.email=fugue@localhost"]
    };
    let message = format!("fugue: bring {} into the task branch", &commit[..commit.len().min(12)]);
    let merge: Vec<&str> = identity.iter().copied().chain(["merge", "--no-edit", "--no-verify", "-m", &message, commit]).collect();
    if git(worktree, &merge).await.is_ok() {
        return Ok(Ok(()));
    }
    let files = git(worktree, &["diff", "--name-only", "--diff-filter=U"]).await.unwrap_or_default();
    git(worktree, &["merge", "--abort"]).await?;
    Ok(Err(files.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()))
}

/// The commit `rev` names. Asked twice per task (the base at an attempt's start, `HEAD` after
/// an `isolation: none` task), so it goes through a long-lived `cat-file --batch-check` per
/// repository ([`RevResolver`]), git resolving and no process per question; a name it does not
/// resolve is asked of `git rev-parse`, whose error says why.
pub(crate) async fn rev_parse(repo: &Path, rev: &str) -> Result<String, EngineError> {
    if let Ok(Some(commit)) = resolver(repo).commit(rev).await {
        return Ok(commit);
    }
    git(repo, &["rev-parse", "--verify", &format!("{rev}^{{commit}}")]).await
}

/// The resolvers of the last few repositories asked about: a run asks about one; an embedding
/// process running many repositories one after another keeps only a few `cat-file`s alive.
fn resolver(repo: &Path) -> Arc<RevResolver> {
    const KEPT: usize = 4;
    static RESOLVERS: Mutex<Vec<(PathBuf, Arc<RevResolver>)>> = Mutex::new(Vec::new());
    let mut all = RESOLVERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(i) = all.iter().position(|(p, _)| p == repo) {
        let hit = all.remove(i);
        let r = Arc::clone(&hit.1);
        all.push(hit);
        return r;
    }
    if all.len() >= KEPT {
        all.remove(0);
    }
    let r = Arc::new(RevResolver::new(&Git::default(), repo));
    all.push((repo.to_owned(), Arc::clone(&r)));
    r
}

/// Files changed between `base` and `head`.
pub(crate) async fn changed_files(repo: &Path, base: &str, head: &str) -> Result<Vec<String>, EngineError> {
    let out = git(repo, &["diff", "--name-only", "--no-renames", &format!("{base}...{head}")]).await?;
    Ok(out.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

/// Keeps fugue's runtime state out of `git status` in the user's checkout: the snapshots,
/// journal, logs and checkpoints under the state dir go into `info/exclude` (not
/// `.gitignore`, which is the user's) through the git layer's one writer of that file. Files a
/// user keeps there on purpose, such as `auto-context.yaml`, stay visible.
pub(crate) async fn exclude_runtime_state(repo: &Path, state_dir: &Path) -> Result<(), EngineError> {
    let top = std::path::PathBuf::from(git(repo, &["rev-parse", "--show-toplevel"]).await?);
    let common = std::path::PathBuf::from(git(repo, &["rev-parse", "--path-format=absolute", "--git-common-dir"]).await?);
    let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_owned());
    let top = std::fs::canonicalize(&top).unwrap_or(top);
    let Ok(rel) = state.strip_prefix(&top) else { return Ok(()) };
    let rel = rel.to_string_lossy().replace('\\', "/");
    if rel.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = ["*.json", "fugue/", "logs/", "auto-memory/"].iter().map(|p| format!("/{rel}/{p}")).collect();
    fugue_core::git::exclude_add(&common, &lines, "fugue runtime state", None)
        .map_err(|e| EngineError::io("write", &fugue_core::git::exclude_file(&common), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::git as sh_git;

    #[test]
    fn resolves_refs_and_excludes_the_runtime_state_once() {
        let tmp = tempfile::tempdir().expect("temp");
        let repo = tmp.path();
        sh_git(repo, &["init", "-q"]);
        sh_git(repo, &["commit", "-q", "--allow-empty", "-m", "one"]);
        let head = sh_git(repo, &["rev-parse", "HEAD"]);
        sh_git(repo, &["tag", "v1"]);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        for rev in ["HEAD", "main", "v1"] {
            assert_eq!(rt.block_on(rev_parse(repo, rev)).expect("resolves"), head, "{rev}");
        }
        // The resolver answers by itself (no fallback to a process per question).
        assert_eq!(rt.block_on(resolver(repo).commit("v1")).expect("asks").as_deref(), Some(head.as_str()));
        assert_eq!(rt.block_on(resolver(repo).commit("missing")).expect("asks"), None);
        let missing = rt.block_on(rev_parse(repo, "missing")).expect_err("no such rev").to_string();
        assert!(
            missing.starts_with("failed to run `git rev-parse --verify missing^{commit}`") && missing.contains("exit code 128"),
            "{missing}"
        );
        assert_eq!(rt.block_on(current_branch(repo)).expect("branch"), "main");
        // A ref moved by another process is seen by the long-lived resolver at once, packed or not.
        sh_git(repo, &["commit", "-q", "--allow-empty", "-m", "two"]);
        let two = sh_git(repo, &["rev-parse", "HEAD"]);
        assert_eq!(rt.block_on(rev_parse(repo, "main")).expect("resolves"), two);
        sh_git(repo, &["pack-refs", "--all"]);
        sh_git(repo, &["branch", "-f", "side", "main~1"]);
        assert_eq!(rt.block_on(rev_parse(repo, "side")).expect("resolves"), head);
        // A tag of a branch's name wins, as in git.
        sh_git(repo, &["tag", "side-tag", "main"]);
        sh_git(repo, &["tag", "main", "main~1"]);
        let (fast, slow) = (rt.block_on(rev_parse(repo, "main")), sh_git(repo, &["rev-parse", "main^{commit}"]));
        assert_eq!(fast.expect("resolves"), slow);

        let state = repo.join(".claude");
        std::fs::create_dir_all(&state).expect("mkdir");
        rt.block_on(exclude_runtime_state(repo, &state)).expect("exclude");
        rt.block_on(exclude_runtime_state(repo, &state)).expect("again");
        let text = std::fs::read_to_string(repo.join(".git/info/exclude")).expect("exclude");
        assert_eq!(text.matches("/.claude/fugue/").count(), 1, "{text}");
        assert_eq!(text.matches("# fugue runtime state").count(), 1, "{text}");
    }
}
