//! Running `git` as a process.
//!
//! Every git call of the crate goes through [`Git::cmd`]: it runs `git -C <dir> …` with the
//! environment variables that would redirect git elsewhere removed (fugue may itself run from
//! a git hook, where `GIT_DIR` and `GIT_INDEX_FILE` point at the caller's repository) and with
//! terminal prompts off. A failure becomes [`PoolError::Git`] naming the command, the
//! directory, the exit code and the tail of stderr, so a message is enough to reproduce it by
//! hand. Calls are logged at `debug` with their duration: the number of git processes is what
//! makes a pool fast or slow, so it should be visible.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::PoolError;

/// Variables that make git look at another repository, index or work tree than `-C` says.
const REDIRECTING_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// How much of stderr an error keeps.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 2000;

/// The git program.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    program: OsString,
}

impl Default for Git {
    fn default() -> Self {
        Self { program: OsString::from("git") }
    }
}

impl Git {
    /// A `git -C dir` command.
    pub(crate) fn cmd(&self, dir: &Path) -> GitCmd {
        let mut cmd = Command::new(&self.program);
        // Merges and bookkeeping commits must not each spawn `git maintenance run --auto`
        // (several a task); the user's next git command maintains the repository.
        cmd.arg("-C").arg(dir).args(["-c", "maintenance.auto=false"]);
        for var in REDIRECTING_VARS {
            cmd.env_remove(var);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        GitCmd { cmd, shown: vec!["git".to_owned()], dir: dir.to_path_buf(), stdin: None }
    }
}

/// One git invocation being built.
#[derive(Debug)]
pub(crate) struct GitCmd {
    cmd: Command,
    shown: Vec<String>,
    dir: PathBuf,
    stdin: Option<Vec<u8>>,
}

/// What a finished git process left.
#[derive(Debug)]
pub(crate) struct GitOutput {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl GitOutput {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Stdout as text, trailing newline removed.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim_end_matches(['\n', '\r']).to_owned()
    }

    /// Stdout split on NUL (for `-z` output), empty fields dropped.
    pub(crate) fn nul_fields(&self) -> Vec<String> {
        self.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()).map(|f| String::from_utf8_lossy(f).into_owned()).collect()
    }
}

impl GitCmd {
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        let arg = arg.as_ref();
        self.shown.push(arg.to_string_lossy().into_owned());
        self.cmd.arg(arg);
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Feeds `bytes` to the process's standard input.
    pub(crate) fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// The command as a person would type it (without `-C`).
    pub(crate) fn shown(&self) -> String {
        self.shown.join(" ")
    }

    /// Runs the command whatever its exit code; only failing to start it is an error.
    pub(crate) fn output(mut self) -> Result<GitOutput, PoolError> {
        let started = Instant::now();
        if self.stdin.is_some() {
            self.cmd.stdin(Stdio::piped());
        }
        let mut child = self.cmd.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => PoolError::GitMissing { source },
            _ => PoolError::Spawn { command: self.shown(), source },
        })?;
        if let Some(bytes) = self.stdin.take() {
            // The input is small (a few ref names); write it before reading, then close.
            if let Some(mut pipe) = child.stdin.take() {
                pipe.write_all(&bytes).map_err(|source| PoolError::Spawn { command: self.shown(), source })?;
            }
        }
        let out = child.wait_with_output().map_err(|source| PoolError::Spawn { command: self.shown(), source })?;
        tracing::debug!(command = %self.shown(), dir = %self.dir.display(), code = ?out.status.code(), elapsed_ms = started.elapsed().as_millis() as u64, "git");
        Ok(GitOutput { code: out.status.code(), stdout: out.stdout, stderr: out.stderr })
    }

    /// Runs the command and requires exit code 0.
    pub(crate) fn run(self) -> Result<GitOutput, PoolError> {
        let shown = self.shown();
        let dir = self.dir.clone();
        let out = self.output()?;
        if out.success() { Ok(out) } else { Err(failure(shown, dir, &out)) }
    }

    /// Runs a yes/no command: exit 0 is yes, exit 1 is no, anything else an error.
    pub(crate) fn test(self) -> Result<bool, PoolError> {
        let shown = self.shown();
        let dir = self.dir.clone();
        let out = self.output()?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(failure(shown, dir, &out)),
        }
    }
}

/// The error for a git command that exited non-zero.
pub(crate) fn failure(command: String, dir: PathBuf, out: &GitOutput) -> PoolError {
    PoolError::Git { command, dir, code: out.code, stderr: tail(&out.stderr) }
}

/// The last lines of a process's output, for error messages.
pub(crate) fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    let joined = lines[start..].join("\n");
    if joined.len() <= TAIL_BYTES {
        return joined;
    }
    let mut cut = joined.len() - TAIL_BYTES;
    while !joined.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &joined[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        let many: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(many.as_bytes());
        assert!(t.starts_with("line 80") && t.ends_with("line 99"), "{t}");
        let long = "é".repeat(3000);
        let t = tail(long.as_bytes());
        assert!(t.starts_with('…') && t.len() <= TAIL_BYTES + 4);
        assert_eq!(tail(b"  \n"), "");
    }

    #[test]
    fn failure_names_command_and_code() {
        let dir = std::env::temp_dir();
        let err = Git::default().cmd(&dir).args(["rev-parse", "--verify", "refs/heads/definitely-not-here"]).run();
        // Outside a repository or with a missing ref: either way exit 128 with a message.
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("git rev-parse --verify refs/heads/definitely-not-here"), "{msg}");
        assert!(msg.contains("exit code 128"), "{msg}");
    }
}
