//! The repository as the pool sees it: its top level, its common git dir, its worktrees.
//!
//! Opening costs one git call (`rev-parse`); everything else the pool needs to know about the
//! repository is asked in batches — several revisions resolved by one `cat-file --batch-check`,
//! all worktrees listed by one `worktree list --porcelain -z` — or read straight from the small
//! files git keeps (a worktree's `.git` file and its `HEAD`), which costs no process at all.

use std::path::{Path, PathBuf};

use crate::PoolError;
use crate::git::Git;

/// An opened repository.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub(crate) git: Git,
    /// The top level of the work tree the pool was opened in.
    pub(crate) toplevel: PathBuf,
    /// The common git dir (`.git` of the main worktree).
    pub(crate) common_dir: PathBuf,
}

/// One entry of `git worktree list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WorktreeEntry {
    pub(crate) path: PathBuf,
    pub(crate) head: Option<String>,
    /// The full ref checked out (`refs/heads/…`), none when detached.
    pub(crate) branch: Option<String>,
    pub(crate) bare: bool,
    pub(crate) locked: bool,
    pub(crate) prunable: Option<String>,
}

impl Repo {
    pub(crate) fn open(path: &Path) -> Result<Self, PoolError> {
        let git = Git::default();
        let out = git.cmd(path).args(["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"]).output()?;
        if !out.success() {
            return Err(PoolError::NotARepository { path: path.to_path_buf(), detail: crate::git::tail(&out.stderr) });
        }
        let text = out.text();
        let mut lines = text.lines();
        match (lines.next(), lines.next()) {
            (Some(top), Some(common)) => Ok(Self { git, toplevel: PathBuf::from(top), common_dir: PathBuf::from(common) }),
            _ => Err(PoolError::NotARepository { path: path.to_path_buf(), detail: format!("unexpected `git rev-parse` output {text:?}") }),
        }
    }

    /// Resolves each revision to an object id in one process; `None` for missing ones.
    pub(crate) fn resolve(&self, revs: &[String]) -> Result<Vec<Option<String>>, PoolError> {
        if revs.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(bad) = revs.iter().find(|r| r.contains(['\n', '\r']) || r.trim() != r.as_str() || r.is_empty()) {
            // cat-file reads one name per line; such a name cannot be a revision anyway.
            return Err(PoolError::BaseNotFound { base: bad.clone() });
        }
        let mut input = revs.join("\n").into_bytes();
        input.push(b'\n');
        let out = self.git.cmd(&self.toplevel).args(["cat-file", "--batch-check=%(objectname) %(objecttype)"]).stdin(input).run()?;
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        Ok(revs
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let line = lines.get(i).copied().unwrap_or("");
                let mut words = line.split(' ');
                match (words.next(), words.next()) {
                    (Some(oid), Some("commit")) if oid.bytes().all(|b| b.is_ascii_hexdigit()) => Some(oid.to_owned()),
                    _ => None,
                }
            })
            .collect())
    }

    /// Every worktree git knows about, the main one first.
    pub(crate) fn worktrees(&self) -> Result<Vec<WorktreeEntry>, PoolError> {
        let out = self.git.cmd(&self.toplevel).args(["worktree", "list", "--porcelain", "-z"]).run()?;
        Ok(parse_worktree_list(&out.stdout))
    }

    /// The commit-ish `git merge-base --is-ancestor a b`.
    pub(crate) fn is_ancestor(&self, dir: &Path, a: &str, b: &str) -> Result<bool, PoolError> {
        Ok(self.git.cmd(dir).args(["merge-base", "--is-ancestor", a, b]).test()?)
    }
}

/// Parses `git worktree list --porcelain -z`: records of NUL-terminated lines, a record ending
/// with an empty line.
pub(crate) fn parse_worktree_list(bytes: &[u8]) -> Vec<WorktreeEntry> {
    let mut out = Vec::new();
    let mut cur: Option<WorktreeEntry> = None;
    for field in bytes.split(|b| *b == 0) {
        let line = String::from_utf8_lossy(field);
        if line.is_empty() {
            out.extend(cur.take());
            continue;
        }
        let (key, value) = line.split_once(' ').unwrap_or((&line, ""));
        match key {
            "worktree" => {
                out.extend(cur.take());
                cur = Some(WorktreeEntry { path: PathBuf::from(value), ..WorktreeEntry::default() });
            }
            _ => {
                let Some(e) = cur.as_mut() else { continue };
                match key {
                    "HEAD" => e.head = Some(value.to_owned()),
                    "branch" => e.branch = Some(value.to_owned()),
                    "bare" => e.bare = true,
                    "locked" => e.locked = true,
                    "prunable" => e.prunable = Some(value.to_owned()),
                    _ => {}
                }
            }
        }
    }
    out.extend(cur);
    out
}

/// The git dir of a linked worktree, read from its `.git` file (no process).
pub(crate) fn worktree_gitdir(worktree: &Path) -> Option<PathBuf> {
    let dotgit = worktree.join(".git");
    if dotgit.is_dir() {
        return Some(dotgit);
    }
    let text = std::fs::read_to_string(&dotgit).ok()?;
    let rel = text.lines().next()?.strip_prefix("gitdir:")?.trim();
    let p = PathBuf::from(rel);
    Some(if p.is_absolute() { p } else { worktree.join(p) })
}

/// The ref a worktree's HEAD points at (`refs/heads/…`), read from its `HEAD` file.
pub(crate) fn head_ref(gitdir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(gitdir.join("HEAD")).ok()?;
    text.trim().strip_prefix("ref:").map(|r| r.trim().to_owned())
}

/// True when the worktree's own config turns sparse checkout on.
pub(crate) fn is_sparse(gitdir: &Path) -> bool {
    config_flag(&gitdir.join("config.worktree"), "sparsecheckout")
}

/// A cheap reading of a boolean `core.<key> = true` in a git config file. It is a fast path
/// only: a miss costs a git call that would have been needed anyway.
pub(crate) fn config_flag(file: &Path, key: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else { return false };
    text.lines().any(|l| {
        let l: String = l.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        l == format!("{key}=true")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_porcelain_list() {
        let raw = b"worktree /r\0HEAD abc\0branch refs/heads/main\0\0worktree /p/wt-1\0HEAD def\0detached\0locked initializing\0\0worktree /p/wt-2\0HEAD 123\0branch refs/heads/auto/x\0prunable gitdir file points to non-existent location\0\0";
        let list = parse_worktree_list(raw);
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].branch.as_deref(), Some("refs/heads/main"));
        assert!(list[1].branch.is_none() && list[1].locked);
        assert_eq!(list[2].path, PathBuf::from("/p/wt-2"));
        assert!(list[2].prunable.as_deref().is_some_and(|p| p.contains("non-existent")));
    }

    #[test]
    fn reads_gitdir_head_and_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wt = dir.path().join("wt");
        let admin = dir.path().join("admin");
        std::fs::create_dir_all(&wt).expect("mkdir");
        std::fs::create_dir_all(&admin).expect("mkdir");
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", admin.display())).expect("write");
        std::fs::write(admin.join("HEAD"), "ref: refs/heads/auto/t\n").expect("write");
        std::fs::write(admin.join("config.worktree"), "[core]\n\tsparseCheckout = true\n").expect("write");
        assert_eq!(worktree_gitdir(&wt), Some(admin.clone()));
        assert_eq!(head_ref(&admin).as_deref(), Some("refs/heads/auto/t"));
        assert!(is_sparse(&admin));
        std::fs::write(admin.join("HEAD"), "0123abcd\n").expect("write");
        assert_eq!(head_ref(&admin), None);
        assert!(!config_flag(&admin.join("missing"), "x"));
    }
}
