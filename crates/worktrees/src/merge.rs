//! The merge coordinator: task branches into the target, in the order given, exactly once.
//!
//! Merges never happen in the user's worktree, and with git ≥ 2.38 they happen in no worktree
//! at all: each merge is computed from objects (`merge-tree --write-tree`), so its cost is that
//! of the change, not of the repository (a checkout of a 50,000-file repository costs seconds;
//! a one-file merge in it a few git processes of milliseconds each).
//!
//! 1. Read the target's commit `OLD` and every branch's commit in one `cat-file`, and which of
//!    the branches are already contained in `OLD` in one `for-each-ref --merged`. Those are
//!    skipped — so running the same merge again (a resume after a crash) merges nothing twice.
//!    If the target is checked out in a worktree with uncommitted changes to tracked files the
//!    merge is refused before anything is done.
//! 2. For each remaining branch, in order, starting from `CUR = OLD`: a branch that an earlier
//!    one already brought in (`merge-base --is-ancestor`) is skipped; otherwise
//!    `git merge-tree --write-tree -z --name-only CUR BRANCH` merges the two commits (their
//!    merge bases found by git, several of them consolidated as `git merge` would) into a tree.
//!    Exit 0 is clean: `git commit-tree TREE -p CUR -p BRANCH` makes the merge commit, which
//!    becomes `CUR`. Exit 1 is a conflict: its files are the "conflicted file info" merge-tree
//!    prints, nothing is written but unreachable objects, the branch is left as it was, and the
//!    next branch is tried (or, with `stop_on_conflict`, none).
//! 3. Move the target to the result `NEW`: `update-ref refs/heads/<target> NEW OLD`, a
//!    compare-and-swap that fails if anyone moved the target meanwhile; or, when the target is
//!    checked out in a (clean) worktree, `merge --ff-only NEW` there, which moves the branch and
//!    that worktree's index and files together and refuses anything but a fast-forward.
//!
//! Step 3 is the only write anyone can see, and it is atomic: a crash before it leaves the
//! target as it was (and garbage objects), a crash after it leaves every branch contained in the
//! target, which step 1 then skips. That, with the engine journaling a merge only after this
//! returns, is what makes merges exactly-once across crashes.
//!
//! With an older git ([`MergeMethod::Checkout`], said once per process on the log and by the
//! CLI), step 2 runs `git merge --no-ff` in the pool's integration worktree
//! (`<pool.dir>/integration`), detached at `OLD`; a conflict there is aborted with
//! `merge --abort`. Steps 1 and 3 are the same.
//!
//! One merge runs at a time per state dir (an OS file lock); the conflict outcome carries the
//! files the engine records for a `merge_conflict` task.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fugue_core::TaskId;
use fugue_core::state::{DependencyGraph, SlotStatus};
use serde::Serialize;

use crate::PoolError;
use crate::pool::{Checkout, Pool};
use crate::repo;
use crate::state::FileLock;

/// How a merge is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MergeMethod {
    /// [`MergeMethod::MergeTree`] when the installed git has it (≥ 2.38), else
    /// [`MergeMethod::Checkout`].
    #[default]
    Auto,
    /// `merge-tree --write-tree` and `commit-tree`: no checkout, the cost of the change.
    MergeTree,
    /// `merge --no-ff` in the integration worktree: the fallback for git older than 2.38.
    Checkout,
}

impl MergeMethod {
    /// The method `Auto` picks with the installed `git`, and why when it is the fallback.
    pub fn detect() -> (MergeMethod, Option<String>) {
        pick(&crate::git::Git::default())
    }
}

/// The method for this git: merge-tree when it has `--write-tree`, else the checkout, with the
/// reason (said once per process on the log).
fn pick(git: &crate::git::Git) -> (MergeMethod, Option<String>) {
    match git.version() {
        Ok(v) if v.has_merge_tree_write_tree() => (MergeMethod::MergeTree, None),
        result => {
            let why = match result {
                Ok(v) => format!(
                    "git {v} has no `merge-tree --write-tree` (git {} and later do): merges check out an integration worktree, which costs a checkout of the repository; install a newer git for merges without a checkout",
                    fugue_core::git::GitVersion::MERGE_TREE_WRITE_TREE
                ),
                Err(e) => format!("could not tell the git version ({e}): merges check out an integration worktree"),
            };
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| tracing::warn!("{why}"));
            (MergeMethod::Checkout, Some(why))
        }
    }
}

/// What to merge.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    target: Option<String>,
    branches: Vec<String>,
    stop_on_conflict: bool,
    method: MergeMethod,
}

impl MergeRequest {
    /// Merge these branches (names like `auto/x`, without `refs/heads/`), in this order.
    pub fn new<I, S>(branches: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { target: None, branches: branches.into_iter().map(Into::into).collect(), stop_on_conflict: false, method: MergeMethod::Auto }
    }

    /// Merge these tasks' branches (`auto/<id>`), in this order.
    pub fn for_tasks<'a>(tasks: impl IntoIterator<Item = &'a TaskId>) -> Self {
        Self::new(tasks.into_iter().map(TaskId::branch))
    }

    /// Merge into this branch (default: the branch checked out in the main worktree).
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Stop at the first conflict instead of trying the remaining branches.
    pub fn stop_on_conflict(mut self, stop: bool) -> Self {
        self.stop_on_conflict = stop;
        self
    }

    /// How to compute the merge (default [`MergeMethod::Auto`]); the benchmark and the tests
    /// ask for each one.
    pub fn method(mut self, method: MergeMethod) -> Self {
        self.method = method;
        self
    }
}

/// What happened to one branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BranchOutcome {
    /// Merged with a merge commit.
    Merged,
    /// Already contained in the target: skipped.
    AlreadyMerged,
    /// The merge conflicted and was aborted; the branch is unchanged.
    Conflict {
        /// The conflicting files.
        files: Vec<String>,
    },
    /// No such branch.
    Missing,
    /// Not tried: an earlier branch conflicted and `stop_on_conflict` was set.
    NotAttempted,
}

/// One branch's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BranchMerge {
    /// The branch name.
    pub branch: String,
    /// What happened.
    pub outcome: BranchOutcome,
}

/// How the target was moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TargetUpdate {
    /// Nothing was merged; the target did not move.
    Unchanged,
    /// The ref was moved with a compare-and-swap (the target is not checked out anywhere).
    RefUpdated,
    /// The target is checked out in a clean worktree, which was fast-forwarded.
    FastForwarded {
        /// That worktree.
        worktree: PathBuf,
    },
}

/// The result of a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MergeReport {
    /// The target branch.
    pub target: String,
    /// Its commit before.
    pub old: String,
    /// Its commit after.
    pub new: String,
    /// Every branch asked for, in order.
    pub branches: Vec<BranchMerge>,
    /// How the target moved.
    pub update: TargetUpdate,
    /// How the merge was computed (never `Auto`).
    pub method: MergeMethod,
}

impl MergeReport {
    /// The branches that conflicted, with their files.
    pub fn conflicts(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.branches.iter().filter_map(|b| match &b.outcome {
            BranchOutcome::Conflict { files } => Some((b.branch.as_str(), files.as_slice())),
            _ => None,
        })
    }

    /// Every branch is merged (now or before).
    pub fn is_complete(&self) -> bool {
        self.branches.iter().all(|b| matches!(b.outcome, BranchOutcome::Merged | BranchOutcome::AlreadyMerged))
    }
}

/// The branches of a request, resolved: names, full refs, commits, and those already in the
/// target.
struct Todo<'a> {
    branches: &'a [String],
    refs: &'a [String],
    oids: &'a [Option<String>],
    contained: &'a BTreeSet<String>,
}

/// What `merge-tree --write-tree -z --name-only` printed.
#[derive(Debug, Default, PartialEq, Eq)]
struct MergeTreeOutput {
    tree: Option<String>,
    conflicts: Vec<String>,
}

/// Parses `merge-tree --write-tree -z --name-only` output: the tree, NUL; the conflicted file
/// names, each NUL-terminated; then (on a conflict) an empty field and the informational
/// records `<n> NUL <path>… NUL <type> NUL <message> NUL`. A conflict with no conflicted file
/// (some directory-rename conflicts) is named by the paths of its `CONFLICT` records.
fn parse_merge_tree(stdout: &[u8]) -> MergeTreeOutput {
    let mut fields = stdout.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned());
    let tree = fields.next().map(|t| t.trim().to_owned());
    let mut conflicts: Vec<String> = Vec::new();
    for f in fields.by_ref() {
        if f.is_empty() {
            break;
        }
        conflicts.push(f);
    }
    if conflicts.is_empty() {
        let rest: Vec<String> = fields.collect();
        let mut i = 0;
        while let Some(n) = rest.get(i).and_then(|n| n.parse::<usize>().ok()) {
            let paths = rest.get(i + 1..i + 1 + n).unwrap_or_default();
            let kind = rest.get(i + 1 + n).map_or("", String::as_str);
            if kind.starts_with("CONFLICT") {
                conflicts.extend(paths.iter().cloned());
            }
            i += n + 3;
        }
    }
    let mut seen = BTreeSet::new();
    conflicts.retain(|c| seen.insert(c.clone()));
    MergeTreeOutput { tree, conflicts }
}

pub(crate) fn merge_lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("fugue").join("merge.lock")
}

impl Pool {
    /// Merges branches into the target: see the module docs. Conflicts are outcomes in the
    /// report, not errors; a dirty target worktree, a target that moved meanwhile or a failed
    /// fast-forward are errors, and then the target is not moved.
    pub fn merge(&self, req: &MergeRequest) -> Result<MergeReport, PoolError> {
        let _lock = FileLock::acquire(&merge_lock_path(&self.state_dir))?;
        let git = &self.repo.git;
        let list = self.worktree_list()?;
        let integration = self.integration_dir();
        let target = match &req.target {
            Some(t) => t.strip_prefix("refs/heads/").unwrap_or(t).to_owned(),
            None => list
                .first()
                .and_then(|e| e.branch.as_deref())
                .and_then(|b| b.strip_prefix("refs/heads/"))
                .map(str::to_owned)
                .ok_or(PoolError::NoTarget)?,
        };
        let target_ref = format!("refs/heads/{target}");
        let branch_refs: Vec<String> =
            req.branches.iter().map(|b| format!("refs/heads/{}", b.strip_prefix("refs/heads/").unwrap_or(b))).collect();
        let mut revs = vec![target_ref.clone()];
        revs.extend(branch_refs.iter().cloned());
        let oids = self.repo.resolve(&revs)?;
        let old = oids.first().cloned().flatten().ok_or_else(|| PoolError::TargetNotFound { target: target.clone() })?;
        let branch_oids: Vec<Option<String>> = oids.into_iter().skip(1).collect();

        let checked_out = list
            .iter()
            .find(|e| e.branch.as_deref() == Some(target_ref.as_str()) && e.path != integration && e.prunable.is_none())
            .map(|e| e.path.clone());
        if let Some(wt) = &checked_out {
            let files = self.dirty_files(wt)?;
            if !files.is_empty() {
                return Err(PoolError::TargetDirty { target, worktree: wt.clone(), files });
            }
        }

        let present: Vec<&str> = branch_refs.iter().zip(&branch_oids).filter(|(_, o)| o.is_some()).map(|(r, _)| r.as_str()).collect();
        let contained: BTreeSet<String> = if present.is_empty() {
            BTreeSet::new()
        } else {
            let out = git
                .cmd(&self.repo.toplevel)
                .args(["for-each-ref", "--format=%(refname)", &format!("--merged={old}")])
                .args(&present)
                .run()?;
            out.text().lines().map(str::to_owned).collect()
        };

        let method = match req.method {
            MergeMethod::Auto => pick(git).0,
            m => m,
        };
        let todo = Todo { branches: &req.branches, refs: &branch_refs, oids: &branch_oids, contained: &contained };
        let (results, new) = match method {
            MergeMethod::Checkout => self.merge_in_checkout(&todo, &old, &target, req.stop_on_conflict)?,
            _ => self.merge_objects(&todo, &old, &target, req.stop_on_conflict)?,
        };
        let update = if new == old {
            TargetUpdate::Unchanged
        } else if let Some(wt) = checked_out {
            // `merge --ff-only` moves whatever that worktree has checked out: make sure it is
            // still the target (a file read, just before).
            if repo::worktree_gitdir(&wt).and_then(|g| repo::head_ref(&g)).as_deref() != Some(target_ref.as_str()) {
                return Err(PoolError::FastForward { target, worktree: wt, detail: "its branch changed during the merge".to_owned() });
            }
            let out = git.cmd(&wt).args(["merge", "--ff-only", "-q", &new]).output()?;
            if !out.success() {
                return Err(PoolError::FastForward { target, worktree: wt, detail: crate::git::tail(&out.stderr) });
            }
            TargetUpdate::FastForwarded { worktree: wt }
        } else {
            let merged = results.iter().filter(|r| r.outcome == BranchOutcome::Merged).count();
            let msg = format!("fugue: merge {merged} task branch(es) into {target}");
            let out = git.cmd(&self.repo.toplevel).args(["update-ref", "-m", &msg, &target_ref, &new, &old]).output()?;
            if !out.success() {
                let now = self.repo.resolve(std::slice::from_ref(&target_ref))?.into_iter().next().flatten();
                if now.as_deref() != Some(old.as_str()) {
                    return Err(PoolError::TargetMoved { target, expected: old });
                }
                return Err(crate::git::failure(format!("git update-ref {target_ref} {new} {old}"), self.repo.toplevel.clone(), &out));
            }
            TargetUpdate::RefUpdated
        };
        Ok(MergeReport { target, old, new, branches: results, update, method })
    }

    /// Step 2 without a checkout: each branch merged into `old`'s line with `merge-tree` and
    /// `commit-tree`. Returns every branch's outcome and the last commit made (or `old`).
    fn merge_objects(
        &self,
        todo: &Todo<'_>,
        old: &str,
        target: &str,
        stop_on_conflict: bool,
    ) -> Result<(Vec<BranchMerge>, String), PoolError> {
        let top = &self.repo.toplevel;
        let mut results: Vec<BranchMerge> = Vec::with_capacity(todo.branches.len());
        let mut cur = old.to_owned();
        let mut identity: Option<bool> = None;
        let mut stopped = false;
        for ((name, full), oid) in todo.branches.iter().zip(todo.refs).zip(todo.oids) {
            let branch = full.strip_prefix("refs/heads/").unwrap_or(name).to_owned();
            let outcome = match oid {
                _ if stopped => BranchOutcome::NotAttempted,
                None => BranchOutcome::Missing,
                Some(_) if todo.contained.contains(full) => BranchOutcome::AlreadyMerged,
                // Brought in by an earlier branch of this request: a merge would be empty.
                Some(oid) if cur != old && self.repo.is_ancestor(top, oid, &cur)? => BranchOutcome::AlreadyMerged,
                Some(oid) => match self.merge_tree(&cur, oid)? {
                    Ok(tree) => {
                        let has_identity = *identity.get_or_insert_with(|| self.has_identity(top));
                        cur = self.commit_merge(&tree, &cur, oid, &format!("Merge branch '{branch}' into {target}"), has_identity)?;
                        BranchOutcome::Merged
                    }
                    Err(files) => {
                        stopped = stop_on_conflict;
                        BranchOutcome::Conflict { files }
                    }
                },
            };
            results.push(BranchMerge { branch, outcome });
        }
        Ok((results, cur))
    }

    /// `git merge-tree --write-tree` of two commits: the merged tree, or the conflicting files.
    fn merge_tree(&self, ours: &str, theirs: &str) -> Result<Result<String, Vec<String>>, PoolError> {
        let cmd = self.repo.git.cmd(&self.repo.toplevel).args(["merge-tree", "--write-tree", "-z", "--name-only", ours, theirs]);
        let shown = cmd.shown();
        let out = cmd.output()?;
        match out.code {
            Some(0 | 1) => {}
            _ => return Err(crate::git::failure(shown, self.repo.toplevel.clone(), &out)),
        }
        let parsed = parse_merge_tree(&out.stdout);
        let Some(tree) = parsed.tree.filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit())) else {
            return Err(PoolError::Git(fugue_core::git::GitError::Failed {
                command: shown,
                dir: self.repo.toplevel.clone(),
                code: out.code,
                stderr: format!("unexpected output {:?}", crate::git::tail(&out.stdout)),
            }));
        };
        if out.code == Some(0) { Ok(Ok(tree)) } else { Ok(Err(parsed.conflicts)) }
    }

    /// Whether git has an identity for commits here (a machine without one still gets merges).
    fn has_identity(&self, dir: &Path) -> bool {
        self.repo.git.cmd(dir).args(["var", "GIT_COMMITTER_IDENT"]).output().is_ok_and(|o| o.success())
    }

    /// The merge commit of `tree` with parents `first` and `second`.
    fn commit_merge(&self, tree: &str, first: &str, second: &str, message: &str, has_identity: bool) -> Result<String, PoolError> {
        let mut cmd = self.repo.git.cmd(&self.repo.toplevel);
        if !has_identity {
            cmd = cmd.args(["-c", "user.name=fugue", "-c", "user.email=fugue@localhost"]);
        }
        let out = cmd.args(["commit-tree", tree, "-p", first, "-p", second, "-m", message]).run()?;
        Ok(out.text())
    }

    /// Step 2 in the integration worktree (git older than 2.38): `merge --no-ff` of each branch.
    fn merge_in_checkout(
        &self,
        todo: &Todo<'_>,
        old: &str,
        target: &str,
        stop_on_conflict: bool,
    ) -> Result<(Vec<BranchMerge>, String), PoolError> {
        let integration = self.integration_dir();
        let mut results: Vec<BranchMerge> = Vec::with_capacity(todo.branches.len());
        let mut worktree_ready = false;
        let mut moved = false;
        let mut stopped = false;
        for ((name, full), oid) in todo.branches.iter().zip(todo.refs).zip(todo.oids) {
            let branch = full.strip_prefix("refs/heads/").unwrap_or(name).to_owned();
            let outcome = match oid {
                _ if stopped => BranchOutcome::NotAttempted,
                None => BranchOutcome::Missing,
                Some(_) if todo.contained.contains(full) => BranchOutcome::AlreadyMerged,
                Some(oid) => {
                    if !worktree_ready {
                        self.prepare_integration(&integration, old)?;
                        worktree_ready = true;
                    }
                    if moved && self.repo.is_ancestor(&integration, oid, "HEAD")? {
                        BranchOutcome::AlreadyMerged
                    } else {
                        let outcome = self.merge_one(&integration, &branch, oid, target)?;
                        match &outcome {
                            BranchOutcome::Merged => moved = true,
                            BranchOutcome::Conflict { .. } => stopped = stop_on_conflict,
                            _ => {}
                        }
                        outcome
                    }
                }
            };
            results.push(BranchMerge { branch, outcome });
        }
        let new = if moved { self.repo.git.cmd(&integration).args(["rev-parse", "HEAD"]).run()?.text() } else { old.to_owned() };
        Ok((results, new))
    }

    /// The busy slots' branches in merge order: dependency order from `DEPENDENCY_GRAPH.json`
    /// in the state dir when it exists, else (and for tasks it does not name) pool order.
    pub fn busy_branches_in_merge_order(&self) -> Result<Vec<String>, PoolError> {
        let state = self.status()?;
        let busy: Vec<(String, String)> = state
            .worktrees
            .iter()
            .filter(|w| w.status == SlotStatus::Busy)
            .filter_map(|w| Some((w.task_id.clone()?, w.branch.clone()?)))
            .collect();
        let path = self.state_dir.join(fugue_core::state::files::DEPENDENCY_GRAPH);
        let rank: BTreeMap<String, usize> = match std::fs::read(&path) {
            Ok(bytes) => {
                let graph: DependencyGraph =
                    serde_json::from_slice(&bytes).map_err(|source| PoolError::CorruptState { path: path.clone(), source })?;
                dependency_order(&graph).into_iter().enumerate().map(|(i, t)| (t.as_str().to_owned(), i)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(PoolError::Io { action: "read", path, source: e }),
        };
        let mut ordered: Vec<(usize, usize, String)> =
            busy.into_iter().enumerate().map(|(i, (task, branch))| (rank.get(&task).copied().unwrap_or(usize::MAX), i, branch)).collect();
        ordered.sort();
        Ok(ordered.into_iter().map(|(_, _, b)| b).collect())
    }

    /// Puts the integration worktree on `oid`, detached and clean, creating it if needed.
    fn prepare_integration(&self, dir: &Path, oid: &str) -> Result<(), PoolError> {
        let git = &self.repo.git;
        if repo::worktree_gitdir(dir).is_some_and(|g| g.join("HEAD").is_file()) {
            // A checkout also clears a merge state left by a crash (MERGE_HEAD and friends).
            git.cmd(dir).args(["-c", "checkout.workers=0", "checkout", "-q", "-f", "--detach", oid]).run()?;
            git.cmd(dir).args(["clean", "-ffdxq"]).run()?;
            return Ok(());
        }
        self.add_worktree(dir, &Checkout::Detached(oid), None)
    }

    /// Merges one branch (by commit id) in the integration worktree.
    fn merge_one(&self, dir: &Path, branch: &str, oid: &str, target: &str) -> Result<BranchOutcome, PoolError> {
        let git = &self.repo.git;
        let msg = format!("Merge branch '{branch}' into {target}");
        // A merge commit needs an identity; a machine without one still gets its merges.
        let has_identity = git.cmd(dir).args(["var", "GIT_COMMITTER_IDENT"]).output().is_ok_and(|o| o.success());
        let mut cmd = git.cmd(dir);
        if !has_identity {
            cmd = cmd.args(["-c", "user.name=fugue", "-c", "user.email=fugue@localhost"]);
        }
        let cmd = cmd.args(["-c", "rerere.enabled=false", "merge", "--no-ff", "--no-edit", "-q", "-m", &msg, oid]);
        let shown = cmd.shown();
        let out = cmd.output()?;
        if out.success() {
            return Ok(BranchOutcome::Merged);
        }
        let files = git.cmd(dir).args(["diff", "--name-only", "--diff-filter=U", "-z"]).run()?.nul_fields();
        let abort = git.cmd(dir).args(["merge", "--abort"]).output();
        if files.is_empty() {
            // Not a conflict (a hook refused, say): report git's own words.
            drop(abort);
            return Err(crate::git::failure(shown, dir.to_path_buf(), &out));
        }
        abort?;
        Ok(BranchOutcome::Conflict { files })
    }

    /// Tracked files with uncommitted changes (staged or not) in a worktree.
    fn dirty_files(&self, wt: &Path) -> Result<Vec<String>, PoolError> {
        // No optional locks: status would otherwise rewrite the whole index after refreshing
        // it (a write of every entry, the largest cost of a merge in a big checkout after the
        // stat of its files) and could collide with the user's own git.
        let out =
            self.repo.git.cmd(wt).env("GIT_OPTIONAL_LOCKS", "0").args(["status", "--porcelain=v1", "-z", "--untracked-files=no"]).run()?;
        let fields = out.nul_fields();
        let mut files = Vec::new();
        let mut it = fields.iter();
        while let Some(f) = it.next() {
            let (status, path) = (f.get(..2).unwrap_or(""), f.get(3..).unwrap_or(""));
            files.push(path.to_owned());
            if status.starts_with(['R', 'C']) {
                // A rename's second field is its source path.
                it.next();
            }
        }
        Ok(files)
    }
}

/// The graph's tasks in dependency order: a topological sort of its edges, ties broken by the
/// graph's (plan) order; tasks on a cycle (which a valid graph never has) come last, in plan order.
pub fn dependency_order(graph: &DependencyGraph) -> Vec<TaskId> {
    let index: BTreeMap<&str, usize> = graph.tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
    let n = graph.tasks.len();
    let mut indegree = vec![0usize; n];
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut seen = BTreeSet::new();
    for e in &graph.edges {
        if let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str()))
            && a != b
            && seen.insert((a, b))
        {
            next[a].push(b);
            indegree[b] += 1;
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while let Some(i) = ready.pop_first() {
        done[i] = true;
        order.push(graph.tasks[i].id.clone());
        for &j in &next[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.insert(j);
            }
        }
    }
    order.extend((0..n).filter(|&i| !done[i]).map(|i| graph.tasks[i].id.clone()));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph(tasks: &[&str], edges: &[(&str, &str)]) -> DependencyGraph {
        serde_json::from_value(json!({
            "version": 1,
            "tasks": tasks.iter().map(|t| json!({"id": t, "phase": "implementation", "agent": "a", "modifies": [], "reads": [], "depends_on": []})).collect::<Vec<_>>(),
            "edges": edges.iter().map(|(f, t)| json!({"from": f, "to": t, "reason": "declared"})).collect::<Vec<_>>(),
            "execution_strategy": {"mode": "PARALLEL", "strategy": "C", "max_agents": 2, "parallel_groups": [], "critical_path": [],
                "estimate": {"sequential_s": 1.0, "parallel_s": 1.0, "speedup": 1.0}}
        }))
        .expect("graph")
    }

    fn ids(v: Vec<TaskId>) -> Vec<String> {
        v.into_iter().map(|t| t.as_str().to_owned()).collect()
    }

    /// Runs git in `dir` for the test's own setup; panics on failure.
    fn sh(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Someone moves the target between the merge's read of it and its update: the
    /// compare-and-swap refuses, nothing is lost, and merging again merges once onto the new tip.
    #[test]
    fn a_target_moved_during_the_merge_is_refused_and_the_next_merge_lands_once() {
        let tmp = tempfile::tempdir().expect("temp");
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        sh(&repo, &["init", "-q"]);
        std::fs::write(repo.join("a.txt"), "a\n").expect("write");
        sh(&repo, &["add", "-A"]);
        sh(&repo, &["commit", "-qm", "init"]);
        sh(&repo, &["checkout", "-q", "-b", "auto/t"]);
        std::fs::write(repo.join("t.txt"), "t\n").expect("write");
        sh(&repo, &["add", "-A"]);
        sh(&repo, &["commit", "-qm", "task"]);
        sh(&repo, &["checkout", "-q", "--detach", "main"]);
        // The outsider's commit, on main's line but not yet on main.
        sh(&repo, &["commit", "-q", "--allow-empty", "-m", "outsider"]);
        let outsider = sh(&repo, &["rev-parse", "HEAD"]);
        sh(&repo, &["checkout", "-q", "--detach", "main"]);
        let old = sh(&repo, &["rev-parse", "main"]);
        // A git that moves main to the outsider's commit right after making the merge commit.
        let real = String::from_utf8_lossy(&std::process::Command::new("sh").args(["-c", "command -v git"]).output().expect("sh").stdout)
            .trim()
            .to_owned();
        let wrapper = tmp.path().join("git");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\ncase \" $* \" in *' commit-tree '*) out=$('{real}' \"$@\") || exit $?; '{real}' -C '{}' update-ref refs/heads/main {outsider}; echo \"$out\";; *) exec '{real}' \"$@\";; esac\n",
                repo.display()
            ),
        )
        .expect("write");
        std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let spec = fugue_core::PoolSpec {
            size: 1,
            dir: tmp.path().join("pool").to_string_lossy().into_owned(),
            ..fugue_core::PoolSpec::default()
        };
        let mut pool = Pool::open(&repo, &repo.join(".claude"), spec).expect("pool");
        pool.repo.git = crate::git::Git::with_program(&wrapper);
        let req = MergeRequest::new(["auto/t"]).target("main").method(MergeMethod::MergeTree);
        let err = pool.merge(&req).expect_err("the target moved");
        assert!(matches!(&err, PoolError::TargetMoved { target, expected } if target == "main" && *expected == old), "{err}");
        assert_eq!(sh(&repo, &["rev-parse", "main"]), outsider, "the outsider's commit is kept");
        // With an honest git the same request merges once, onto the outsider's commit.
        pool.repo.git = crate::git::Git::default();
        let report = pool.merge(&req).expect("merge");
        assert_eq!(report.branches[0].outcome, BranchOutcome::Merged);
        assert_eq!(sh(&repo, &["rev-parse", "main^1"]), outsider);
        assert_eq!(sh(&repo, &["rev-list", "--merges", "--count", "main"]), "1");
        let again = pool.merge(&req).expect("again");
        assert_eq!(again.branches[0].outcome, BranchOutcome::AlreadyMerged);
    }

    #[test]
    fn parses_merge_tree_output() {
        let clean = parse_merge_tree(b"a85d1b6adc96b7390609f1fd92887a7f2572d627\x00");
        assert_eq!(clean, MergeTreeOutput { tree: Some("a85d1b6adc96b7390609f1fd92887a7f2572d627".into()), conflicts: vec![] });
        let conflict = parse_merge_tree(
            b"c63397af\x00f\x00g\x00\x001\x00f\x00Auto-merging\x00Auto-merging f\n\x001\x00f\x00CONFLICT (contents)\x00CONFLICT (content): Merge conflict in f\n\x001\x00g\x00CONFLICT (modify/delete)\x00g deleted\n\x00",
        );
        assert_eq!(conflict.tree.as_deref(), Some("c63397af"));
        assert_eq!(conflict.conflicts, ["f", "g"]);
        // No conflicted file, only a conflict record (some directory-rename conflicts).
        let dirs = parse_merge_tree(
            b"c63397af\x00\x002\x00a/x\x00b/x\x00CONFLICT (file location)\x00moved\n\x001\x00c\x00Auto-merging\x00Auto-merging c\n\x00",
        );
        assert_eq!(dirs.conflicts, ["a/x", "b/x"]);
        assert_eq!(parse_merge_tree(b""), MergeTreeOutput { tree: Some(String::new()), conflicts: vec![] });
    }

    #[test]
    fn orders_by_edges_then_plan_order() {
        let g = graph(&["c", "b", "a", "d"], &[("a", "c"), ("b", "a")]);
        assert_eq!(ids(dependency_order(&g)), ["b", "a", "c", "d"]);
        let cyclic = graph(&["x", "y", "z"], &[("x", "y"), ("y", "x")]);
        assert_eq!(ids(dependency_order(&cyclic)), ["z", "x", "y"]);
    }

    proptest::proptest! {
        /// Every edge between known tasks goes forward in the order, and no task is lost.
        #[test]
        fn order_respects_edges(n in 1usize..8, raw in proptest::collection::vec((0usize..8, 0usize..8), 0..12)) {
            let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            // Only forward edges (i < j): a DAG by construction.
            let edges: Vec<(String, String)> = raw.into_iter().filter(|(a, b)| a < b && *b < n).map(|(a, b)| (names[a].clone(), names[b].clone())).collect();
            // The plan lists them backwards, so the sort has work to do.
            let name_refs: Vec<&str> = names.iter().rev().map(String::as_str).collect();
            let edge_refs: Vec<(&str, &str)> = edges.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let order = ids(dependency_order(&graph(&name_refs, &edge_refs)));
            proptest::prop_assert_eq!(order.len(), n);
            let pos = |t: &str| order.iter().position(|o| o == t);
            for (a, b) in &edges {
                proptest::prop_assert!(pos(a) < pos(b));
            }
        }
    }
}
