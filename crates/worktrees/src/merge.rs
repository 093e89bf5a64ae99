//! The merge coordinator: task branches into the target, in the order given, exactly once.
//!
//! Merges never happen in the user's worktree. They happen in the pool's integration worktree
//! (`<pool.dir>/integration`), detached at the target's commit, so a target branch checked out
//! elsewhere is never in the way:
//!
//! 1. Read the target's commit `OLD` and every branch's commit in one `cat-file`, and which of
//!    the branches are already contained in `OLD` in one `for-each-ref --merged`. Those are
//!    skipped — so running the same merge again (a resume after a crash) merges nothing twice.
//!    If the target is checked out in a worktree with uncommitted changes to tracked files the
//!    merge is refused before anything is done.
//! 2. In the integration worktree, `git merge --no-ff` each remaining branch, in order. A
//!    branch that an earlier one already brought in (`merge-base --is-ancestor`) is skipped. A
//!    conflict is recorded with its files, the merge is aborted (`merge --abort`), the branch
//!    is left as it was, and the next branch is tried (or, with `stop_on_conflict`, none).
//! 3. Move the target to the result `NEW`: `update-ref refs/heads/<target> NEW OLD`, a
//!    compare-and-swap that fails if anyone moved the target meanwhile; or, when the target is
//!    checked out in a (clean) worktree, `merge --ff-only NEW` there, which moves the branch and
//!    that worktree's files together and refuses anything but a fast-forward.
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

/// What to merge.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    target: Option<String>,
    branches: Vec<String>,
    stop_on_conflict: bool,
}

impl MergeRequest {
    /// Merge these branches (names like `auto/x`, without `refs/heads/`), in this order.
    pub fn new<I, S>(branches: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { target: None, branches: branches.into_iter().map(Into::into).collect(), stop_on_conflict: false }
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

        let mut results: Vec<BranchMerge> = Vec::with_capacity(req.branches.len());
        let mut worktree_ready = false;
        let mut moved = false;
        let mut stopped = false;
        for ((name, full), oid) in req.branches.iter().zip(&branch_refs).zip(&branch_oids) {
            let branch = full.strip_prefix("refs/heads/").unwrap_or(name).to_owned();
            let outcome = match oid {
                _ if stopped => BranchOutcome::NotAttempted,
                None => BranchOutcome::Missing,
                Some(_) if contained.contains(full) => BranchOutcome::AlreadyMerged,
                Some(oid) => {
                    if !worktree_ready {
                        self.prepare_integration(&integration, &old)?;
                        worktree_ready = true;
                    }
                    if moved && self.repo.is_ancestor(&integration, oid, "HEAD")? {
                        BranchOutcome::AlreadyMerged
                    } else {
                        let outcome = self.merge_one(&integration, &branch, oid, &target)?;
                        match &outcome {
                            BranchOutcome::Merged => moved = true,
                            BranchOutcome::Conflict { .. } => stopped = req.stop_on_conflict,
                            _ => {}
                        }
                        outcome
                    }
                }
            };
            results.push(BranchMerge { branch, outcome });
        }

        let new = if moved { git.cmd(&integration).args(["rev-parse", "HEAD"]).run()?.text() } else { old.clone() };
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
        Ok(MergeReport { target, old, new, branches: results, update })
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
        let out = self.repo.git.cmd(wt).args(["status", "--porcelain=v1", "-z", "--untracked-files=no"]).run()?;
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
