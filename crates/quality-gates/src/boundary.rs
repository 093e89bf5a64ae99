//! The boundary gate: did the task stay inside what it declared?
//!
//! Three rules, checked path by path over every path the task changed:
//!
//! 1. the path matches the task's `modifies` (a deletion counts as a change);
//! 2. during a parallel phase, the path is not under the plan's `common` paths, which are
//!    read-only while other agents run against them;
//! 3. a changed path that is a symlink does not point outside the checkout, nor into its
//!    `.git`, lexically (`..` climbing above the root, any absolute target — it names a place
//!    on one machine, not in the commit) or once resolved (a chain through other links).
//!    Symlinks the task did not touch are not its business.
//!
//! Each offending path gives one critical finding naming every rule it breaks, so the agent's
//! feedback lists exactly which files to move or revert. The same function
//! ([`boundary_findings`]) serves the gate (paths changed on the branch, in the fresh
//! checkout) and QA's first look at the agent's worktree (uncommitted and untracked files),
//! where catching an out-of-scope file before it is committed keeps it off the branch.

use std::path::{Component, Path};
use std::time::Instant;

use fugue_core::{Finding, GateContext, GateError, GateReport, GateVerdict, QualityGate, Scope, Severity, async_trait};

use crate::elapsed_ms;

/// The gate's name in reports.
pub const BOUNDARY_GATE: &str = "boundary";

/// The always-on boundary gate.
#[derive(Debug, Clone, Copy)]
pub struct BoundaryGate {
    parallel: bool,
}

impl BoundaryGate {
    /// The gate for a task of a parallel phase (`common` paths read-only) or not.
    pub fn new(parallel: bool) -> Self {
        Self { parallel }
    }
}

#[async_trait]
impl QualityGate for BoundaryGate {
    fn name(&self) -> &str {
        BOUNDARY_GATE
    }

    async fn check(&self, ctx: &GateContext) -> Result<GateReport, GateError> {
        let started = Instant::now();
        let findings = boundary_findings(&ctx.changed_files, &ctx.checkout, &ctx.modifies, &ctx.common, self.parallel);
        let mut report = GateReport::pass(BOUNDARY_GATE);
        if !findings.is_empty() {
            report.verdict = GateVerdict::Fail;
        }
        report.findings = findings;
        report.duration_ms = elapsed_ms(started);
        Ok(report)
    }

    /// The changed paths and, for symlinks among them, their targets: the agent's worktree
    /// holds exactly what was committed for those paths.
    fn needs_fresh_checkout(&self) -> bool {
        false
    }
}

/// One critical finding per path of `paths` (repo-relative, as git prints them, under `root`)
/// that breaks a boundary rule.
pub fn boundary_findings(paths: &[String], root: &Path, modifies: &Scope, common: &Scope, parallel: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    let scope_text = if modifies.is_empty() {
        "the task declares no `modifies`".to_owned()
    } else {
        format!("allowed: {}", modifies.patterns().iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "))
    };
    for path in paths {
        let mut reasons = Vec::new();
        if !modifies.matches(path) {
            reasons.push(format!("it is outside the task's `modifies` ({scope_text}): revert it or ask for the scope to be widened"));
        }
        if parallel && common.matches(path) {
            reasons.push("it is under the plan's `common` paths, which are read-only during a parallel phase: revert it".to_owned());
        }
        if let Some(target) = escaping_symlink(root, path) {
            reasons.push(format!(
                "it is a symlink to `{target}`, outside the checkout: commit the file itself or a link inside the repository"
            ));
        }
        if !reasons.is_empty() {
            findings.push(Finding {
                severity: Severity::Critical,
                file: Some(path.clone()),
                line: None,
                message: format!("`{path}` breaks the task's boundary: {}", reasons.join("; ")),
            });
        }
    }
    findings
}

/// Where the link at `parent/target` leads, as components under the root; `None` when it
/// leaves the root.
fn follow(parent: &[String], target: &Path) -> Option<Vec<String>> {
    // An absolute target names a place on one machine: even one inside this checkout is
    // outside every other checkout of the commit (QA's, a teammate's), so it always escapes.
    if target.is_absolute() {
        return None;
    }
    let mut out: Vec<String> = parent.to_vec();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    Some(out)
}

/// The target of `root/rel` when it is a symlink whose chain of links leads outside `root`.
fn escaping_symlink(root: &Path, rel: &str) -> Option<String> {
    let full = root.join(rel);
    if !std::fs::symlink_metadata(&full).ok()?.file_type().is_symlink() {
        return None;
    }
    let shown = std::fs::read_link(&full).ok()?.display().to_string();
    let canonical_root = std::fs::canonicalize(root).ok();
    let mut current: Vec<String> = rel.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_owned).collect();
    // Follow the chain lexically (it may end dangling, where canonicalize cannot help); a loop
    // stops after 40 hops like the kernel's limit and stays inside.
    for _ in 0..40 {
        let here = current.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let is_link = std::fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            break;
        }
        let target = std::fs::read_link(&here).ok()?;
        let parent = &current[..current.len().saturating_sub(1)];
        match follow(parent, &target) {
            // Git's own metadata counts as outside: a write through such a link edits hooks
            // or config, which is code execution waiting to happen.
            Some(next) if next.first().is_some_and(|c| c == ".git") => return Some(shown),
            Some(next) => current = next,
            None => return Some(shown),
        }
    }
    // Links in the directories along the way are resolved by the kernel.
    match (std::fs::canonicalize(&full), canonical_root) {
        (Ok(resolved), Some(root)) if !resolved.starts_with(&root) || resolved.starts_with(root.join(".git")) => Some(shown),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use fugue_core::Pattern;

    use super::*;

    fn scope(patterns: &[&str]) -> Scope {
        patterns.iter().map(|p| Pattern::parse(p).expect("pattern")).collect()
    }

    #[test]
    fn scope_and_common_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<String> = ["src/a/x.rs", "src/b/y.rs", "common/t.rs"].map(str::to_owned).to_vec();
        let modifies = scope(&["src/a/**", "common/**"]);
        let common = scope(&["common/**"]);
        let f = boundary_findings(&paths, dir.path(), &modifies, &common, true);
        let files: Vec<_> = f.iter().filter_map(|f| f.file.as_deref()).collect();
        assert_eq!(files, ["src/b/y.rs", "common/t.rs"]);
        assert!(f.iter().all(|f| f.severity == Severity::Critical));
        assert!(f[0].message.contains("outside the task's `modifies`"), "{}", f[0].message);
        assert!(f[1].message.contains("read-only during a parallel phase"), "{}", f[1].message);
        // Serial phases may touch common paths.
        assert_eq!(boundary_findings(&paths, dir.path(), &modifies, &common, false).len(), 1);
        let none = boundary_findings(&paths[..1], dir.path(), &Scope::default(), &common, false);
        assert!(none[0].message.contains("declares no `modifies`"));
    }

    #[test]
    fn symlinks_pointing_outside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/deep")).expect("mkdir");
        std::fs::write(root.join("src/file.txt"), "x").expect("write");
        let link = |name: &str, target: &str| std::os::unix::fs::symlink(target, root.join(name)).expect("symlink");
        link("src/deep/ok", "../file.txt");
        link("src/deep/up", "../../../outside");
        link("src/deep/parent", "../..");
        link("src/abs", "/etc/passwd");
        link("src/chain", "deep/up");
        link("src/chain2", "deep/parent");
        link("src/loop", "loop");
        link("src/dangling", "nothing-here");
        let paths: Vec<String> = [
            "src/deep/ok",
            "src/deep/up",
            "src/abs",
            "src/chain",
            "src/deep/parent",
            "src/chain2",
            "src/loop",
            "src/dangling",
            "src/file.txt",
        ]
        .map(str::to_owned)
        .to_vec();
        let modifies = scope(&["src/**"]);
        let f = boundary_findings(&paths, root, &modifies, &Scope::default(), true);
        let files: Vec<_> = f.iter().filter_map(|f| f.file.as_deref()).collect();
        assert_eq!(files, ["src/deep/up", "src/abs", "src/chain"], "{f:?}");
        assert!(f[1].message.contains("symlink to `/etc/passwd`"));
    }
}
