//! The one way fugue runs `git`.
//!
//! Every git process fugue starts — the pool's, the merge coordinator's, QA's, the engine's and
//! `fugue demo`'s — is built by [`Git::cmd`]: `git -C <dir> -c maintenance.auto=false
//! -c core.quotepath=off -c color.ui=false …`, with the variables in [`SCRUBBED_ENV`] removed,
//! terminal prompts off, messages in the C locale and stdin closed. One list matters because
//! fugue is often started from inside git — a hook, `git rebase --exec`, an agent's own shell —
//! where `GIT_DIR`, `GIT_WORK_TREE` or `GIT_INDEX_FILE` point at some other repository; a single
//! runner that forgot one of them would commit, merge or read refs there instead of in `-C`'s
//! repository.
//!
//! A command runs synchronously ([`GitCommand::output`], [`GitCommand::run`],
//! [`GitCommand::test`]) or, with the `tokio` feature, asynchronously with an optional time limit
//! ([`GitCommand::output_async`] and friends); both share the builder and the error type, so a
//! failure reads the same wherever it happened: [`GitError`] names the command as a person would
//! type it, the directory, the exit code and the tail of stderr. Questions asked per task (what
//! commit a branch is at) go to one long-lived `git cat-file --batch-check` per repository
//! (`RevResolver`, `tokio` feature): git answers, without a process per question.
//!
//! The module also owns the one writer of `info/exclude` ([`exclude_add`], [`exclude_remove`]),
//! the file both the engine (runtime state) and the pool (its slots) keep their lines in, and
//! the installed git's version ([`Git::version`]), which decides how merges are done.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Variables that make git look at another repository, index, object store or work tree than
/// `-C` says. Removed from every git process fugue starts.
pub const SCRUBBED_ENV: &[&str] = &[
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

/// The identity of fugue's own bookkeeping commits.
pub const FUGUE_NAME: &str = "fugue";
/// The e-mail of fugue's own bookkeeping commits.
pub const FUGUE_EMAIL: &str = "fugue@localhost";

/// How much of stderr an error keeps.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 2000;

/// A git command that could not be run or did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// `git` could not be started at all.
    #[error("failed to run git: it is not installed or not on PATH ({source})")]
    NotInstalled {
        /// The spawn error.
        source: std::io::Error,
    },
    /// The process could not be started, fed or waited for.
    #[error("failed to run `{command}` in {}: {source}", dir.display())]
    Spawn {
        /// The command line (without `-C`).
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// git ran and exited non-zero (or was killed by a signal).
    #[error("failed to run `{command}` in {} (exit code {code}): {stderr}", dir.display(), code = code.map_or("none: killed by a signal".to_owned(), |c| c.to_string()))]
    Failed {
        /// The command line (without `-C`).
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// Its exit code (none when killed by a signal).
        code: Option<i32>,
        /// The tail of its stderr.
        stderr: String,
    },
    /// git ran longer than its time limit and was killed.
    #[error("failed to run `{command}` in {}: timed out after {after:?}", dir.display())]
    TimedOut {
        /// The command line (without `-C`).
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// The limit.
        after: std::time::Duration,
    },
}

impl GitError {
    /// The exit code, when git ran and exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Failed { code, .. } => *code,
            _ => None,
        }
    }

    /// The tail of git's stderr, when it ran.
    pub fn stderr(&self) -> &str {
        match self {
            Self::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }

    /// The error for a finished command that did not exit 0.
    pub fn failed(command: String, dir: PathBuf, out: &GitOutput) -> Self {
        Self::Failed { command, dir, code: out.code, stderr: tail(&out.stderr) }
    }
}

/// A git version, as `git --version` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GitVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch (0 when not printed).
    pub patch: u32,
}

impl GitVersion {
    /// The first version whose `merge-tree --write-tree` does a real merge without a checkout.
    pub const MERGE_TREE_WRITE_TREE: GitVersion = GitVersion { major: 2, minor: 38, patch: 0 };

    /// Parses `git version 2.47.3` (and vendor suffixes such as `2.39.5 (Apple Git-154)` or
    /// `2.45.1.windows.1`).
    pub fn parse(text: &str) -> Option<Self> {
        let word = text.trim().strip_prefix("git version ")?.split_whitespace().next()?;
        let mut parts = word.split('.').map(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(Self { major, minor, patch })
    }

    /// Whether merges can be done with `merge-tree --write-tree` (git ≥ 2.38).
    pub fn has_merge_tree_write_tree(self) -> bool {
        self >= Self::MERGE_TREE_WRITE_TREE
    }
}

impl std::fmt::Display for GitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The git program.
#[derive(Debug, Clone)]
pub struct Git {
    program: OsString,
}

impl Default for Git {
    fn default() -> Self {
        Self { program: OsString::from("git") }
    }
}

/// Versions already asked for, by program: one `git --version` per process, not per merge.
fn version_cache() -> &'static Mutex<Vec<(OsString, GitVersion)>> {
    static CACHE: OnceLock<Mutex<Vec<(OsString, GitVersion)>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

impl Git {
    /// A runner for another git program (a path, or a name looked up on `PATH`).
    pub fn with_program(program: impl Into<OsString>) -> Self {
        Self { program: program.into() }
    }

    /// A `git -C dir` command with fugue's configuration and a scrubbed environment.
    pub fn cmd(&self, dir: &Path) -> GitCommand {
        let mut cmd = Command::new(&self.program);
        // Merges and bookkeeping commits must not each spawn `git maintenance run --auto`
        // (several a task, on the critical path); the user's next git command maintains the
        // repository. Paths unquoted and no colour: fugue parses what git prints.
        cmd.arg("-C").arg(dir).args(["-c", "maintenance.auto=false", "-c", "core.quotepath=off", "-c", "color.ui=false"]);
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        // fugue reads some of git's messages (conflicts, locks): one language for all of them.
        cmd.env("GIT_TERMINAL_PROMPT", "0").env("LC_ALL", "C");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        GitCommand {
            cmd,
            shown: vec!["git".to_owned()],
            dir: dir.to_path_buf(),
            stdin: None,
            #[cfg(feature = "tokio")]
            timeout: None,
        }
    }

    /// The installed git's version, asked once per process and program.
    pub fn version(&self) -> Result<GitVersion, GitError> {
        let cache = version_cache();
        if let Some((_, v)) = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().find(|(p, _)| *p == self.program) {
            return Ok(*v);
        }
        let dir = std::env::temp_dir();
        let out = self.cmd(&dir).arg("--version").run()?;
        let text = out.text();
        let version = GitVersion::parse(&text).ok_or_else(|| GitError::Failed {
            command: "git --version".to_owned(),
            dir,
            code: out.code,
            stderr: format!("unexpected output {text:?}"),
        })?;
        cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((self.program.clone(), version));
        Ok(version)
    }
}

/// One git invocation being built.
#[derive(Debug)]
pub struct GitCommand {
    cmd: Command,
    shown: Vec<String>,
    dir: PathBuf,
    stdin: Option<Vec<u8>>,
    #[cfg(feature = "tokio")]
    timeout: Option<std::time::Duration>,
}

/// What a finished git process left.
#[derive(Debug, Clone)]
pub struct GitOutput {
    /// The exit code (none when killed by a signal).
    pub code: Option<i32>,
    /// Everything on stdout.
    pub stdout: Vec<u8>,
    /// Everything on stderr.
    pub stderr: Vec<u8>,
}

impl GitOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Stdout as text, trailing newlines removed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim_end_matches(['\n', '\r']).to_owned()
    }

    /// Stdout's non-empty lines.
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
    }

    /// Stdout split on NUL (for `-z` output), empty fields dropped.
    pub fn nul_fields(&self) -> Vec<String> {
        self.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()).map(|f| String::from_utf8_lossy(f).into_owned()).collect()
    }
}

impl GitCommand {
    /// Appends an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        let arg = arg.as_ref();
        self.shown.push(arg.to_string_lossy().into_owned());
        self.cmd.arg(arg);
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Sets a variable for this process (not one of [`SCRUBBED_ENV`]'s: those stay removed).
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        if !SCRUBBED_ENV.contains(&key) {
            self.cmd.env(key, value);
        }
        self
    }

    /// Commits made by this command carry fugue's identity, whatever the environment and the
    /// configuration say (bookkeeping commits belong to fugue, not to a person).
    pub fn fugue_identity(self) -> Self {
        self.env("GIT_AUTHOR_NAME", FUGUE_NAME)
            .env("GIT_AUTHOR_EMAIL", FUGUE_EMAIL)
            .env("GIT_COMMITTER_NAME", FUGUE_NAME)
            .env("GIT_COMMITTER_EMAIL", FUGUE_EMAIL)
    }

    /// Feeds `bytes` to the process's standard input.
    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// The command as a person would type it (without `-C` and fugue's `-c` settings).
    pub fn shown(&self) -> String {
        self.shown.join(" ")
    }

    /// Where it runs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn spawn_error(&self, source: std::io::Error) -> GitError {
        match source.kind() {
            std::io::ErrorKind::NotFound => GitError::NotInstalled { source },
            _ => GitError::Spawn { command: self.shown(), dir: self.dir.clone(), source },
        }
    }

    /// Runs the command whatever its exit code; only failing to start it is an error.
    pub fn output(mut self) -> Result<GitOutput, GitError> {
        let started = Instant::now();
        if self.stdin.is_some() {
            self.cmd.stdin(Stdio::piped());
        }
        let mut child = self.cmd.spawn().map_err(|e| self.spawn_error(e))?;
        if let Some(bytes) = self.stdin.take() {
            // The input is small (a few ref names): written before reading, then closed.
            if let Some(mut pipe) = child.stdin.take() {
                pipe.write_all(&bytes).map_err(|e| self.spawn_error(e))?;
            }
        }
        let out = child.wait_with_output().map_err(|e| self.spawn_error(e))?;
        let out = GitOutput { code: out.status.code(), stdout: out.stdout, stderr: out.stderr };
        self.log(started, &out);
        Ok(out)
    }

    /// Runs the command and requires exit code 0.
    pub fn run(self) -> Result<GitOutput, GitError> {
        let (shown, dir) = (self.shown(), self.dir.clone());
        let out = self.output()?;
        if out.success() { Ok(out) } else { Err(GitError::failed(shown, dir, &out)) }
    }

    /// Runs a yes/no command: exit 0 is yes, exit 1 is no, anything else an error.
    pub fn test(self) -> Result<bool, GitError> {
        let (shown, dir) = (self.shown(), self.dir.clone());
        let out = self.output()?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(GitError::failed(shown, dir, &out)),
        }
    }

    fn log(&self, started: Instant, out: &GitOutput) {
        // The number of git processes is what makes fugue fast or slow: keep it visible.
        tracing::debug!(command = %self.shown(), dir = %self.dir.display(), code = ?out.code, elapsed_ms = started.elapsed().as_millis() as u64, "git");
    }
}

#[cfg(feature = "tokio")]
pub use asynchronous::RevResolver;

#[cfg(feature = "tokio")]
mod asynchronous {
    //! The same commands on tokio: for the engine's and QA's async code, which must not block
    //! a runtime thread on a git process, and which may bound a command's time.

    use std::time::{Duration, Instant};

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    use super::{Git, GitCommand, GitError, GitOutput};

    impl GitCommand {
        /// A time limit for the async runners: past it the process is killed and the command
        /// fails with [`GitError::TimedOut`].
        pub fn timeout(mut self, limit: Duration) -> Self {
            self.timeout = Some(limit);
            self
        }

        /// [`GitCommand::output`] on tokio; at most `cap` bytes of stdout are kept when a cap
        /// is given, and then the flag says whether more came (the process is killed).
        async fn output_inner(mut self, cap: Option<usize>) -> Result<(GitOutput, bool), GitError> {
            let started = Instant::now();
            let (shown, dir, limit) = (self.shown(), self.dir.clone(), self.timeout);
            let input = self.stdin.take();
            // The Command moves to tokio; the builder stays for its name and directory, which
            // errors and the log need (the placeholder left behind is never run).
            let mut std_cmd = std::mem::replace(&mut self.cmd, std::process::Command::new("git"));
            if input.is_some() {
                std_cmd.stdin(std::process::Stdio::piped());
            }
            let mut cmd = tokio::process::Command::from(std_cmd);
            // A timed-out or dropped future must not leave git running.
            cmd.kill_on_drop(true);
            let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
            let work = async {
                let feed = async {
                    if let (Some(bytes), Some(mut pipe)) = (input, child.stdin.take()) {
                        pipe.write_all(&bytes).await?;
                    }
                    Ok::<(), std::io::Error>(())
                };
                let mut stdout = child.stdout.take();
                let mut stderr = child.stderr.take();
                let read_out = async {
                    let mut buf = Vec::new();
                    if let Some(s) = stdout.as_mut() {
                        match cap {
                            Some(cap) => {
                                let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
                                s.take(limit).read_to_end(&mut buf).await?;
                            }
                            None => {
                                s.read_to_end(&mut buf).await?;
                            }
                        }
                    }
                    Ok::<Vec<u8>, std::io::Error>(buf)
                };
                let read_err = async {
                    let mut buf = Vec::new();
                    if let Some(s) = stderr.as_mut() {
                        s.read_to_end(&mut buf).await?;
                    }
                    Ok::<Vec<u8>, std::io::Error>(buf)
                };
                let (fed, out, err) = tokio::join!(feed, read_out, read_err);
                fed.map_err(|e| self.spawn_error(e))?;
                let mut out = out.map_err(|e| self.spawn_error(e))?;
                let err = err.map_err(|e| self.spawn_error(e))?;
                if let Some(cap) = cap
                    && out.len() > cap
                {
                    out.truncate(cap);
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    return Ok((GitOutput { code: Some(0), stdout: out, stderr: err }, true));
                }
                let status = child.wait().await.map_err(|e| self.spawn_error(e))?;
                Ok((GitOutput { code: status.code(), stdout: out, stderr: err }, false))
            };
            let result = match limit {
                Some(limit) => {
                    tokio::time::timeout(limit, work).await.map_err(|_| GitError::TimedOut { command: shown, dir, after: limit })?
                }
                None => work.await,
            };
            if let Ok((out, _)) = &result {
                self.log(started, out);
            }
            result
        }

        /// Runs the command whatever its exit code; only failing to start it (or its time
        /// limit) is an error.
        pub async fn output_async(self) -> Result<GitOutput, GitError> {
            Ok(self.output_inner(None).await?.0)
        }

        /// Runs the command and requires exit code 0.
        pub async fn run_async(self) -> Result<GitOutput, GitError> {
            let (shown, dir) = (self.shown(), self.dir.clone());
            let out = self.output_async().await?;
            if out.success() { Ok(out) } else { Err(GitError::failed(shown, dir, &out)) }
        }

        /// Runs a yes/no command: exit 0 is yes, exit 1 is no, anything else an error.
        pub async fn test_async(self) -> Result<bool, GitError> {
            let (shown, dir) = (self.shown(), self.dir.clone());
            let out = self.output_async().await?;
            match out.code {
                Some(0) => Ok(true),
                Some(1) => Ok(false),
                _ => Err(GitError::failed(shown, dir, &out)),
            }
        }

        /// Runs the command, requires exit code 0, and keeps at most `cap` bytes of stdout;
        /// the flag says whether it was cut (then git is killed and its exit code not asked).
        pub async fn run_capped_async(self, cap: usize) -> Result<(GitOutput, bool), GitError> {
            let (shown, dir) = (self.shown(), self.dir.clone());
            let (out, cut) = self.output_inner(Some(cap)).await?;
            if cut || out.success() { Ok((out, cut)) } else { Err(GitError::failed(shown, dir, &out)) }
        }
    }

    /// Resolves revisions to commits through one long-lived `git cat-file --batch-check` per
    /// repository: a query costs a pipe round trip (tens of µs) instead of a git process (a few
    /// ms), which matters where the engine asks twice per task. git does the resolving — refs,
    /// packed refs, tags shadowing branches, `HEAD` in a linked worktree — and reads the refs
    /// afresh for every query, so a ref another process moved is seen at once.
    #[derive(Debug)]
    pub struct RevResolver {
        git: Git,
        dir: std::path::PathBuf,
        batch: tokio::sync::Mutex<Option<Batch>>,
    }

    #[derive(Debug)]
    struct Batch {
        // Kept so the process is killed when the resolver is dropped.
        _child: tokio::process::Child,
        stdin: tokio::process::ChildStdin,
        stdout: tokio::io::BufReader<tokio::process::ChildStdout>,
    }

    /// How long one answer may take before the process is taken for hung and replaced.
    const QUERY_LIMIT: Duration = Duration::from_secs(10);

    impl RevResolver {
        /// A resolver for the repository at `dir` (started at the first query).
        pub fn new(git: &Git, dir: &std::path::Path) -> Self {
            Self { git: git.clone(), dir: dir.to_owned(), batch: tokio::sync::Mutex::new(None) }
        }

        fn start(&self) -> Result<Batch, GitError> {
            let cmd = self.git.cmd(&self.dir).arg("cat-file").arg("--batch-check=%(objectname) %(objecttype)");
            let (shown, dir) = (cmd.shown(), cmd.dir.clone());
            // The builder's own Command: the same arguments and the same scrubbed environment.
            let mut tokio_cmd = tokio::process::Command::from(cmd.cmd);
            tokio_cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
            tokio_cmd.kill_on_drop(true);
            let mut child = tokio_cmd.spawn().map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => GitError::NotInstalled { source },
                _ => GitError::Spawn { command: shown.clone(), dir: dir.clone(), source },
            })?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(GitError::Spawn { command: shown, dir, source: std::io::Error::other("no pipes to the process") });
            };
            Ok(Batch { _child: child, stdin, stdout: tokio::io::BufReader::new(stdout) })
        }

        /// The commit `rev` names, or `None` when it names none (missing, ambiguous, not a
        /// commit, or a name `cat-file` cannot take); `None` is for the caller to confirm with
        /// `git rev-parse`, whose error says why.
        pub async fn commit(&self, rev: &str) -> Result<Option<String>, GitError> {
            if rev.is_empty() || rev.contains(['\n', '\r']) || rev.trim() != rev {
                return Ok(None);
            }
            let mut guard = self.batch.lock().await;
            for _ in 0..2 {
                if guard.is_none() {
                    *guard = Some(self.start()?);
                }
                let Some(batch) = guard.as_mut() else { continue };
                let query = async {
                    batch.stdin.write_all(format!("{rev}^{{commit}}\n").as_bytes()).await?;
                    batch.stdin.flush().await?;
                    let mut line = String::new();
                    let n = batch.stdout.read_line(&mut line).await?;
                    Ok::<Option<String>, std::io::Error>((n > 0).then_some(line))
                };
                match tokio::time::timeout(QUERY_LIMIT, query).await {
                    Ok(Ok(Some(line))) => {
                        let mut words = line.trim_end().split(' ');
                        return Ok(match (words.next(), words.next()) {
                            (Some(oid), Some("commit")) if oid.bytes().all(|b| b.is_ascii_hexdigit()) => Some(oid.to_owned()),
                            _ => None,
                        });
                    }
                    // The process ended or hung: start a new one and ask once more.
                    _ => *guard = None,
                }
            }
            Ok(None)
        }
    }
}

/// The last lines of a process's output, for error messages.
pub fn tail(bytes: &[u8]) -> String {
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

/// The `info/exclude` file of a repository whose common git dir is `common_dir`.
pub fn exclude_file(common_dir: &Path) -> PathBuf {
    common_dir.join("info").join("exclude")
}

/// Adds the `lines` missing from `info/exclude` (exact lines, compared trimmed): right after
/// the line `after` when the file has it (a line about to be replaced keeps its place), else at
/// the end under `# <header>`. Returns whether the file changed. The file is the repository's,
/// not the user's `.gitignore`: fugue's own paths never show up in the user's diffs.
pub fn exclude_add(common_dir: &Path, lines: &[String], header: &str, after: Option<&str>) -> std::io::Result<bool> {
    let file = exclude_file(common_dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut have: Vec<&str> = text.lines().collect();
    let missing: Vec<&String> = lines.iter().filter(|l| !have.iter().any(|t| t.trim() == l.as_str())).collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let header = format!("# {header}");
    match after.and_then(|a| have.iter().position(|l| l.trim() == a)) {
        Some(i) => {
            for (k, l) in missing.iter().enumerate() {
                have.insert(i + 1 + k, l.as_str());
            }
        }
        None => {
            have.push(&header);
            have.extend(missing.iter().map(|l| l.as_str()));
        }
    }
    let mut new = have.join("\n");
    new.push('\n');
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::state::write_atomic(&file, new.as_bytes())?;
    Ok(true)
}

/// Removes `line` from `info/exclude` (a path fugue no longer uses). Returns whether the file
/// changed; a missing file is no change.
pub fn exclude_remove(common_dir: &Path, line: &str) -> std::io::Result<bool> {
    let file = exclude_file(common_dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !text.lines().any(|l| l.trim() == line) {
        return Ok(false);
    }
    let mut new: String = text.lines().filter(|l| l.trim() != line).collect::<Vec<_>>().join("\n");
    new.push('\n');
    crate::state::write_atomic(&file, new.as_bytes())?;
    Ok(true)
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
    fn failure_names_command_code_and_stderr() {
        let dir = std::env::temp_dir();
        let err = Git::default().cmd(&dir).args(["rev-parse", "--verify", "refs/heads/definitely-not-here"]).run();
        // Outside a repository or with a missing ref: either way exit 128 with a message.
        let err = err.expect_err("fails");
        let msg = err.to_string();
        assert!(msg.starts_with("failed to run `git rev-parse --verify refs/heads/definitely-not-here`"), "{msg}");
        assert!(msg.contains("exit code 128"), "{msg}");
        assert_eq!(err.code(), Some(128));
        assert!(!err.stderr().is_empty());
        let missing = Git::with_program("/nonexistent/git-for-fugue").cmd(&dir).arg("status").run().expect_err("fails");
        assert!(matches!(missing, GitError::NotInstalled { .. }), "{missing}");
    }

    #[test]
    fn parses_versions() {
        let v = |s| GitVersion::parse(s);
        assert_eq!(v("git version 2.47.3"), Some(GitVersion { major: 2, minor: 47, patch: 3 }));
        assert_eq!(v("git version 2.39.5 (Apple Git-154)\n"), Some(GitVersion { major: 2, minor: 39, patch: 5 }));
        assert_eq!(v("git version 2.45.1.windows.1"), Some(GitVersion { major: 2, minor: 45, patch: 1 }));
        assert_eq!(v("git version 2.38"), Some(GitVersion { major: 2, minor: 38, patch: 0 }));
        assert_eq!(v("git version 2.40.0-rc1"), Some(GitVersion { major: 2, minor: 40, patch: 0 }));
        assert_eq!(v("hub version 2.14"), None);
        assert!(v("git version 2.38.0").is_some_and(GitVersion::has_merge_tree_write_tree));
        assert!(!v("git version 2.37.9").is_some_and(GitVersion::has_merge_tree_write_tree));
        assert!(Git::default().version().is_ok());
    }

    #[test]
    fn the_environment_cannot_redirect_git() {
        // A variable set on the command for one of the scrubbed names is ignored too.
        let cmd = Git::default().cmd(Path::new("/")).env("GIT_DIR", "/elsewhere");
        let envs: Vec<(String, Option<String>)> =
            cmd.cmd.get_envs().map(|(k, v)| (k.to_string_lossy().into_owned(), v.map(|v| v.to_string_lossy().into_owned()))).collect();
        for var in SCRUBBED_ENV {
            assert!(envs.contains(&((*var).to_owned(), None)), "{var} is removed: {envs:?}");
        }
    }

    #[test]
    fn exclude_lines_are_added_once_in_place_and_removed() {
        let dir = std::env::temp_dir().join(format!("fugue-exclude-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let l = |s: &str| s.to_owned();
        assert!(exclude_add(&dir, &[l("/a/"), l("/b/")], "fugue", None).expect("add"));
        assert!(!exclude_add(&dir, &[l("/a/")], "fugue", None).expect("again"));
        assert!(exclude_add(&dir, &[l("/c/")], "other", Some("/a/")).expect("after"));
        let text = std::fs::read_to_string(exclude_file(&dir)).expect("read");
        assert_eq!(text, "# fugue\n/a/\n/c/\n/b/\n");
        assert!(exclude_remove(&dir, "/c/").expect("remove"));
        assert!(!exclude_remove(&dir, "/c/").expect("gone"));
        assert_eq!(std::fs::read_to_string(exclude_file(&dir)).expect("read"), "# fugue\n/a/\n/b/\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
