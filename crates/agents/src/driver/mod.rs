//! Drivers for coding-agent CLIs: Claude Code, Codex, Gemini CLI, aider and opencode run
//! headlessly, their output read as it streams, their failures named.
//!
//! A plan's `driver:` agent ([`fugue_core::DriverAgentSpec`]) becomes a [`DriverAgent`]. One
//! iteration goes like this:
//!
//! 1. **What to say.** The first iteration sends the task's prompt. A rejected iteration's QA
//!    findings go back either as the next prompt of the *same session* (`claude --resume`,
//!    `codex exec resume`: the model keeps what it did and read) when the CLI can continue one
//!    and the previous run reported its session id, or as a fresh run whose prompt is the
//!    task's prompt followed by the findings (`feedback: fresh`, or a CLI without resume). A
//!    continuation the CLI cannot pick up (its session store is gone) falls back to a fresh run
//!    in the same iteration.
//! 2. **The command line** comes from the CLI's [`Cli`] implementation: headless mode,
//!    machine-readable output, model, permissions. Permissions are the least that works by
//!    default (`permissions: edit`): file edits in the worktree plus the task's own `verify`
//!    commands; `read-only` for reviewers; the CLI's bypass mode only when the plan says
//!    `bypass` — and refused up front where the CLI would refuse it (Claude Code as root).
//! 3. **Sessions apart.** Concurrent sessions of one CLI share its config and session store
//!    (`~/.claude.json`, `~/.codex`), which some CLIs corrupt when several write at once. With
//!    `isolate_sessions` (the default) each worktree slot gets a config directory of its own
//!    under fugue's state dir ([`home`]), seeded from the user's so the login is kept.
//! 4. **Reading the stream.** The process runs through the agent's [`Executor`]; an observer
//!    splits stdout into lines as they come and feeds the CLI's [`StreamParser`], which
//!    reports activity (the tool it runs, the tokens so far) to the engine and collects the
//!    facts: session id, turns, usage, final message, refused tool calls, error results. An
//!    executor that does not stream (a cluster job) is read from its captured output at the
//!    end.
//! 5. **The verdict.** A run is ready for QA only when the process exited 0 *and* the CLI's
//!    own result says it finished: a refused tool call, a turn or budget limit, an API error,
//!    or no result at all fail the iteration, with a summary that names what happened and the
//!    plan setting that changes it. Exit 0 alone is never taken for success.

mod aider;
mod claude;
mod codex;
mod gemini;
pub(crate) mod home;
mod opencode;
mod parse;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fugue_core::redact::{self, redact_str};
use fugue_core::{
    Activity, ActivityObserver, Agent, AgentContext, AgentError, AgentReport, DriverAgentSpec, DriverKind, ExecError, ExecObserver,
    Executor, FailureKind, FeedbackMode, OutputStream, Permissions, ProcessOutcome, ProcessSpec, Usage, async_trait,
};

use fugue_core::{ConfinePolicy, Confinement};

use crate::confine;
use crate::local::LocalExecutor;
use crate::process::signal_name;

pub(crate) use parse::{Parsed, StreamParser};

/// What one invocation of a CLI is asked to do.
#[derive(Debug)]
pub(crate) struct Invocation<'a> {
    /// The prompt text of this run.
    pub(crate) prompt: &'a str,
    /// The session to continue, if this run continues one.
    pub(crate) resume: Option<&'a str>,
    /// The permissions in force (a reviewer is always read-only).
    pub(crate) permissions: Permissions,
    /// The task's verify commands, which `edit` permissions allow.
    pub(crate) verify: &'a [String],
    /// The per-slot config directory, when sessions are isolated.
    pub(crate) home: Option<&'a Path>,
    /// What is left of the task's dollar budget, for a CLI with a spending limit of its own.
    pub(crate) budget_usd: Option<f64>,
    /// fugue confines the process (Landlock): a CLI whose own sandbox cannot nest in that
    /// (Codex's bubblewrap) picks one that can.
    pub(crate) confined: bool,
}

/// One coding-agent CLI: how to start it headless and how to read it.
pub(crate) trait Cli: Send + Sync + std::fmt::Debug {
    /// Arguments after the program.
    fn args(&self, spec: &DriverAgentSpec, inv: &Invocation<'_>) -> Vec<String>;

    /// Environment for the process (besides the plan's): config locations, switches that keep
    /// the CLI off the network for updates and telemetry.
    fn env(&self, spec: &DriverAgentSpec, inv: &Invocation<'_>) -> Vec<(String, String)> {
        let _ = (spec, inv);
        Vec::new()
    }

    /// The prompt goes to standard input rather than into the argv.
    fn prompt_on_stdin(&self) -> bool {
        false
    }

    /// Whether a session can be continued with a new prompt.
    fn can_resume(&self) -> bool {
        false
    }

    /// Which figures of a continued session cover the whole session rather than this run.
    fn cumulative(&self) -> Cumulative {
        Cumulative::Nothing
    }

    /// A parser for one run's stdout.
    fn parser(&self) -> Box<dyn StreamParser>;

    /// Why this agent cannot run as configured on this machine, before anything runs
    /// (a mode the CLI refuses, say), with the setting to change.
    fn refuses(&self, spec: &DriverAgentSpec) -> Option<String> {
        let _ = spec;
        None
    }

    /// The per-slot home: the variable naming it and what to seed it with.
    fn home(&self) -> Option<home::HomeSpec> {
        None
    }

    /// What the CLI must write outside the worktree to keep its session and login, when it runs
    /// confined (see `confine`): by default its per-slot home. Paths that do not exist are
    /// created by [`DriverAgent`] when they are directories under `$HOME`.
    fn state_paths(&self, home: Option<&Path>) -> Vec<PathBuf> {
        home.map(Path::to_path_buf).into_iter().collect()
    }
}

/// `$HOME/<rel>`, for the state a CLI keeps in the user's home.
pub(crate) fn in_home(rel: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(rel))
}

/// Which usage figures a CLI reports for the whole session when a run continues one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cumulative {
    /// Every figure is this run's.
    Nothing,
    /// The cost is the session's (Claude Code's `total_cost_usd`); tokens are this run's.
    Cost,
    /// Every figure is the session's (Codex's `turn.completed.usage` on `exec resume`).
    All,
}

impl Cumulative {
    /// This run's share of `now`, given what the session had reported before.
    fn this_run(self, now: &Usage, before: &Usage) -> Usage {
        fn minus<T: Copy + PartialOrd + std::ops::Sub<Output = T> + Default>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(if a > b { a - b } else { T::default() }),
                (a, _) => a,
            }
        }
        let mut u = *now;
        if self != Cumulative::Nothing {
            u.cost_usd = minus(now.cost_usd, before.cost_usd);
        }
        if self == Cumulative::All {
            u.input_tokens = minus(now.input_tokens, before.input_tokens);
            u.output_tokens = minus(now.output_tokens, before.output_tokens);
            u.cache_read_tokens = minus(now.cache_read_tokens, before.cache_read_tokens);
            u.cache_write_tokens = minus(now.cache_write_tokens, before.cache_write_tokens);
        }
        u
    }

    /// The session's running figures after a run that reported `now` (this run's share
    /// `share`), given `before`.
    fn session_after(self, now: &Usage, share: &Usage, before: &Usage) -> Usage {
        match self {
            Cumulative::Nothing => before.add(share),
            Cumulative::All => *now,
            Cumulative::Cost => {
                let mut u = before.add(share);
                u.cost_usd = now.cost_usd;
                u
            }
        }
    }
}

/// The [`Cli`] of `kind`.
pub(crate) fn cli(kind: DriverKind) -> Arc<dyn Cli> {
    match kind {
        DriverKind::Claude => Arc::new(claude::Claude),
        DriverKind::Codex => Arc::new(codex::Codex),
        DriverKind::Gemini => Arc::new(gemini::Gemini),
        DriverKind::Aider => Arc::new(aider::Aider),
        DriverKind::Opencode => Arc::new(opencode::Opencode),
    }
}

/// Why a driver agent cannot run as configured here, with the setting to change (see
/// [`Cli::refuses`]); `fugue plan` reports it, and a run refuses to start.
pub fn driver_refuses(spec: &DriverAgentSpec) -> Option<String> {
    cli(spec.driver).refuses(spec)
}

/// An agent that drives a coding-agent CLI.
#[derive(Debug, Clone)]
pub struct DriverAgent {
    name: String,
    spec: DriverAgentSpec,
    cli: Arc<dyn Cli>,
    executor: Arc<dyn Executor>,
    grace: Duration,
    output_cap: usize,
    log_cap: u64,
    /// What each session this agent ran has reported so far: a continued session's figures
    /// may cover the whole session (see [`Cumulative`]), and the report must be this run's.
    sessions: Arc<Mutex<HashMap<String, Usage>>>,
    confine: ConfinePolicy,
}

impl DriverAgent {
    /// Bytes of output kept in the report (head and tail).
    pub const DEFAULT_OUTPUT_CAP: usize = 256 * 1024;

    /// The agent `name` running `spec` as a local process.
    pub fn new(name: impl Into<String>, spec: DriverAgentSpec) -> Self {
        Self {
            name: name.into(),
            cli: cli(spec.driver),
            executor: Arc::new(LocalExecutor),
            grace: crate::CommandAgent::DEFAULT_GRACE,
            output_cap: Self::DEFAULT_OUTPUT_CAP,
            log_cap: crate::CommandAgent::DEFAULT_LOG_CAP,
            sessions: Arc::default(),
            confine: ConfinePolicy::new(spec.confine),
            spec,
        }
    }

    /// Confines the CLI's processes as `policy` says (see [`crate::CommandAgent::with_confinement`]).
    pub fn with_confinement(mut self, policy: ConfinePolicy) -> Self {
        self.confine = policy;
        self
    }

    /// Runs the CLI through `executor` instead of locally.
    pub fn with_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = executor;
        self
    }

    /// The spec this agent runs.
    pub fn spec(&self) -> &DriverAgentSpec {
        &self.spec
    }

    /// The argv of one run (program first), for dry runs, docs and tests.
    pub fn argv(&self, ctx: &AgentContext, prompt: &str, resume: Option<&str>, home: Option<&Path>) -> Vec<String> {
        let inv = self.invocation(ctx, prompt, resume, home);
        let mut argv = vec![self.program()];
        argv.extend(self.cli.args(&self.spec, &inv));
        argv
    }

    fn program(&self) -> String {
        self.spec.program.clone().unwrap_or_else(|| self.spec.driver.program().to_owned())
    }

    fn invocation<'a>(&self, ctx: &'a AgentContext, prompt: &'a str, resume: Option<&'a str>, home: Option<&'a Path>) -> Invocation<'a> {
        let permissions = if ctx.read_only { Permissions::ReadOnly } else { self.spec.permissions };
        let confined = confine::will_confine(&self.confine);
        Invocation { prompt, resume, permissions, verify: &ctx.verify, home, budget_usd: ctx.budget.and_then(|b| b.usd), confined }
    }

    fn spawn_error(&self, message: impl Into<String>) -> AgentError {
        AgentError::Spawn { agent: self.name.clone(), message: redact_str(&message.into()).into_owned() }
    }

    fn exec_error(&self, error: ExecError) -> AgentError {
        match error {
            ExecError::Spawn { program, kind: std::io::ErrorKind::NotFound, .. } => self.spawn_error(format!(
                "program `{program}` was not found: install {} (see the README's driver table) or set `agents.{}.program`",
                self.spec.driver.name(),
                self.name
            )),
            ExecError::Io { action, source } => AgentError::Io { action: redact_str(&action).into_owned(), source },
            other => self.spawn_error(other.to_string()),
        }
    }

    /// One process run: the spec, the stream reading, and what it said.
    async fn run_once(&self, ctx: &AgentContext, prompt: &str, resume: Option<&str>) -> Result<(ProcessOutcome, Parsed), AgentError> {
        let home = match (self.spec.isolate_sessions, self.cli.home(), &ctx.sessions_dir) {
            (true, Some(spec), Some(root)) => Some(home::prepare(root, self.spec.driver, &slot_of(ctx), &spec).map_err(|source| {
                AgentError::Io { action: format!("prepare the {} session directory", self.spec.driver.name()), source }
            })?),
            _ => None,
        };
        let tmp = match confine::decide(&self.confine) {
            Some(strict) => {
                let tmp = confine::RunTmp::create(ctx.task_id.as_str(), self.executor.shared_dir())
                    .map_err(|source| AgentError::Io { action: "create the agent's private temp dir".to_owned(), source })?;
                Some((strict, tmp))
            }
            None => None,
        };
        let mut inv = self.invocation(ctx, prompt, resume, home.as_deref());
        inv.confined = tmp.is_some();
        let mut argv = vec![self.program()];
        argv.extend(self.cli.args(&self.spec, &inv));
        redact::register_vars(&self.spec.env);
        redact::register_vars(&ctx.env);
        let mut env = self.spec.env.clone();
        env.extend(self.cli.env(&self.spec, &inv));
        env.extend(ctx.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.insert("FUGUE_TASK_ID".to_owned(), ctx.task_id.to_string());
        env.insert("FUGUE_WORKTREE".to_owned(), ctx.worktree.to_string_lossy().into_owned());
        let confinement = tmp.as_ref().map(|(strict, tmp)| {
            confine::env_for(&mut env, tmp.path());
            let state = self.cli.state_paths(home.as_deref());
            for dir in &state {
                // A CLI's state dir under $HOME it would make on its first run: made here, since
                // a confined CLI could not (a file path is left alone).
                if dir.extension().is_none() && in_home("").is_some_and(|h| dir.starts_with(h)) {
                    let _ = std::fs::create_dir_all(dir);
                }
            }
            Confinement::new(confine::writable_roots(ctx, &self.confine, &state, tmp.path()), *strict)
        });
        let header = format!(
            "--- fugue: {} driver `{}` for task `{}` (attempt {}, iteration {}{}): `{}` with {} argument(s) in {}",
            self.spec.driver.name(),
            self.name,
            ctx.task_id,
            ctx.attempt,
            ctx.iteration,
            if resume.is_some() { ", continuing its session" } else { "" },
            argv[0],
            argv.len() - 1,
            ctx.worktree.display()
        );
        let mut spec = ProcessSpec::new(ctx.task_id.as_str(), argv, &ctx.worktree);
        spec.env = env;
        spec.timeout = ctx.timeout.or(self.spec.timeout.map(|t| t.0));
        spec.grace = self.grace;
        spec.output_cap = self.output_cap;
        spec.keep_stdout = Some(self.output_cap);
        spec.stdin = self.cli.prompt_on_stdin().then(|| prompt.as_bytes().to_vec());
        spec.log_file = ctx.log_file.clone();
        spec.log_cap = self.log_cap;
        spec.log_header = Some(redact_str(&format!("{header}\n{}", confine::log_line(confinement.as_ref()))).into_owned());
        spec.attach_job = ctx.resume_job.clone();
        let confined = confinement.is_some();
        let roots = confinement.as_ref().map(|c| c.write.iter().map(|p| p.display().to_string()).collect::<Vec<_>>());
        spec.confine = confinement;
        let timeout = spec.timeout;

        // A continued session may report session-wide figures: live usage is this run's share.
        let before = resume.and_then(|id| self.sessions.lock().unwrap_or_else(PoisonError::into_inner).get(id).copied());
        let mut reader = StreamReader::new(self.cli.parser(), ctx.job_observer.clone(), ctx.activity.clone());
        reader.baseline = before.map(|b| (self.cli.cumulative(), b));
        let reader = Arc::new(reader);
        let observer: Arc<dyn ExecObserver> = reader.clone();
        let outcome = self.executor.run_observed(spec, Some(observer)).await.map_err(|e| self.exec_error(e))?;
        if outcome.timed_out {
            return Err(AgentError::Timeout { agent: self.name.clone(), after: timeout.unwrap_or_default() });
        }
        let mut parsed = reader.finish(&outcome);
        drop(tmp);
        parsed.confined = roots;
        if confined {
            parsed.refused_writes = confine::refused_writes(outcome.stdout.as_deref().unwrap_or(&outcome.output));
            if parsed.refused_writes.is_empty() {
                parsed.refused_writes = confine::refused_writes(&outcome.output);
            }
        }
        Ok((outcome, parsed))
    }

    /// The report for a run that ended with `outcome` and said `parsed`.
    fn report(&self, outcome: ProcessOutcome, parsed: Parsed, elapsed: Duration) -> AgentReport {
        let cli = self.spec.driver.name();
        let name = &self.name;
        let secs = elapsed.as_secs_f64();
        let spent = parsed.usage.brief().map(|u| format!(", {u}")).unwrap_or_default();
        let turns = parsed.turns.map(|t| format!(", {t} turn(s)")).unwrap_or_default();
        let failure = self.failure(&outcome, &parsed);
        let mut report = match failure {
            None => {
                let said = parsed.final_message.as_deref().map(first_line).filter(|l| !l.is_empty());
                let said = said.map(|l| format!(": {}", clip(l, 160))).unwrap_or_default();
                AgentReport::ready(format!("{cli} agent `{name}` finished after {secs:.1}s{turns}{spent}{said}"))
            }
            Some((kind, why)) => {
                let mut r = AgentReport::failed(format!("{cli} agent `{name}` failed after {secs:.1}s{turns}{spent}: {why}"));
                r.failure = Some(kind);
                r
            }
        };
        if !parsed.refused_writes.is_empty() {
            // The CLI showed a write its confinement refused: said in the report, so the cause is
            // named whether the agent then worked around it or gave up.
            report.summary.push_str(&format!(
                " [confinement refused writes outside the worktree: {}; a confined agent writes only in its worktree, the plan's `caches`, its TMPDIR and its CLI's state]",
                parsed.refused_writes.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        report.exit_code = outcome.exit_code;
        report.output = outcome.output;
        report.duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        report.usage = parsed.usage;
        report.session_id = parsed.session_id;
        report.turns = parsed.turns;
        report.final_message = parsed.final_message;
        report.denials = parsed.denials;
        report.confined = parsed.confined;
        report
    }

    /// Why the run failed, or `None` when it finished: the CLI's own error result first (it
    /// says the most), then refused tool calls, then the exit status, then silence.
    fn failure(&self, outcome: &ProcessOutcome, parsed: &Parsed) -> Option<(FailureKind, String)> {
        let agent = format!("agents.{}", self.name);
        if !parsed.denials.is_empty() {
            let shown: Vec<String> = parsed.denials.iter().take(3).map(|d| format!("`{}`", clip(d, 120))).collect();
            let more = parsed.denials.len().saturating_sub(3);
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            let hint = match self.spec.permissions {
                Permissions::ReadOnly => "this agent is read-only".to_owned(),
                _ => format!(
                    "edits inside the worktree and the task's `verify` commands are allowed by `permissions: edit`; allow more with `{agent}.allowed_tools` (the CLI's rule syntax) or, in a sandbox, `{agent}.permissions: bypass`"
                ),
            };
            return Some((
                FailureKind::PermissionDenied,
                format!("the CLI refused {} tool call(s): {}{more} ({hint})", parsed.denials.len(), shown.join(", ")),
            ));
        }
        if let Some((kind, message)) = &parsed.error {
            let hint = match kind {
                FailureKind::MaxTurns => match self.spec.max_turns {
                    Some(n) => format!(" (the limit is `{agent}.max_turns: {n}`: raise it, or split the task)"),
                    None => " (the CLI's own turn limit: set `{agent}.max_turns` higher)".replace("{agent}", &agent),
                },
                FailureKind::Budget => " (the session's spending limit)".to_owned(),
                FailureKind::Api => " (the model API refused or failed: check the key, the base URL and the model name)".to_owned(),
                _ => String::new(),
            };
            return Some((*kind, format!("{}{hint}", clip(message, 400))));
        }
        match (outcome.exit_code, outcome.signal) {
            (Some(0), _) => {}
            (Some(code), _) => {
                let tail = last_lines(outcome.stdout.as_deref().filter(|s| !s.trim().is_empty()).unwrap_or(&outcome.output), 3);
                return Some((
                    FailureKind::Exit,
                    format!("exited with code {code}{}", if tail.is_empty() { String::new() } else { format!(": {tail}") }),
                ));
            }
            (None, Some(sig)) => return Some((FailureKind::Exit, format!("was killed by {}", signal_name(sig)))),
            (None, None) => return Some((FailureKind::Exit, "ended with no exit code and no signal".to_owned())),
        }
        if !parsed.finished {
            let tail = last_lines(&outcome.output, 3);
            return Some((
                FailureKind::Error,
                format!(
                    "exited 0 without the result {} prints when a headless session ends, so nothing says the work was done ({}); is `{}` really {}?",
                    self.spec.driver.name(),
                    if tail.is_empty() { "it printed nothing".to_owned() } else { format!("last output: {tail}") },
                    self.program(),
                    self.spec.driver.name()
                ),
            ));
        }
        None
    }
}

/// The prompt of a run that delivers `feedback`: for a continued session the findings alone,
/// for a fresh run the task's prompt followed by them.
pub(crate) fn feedback_prompt(prompt: &str, feedback: &str, continued: bool) -> String {
    const INTRO: &str = "QA rejected the previous iteration of this task. Fix every finding below in this checkout, \
then stop. The findings (test output, review, scope checks):";
    if continued { format!("{INTRO}\n\n{feedback}") } else { format!("{prompt}\n\n---\n{INTRO}\n\n{feedback}") }
}

/// The task's prompt after a short briefing on where the agent works and what fugue does
/// for it: a coding agent left to itself commits, switches branches or edits beyond its
/// scope, and each of those is refused or rejected later. Reviewers get their prompt as is.
pub(crate) fn briefing(ctx: &AgentContext) -> String {
    if ctx.read_only {
        return ctx.prompt.clone();
    }
    let scope = match ctx.modifies.patterns() {
        [] => "the files this task is about".to_owned(),
        patterns => patterns.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "),
    };
    let mut b = format!(
        "[fugue] You work on task `{}` in a git worktree of its own (the current directory); other agents work on other tasks in theirs. Change only {scope}. Do not commit, push or switch branches: fugue commits your changes, checks them and merges them when you stop.",
        ctx.task_id
    );
    if !ctx.verify.is_empty() {
        let cmds: Vec<String> = ctx.verify.iter().map(|c| format!("`{c}`")).collect();
        b.push_str(&format!(" The work is checked with {} (you may run these).", cmds.join(", ")));
    }
    format!("{b}\n\n{}", ctx.prompt)
}

/// The slot a context's worktree is (`wt-3`), which keys its session directory.
fn slot_of(ctx: &AgentContext) -> String {
    ctx.worktree.file_name().map_or_else(|| "repo".to_owned(), |n| n.to_string_lossy().into_owned())
}

fn first_line(s: &str) -> &str {
    s.trim().lines().next().unwrap_or_default().trim()
}

/// `s` cut to at most `max` characters, with an ellipsis where it was cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("--- fugue:")).collect();
    clip(&lines[lines.len().saturating_sub(n)..].join(" | "), 400)
}

#[async_trait]
impl Agent for DriverAgent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, ctx: AgentContext) -> Result<AgentReport, AgentError> {
        let started = Instant::now();
        if !ctx.worktree.is_dir() {
            return Err(self.spawn_error(format!("the worktree {} is not a directory", ctx.worktree.display())));
        }
        if let Some(why) = self.cli.refuses(&self.spec) {
            return Err(self.spawn_error(why));
        }
        let feedback = ctx.feedback.as_deref().filter(|f| !f.trim().is_empty());
        let resume = match (feedback, ctx.session.as_deref()) {
            (Some(_), Some(session)) if self.spec.feedback == FeedbackMode::Continue && self.cli.can_resume() => Some(session),
            _ => None,
        };
        let briefed = briefing(&ctx);
        let prompt = match feedback {
            Some(f) => feedback_prompt(&briefed, f, resume.is_some()),
            None => briefed.clone(),
        };
        let (mut outcome, mut parsed) = self.run_once(&ctx, &prompt, resume).await?;
        if resume.is_some() && parsed.turns.unwrap_or(0) == 0 && !parsed.finished_ok() {
            // The CLI could not pick the session up (its store is gone, or it was never
            // saved): deliver the findings in a fresh run instead of failing the iteration.
            let fresh = feedback_prompt(&briefed, feedback.unwrap_or_default(), false);
            (outcome, parsed) = self.run_once(&ctx, &fresh, None).await?;
        }
        let continued = resume.filter(|_| parsed.turns.unwrap_or(0) > 0 || parsed.finished);
        self.count_session(&mut parsed, continued);
        Ok(self.report(outcome, parsed, started.elapsed()))
    }
}

impl DriverAgent {
    /// Makes `parsed.usage` this run's share, and remembers the session's running figures.
    fn count_session(&self, parsed: &mut Parsed, continued: Option<&str>) {
        let mode = self.cli.cumulative();
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        // A fresh run starts a session: nothing came before it.
        let before = continued.and_then(|id| sessions.get(id).copied()).unwrap_or_default();
        let now = parsed.usage;
        let share = if continued.is_some() { mode.this_run(&now, &before) } else { now };
        if let Some(id) = &parsed.session_id {
            let after = mode.session_after(&now, &share, &before);
            sessions.insert(id.clone(), after);
        }
        parsed.usage = share;
    }
}

/// Hears a run's output: stdout is split into lines for the parser, activity goes to the
/// engine, job ids to the engine's job observer.
#[derive(Debug)]
struct StreamReader {
    state: Mutex<ReaderState>,
    jobs: Option<Arc<dyn ExecObserver>>,
    activity: Option<Arc<dyn ActivityObserver>>,
    /// For a continued session: how the CLI counts, and what the session had spent before.
    baseline: Option<(Cumulative, Usage)>,
}

struct ReaderState {
    parser: Box<dyn StreamParser>,
    partial: Vec<u8>,
    saw_output: bool,
    last: Option<Activity>,
}

impl std::fmt::Debug for ReaderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderState").field("saw_output", &self.saw_output).finish_non_exhaustive()
    }
}

impl StreamReader {
    fn new(parser: Box<dyn StreamParser>, jobs: Option<Arc<dyn ExecObserver>>, activity: Option<Arc<dyn ActivityObserver>>) -> Self {
        Self {
            state: Mutex::new(ReaderState { parser, partial: Vec::new(), saw_output: false, last: None }),
            jobs,
            activity,
            baseline: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReaderState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Feeds one complete line, telling the activity observer when something new happened.
    fn line(&self, state: &mut ReaderState, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if let Some(doing) = state.parser.line(text) {
            let so_far = state.parser.usage_so_far();
            let so_far = match &self.baseline {
                Some((mode, before)) => mode.this_run(&so_far, before),
                None => so_far,
            };
            let activity = Activity::new(clip(&doing, 200), so_far);
            if state.last.as_ref() != Some(&activity) {
                if let Some(observer) = &self.activity {
                    observer.activity(&activity);
                }
                state.last = Some(activity);
            }
        }
    }

    /// The parse of the whole run. An executor that did not stream is read from its capture.
    fn finish(&self, outcome: &ProcessOutcome) -> Parsed {
        let mut state = self.lock();
        let rest = std::mem::take(&mut state.partial);
        if !rest.is_empty() {
            self.line(&mut state, &rest);
        }
        if !state.saw_output {
            let text = outcome.stdout.clone().unwrap_or_else(|| outcome.output.clone());
            for line in text.lines() {
                self.line(&mut state, line.as_bytes());
            }
        }
        let parser = std::mem::replace(&mut state.parser, Box::new(parse::Nothing));
        parser.finish()
    }
}

impl ExecObserver for StreamReader {
    fn job_started(&self, job_id: &str) {
        if let Some(jobs) = &self.jobs {
            jobs.job_started(job_id);
        }
    }

    fn output(&self, stream: OutputStream, chunk: &[u8]) {
        if stream != OutputStream::Stdout {
            return;
        }
        let mut state = self.lock();
        state.saw_output = true;
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut state.partial);
            line.extend_from_slice(&rest[..nl]);
            self.line(&mut state, &line);
            rest = &rest[nl + 1..];
        }
        // A machine-output line is one JSON value; a runaway one (megabytes of tool output)
        // is cut rather than held.
        if state.partial.len() < 8 * 1024 * 1024 {
            state.partial.extend_from_slice(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use fugue_core::DriverKind;

    use super::*;

    #[test]
    fn feedback_prompts_say_what_to_fix() {
        let fresh = feedback_prompt("Implement X", "tests: 1 failed\nWANT a.txt=1", false);
        assert!(fresh.starts_with("Implement X\n\n---\nQA rejected"), "{fresh}");
        assert!(fresh.ends_with("WANT a.txt=1"));
        let cont = feedback_prompt("Implement X", "tests: 1 failed", true);
        assert!(!cont.contains("Implement X") && cont.starts_with("QA rejected"), "{cont}");
    }

    #[test]
    fn continued_sessions_count_this_run_only() {
        let mut now = Usage::default();
        now.input_tokens = Some(4000);
        now.cost_usd = Some(0.03);
        let mut before = Usage::default();
        before.input_tokens = Some(2000);
        before.cost_usd = Some(0.01);
        let all = Cumulative::All.this_run(&now, &before);
        assert_eq!((all.input_tokens, all.cost_usd.map(|c| (c * 1000.0).round())), (Some(2000), Some(20.0)));
        let cost = Cumulative::Cost.this_run(&now, &before);
        assert_eq!(cost.input_tokens, Some(4000));
        assert_eq!(cost.cost_usd.map(|c| (c * 1000.0).round()), Some(20.0));
        assert_eq!(Cumulative::Nothing.this_run(&now, &before), now);
        // Unknown before: the figure is taken as it is, never made up.
        assert_eq!(Cumulative::All.this_run(&now, &Usage::default()), now);
    }

    #[test]
    fn the_briefing_names_the_scope_and_checks_but_not_for_reviewers() {
        let mut ctx = AgentContext::new(fugue_core::TaskId::new("t1").expect("id"), "Do X", "/w");
        ctx.modifies = [fugue_core::Pattern::parse("src/x/**").expect("pattern")].into_iter().collect();
        ctx.verify = vec!["cargo test -p x".to_owned()];
        let b = briefing(&ctx);
        assert!(b.starts_with("[fugue] You work on task `t1`"), "{b}");
        assert!(b.contains("`src/x/**`") && b.contains("`cargo test -p x`") && b.ends_with("\n\nDo X"), "{b}");
        ctx.read_only = true;
        assert_eq!(briefing(&ctx), "Do X");
    }

    #[test]
    fn each_cli_declares_the_state_it_writes_when_confined() {
        let home = Path::new("/s/fugue/sessions/x/wt-1");
        for kind in [DriverKind::Claude, DriverKind::Codex, DriverKind::Aider, DriverKind::Opencode] {
            assert_eq!(cli(kind).state_paths(Some(home)).first().map(PathBuf::as_path), Some(home), "{kind:?}");
        }
        if let Some(user) = in_home("") {
            assert_eq!(cli(DriverKind::Gemini).state_paths(None), [user.join(".gemini")]);
            let opencode = cli(DriverKind::Opencode).state_paths(None);
            assert_eq!(opencode.len(), 4, "{opencode:?}");
            assert!(opencode.iter().all(|p| p.ends_with("opencode")), "{opencode:?}");
        }
        // A confined Codex runs with its own sandbox off (bubblewrap cannot run inside Landlock).
        let spec = DriverAgentSpec::new(DriverKind::Codex);
        let inv = Invocation {
            prompt: "p",
            resume: None,
            permissions: Permissions::Edit,
            verify: &[],
            home: None,
            budget_usd: None,
            confined: true,
        };
        let args = cli(DriverKind::Codex).args(&spec, &inv);
        assert!(args.contains(&"sandbox_mode=\"danger-full-access\"".to_owned()), "{args:?}");
        let inv = Invocation { confined: false, ..inv };
        assert!(cli(DriverKind::Codex).args(&spec, &inv).contains(&"sandbox_mode=\"workspace-write\"".to_owned()));
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("héllo", 3), "hél…");
        assert_eq!(clip("hé", 3), "hé");
    }
}
