//! End-to-end tests of the `fugue` binary: one test binary, a temp dir per test.

mod agents;
mod bad_inputs;
mod bad_plans;
mod budgets;
mod confine;
mod demo;
mod drivers;
mod faults;
mod git_env;
mod html;
mod init;
mod more_drivers;
mod pool;
mod runs;
mod schema;
mod secrets;
mod slurm;
mod warm_qa;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Merge commits need an identity; tests must not depend on the machine's git config.
pub(crate) const GIT_IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "fugue test"),
    ("GIT_AUTHOR_EMAIL", "t@fugue.invalid"),
    ("GIT_COMMITTER_NAME", "fugue test"),
    ("GIT_COMMITTER_EMAIL", "t@fugue.invalid"),
];

/// What one run of `fugue` produced.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `fugue` with `args` in `dir`.
pub(crate) fn fugue(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_fugue"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("FUGUE_PLUGIN_PATH")
        .output()
        .expect("run fugue");
    out.into()
}

/// `fugue run plan.yaml` in `repo`, as a user runs it (with the tests' git identity).
pub(crate) fn run_plan(repo: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_fugue"))
        .args(["run", "plan.yaml"])
        .current_dir(repo)
        .env("NO_COLOR", "1")
        .envs(GIT_IDENTITY)
        .output()
        .expect("run fugue");
    out.into()
}

/// A fresh temp dir for one test.
pub(crate) fn temp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fugue-cli-test").tempdir().expect("temp dir")
}

/// The directory of checked-in fixtures.
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// `git` in `dir`; panics with git's stderr when it fails.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = git_try(dir, args);
    assert!(ok, "git {args:?} in {}: {out}", dir.display());
    out
}

/// `git` in `dir`: success and stdout (or stderr when it failed).
pub(crate) fn git_try(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    let text = if out.status.success() { &out.stdout } else { &out.stderr };
    (out.status.success(), String::from_utf8_lossy(text).trim().to_owned())
}
