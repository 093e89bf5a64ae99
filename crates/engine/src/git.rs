//! The few git questions the engine asks directly (the pool does the rest).

use std::path::Path;

use tokio::process::Command;

use crate::error::EngineError;

async fn git(repo: &Path, args: &[&str]) -> Result<String, EngineError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "maintenance.auto=false"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(|e| EngineError::Git(format!("failed to run git (is it installed?): {e}")))?;
    if !out.status.success() {
        return Err(EngineError::Git(format!(
            "`git {}` failed in {}: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
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

/// The commit `rev` names.
pub(crate) async fn rev_parse(repo: &Path, rev: &str) -> Result<String, EngineError> {
    git(repo, &["rev-parse", "--verify", &format!("{rev}^{{commit}}")]).await
}

/// Files changed between `base` and `head`.
pub(crate) async fn changed_files(repo: &Path, base: &str, head: &str) -> Result<Vec<String>, EngineError> {
    let out = git(repo, &["diff", "--name-only", "--no-renames", &format!("{base}...{head}")]).await?;
    Ok(out.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

/// Keeps fugue's runtime state out of `git status` in the user's checkout: the snapshots,
/// journal, logs and checkpoints under the state dir go into `.git/info/exclude` (not
/// `.gitignore`, which is the user's). Files a user keeps there on purpose, such as
/// `auto-context.yaml`, stay visible.
pub(crate) async fn exclude_runtime_state(repo: &Path, state_dir: &Path) -> Result<(), EngineError> {
    let top = std::path::PathBuf::from(git(repo, &["rev-parse", "--show-toplevel"]).await?);
    let common = git(repo, &["rev-parse", "--path-format=absolute", "--git-common-dir"]).await?;
    let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_owned());
    let top = std::fs::canonicalize(&top).unwrap_or(top);
    let Ok(rel) = state.strip_prefix(&top) else { return Ok(()) };
    let rel = rel.to_string_lossy().replace('\\', "/");
    if rel.is_empty() {
        return Ok(());
    }
    let file = std::path::Path::new(&common).join("info").join("exclude");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let lines: Vec<String> = ["*.json", "fugue/", "logs/", "auto-memory/"].iter().map(|p| format!("/{rel}/{p}")).collect();
    let missing: Vec<&String> = lines.iter().filter(|l| !text.lines().any(|t| t.trim() == l.as_str())).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut new = text.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str("# fugue runtime state\n");
    for l in missing {
        new.push_str(l);
        new.push('\n');
    }
    fugue_core::state::write_atomic(&file, new.as_bytes()).map_err(|e| EngineError::io("write", &file, e))
}
