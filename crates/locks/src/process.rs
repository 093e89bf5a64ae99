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
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
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
}
