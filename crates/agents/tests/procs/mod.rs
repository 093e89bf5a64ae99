//! Process helpers shared by the command-agent and executor tests: waiting for pids to die and
//! for files the scripted processes write.

use std::path::Path;
use std::time::Duration;

/// Is the process gone (no such pid, or a zombie nobody reaped yet)?
pub(crate) fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).is_some_and(|s| s == "Z" || s == "X"),
    }
}

/// Waits (bounded) for a process to die: SIGKILL is delivered asynchronously.
pub(crate) fn wait_dead(pid: i32) -> bool {
    for _ in 0..300 {
        if is_dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

pub(crate) fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().parse().expect("pid")
}

/// Polls for a file a process writes (bounded).
pub(crate) async fn wait_for_file(path: &Path) {
    for _ in 0..500 {
        if std::fs::read_to_string(path).is_ok_and(|s| s.ends_with('\n')) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never appeared", path.display());
}
