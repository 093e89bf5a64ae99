//! Is a process still alive? The test behind stale-lock recovery.

/// True when a process with `pid` exists (it may belong to another user). A zombie counts as
/// alive until its parent reaps it. On non-Unix platforms every pid counts as alive, so no lock
/// is ever reclaimed there by mistake.
pub fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // pid 0 and negative values address process groups, never one process.
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        if pid <= 0 {
            return false;
        }
        // SAFETY: `kill` with signal 0 performs only the existence and permission checks; it
        // sends nothing and touches no memory of ours.
        let rc = unsafe { libc::kill(pid, 0) };
        let exists = rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
        // A killed process its parent has not reaped yet is a zombie: it still answers
        // `kill(pid, 0)` but will never release anything (seen: `kill -9` of a run, then
        // `fugue resume` at once found the dead run's locks "live").
        exists && !zombie(pid)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Whether `/proc` says `pid` is a zombie (Linux; elsewhere never).
#[cfg(unix)]
fn zombie(pid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S …`: the command may hold spaces and parentheses, the state follows the last `)`.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|state| state == "Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_is_alive_and_reaped_child_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!pid_alive(pid), "a reaped child's pid is gone");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_unreaped_dead_child_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        // Wait for it to exit without reaping it: it stays a zombie until `wait`.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !zombie(libc::pid_t::try_from(pid).expect("pid")) {
            assert!(std::time::Instant::now() < deadline, "the child never became a zombie");
            std::thread::yield_now();
        }
        assert!(!pid_alive(pid), "a zombie holds nothing");
        child.wait().expect("reap");
    }
}
