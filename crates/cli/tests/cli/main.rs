//! End-to-end tests of the `fugue` binary: one test binary, a temp dir per test.

mod bad_plans;
mod init;
mod schema;

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one run of `fugue` produced.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
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
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh temp dir for one test.
pub(crate) fn temp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fugue-cli-test").tempdir().expect("temp dir")
}

/// The directory of checked-in fixtures.
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}
