//! Confinement: the operating system keeps every agent inside its own worktree (Landlock).
//!
//! The boundary gate judges the diff of an agent's worktree, so by itself it cannot see a
//! write made anywhere else: the user's own checkout, another slot, fugue's state dir, a file
//! outside the repository. A CLI's own sandbox (Codex's workspace-write, Claude Code's
//! permission modes) covers only that CLI, and its bypass mode turns it off; aider and command
//! agents have none. So fugue confines every agent process itself, the same way for every CLI,
//! with Landlock (Linux ≥ 6.2, ABI 3: write, truncate and cross-directory rename rights).
//!
//! **What is confined.** Writing. The ruleset handles every write-type right of ABI 3 (write,
//! truncate, create files, directories, links, devices, sockets and fifos, remove, rename
//! across directories) and grants them only beneath the [`Confinement`]'s paths. Reading and
//! executing are not handled, so they stay allowed everywhere; the network is not confined
//! either. What the paths are for one agent run is decided in [`writable_roots`]:
//!
//! * the worktree (not for read-only agents: reviewers);
//! * its own git internals, exactly what a commit in a linked worktree writes: the worktree's
//!   git dir `.git/worktrees/<slot>/` (HEAD, index, logs, ORIG_HEAD, COMMIT_EDITMSG, its
//!   per-worktree refs) and the object store `.git/objects/` (new loose objects, through a
//!   temporary file in the fan-out directory, `link` and `unlink`) — see below for refs;
//! * the plan's declared `caches` (build caches such as `~/.cargo`), created when missing;
//! * a private temp dir made for the run and named in `TMPDIR`/`TMP`/`TEMP`, removed after it;
//! * what the agent's CLI needs for its session and login, as its driver declares it (its
//!   per-slot home, say);
//! * the devices shells, node and test runners write: `/dev/null`, `/dev/zero`, `/dev/full`,
//!   `/dev/tty`, `/dev/ptmx`, `/dev/pts/`, `/dev/shm/` (the last is a machine-wide scratch
//!   tmpfs; POSIX semaphores of Python's multiprocessing live there).
//!
//! **Git refs.** A commit on a branch rewrites `refs/heads/<branch>` through a lock file and a
//! rename in `refs/heads/auto/` and appends to `logs/refs/heads/auto/<branch>`; Landlock rights
//! belong to directory hierarchies, and a file rule gives no create or rename right, so any
//! rule that lets an agent commit on `auto/<task>` would also let it rewrite every other task's
//! ref. fugue therefore never lets the agent write `refs/` at all: before a confined agent runs,
//! its worktree's HEAD is *detached* at the branch tip (`HEAD` is per-worktree and lives in
//! `.git/worktrees/<slot>/`), so the agent's own commits move only its worktree's HEAD. When it
//! exits, fugue (unconfined) points `auto/<task>` at that HEAD and attaches HEAD to the branch
//! again; a crashed run's leftover detached HEAD is adopted the same way when the resumed task
//! gets its slot back. Checked with git 2.47: a commit on a detached HEAD writes only
//! `.git/worktrees/<slot>/{index,HEAD,logs/HEAD,COMMIT_EDITMSG}` and objects; it also tries
//! `.git/packed-refs.lock` to delete the `AUTO_MERGE` pseudo-ref (after every commit, reset and
//! checkout), which is refused — git prints `error: Unable to create '…/packed-refs.lock':
//! Permission denied` — and does not fail the command; fugue does not count that line as a
//! refused write of the agent's. `git gc --auto` and `git maintenance` would write packs and
//! `gc.pid` in the common dir: agents get `gc.auto=0` and `maintenance.auto=false` through
//! `GIT_CONFIG_COUNT`. Refused too, and so not for confined agents: `git branch`, `git tag`,
//! `git stash`, `git config`, switching to another branch and committing there.
//!
//! Other ways were tried and dropped. A per-worktree ref (`HEAD` → `refs/worktree/…`, stored in
//! `.git/worktrees/<slot>/refs/`) lets commits through as well, but `git branch` then dies with
//! "HEAD not found below refs/heads" and `git status` shows an odd branch name; a detached HEAD
//! is a state every tool and model knows. A private object directory (`GIT_OBJECT_DIRECTORY`
//! with the shared store as an alternate) would keep the shared store read-only, but the
//! variable reaches every git the agent runs, also in other repositories (a test suite that
//! makes its own), and breaks them.
//!
//! **Per CLI.** Each driver declares what its CLI writes for its session and login
//! (`Cli::state_paths`, found by running the real CLIs confined): Claude Code 2.1.328 only its
//! per-slot `CLAUDE_CONFIG_DIR` (and the user's `.credentials.json`, in place, for an OAuth
//! login); Codex 0.169.0 its per-slot `CODEX_HOME`; Gemini CLI 0.61.0 `~/.gemini`; aider 0.86.2
//! `~/.aider` and its per-slot history dir; opencode 1.18.33 its XDG data, cache, config and
//! state dirs and its per-slot database dir. Codex's own sandbox is bubblewrap, which cannot
//! run inside Landlock (no uid map for a new user namespace, no mounts): a confined Codex runs with
//! its sandbox off and fugue's ruleset in its place (see the Codex driver).
//!
//! **How it is applied.** The ruleset is built in fugue's process ([`prepare`]: paths opened,
//! rules added, one file descriptor); between `fork` and `exec` the child only calls
//! `prctl(PR_SET_NO_NEW_PRIVS)` and `landlock_restrict_self(fd)` ([`restrict_in_child`]), two
//! system calls that are async-signal-safe. On a cluster the job script runs the agent through
//! `fugue confine-exec` (the `fugue` binary on shared storage, or `FUGUE_CONFINE_HELPER`),
//! which applies the same ruleset on the compute node and then execs the agent
//! ([`exec_confined`]). The ruleset holds the process and everything it starts; nothing can
//! lift it.
//!
//! **Where the kernel cannot.** [`support`] probes once. The default (no `confine:` in the
//! plan) is strict where the kernel supports it and off with one warning (naming
//! `confine: off`) where it does not; an explicit `confine: strict` on such a kernel is an
//! error before anything runs, and an executor asked for a strict confinement it cannot apply
//! refuses to start the process. fugue never silently runs an agent unconfined after it was
//! told `strict`.
//!
//! **Limits.** Reads are not confined (an agent can read the user's files), nor is the
//! network. The object store is shared and writable (git needs it for commits): an agent can
//! add objects, and could delete loose ones. Plugin agents run inside fugue's own process and
//! are not confined. With `isolation: none` the worktree *is* the repository, so the agent may
//! write anywhere in it (its `.git` and a state dir inside it included).

use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fugue_core::{AgentContext, ConfineMode, ConfinePolicy, Confinement};
use landlock::{ABI, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr};

/// The Landlock ABI whose rights a strict confinement needs: ABI 3 adds `TRUNCATE` (without it
/// an agent could empty any file) and ABI 2 `REFER` (renames across directories).
const NEEDED_ABI: ABI = ABI::V3;

/// Why confinement could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfineError {
    /// The kernel cannot enforce it.
    #[error("failed to confine the agent as `confine: strict` asks: {why}; set `confine: off` to run agents unconfined")]
    Unsupported {
        /// What the kernel lacks.
        why: String,
    },
    /// A path to allow could not be opened.
    #[error("failed to open {} for the agent's confinement: {source}", path.display())]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused the ruleset.
    #[error("failed to build the Landlock ruleset: {0}")]
    Ruleset(String),
}

/// What this kernel can enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Support {
    /// Landlock with at least the rights a strict confinement needs.
    Landlock {
        /// The kernel's Landlock ABI version.
        abi: i32,
    },
    /// No (sufficient) Landlock.
    Unsupported {
        /// What is missing, for messages.
        why: String,
    },
}

impl Support {
    /// True when strict confinement can be enforced.
    pub fn enforced(&self) -> bool {
        matches!(self, Support::Landlock { .. })
    }

    /// One line for `fugue plan` and logs.
    pub fn describe(&self) -> String {
        match self {
            Support::Landlock { abi } => format!("Landlock ABI {abi}"),
            Support::Unsupported { why } => why.clone(),
        }
    }
}

/// What this kernel can enforce, probed once.
pub fn support() -> &'static Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    SUPPORT.get_or_init(probe)
}

#[cfg(target_os = "linux")]
fn probe() -> Support {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns the
    // ABI version (or -1 with errno); it reads and writes no memory.
    let abi = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    match i32::try_from(abi) {
        Ok(abi) if abi >= NEEDED_ABI as i32 => Support::Landlock { abi },
        Ok(abi) if abi > 0 => Support::Unsupported {
            why: format!("this kernel's Landlock is ABI {abi}, and confining writes needs ABI {} (Linux 6.2)", NEEDED_ABI as i32),
        },
        _ => Support::Unsupported { why: format!("this kernel has no Landlock ({})", std::io::Error::last_os_error()) },
    }
}

#[cfg(not(target_os = "linux"))]
fn probe() -> Support {
    Support::Unsupported { why: "Landlock exists only on Linux".to_owned() }
}

/// Whether a run of an agent with `policy` is confined here: `Some(strict)` when it is (strict
/// when the plan said so explicitly), `None` when the plan turned it off or the default meets a
/// kernel without Landlock (warned about once).
pub(crate) fn decide(policy: &ConfinePolicy) -> Option<bool> {
    match policy.mode {
        Some(ConfineMode::Off) => None,
        Some(ConfineMode::Strict) => Some(true),
        None if support().enforced() => Some(false),
        None => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "agents run unconfined: {}; set `confine: off` in the plan to say so, or run fugue on Linux 6.2 or later",
                    support().describe()
                );
            });
            None
        }
    }
}

/// True when an agent with `policy` runs confined here (what the engine needs to know to
/// detach its worktree's HEAD).
pub fn will_confine(policy: &ConfinePolicy) -> bool {
    match policy.mode {
        Some(ConfineMode::Off) => false,
        Some(ConfineMode::Strict) => true,
        None => support().enforced(),
    }
}

/// One line for `fugue plan` and `fugue run`: whether the plan's agents run confined here.
pub fn describe_plan(plan: &fugue_core::Plan) -> String {
    use fugue_core::AgentSpec;
    let mut on = Vec::new();
    let mut off = Vec::new();
    let mut plugins = Vec::new();
    let reviewer = plan.gates.review.as_on().and_then(|r| r.agent.as_deref());
    for (name, spec) in &plan.agents {
        if !(plan.tasks.iter().any(|t| t.agent == *name) || reviewer == Some(name.as_str())) {
            continue;
        }
        match spec {
            AgentSpec::Plugin(_) => plugins.push(name.as_str()),
            _ if will_confine(&plan.confine_of(name)) => on.push(name.as_str()),
            _ => off.push(name.as_str()),
        }
    }
    let list = |names: &[&str]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let mut line = if on.is_empty() {
        let why = match plan.confine {
            Some(ConfineMode::Off) => "`confine: off`".to_owned(),
            _ if support().enforced() => "every agent sets `confine: off`".to_owned(),
            _ => format!("{}; set `confine: off` to say so", support().describe()),
        };
        format!("🔓 Confinement: off ({why}): agents may write anywhere fugue's user may")
    } else {
        let caches = if plan.caches.is_empty() { String::new() } else { format!(", the caches {}", plan.caches.join(", ")) };
        let mut l = format!(
            "🔒 Confinement: on ({}) for {}: writes only in the task's worktree{caches}, a private TMPDIR and the CLI's own state; reviewers write none of the checkout",
            support().describe(),
            if off.is_empty() && plugins.is_empty() { "every agent".to_owned() } else { list(&on) }
        );
        if !off.is_empty() {
            l.push_str(&format!("; unconfined (`confine: off`): {}", list(&off)));
        }
        l
    };
    if !plugins.is_empty() {
        line.push_str(&format!("; plugin agents run inside fugue and are not confined: {}", list(&plugins)));
    }
    line
}

/// The paths an agent run may write, as described in the module docs: `cli_state` is what the
/// agent's CLI declares (its per-slot home), `tmp` the run's private temp dir.
pub(crate) fn writable_roots(ctx: &AgentContext, policy: &ConfinePolicy, cli_state: &[PathBuf], tmp: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if !ctx.read_only {
        let worktree = std::path::absolute(&ctx.worktree).unwrap_or_else(|_| ctx.worktree.clone());
        roots.extend(git_internals(&worktree));
        roots.push(worktree);
        for cache in &policy.caches {
            // A cache that does not exist yet could not be created by the agent.
            let _ = std::fs::create_dir_all(cache);
            roots.push(cache.clone());
        }
    }
    roots.push(tmp.to_path_buf());
    roots.extend(cli_state.iter().cloned());
    for dev in ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx", "/dev/pts", "/dev/shm"] {
        if Path::new(dev).exists() {
            roots.push(PathBuf::from(dev));
        }
    }
    roots.dedup();
    roots
}

/// The git internals a commit in the linked worktree `worktree` writes: its git dir
/// (`.git/worktrees/<slot>`) and the object store. Nothing for a main checkout (its `.git` is
/// inside it) or a directory that is not a worktree.
pub(crate) fn git_internals(worktree: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(worktree.join(".git")) else { return Vec::new() };
    let Some(gitdir) = text.lines().find_map(|l| l.strip_prefix("gitdir:")).map(str::trim) else { return Vec::new() };
    let gitdir = worktree.join(gitdir);
    let common = match std::fs::read_to_string(gitdir.join("commondir")) {
        Ok(c) => gitdir.join(c.trim()),
        Err(_) => return vec![gitdir],
    };
    let common = std::fs::canonicalize(&common).unwrap_or(common);
    vec![gitdir, common.join("objects")]
}

/// Environment for a confined agent: its temp dir, and git configured not to start `gc` or
/// `maintenance` (they would write packs and `gc.pid` outside what it may write). Appended to
/// any `GIT_CONFIG_COUNT` entries already in `env`.
pub(crate) fn env_for(env: &mut std::collections::BTreeMap<String, String>, tmp: &Path) {
    let tmp = tmp.to_string_lossy().into_owned();
    for var in ["TMPDIR", "TMP", "TEMP"] {
        env.insert(var.to_owned(), tmp.clone());
    }
    let inherited = std::env::var("GIT_CONFIG_COUNT").ok();
    let mut n: usize = env.get("GIT_CONFIG_COUNT").cloned().or(inherited).and_then(|c| c.parse().ok()).unwrap_or(0);
    for (key, value) in [("gc.auto", "0"), ("maintenance.auto", "false")] {
        env.insert(format!("GIT_CONFIG_KEY_{n}"), key.to_owned());
        env.insert(format!("GIT_CONFIG_VALUE_{n}"), value.to_owned());
        n += 1;
    }
    env.insert("GIT_CONFIG_COUNT".to_owned(), n.to_string());
}

/// The log line saying how a run is confined.
pub(crate) fn log_line(confinement: Option<&Confinement>) -> String {
    match confinement {
        Some(c) => format!(
            "--- fugue: confinement: on ({}, {}); writes allowed only beneath: {}",
            support().describe(),
            if c.strict { "confine: strict" } else { "the default" },
            c.write.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
        None => "--- fugue: confinement: off (the agent may write wherever fugue's user may)".to_owned(),
    }
}

/// A private temp dir for one run, removed with it.
#[derive(Debug)]
pub(crate) struct RunTmp(tempfile::TempDir);

impl RunTmp {
    /// Makes one under `base` (the executor's shared dir, so a cluster node sees it), else the
    /// system temp dir, named `fugue-tmp-<task>-<fugue's pid>-<random>`. A fugue killed with
    /// `kill -9` cannot remove its runs' dirs: the ones whose fugue is gone are removed here.
    pub(crate) fn create(task: &str, base: Option<&Path>) -> std::io::Result<Self> {
        let parent = match base {
            Some(base) => {
                std::fs::create_dir_all(base)?;
                std::path::absolute(base)?
            }
            None => std::env::temp_dir(),
        };
        remove_orphans(&parent);
        let prefix = format!("fugue-tmp-{task}-{}-", std::process::id());
        Ok(Self(tempfile::Builder::new().prefix(&prefix).tempdir_in(&parent)?))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Removes the run temp dirs in `parent` whose fugue process is gone (best effort).
fn remove_orphans(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("fugue-tmp-")) else { continue };
        // `<task>-<pid>-<random>`: the task id may hold dashes, the random part does not.
        let mut parts = rest.rsplitn(3, '-');
        let (Some(_random), Some(pid), Some(_task)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let Ok(pid) = pid.parse::<libc::pid_t>() else { continue };
        // SAFETY: kill(pid, 0) only asks whether the process exists.
        let gone = pid > 1 && unsafe { libc::kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A ruleset built in the parent, ready to be applied in the child.
#[derive(Debug)]
pub(crate) struct Prepared {
    fd: OwnedFd,
}

impl Prepared {
    /// The ruleset's descriptor, for [`restrict_in_child`]; valid while `self` lives.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The ruleset for `confinement`, or `None` when it is a default one the kernel cannot enforce
/// (warned about in [`decide`]). A strict one the kernel cannot enforce is an error.
pub(crate) fn prepare(confinement: &Confinement) -> Result<Option<Prepared>, ConfineError> {
    prepare_on(confinement, support())
}

/// [`prepare`] on a kernel that supports what `support` says.
fn prepare_on(confinement: &Confinement, support: &Support) -> Result<Option<Prepared>, ConfineError> {
    if let Support::Unsupported { why } = support {
        return if confinement.strict { Err(ConfineError::Unsupported { why: why.clone() }) } else { Ok(None) };
    }
    let ruleset_error = |e: landlock::RulesetError| ConfineError::Ruleset(e.to_string());
    let write = AccessFs::from_write(NEEDED_ABI);
    let file_rights = write & AccessFs::from_file(NEEDED_ABI);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(write)
        .map_err(ruleset_error)?
        .create()
        .map_err(ruleset_error)?;
    for path in &confinement.write {
        let fd = match PathFd::new(path) {
            Ok(fd) => fd,
            // A path that is not there (a device this machine lacks) has nothing to write.
            Err(_) if !path.exists() => continue,
            Err(e) => return Err(ConfineError::Path { path: path.clone(), source: std::io::Error::other(e.to_string()) }),
        };
        let rights = if path.is_dir() { write } else { file_rights };
        ruleset = ruleset.add_rule(PathBeneath::new(fd, rights)).map_err(ruleset_error)?;
    }
    let fd: Option<OwnedFd> = ruleset.into();
    fd.map(|fd| Some(Prepared { fd })).ok_or_else(|| ConfineError::Ruleset("the kernel gave no ruleset".to_owned()))
}

/// Applies the ruleset `fd` to the calling process. Meant for the child between `fork` and
/// `exec`.
///
/// # Safety
///
/// Only async-signal-safe system calls are made (no allocation, no lock), as a `pre_exec`
/// closure requires; `fd` must be a Landlock ruleset descriptor open in this process.
pub(crate) unsafe fn restrict_in_child(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1) takes no pointers; Landlock requires it for a
    // process without CAP_SYS_ADMIN, and it keeps setuid programs from shedding the ruleset.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: landlock_restrict_self(fd, 0) takes a descriptor and flags, no memory.
    if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Confines this process to writing beneath `write` and replaces it with `argv`: what
/// `fugue confine-exec` does inside a cluster job. Returns only on failure.
pub fn exec_confined(write: Vec<PathBuf>, strict: bool, argv: &[std::ffi::OsString]) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    let Some((program, args)) = argv.split_first() else {
        return std::io::Error::new(std::io::ErrorKind::InvalidInput, "no program to run: give it after `--`");
    };
    let confinement = Confinement::new(write, strict);
    match prepare(&confinement) {
        Ok(Some(prepared)) => {
            // SAFETY: no fork here: this process restricts itself before exec.
            if let Err(e) = unsafe { restrict_in_child(prepared.raw_fd()) } {
                return std::io::Error::new(e.kind(), format!("failed to apply the Landlock ruleset: {e}"));
            }
        }
        Ok(None) => {}
        Err(e) => return std::io::Error::other(e.to_string()),
    }
    std::process::Command::new(program).args(args).exec()
}

/// The output of a confined run that shows a refused write: each distinct message ending in
/// "Permission denied" (how shells, git and runtimes print EACCES), at most three, for the
/// report. A CLI's machine output embeds tool output in JSON strings, so the message is cut
/// from the start of its string (or escaped line) to the words.
pub(crate) fn refused_writes(output: &str) -> Vec<String> {
    const NEEDLE: &str = "Permission denied";
    let mut found: Vec<String> = Vec::new();
    // git 2.47 deletes the per-worktree AUTO_MERGE ref after every commit, reset and checkout,
    // and takes `.git/packed-refs.lock` to do it: refused under confinement, harmless (the commit
    // is made; there was no AUTO_MERGE), and not the agent's doing.
    let noise = |l: &&str| l.starts_with("--- fugue:") || l.contains("packed-refs.lock");
    for line in output.lines().filter(|l| !noise(l)) {
        let mut from = 0;
        while let Some(at) = line[from..].find(NEEDLE).map(|i| i + from) {
            let before = &line[..at];
            let start = [before.rfind('"').map(|i| i + 1), before.rfind("\\n").map(|i| i + 2), before.rfind("\\r").map(|i| i + 2)]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(0);
            let message = crate::driver::clip(line[start..at + NEEDLE.len()].trim(), 200);
            if !message.is_empty() && !found.contains(&message) {
                found.push(message);
            }
            if found.len() == 3 {
                return found;
            }
            from = at + NEEDLE.len();
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confined_sh(script: &str, write: Vec<PathBuf>) -> std::process::Output {
        use std::os::unix::process::CommandExt as _;
        let prepared = prepare(&Confinement::new(write, true)).expect("ruleset").expect("landlock on this kernel");
        let fd = prepared.raw_fd();
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(script);
        // SAFETY: restrict_in_child only makes async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(move || restrict_in_child(fd));
        }
        let out = cmd.output().expect("run sh");
        drop(prepared);
        out
    }

    #[test]
    fn a_confined_child_writes_only_beneath_its_roots() {
        if !support().enforced() {
            return;
        }
        let tmp = tempfile::tempdir().expect("temp");
        let inside = tmp.path().join("inside");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&inside).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("keep"), "mine").expect("write");
        let script = format!(
            "set -u; echo ok > '{i}/a' && mkdir '{i}/d' && mv '{i}/a' '{i}/d/a' && echo x > /dev/null || exit 9; \
             echo no > '{o}/new' 2>/dev/null && exit 1; true > '{o}/keep' 2>/dev/null && exit 2; rm '{o}/keep' 2>/dev/null && exit 3; exit 0",
            i = inside.display(),
            o = outside.display()
        );
        let out = confined_sh(&script, vec![inside.clone(), PathBuf::from("/dev/null")]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read_to_string(inside.join("d/a")).expect("moved"), "ok\n");
        assert_eq!(std::fs::read_to_string(outside.join("keep")).expect("kept"), "mine");
        assert!(!outside.join("new").exists());
    }

    /// What the git-ref scheme rests on, checked with the real git: in a confined linked
    /// worktree with a detached HEAD, `git commit` works, and no ref outside it can be moved.
    #[test]
    fn a_confined_agent_commits_on_its_detached_head_and_moves_no_ref() {
        if !support().enforced() {
            return;
        }
        let tmp = tempfile::tempdir().expect("temp");
        let git = |dir: &Path, args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
                .args(args)
                .current_dir(dir)
                .output()
                .expect("git");
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q"]);
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
        let wt = tmp.path().join("wt-1");
        git(&repo, &["worktree", "add", "-q", "-b", "auto/t1", wt.to_str().expect("utf8")]);
        git(&repo, &["worktree", "add", "-q", "-b", "auto/t2", tmp.path().join("wt-2").to_str().expect("utf8")]);
        git(&wt, &["checkout", "-q", "--detach"]);
        let main_before = git(&repo, &["rev-parse", "main"]);
        let mut roots = git_internals(&wt);
        roots.push(wt.clone());
        roots.push(PathBuf::from("/dev/null"));
        let script = "set -e; echo hi > f; git add f; \
            git -c user.name=t -c user.email=t@t -c gc.auto=0 -c maintenance.auto=false commit -q -m work; \
            if git update-ref refs/heads/main HEAD 2>/dev/null; then exit 11; fi; \
            if git update-ref refs/heads/auto/t2 HEAD 2>/dev/null; then exit 12; fi; \
            if git branch sneaky 2>/dev/null; then exit 13; fi; echo done";
        let out = {
            use std::os::unix::process::CommandExt as _;
            let prepared = prepare(&Confinement::new(roots, true)).expect("ruleset").expect("landlock");
            let fd = prepared.raw_fd();
            let mut cmd = std::process::Command::new("sh");
            cmd.arg("-c").arg(script).current_dir(&wt);
            // SAFETY: restrict_in_child only makes async-signal-safe system calls.
            unsafe {
                cmd.pre_exec(move || restrict_in_child(fd));
            }
            cmd.output().expect("run")
        };
        assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
        assert_eq!(git(&repo, &["rev-parse", "main"]), main_before);
        assert_eq!(git(&repo, &["rev-parse", "auto/t2"]), main_before);
        assert_eq!(git(&repo, &["rev-parse", "auto/t1"]), main_before, "the agent's own branch moves only when fugue adopts its HEAD");
        assert_ne!(git(&wt, &["rev-parse", "HEAD"]), main_before, "the commit landed on the worktree's HEAD");
    }

    #[test]
    fn a_strict_confinement_without_landlock_is_an_error_and_a_default_one_is_dropped() {
        // Only checkable where the kernel lacks Landlock; here it checks the decision table.
        assert_eq!(decide(&ConfinePolicy::new(Some(ConfineMode::Off))), None);
        assert_eq!(decide(&ConfinePolicy::new(Some(ConfineMode::Strict))), Some(true));
        assert_eq!(decide(&ConfinePolicy::new(None)).is_some(), support().enforced());
        let old = Support::Unsupported { why: "this kernel's Landlock is ABI 1".to_owned() };
        let strict = prepare_on(&Confinement::new(vec!["/w".into()], true), &old);
        assert!(
            matches!(&strict, Err(e @ ConfineError::Unsupported { .. }) if e.to_string().contains("ABI 1") && e.to_string().contains("`confine: off`")),
            "{strict:?}"
        );
        assert!(matches!(prepare_on(&Confinement::new(vec!["/w".into()], false), &old), Ok(None)));
    }

    #[test]
    fn git_internals_of_a_linked_worktree() {
        let tmp = tempfile::tempdir().expect("temp");
        let common = tmp.path().join("repo/.git");
        let gitdir = common.join("worktrees/wt-1");
        std::fs::create_dir_all(&gitdir).expect("mkdir");
        std::fs::create_dir_all(common.join("objects")).expect("mkdir");
        std::fs::write(gitdir.join("commondir"), "../..\n").expect("write");
        let wt = tmp.path().join("wt-1");
        std::fs::create_dir_all(&wt).expect("mkdir");
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", gitdir.display())).expect("write");
        let found = git_internals(&wt);
        assert_eq!(found[0], gitdir);
        assert_eq!(found[1], std::fs::canonicalize(&common).expect("canon").join("objects"));
        assert!(git_internals(tmp.path()).is_empty());
    }

    #[test]
    fn refusals_are_cut_out_of_plain_and_json_output() {
        let plain = "sh: 1: cannot create /r/README.md: Permission denied\nok\nsh: 1: cannot create /r/README.md: Permission denied";
        assert_eq!(refused_writes(plain), vec!["sh: 1: cannot create /r/README.md: Permission denied".to_owned()]);
        let json = r#"{"type":"item.completed","item":{"aggregated_output":"ok\ntouch: cannot touch '/x': Permission denied\n"}}"#;
        assert_eq!(refused_writes(json), vec!["touch: cannot touch '/x': Permission denied".to_owned()]);
        assert!(refused_writes("--- fugue: Permission denied\nall good").is_empty());
        assert!(refused_writes("error: Unable to create '/r/.git/packed-refs.lock': Permission denied").is_empty());
    }

    #[test]
    fn run_temp_dirs_of_a_gone_fugue_are_removed() {
        let base = tempfile::tempdir().expect("temp");
        // pid 0x7ffffffe is above any pid_max: no such process.
        let orphan = base.path().join("fugue-tmp-my-task-2147483646-abc123");
        let alive = base.path().join(format!("fugue-tmp-other-{}-def456", std::process::id()));
        let foreign = base.path().join("fugue-tmp-notes");
        for d in [&orphan, &alive, &foreign] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let tmp = RunTmp::create("t1", Some(base.path())).expect("create");
        assert!(tmp.path().is_dir());
        assert!(!orphan.exists(), "the dead fugue's dir is gone");
        assert!(alive.exists() && foreign.exists(), "a live fugue's dir and a foreign one are kept");
        let made = tmp.path().to_path_buf();
        drop(tmp);
        assert!(!made.exists());
    }

    #[test]
    fn git_config_entries_are_appended() {
        let mut env = std::collections::BTreeMap::new();
        env.insert("GIT_CONFIG_COUNT".to_owned(), "1".to_owned());
        env_for(&mut env, Path::new("/t"));
        assert_eq!(env["GIT_CONFIG_COUNT"], "3");
        assert_eq!((env["GIT_CONFIG_KEY_1"].as_str(), env["GIT_CONFIG_VALUE_1"].as_str()), ("gc.auto", "0"));
        assert_eq!(env["TMPDIR"], "/t");
    }
}
