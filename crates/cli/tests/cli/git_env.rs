//! fugue's git commands go to the repository fugue runs in, whatever the environment says, and
//! merges take the checkout-free path unless git is too old — in which case they still work,
//! through the integration worktree, and the run says so.
//!
//! A run is started the way a hook or a script inside another repository would start it: with
//! `GIT_DIR`, `GIT_WORK_TREE` and `GIT_INDEX_FILE` pointing at that other repository. Every git
//! process fugue starts goes through the one runner of `fugue_core::git`, which removes them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::runs::{merges_of, repo};
use crate::{git, temp};

/// Three tasks, one after another one, with the default gates (boundary and heuristic review,
/// which reads the worktree's diff with git).
const PLAN: &str = r#"version: 1
base: main
parallelization: { max_agents: 2, min_tasks: 2 }
agents:
  quick: { command: ["sh", "-c", "mkdir -p src/$FUGUE_TASK_ID && echo done > src/$FUGUE_TASK_ID/out.txt"] }
tasks:
  - { id: a, agent: quick, modifies: [src/a/**] }
  - { id: b, agent: quick, modifies: [src/b/**] }
  - { id: c, agent: quick, modifies: [src/c/**], depends_on: [a] }
"#;

/// Everything of a repository a stray git command could change: refs, HEAD, index bytes,
/// object count, worktrees, config, `info/exclude`, the files in its work tree.
fn fingerprint(repo: &Path) -> String {
    let dotgit = repo.join(".git");
    let read = |p: PathBuf| std::fs::read(&p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_else(|_| "<none>".to_owned());
    let mut files: Vec<String> = walk(repo).into_iter().filter(|p| !p.starts_with(".git/")).collect();
    files.sort();
    format!(
        "refs:\n{}\nHEAD: {}\nindex: {:?}\nobjects:\n{}\nworktrees:\n{}\nconfig:\n{}\nexclude:\n{}\nfiles: {files:?}",
        git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"]),
        read(dotgit.join("HEAD")),
        std::fs::read(dotgit.join("index")).map(|b| b.len()),
        git(repo, &["count-objects", "-v"]),
        git(repo, &["worktree", "list", "--porcelain"]),
        read(dotgit.join("config")),
        read(dotgit.join("info/exclude")),
    )
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).map(|r| r.to_string_lossy().into_owned()).unwrap_or_default();
            if path.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(path);
            } else {
                out.push(rel);
            }
        }
    }
    out
}

/// `fugue run plan.yaml` from the repository's root, with extra environment.
fn run_with(repo: &Path, env: &[(&str, String)]) -> crate::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fugue"));
    cmd.args(["run", "plan.yaml"]).current_dir(repo).env("NO_COLOR", "1").env_remove("FUGUE_PLUGIN_PATH").envs(crate::GIT_IDENTITY);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run fugue").into()
}

fn assert_merged_once_each(repo: &Path) {
    for task in ["a", "b", "c"] {
        assert_eq!(merges_of(repo, task), 1, "auto/{task} merged exactly once");
        assert_eq!(git(repo, &["show", &format!("main:src/{task}/out.txt")]), "done");
        assert_eq!(std::fs::read_to_string(repo.join(format!("src/{task}/out.txt"))).expect("in the checkout"), "done\n");
    }
    // The checked-out main was fast-forwarded: its index and files match the new tip.
    assert_eq!(git(repo, &["status", "--porcelain", "--untracked-files=no"]), "");
}

#[test]
fn git_dir_work_tree_and_index_pointing_at_another_repository_change_nothing_there() {
    let dir = temp();
    // The agents commit their work themselves, unconfined: one that inherited `GIT_DIR` would
    // commit into the other repository.
    let committing = PLAN.replace(
        r#"echo done > src/$FUGUE_TASK_ID/out.txt"] }"#,
        r#"echo done > src/$FUGUE_TASK_ID/out.txt && git add -A && git -c user.name=agent -c user.email=agent@example.invalid commit -qm agent"], confine: off }"#,
    );
    assert_ne!(committing, PLAN);
    let repo = repo(dir.path(), &committing);
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    git(&other, &["init", "-q"]);
    std::fs::write(other.join("theirs.txt"), "theirs\n").expect("write");
    git(&other, &["add", "-A"]);
    git(&other, &["commit", "-qm", "the other repository"]);
    let before = fingerprint(&other);

    let env = [
        ("GIT_DIR", other.join(".git").display().to_string()),
        ("GIT_WORK_TREE", other.display().to_string()),
        ("GIT_INDEX_FILE", other.join(".git/index").display().to_string()),
    ];
    let out = run_with(&repo, &env);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("note: git"), "this git merges without a checkout: {}", out.stderr);
    assert_merged_once_each(&repo);
    assert_eq!(fingerprint(&other), before, "the other repository is untouched");
    assert!(!other.join(".claude").exists(), "no state dir in the other repository");
    // The runtime state was excluded in the right repository.
    let exclude = std::fs::read_to_string(repo.join(".git/info/exclude")).expect("exclude");
    assert!(exclude.contains("/.claude/fugue/"), "{exclude}");
    // Merges took the checkout-free path: no integration worktree was made.
    let worktrees = git(&repo, &["worktree", "list", "--porcelain"]);
    assert!(!worktrees.contains("/integration"), "{worktrees}");
    assert_eq!(fugue_validate(&repo), 0);
}

fn fugue_validate(repo: &Path) -> i32 {
    crate::fugue(repo, &["validate"]).code
}

/// The real git, found on PATH the way fugue finds it.
fn real_git() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("git")).find(|p| p.is_file()).expect("git on PATH")
}

/// A `git` first on PATH that logs every command line to `git.log` and runs the real git;
/// with `version` it calls itself that version. Returns the PATH and the log.
fn logging_git(dir: &Path, version: Option<&str>) -> (String, PathBuf) {
    let bin = dir.join("wrapped-git");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let log = dir.join("git.log");
    let fake = version
        .map_or(String::new(), |v| format!("for a in \"$@\"; do [ \"$a\" = --version ] && {{ echo 'git version {v}'; exit 0; }}; done\n"));
    let script = format!("#!/bin/sh\necho \"$*\" >> '{}'\n{fake}exec '{}' \"$@\"\n", log.display(), real_git().display());
    let wrapper = bin.join("git");
    std::fs::write(&wrapper, script).expect("write");
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())))
        .expect("PATH");
    (path.to_string_lossy().into_owned(), log)
}

#[test]
fn merges_take_the_checkout_free_path() {
    let dir = temp();
    let repo = repo(dir.path(), PLAN);
    let (path, log) = logging_git(dir.path(), None);
    let out = run_with(&repo, &[("PATH", path)]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_merged_once_each(&repo);
    let log = std::fs::read_to_string(log).expect("git log");
    assert_eq!(log.matches(" merge-tree --write-tree ").count(), 3, "one merge-tree per task:\n{log}");
    assert_eq!(log.matches(" commit-tree ").count(), 3, "{log}");
    assert!(!log.contains(" merge --no-ff "), "no merge in a checkout:\n{log}");
    assert!(!log.contains("/integration"), "no integration worktree:\n{log}");
}

#[test]
fn a_git_older_than_2_38_merges_in_the_integration_worktree_and_says_so() {
    let dir = temp();
    let repo = repo(dir.path(), PLAN);
    let (path, log) = logging_git(dir.path(), Some("2.37.0"));
    let out = run_with(&repo, &[("PATH", path)]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(
            "note: git 2.37.0 has no `merge-tree --write-tree` (git 2.38.0 and later do): merges check out an integration worktree"
        ),
        "{}",
        out.stderr
    );
    assert_merged_once_each(&repo);
    let log = std::fs::read_to_string(log).expect("git log");
    assert_eq!(log.matches(" merge --no-ff ").count(), 3, "the fallback merged in the integration worktree:\n{log}");
    assert!(!log.contains("merge-tree"), "{log}");
    assert_eq!(fugue_validate(&repo), 0);
}
