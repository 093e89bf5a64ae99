//! Running one gate command, bounded in time and in memory.
//!
//! A command is started without a shell, in the checkout, as the leader of a new process group
//! so that a timeout takes down what it started too (test runners fork compilers and servers).
//! On timeout the group gets SIGTERM, a grace period, then SIGKILL; when the leader exits on
//! its own, whatever it left running in its group is stopped the same way, so no gate outlives
//! its check. Dropping the future (the engine cancelling QA) kills the group from `Drop`.
//!
//! stdout and stderr are read concurrently. Every complete line goes through the test-count
//! [`Scanner`] *before* the output is capped, so a summary printed in the middle of megabytes
//! of output still counts; the capture itself keeps the head and the tail within a byte budget.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fugue_core::TestCounts;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::counts::Scanner;

/// Longest line handed to the scanner; the rest of a longer line is ignored.
const MAX_LINE: usize = 8 * 1024;

/// What to run.
#[derive(Debug)]
pub(crate) struct Invocation<'a> {
    pub(crate) argv: &'a [String],
    pub(crate) cwd: &'a Path,
    pub(crate) env: &'a BTreeMap<String, String>,
    pub(crate) timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) output_cap: usize,
}

/// How a command ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) exit_code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) timed_out: bool,
    pub(crate) output: String,
    pub(crate) counts: Option<TestCounts>,
    pub(crate) duration: Duration,
}

impl Finished {
    pub(crate) fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// Why a command could not be started: always the environment's problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpawnError {
    NotFound,
    NotExecutable,
    BadDirectory,
    Other(String),
}

impl SpawnError {
    pub(crate) fn describe(&self, program: &str, cwd: &Path) -> String {
        match self {
            SpawnError::NotFound => format!("program `{program}` was not found: install it or put it on PATH"),
            SpawnError::NotExecutable => format!("program `{program}` is not executable"),
            SpawnError::BadDirectory => format!("the checkout {} is not a directory", cwd.display()),
            SpawnError::Other(e) => format!("failed to start `{program}`: {e}"),
        }
    }
}

/// The head and tail of a byte stream within a budget.
#[derive(Debug)]
struct Capture {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    total: u64,
}

impl Capture {
    fn new(cap: usize) -> Self {
        let head_cap = cap / 4;
        Self { head: Vec::new(), head_cap, tail: VecDeque::new(), tail_cap: cap - head_cap, total: 0 }
    }

    fn push(&mut self, mut chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let n = room.min(chunk.len());
            self.head.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
        }
        if chunk.len() > self.tail_cap {
            chunk = &chunk[chunk.len() - self.tail_cap..];
        }
        self.tail.extend(chunk);
        let excess = self.tail.len().saturating_sub(self.tail_cap);
        self.tail.drain(..excess);
    }

    fn text(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        let dropped = self.total - (self.head.len() + self.tail.len()) as u64;
        if dropped > 0 {
            out.push_str(&format!("\n[… {dropped} bytes of output dropped …]\n"));
        }
        let (a, b) = self.tail.as_slices();
        out.push_str(&String::from_utf8_lossy(&[a, b].concat()));
        out
    }
}

#[derive(Debug)]
struct Collected {
    capture: Capture,
    scanner: Scanner,
}

fn lock(state: &Mutex<Collected>) -> std::sync::MutexGuard<'_, Collected> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn pump(reader: Option<impl AsyncRead + Unpin + Send + 'static>, state: Arc<Mutex<Collected>>) -> Option<JoinHandle<()>> {
    let mut reader = reader?;
    Some(tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut line: Vec<u8> = Vec::new();
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut st = lock(&state);
            st.capture.push(&buf[..n]);
            for &b in &buf[..n] {
                if b == b'\n' {
                    st.scanner.line(&String::from_utf8_lossy(&line));
                    line.clear();
                } else if line.len() < MAX_LINE {
                    line.push(b);
                }
            }
        }
        if !line.is_empty() {
            lock(&state).scanner.line(&String::from_utf8_lossy(&line));
        }
    }))
}

/// A process group, by its leader's pid.
#[derive(Debug, Clone, Copy)]
struct Group(libc::pid_t);

impl Group {
    fn led_by(pid: u32) -> Option<Self> {
        libc::pid_t::try_from(pid).ok().filter(|p| *p > 1).map(Group)
    }

    fn signal(self, signal: libc::c_int) -> bool {
        // SAFETY: kill(2) on a negative pid signals a process group; no memory is involved.
        unsafe { libc::kill(-self.0, signal) == 0 }
    }

    /// A live (non-zombie) member remains. Zombies are skipped because an orphan reaper that
    /// is slow (or absent, in some containers) would otherwise stretch every stop to the grace.
    fn alive(self) -> bool {
        // SAFETY: signal 0 only checks for existence.
        let exists = unsafe { libc::kill(-self.0, 0) } == 0;
        exists && live_members(self.0).is_none_or(|n| n > 0)
    }

    async fn stop(self, grace: Duration) {
        if !self.alive() || !self.signal(libc::SIGTERM) {
            return;
        }
        let deadline = Instant::now() + grace;
        while self.alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if self.alive() {
            self.signal(libc::SIGKILL);
        }
    }
}

fn live_members(pgid: libc::pid_t) -> Option<usize> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut live = 0;
    for entry in entries.flatten() {
        if !entry.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
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

/// Kills the group when dropped (cancellation) unless disarmed.
#[derive(Debug)]
struct Guard(Option<Group>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(group) = self.0.take() {
            group.signal(libc::SIGKILL);
        }
    }
}

/// Output readers, aborted when dropped so a cancelled run leaves no task behind.
#[derive(Debug)]
struct Pumps(Vec<JoinHandle<()>>);

impl Drop for Pumps {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

/// Runs `inv` to completion or timeout.
pub(crate) async fn run(inv: &Invocation<'_>) -> Result<Finished, SpawnError> {
    let started = Instant::now();
    let Some((program, args)) = inv.argv.split_first() else {
        return Err(SpawnError::Other("the command is empty".to_owned()));
    };
    if !inv.cwd.is_dir() {
        return Err(SpawnError::BadDirectory);
    }
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(inv.cwd)
        .envs(inv.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SpawnError::NotFound,
        std::io::ErrorKind::PermissionDenied => SpawnError::NotExecutable,
        _ => SpawnError::Other(e.to_string()),
    })?;
    let group = child.id().and_then(Group::led_by);
    let mut guard = Guard(group);
    let state = Arc::new(Mutex::new(Collected { capture: Capture::new(inv.output_cap.max(16)), scanner: Scanner::default() }));
    let mut pumps = Pumps(
        [pump(child.stdout.take(), Arc::clone(&state)), pump(child.stderr.take(), Arc::clone(&state))].into_iter().flatten().collect(),
    );

    let (status, timed_out) = match tokio::time::timeout(inv.timeout, child.wait()).await {
        Ok(waited) => (waited.ok(), false),
        Err(_) => {
            if let Some(g) = group {
                g.stop(inv.grace).await;
            }
            let _ = child.start_kill();
            (child.wait().await.ok(), true)
        }
    };
    if let Some(g) = group {
        g.stop(inv.grace).await;
    }
    guard.0 = None;
    // The group is gone so the pipes close; a process that escaped it could hold them open.
    let drained = tokio::time::timeout(inv.grace, async {
        for handle in &mut pumps.0 {
            let _ = handle.await;
        }
    })
    .await
    .is_ok();
    drop(pumps);
    let st = lock(&state);
    let mut output = st.capture.text();
    if !drained {
        output.push_str("\n[fugue: stopped reading output held open by a process outside the command's group]\n");
    }
    Ok(Finished {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)),
        timed_out,
        output,
        counts: st.scanner.counts(),
        duration: started.elapsed(),
    })
}
