//! Builders shared by the engine's unit tests: ids, journal records at chosen times, git.

use std::path::Path;

use fugue_core::TaskId;

use crate::events::Event;
use crate::journal::Record;

pub(crate) fn id(s: &str) -> TaskId {
    TaskId::new(s).expect("id")
}

/// A record `ms` milliseconds after a fixed instant.
pub(crate) fn rec(seq: u64, ms: u64, event: Event) -> Record {
    let ts = fugue_core::time::rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_000 + ms));
    Record { seq, ts, event }
}

/// Runs git in `dir` with a fixed identity; panics with its stderr on failure; returns stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
