//! Process groups: how the local executor stops an agent's process and everything it started
//! together.
//!
//! The agent's process is spawned as the leader of a new process group, so one signal to the
//! group reaches its children too (a coding agent typically runs compilers, test runners and
//! language servers). Stopping is polite first: SIGTERM to the group, a grace period for it to
//! exit, then SIGKILL. A process that moves itself into another group or session (`setsid`)
//! escapes this; only a cgroup could contain it.
//!
//! "Is the group gone?" is answered by `kill(-pgid, 0)`, refined on Linux with `/proc`: members
//! that are already zombies (dead, waiting for a parent that may never reap them) do not count,
//! or the grace period would always run out when the orphan reaper is slow.
//!
//! [`GroupGuard`] covers cancellation: the engine cancels an agent by dropping its future, and
//! the guard's `Drop` then sends SIGTERM and leaves a thread to send SIGKILL after the grace
//! period, since `Drop` cannot wait.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

/// Every agent process group started by this process and not yet dealt with: what
/// [`kill_all_agents`] stops when the host must exit at once.
static LIVE: Mutex<BTreeSet<libc::pid_t>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<libc::pid_t>> {
    LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends SIGKILL to every agent process group this process started that may still run, and
/// returns how many there were. For a host that must exit now (a second Ctrl-C): `Drop`
/// handlers will not run, and agents live in their own groups, so the terminal's signal does
/// not reach them.
pub fn kill_all_agents() -> usize {
    let groups = std::mem::take(&mut *live());
    for &pgid in &groups {
        Group { pgid }.signal(libc::SIGKILL);
    }
    groups.len()
}

/// A process group, by the id of its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Group {
    pgid: libc::pid_t,
}

impl Group {
    /// The group led by `pid`; `None` for ids that would address no group or a special one
    /// (0 is the caller's own group, 1 is init).
    pub(crate) fn led_by(pid: u32) -> Option<Self> {
        libc::pid_t::try_from(pid).ok().filter(|p| *p > 1).map(|pgid| Self { pgid })
    }

    /// Sends `signal` to every member; true when at least one existed.
    pub(crate) fn signal(self, signal: libc::c_int) -> bool {
        // SAFETY: kill(2) with a negative pid signals the process group; no memory is involved.
        unsafe { libc::kill(-self.pgid, signal) == 0 }
    }

    /// Does a live (non-zombie) member remain?
    pub(crate) fn alive(self) -> bool {
        // SAFETY: signal 0 only checks for existence and permission.
        let exists = unsafe { libc::kill(-self.pgid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        exists && live_members(self.pgid).is_none_or(|n| n > 0)
    }

    /// Waits until no live member remains (polling; callers bound it with a timeout).
    pub(crate) async fn gone(self) {
        while self.alive() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, up to `grace` for the group to go, then SIGKILL. True when SIGKILL was needed.
    pub(crate) async fn stop(self, grace: Duration) -> bool {
        if !self.alive() || !self.signal(libc::SIGTERM) {
            return false;
        }
        if tokio::time::timeout(grace, self.gone()).await.is_ok() {
            return false;
        }
        self.signal(libc::SIGKILL);
        true
    }
}

/// Stops every agent an earlier fugue process started in `worktree` and left running (that
/// fugue was killed: its agents live in process groups of their own and outlive it), and
/// returns how many process groups it stopped. An agent is known by the `FUGUE_WORKTREE`
/// every agent process gets (inherited by what it starts), so a user's own shell or build in
/// that worktree is never touched; this process's own group is skipped. SIGTERM, up to `grace`,
/// then SIGKILL. Reads `/proc`: elsewhere it finds nothing.
pub async fn stop_leftover_agents(worktree: &std::path::Path, grace: Duration) -> usize {
    use std::os::unix::ffi::OsStrExt as _;
    let mut marker = b"FUGUE_WORKTREE=".to_vec();
    marker.extend_from_slice(worktree.as_os_str().as_bytes());
    marker.push(0);
    // SAFETY: getpgrp(2) cannot fail and touches no memory.
    let own = unsafe { libc::getpgrp() };
    let mut groups: BTreeSet<libc::pid_t> = BTreeSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return 0 };
    for entry in procs.flatten() {
        if !entry.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        // The variable's value is the whole entry: `…\0FUGUE_WORKTREE=<path>\0…`.
        let found = environ.starts_with(&marker) || environ.windows(marker.len() + 1).any(|w| w[0] == 0 && w[1..] == marker[..]);
        if !found {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid pgrp …`, the command may hold spaces and parentheses.
        let pgid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(2)).and_then(|g| g.parse::<libc::pid_t>().ok());
        if let Some(pgid) = pgid.filter(|&g| g > 1 && g != own) {
            groups.insert(pgid);
        }
    }
    let mut stopped = 0;
    for pgid in groups {
        let group = Group { pgid };
        if group.alive() {
            group.stop(grace).await;
            stopped += 1;
        }
    }
    stopped
}

/// Counts the non-zombie processes of group `pgid` from `/proc`; `None` where there is no
/// `/proc` to read.
fn live_members(pgid: libc::pid_t) -> Option<usize> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut live = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut fields = after.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<libc::pid_t>().ok());
        if group == Some(pgid) && !matches!(state, Some("Z" | "X")) {
            live += 1;
        }
    }
    Some(live)
}

/// The name of a signal, for reports ("SIGSEGV").
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {signal}"),
    };
    format!("{name} ({signal})")
}

/// Stops a group when dropped, unless disarmed: the cancellation path.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    group: Option<Group>,
    grace: Duration,
}

impl GroupGuard {
    pub(crate) fn new(group: Option<Group>, grace: Duration) -> Self {
        if let Some(g) = group {
            live().insert(g.pgid);
        }
        Self { group, grace }
    }

    /// The group has been dealt with; dropping the guard does nothing.
    pub(crate) fn disarm(&mut self) {
        if let Some(g) = self.group.take() {
            live().remove(&g.pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let Some(group) = self.group.take() else { return };
        live().remove(&group.pgid);
        if !group.signal(libc::SIGTERM) {
            return;
        }
        let grace = self.grace;
        let killer = std::thread::Builder::new().name("fugue-agent-kill".to_owned()).spawn(move || {
            let deadline = std::time::Instant::now() + grace;
            while group.alive() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if group.alive() {
                group.signal(libc::SIGKILL);
            }
        });
        match killer {
            Ok(handle) => stopping().push(handle),
            // No thread to wait with: do not leave the group running.
            Err(_) => {
                group.signal(libc::SIGKILL);
            }
        }
    }
}

/// The threads stopping groups whose runs were dropped (cancelled): SIGTERM sent, SIGKILL
/// after the grace period if the group is still alive.
fn stopping() -> std::sync::MutexGuard<'static, Vec<std::thread::JoinHandle<()>>> {
    static STOPPING: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> = std::sync::Mutex::new(Vec::new());
    STOPPING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits until every agent group stopped by a cancelled run is gone (at most its grace period,
/// then it is killed): a run that stopped agents does not end while they still work.
pub fn wait_for_stopped_agents() {
    let handles = std::mem::take(&mut *stopping());
    for h in handles {
        let _ = h.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_special_groups() {
        assert_eq!(Group::led_by(0), None);
        assert_eq!(Group::led_by(1), None);
        assert_eq!(Group::led_by(u32::MAX), None);
        assert!(Group::led_by(4242).is_some());
    }

    #[test]
    fn kill_all_stops_registered_groups() {
        use std::os::unix::process::CommandExt as _;
        let mut child = std::process::Command::new("sleep").arg("30").process_group(0).spawn().expect("spawn sleep");
        let mut guard = GroupGuard::new(Group::led_by(child.id()), Duration::from_secs(5));
        assert!(kill_all_agents() >= 1);
        let status = child.wait().expect("wait");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
        guard.disarm();
    }

    #[test]
    fn names_signals() {
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL (9)");
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV (11)");
        assert_eq!(signal_name(77), "signal 77");
    }
}
