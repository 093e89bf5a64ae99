//! `fugue report --html`: one self-contained HTML page that shows a run.
//!
//! The page is built from the same three things every other view of a run uses: the
//! [`RunView`] (statuses, busy spans, the figures of `fugue report`), the planned
//! [`DependencyGraph`] (critical path, estimate, phases) and the raw journal [`Record`]s, which
//! carry what the view folds away: when each agent finished, how long each QA round took,
//! which rounds were rejected, why an attempt failed. [`render`] replays the records into
//! attempts made of coloured segments (agent → QA → merge), lays the attempts into one lane
//! per pool slot (or packs them into lanes by time when the run used no pool), and writes
//! inline SVG: a Gantt timeline, a step chart of how many agents were busy, the agents'
//! cumulative spend (where they reported it), then the task table with links to the per-task
//! logs.
//!
//! The page must open anywhere, offline, years later: no network, no external assets, no
//! framework; CSS and SVG are inline, hover details are SVG `<title>`s, and every string that
//! came from the journal is escaped. [`render`] is pure (the same inputs give the same bytes);
//! the I/O — finding the newest log of each task, writing the file atomically — lives in
//! [`TaskLogs::find`] and [`write`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use fugue_core::state::DependencyGraph;
use fugue_core::{AgentOutcome, GateReport, TaskId, TaskStatus, Usage};

use crate::error::EngineError;
use crate::events::{Event, QaVerdict, RunOutcome};
use crate::journal::Record;
use crate::validate::concurrency;
use crate::view::{RunView, Span};

/// Links from the HTML file to each task's logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskLogs {
    links: BTreeMap<String, Vec<(String, String)>>,
}

impl TaskLogs {
    /// No links.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds a link (`label`, `href`) for `task`; `href` is used as given (already a URL).
    pub fn add(&mut self, task: &str, label: &str, href: &str) {
        self.links.entry(task.to_owned()).or_default().push((label.to_owned(), href.to_owned()));
    }

    /// Finds, in `state_dir/logs`, the newest `<task>-<stamp>.md` of every task and its
    /// `<task>.agent.log`, as links relative to the directory of `html_file`. A missing or
    /// unreadable logs directory gives no links.
    pub fn find(state_dir: &Path, html_file: &Path) -> Self {
        let logs_dir = state_dir.join("logs");
        let Ok(entries) = std::fs::read_dir(&logs_dir) else { return Self::none() };
        let names: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        let from = lexical_absolute(html_file).parent().map(Path::to_path_buf).unwrap_or_default();
        let logs_dir = lexical_absolute(&logs_dir);
        let mut newest: BTreeMap<&str, &str> = BTreeMap::new();
        let mut agent_logs: Vec<(&str, &str)> = Vec::new();
        for name in &names {
            if let Some(task) = name.strip_suffix(".agent.log") {
                if TaskId::new(task).is_ok() {
                    agent_logs.push((task, name));
                }
            } else if let Some((task, _)) = task_log_name(name) {
                // Stamps are fixed-width UTC, so the greatest name is the newest log.
                let slot = newest.entry(task).or_insert(name);
                if name.as_str() > *slot {
                    *slot = name;
                }
            }
        }
        let mut logs = Self::none();
        for (task, name) in newest {
            logs.add(task, "log", &relative_href(&from, &logs_dir.join(name)));
        }
        for (task, name) in agent_logs {
            logs.add(task, "agent output", &relative_href(&from, &logs_dir.join(name)));
        }
        logs
    }

    fn of(&self, task: &str) -> &[(String, String)] {
        self.links.get(task).map_or(&[], Vec::as_slice)
    }
}

/// Splits `<task>-<stamp>.md` into the task id and the stamp (`20261121T210331Z`).
fn task_log_name(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix(".md")?;
    let (task, stamp) = stem.rsplit_once('-')?;
    let stamp_ok = stamp.len() >= 15
        && stamp.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && stamp.contains('T')
        && stamp.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'T' | b'Z' | b'.'));
    (stamp_ok && TaskId::new(task).is_ok()).then_some((task, stamp))
}

/// `path` made absolute against the current directory, with `.` and `..` resolved lexically
/// (symlinks are not followed: the links must work from where the user put the file).
fn lexical_absolute(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A URL reference from the directory `from` to the file `to` (both absolute).
fn relative_href(from: &Path, to: &Path) -> String {
    let a: Vec<Component<'_>> = from.components().collect();
    let b: Vec<Component<'_>> = to.components().collect();
    if a.first() != b.first() {
        // Different roots (another drive): only an absolute file URL can reach it.
        return format!("file://{}", encode_path(&to.to_string_lossy().replace('\\', "/")));
    }
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); a.len() - common];
    parts.extend(b[common..].iter().map(|c| encode_path(&c.as_os_str().to_string_lossy())));
    parts.join("/")
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Loads the run in `state_dir` and writes its HTML report to `out` atomically, with links
/// to the task logs relative to `out` and secret values redacted.
pub fn write(state_dir: &Path, out: &Path) -> Result<(), EngineError> {
    let run = crate::load_run(state_dir)?;
    let replay = crate::journal::read(&crate::journal_path(state_dir))?;
    let view = RunView::from_records(&replay.records);
    let logs = TaskLogs::find(state_dir, out);
    let html = render(&view, run.graph.as_ref(), &replay.records, &logs);
    let html = fugue_core::redact::redact_str(&html);
    fugue_core::state::write_atomic(out, html.as_bytes()).map_err(|e| EngineError::io("write the HTML report to", out, e))
}

// ---------------------------------------------------------------------------------------------
// Attempts and segments, replayed from the journal.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Agent,
    Qa,
    Merge,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Qa => "qa",
            Kind::Merge => "merge",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Qa => "QA gates",
            Kind::Merge => "merge (queue and merge)",
        }
    }
}

/// How a segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Done,
    Rejected,
    Blocked,
    Failed,
    Conflict,
    Interrupted,
    Running,
}

impl Ending {
    fn class(self) -> &'static str {
        match self {
            Ending::Done => "",
            Ending::Rejected => " rejected",
            Ending::Blocked => " blocked",
            Ending::Failed => " failed",
            Ending::Conflict => " conflict",
            Ending::Interrupted => " interrupted",
            Ending::Running => " running",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ending::Done => "done",
            Ending::Rejected => "rejected: sent back to the agent",
            Ending::Blocked => "blocked by the environment",
            Ending::Failed => "failed",
            Ending::Conflict => "merge conflict",
            Ending::Interrupted => "interrupted",
            Ending::Running => "still running",
        }
    }
}

#[derive(Debug, Clone)]
struct Segment {
    kind: Kind,
    ending: Ending,
    start: u64,
    end: u64,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkKind {
    Failure,
    Conflict,
    Interrupt,
}

#[derive(Debug, Clone)]
struct Mark {
    kind: MarkKind,
    at: u64,
    text: String,
}

#[derive(Debug, Clone)]
struct Attempt {
    task: TaskId,
    number: u32,
    slot: Option<String>,
    start: u64,
    segments: Vec<Segment>,
    marks: Vec<Mark>,
    /// The phase under way and since when, while the attempt is open.
    open: Option<(Kind, u64)>,
    closed: bool,
    outcome: &'static str,
}

impl Attempt {
    fn end(&self) -> u64 {
        let segs = self.segments.iter().map(|s| s.end);
        let marks = self.marks.iter().map(|m| m.at);
        segs.chain(marks).fold(self.start, u64::max)
    }

    fn push(&mut self, kind: Kind, ending: Ending, from: u64, to: u64, detail: String) {
        self.segments.push(Segment { kind, ending, start: from, end: to.max(from), detail });
    }

    /// Ends the phase under way at `at` and the attempt with it.
    fn close(&mut self, at: u64, ending: Ending, detail: &str) {
        if let Some((kind, since)) = self.open.take()
            && at > since
        {
            self.push(kind, ending, since, at, detail.to_owned());
        }
        self.closed = true;
    }
}

#[derive(Debug, Default)]
struct Timeline {
    attempts: Vec<Attempt>,
    phases: Vec<(u64, String)>,
    problems: Vec<(u64, String, String)>,
}

fn gates(reports: &[GateReport]) -> String {
    reports
        .iter()
        .map(|g| {
            let verdict = format!("{:?}", g.verdict).to_lowercase();
            let score = g.score.map(|s| format!(", score {s:.1}")).unwrap_or_default();
            let findings = if g.findings.is_empty() { String::new() } else { format!(", {} finding(s)", g.findings.len()) };
            format!("{}: {verdict}{score}{findings} ({})", g.gate, dur(g.duration_ms))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn replay(records: &[Record], view: &RunView) -> Timeline {
    let mut tl = Timeline::default();
    let mut open: HashMap<TaskId, usize> = HashMap::new();
    let mut last = view.first_ms;
    for r in records {
        let ms = fugue_core::time::parse_millis(&r.ts).unwrap_or(last);
        let prev = last;
        last = ms;
        let current = |task: &TaskId, open: &HashMap<TaskId, usize>| open.get(task).copied();
        match &r.event {
            Event::PhaseStarted { phase } => tl.phases.push((ms, phase.to_string())),
            Event::RunResumed { .. } => {
                for (_, i) in open.drain() {
                    let a = &mut tl.attempts[i];
                    a.close(prev, Ending::Interrupted, "the orchestrator stopped here");
                    a.outcome = "interrupted";
                    a.marks.push(Mark {
                        kind: MarkKind::Interrupt,
                        at: prev,
                        text: "the orchestrator stopped; the run was resumed later".into(),
                    });
                }
            }
            Event::AttemptStarted { task, attempt, slot, .. } => {
                if let Some(i) = open.remove(task) {
                    tl.attempts[i].close(ms, Ending::Interrupted, "superseded by a new attempt");
                }
                open.insert(task.clone(), tl.attempts.len());
                tl.attempts.push(Attempt {
                    task: task.clone(),
                    number: *attempt,
                    slot: slot.clone(),
                    start: ms,
                    segments: Vec::new(),
                    marks: Vec::new(),
                    open: Some((Kind::Agent, ms)),
                    closed: false,
                    outcome: "running",
                });
            }
            Event::AgentFinished { task, iteration, outcome, summary, duration_ms, usage, failure, denials, .. } => {
                let Some(i) = current(task, &open) else { continue };
                let a = &mut tl.attempts[i];
                let since = a.open.map_or(ms, |(_, s)| s);
                let ok = *outcome == AgentOutcome::ReadyForQa;
                let mut detail = format!(
                    "iteration {} · {summary} · agent reported {} · {}",
                    iteration + 1,
                    dur(*duration_ms),
                    usage.brief().unwrap_or_else(|| "usage unknown".to_owned())
                );
                if let Some(kind) = failure {
                    let _ = write!(detail, " · failure: {}", crate::report::failure_text(*kind));
                }
                if !denials.is_empty() {
                    let _ = write!(detail, " · {} refused tool call(s): {}", denials.len(), denials.join("; "));
                }
                a.push(Kind::Agent, if ok { Ending::Done } else { Ending::Failed }, since, ms, detail);
                a.open = ok.then_some((Kind::Qa, ms));
            }
            Event::QaFinished { task, iteration, verdict, reports, duration_ms, .. } => {
                let Some(i) = current(task, &open) else { continue };
                let a = &mut tl.attempts[i];
                let since = a.open.map_or(ms, |(_, s)| s);
                let (ending, next) = match verdict {
                    QaVerdict::TaskApproved => (Ending::Done, Kind::Merge),
                    QaVerdict::TaskRejected => (Ending::Rejected, Kind::Agent),
                    QaVerdict::QaBlocked => (Ending::Blocked, Kind::Agent),
                };
                let detail = format!("iteration {} · gates took {} · {}", iteration + 1, dur(*duration_ms), gates(reports));
                a.push(Kind::Qa, ending, since, ms, detail);
                a.open = Some((next, ms));
            }
            Event::Merged { task, commit, files } => {
                let Some(i) = open.remove(task) else { continue };
                let a = &mut tl.attempts[i];
                let short: String = commit.chars().take(10).collect();
                a.close(ms, Ending::Done, &format!("merged as {short} · {} file(s) changed", files.len()));
                a.outcome = "merged";
            }
            Event::MergeConflicted { task, files } => {
                let Some(i) = open.remove(task) else { continue };
                let a = &mut tl.attempts[i];
                let text = format!("merge conflict in {}", files.join(", "));
                a.close(ms, Ending::Conflict, &text);
                a.marks.push(Mark { kind: MarkKind::Conflict, at: ms, text: text.clone() });
                a.outcome = "merge conflict";
                tl.problems.push((ms, task.to_string(), text));
            }
            Event::AttemptFailed { task, attempt, reason } => {
                let text = format!("attempt {attempt} failed: {reason}");
                tl.problems.push((ms, task.to_string(), text.clone()));
                let Some(i) = open.remove(task) else { continue };
                let a = &mut tl.attempts[i];
                a.close(ms, Ending::Failed, &text);
                a.marks.push(Mark { kind: MarkKind::Failure, at: ms, text });
                a.outcome = "failed";
            }
            Event::Status { task, status } if status.is_terminal() => {
                let Some(i) = open.remove(task) else { continue };
                let a = &mut tl.attempts[i];
                let ending = if *status == TaskStatus::Merged { Ending::Done } else { Ending::Failed };
                a.close(ms, ending, &format!("task {status}"));
                a.outcome = status.as_str();
            }
            Event::Interrupted { reason } => tl.problems.push((ms, String::new(), format!("run interrupted: {reason}"))),
            _ => {}
        }
    }
    let end = last.max(view.last_ms);
    let ending = if view.outcome.is_some() { Ending::Interrupted } else { Ending::Running };
    for (_, i) in open {
        let a = &mut tl.attempts[i];
        a.close(end, ending, if ending == Ending::Running { "still running" } else { "the run stopped here" });
        a.outcome = if ending == Ending::Running { "running" } else { "interrupted" };
        if ending == Ending::Interrupted {
            a.marks.push(Mark { kind: MarkKind::Interrupt, at: end, text: "the run stopped with this attempt unfinished".into() });
        }
    }
    tl
}

// ---------------------------------------------------------------------------------------------
// Lanes: one per pool slot, rows inside a lane when attempts overlap.

#[derive(Debug)]
struct Lane {
    name: String,
    rows: Vec<Vec<usize>>,
}

fn natural_key(s: &str) -> (String, u64, String) {
    let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, num) = s.split_at(s.len() - digits);
    (prefix.to_owned(), num.parse().unwrap_or(0), s.to_owned())
}

/// Greedy interval packing: the first row whose last attempt ended before this one starts.
fn pack(attempts: &[Attempt], mut members: Vec<usize>) -> Vec<Vec<usize>> {
    members.sort_by_key(|&i| (attempts[i].start, attempts[i].end()));
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for i in members {
        let a = &attempts[i];
        match rows.iter_mut().find(|r| r.last().is_none_or(|&j| attempts[j].end() <= a.start)) {
            Some(row) => row.push(i),
            None => rows.push(vec![i]),
        }
    }
    rows
}

fn lanes(attempts: &[Attempt]) -> Vec<Lane> {
    let mut by_slot: BTreeMap<(String, u64, String), Vec<usize>> = BTreeMap::new();
    let mut unslotted = Vec::new();
    for (i, a) in attempts.iter().enumerate() {
        match &a.slot {
            Some(s) => by_slot.entry(natural_key(s)).or_default().push(i),
            None => unslotted.push(i),
        }
    }
    let mut out: Vec<Lane> = by_slot.into_iter().map(|(k, members)| Lane { name: k.2, rows: pack(attempts, members) }).collect();
    // Without slots each packed row is an agent of its own.
    for (n, row) in pack(attempts, unslotted).into_iter().enumerate() {
        out.push(Lane { name: format!("agent {}", n + 1), rows: vec![row] });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Formatting.

/// Escapes text for HTML content and attribute values (also inside inline SVG).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn dur(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.2} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// The first `max` characters of `s`, with an ellipsis when cut.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

fn offset(ms: u64, origin: u64) -> String {
    format!("+{:.3}s", ms.saturating_sub(origin) as f64 / 1000.0)
}

/// A tick step giving about eight ticks over `span` ms.
fn tick_step(span: u64) -> u64 {
    const STEPS: [u64; 22] = [
        1, 2, 5, 10, 20, 50, 100, 200, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
        1_800_000,
    ];
    let target = span / 8;
    STEPS.iter().copied().find(|&s| s >= target).unwrap_or_else(|| target.div_ceil(3_600_000).max(1).saturating_mul(3_600_000))
}

fn tick_label(ms: u64, step: u64) -> String {
    if ms == 0 {
        "0".to_owned()
    } else if step < 1_000 {
        let decimals = if step.is_multiple_of(100) {
            1
        } else if step.is_multiple_of(10) {
            2
        } else {
            3
        };
        format!("{:.*}s", decimals, ms as f64 / 1000.0)
    } else if step < 60_000 && ms < 60_000 {
        format!("{}s", ms / 1000)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering.

const WIDTH: f64 = 1240.0;
const LABEL_W: f64 = 92.0;
const RIGHT_PAD: f64 = 14.0;
const AXIS_H: f64 = 38.0;
const ROW_H: f64 = 28.0;
const BAR_Y: f64 = 5.0;
const BAR_H: f64 = 18.0;
/// Approximate advance of one label character at the SVG label size, for fitting labels.
const CHAR_W: f64 = 6.6;

#[derive(Debug, Clone, Copy)]
struct Scale {
    t0: u64,
    span: u64,
}

impl Scale {
    fn x(self, t: u64) -> f64 {
        LABEL_W + (t.saturating_sub(self.t0) as f64) * (WIDTH - LABEL_W - RIGHT_PAD) / self.span as f64
    }
}

fn axis(s: &mut String, scale: Scale, top: f64, bottom: f64, labels_y: f64) {
    let step = tick_step(scale.span);
    let mut t = 0;
    while t <= scale.span {
        let x = scale.x(scale.t0 + t);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}"/><text class="tick" x="{x:.1}" y="{labels_y:.1}">{}</text>"#,
            esc(&tick_label(t, step))
        );
        match t.checked_add(step) {
            Some(next) => t = next,
            None => break,
        }
    }
}

fn mark_svg(s: &mut String, m: &Mark, task: &str, x: f64, y: f64, origin: u64) {
    let (class, glyph) = match m.kind {
        MarkKind::Failure => ("mark fail", "M-3,-3L3,3M3,-3L-3,3"),
        MarkKind::Conflict => ("mark fail conflict", "M-3,-3L3,3M3,-3L-3,3"),
        MarkKind::Interrupt => ("mark interrupt", "M-1.8,-3.2V3.2M1.8,-3.2V3.2"),
    };
    let _ = write!(
        s,
        r#"<g class="{class}" data-task="{}" transform="translate({x:.1},{y:.1})"><title>{} at {}: {}</title><circle r="6.5"/><path d="{glyph}"/></g>"#,
        esc(task),
        esc(task),
        offset(m.at, origin),
        esc(&m.text)
    );
}

fn timeline_svg(s: &mut String, tl: &Timeline, lanes: &[Lane], scale: Scale, critical: &HashSet<&str>) {
    let rows: usize = lanes.iter().map(|l| l.rows.len()).sum();
    let height = AXIS_H + ROW_H * rows.max(1) as f64 + 6.0;
    let bottom = height - 4.0;
    let _ = write!(
        s,
        r#"<svg id="timeline" class="chart" role="img" aria-label="timeline of the agents" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">"#
    );
    s.push_str(
        r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fdba74"/><rect width="3" height="6" fill="#c2410c"/></pattern></defs>"##,
    );
    // Lane backgrounds first, so the grid and the phase lines stay visible over them.
    let mut y = AXIS_H;
    for (k, lane) in lanes.iter().enumerate() {
        let lane_h = ROW_H * lane.rows.len() as f64;
        let class = if k % 2 == 0 { "lane-bg odd" } else { "lane-bg" };
        let _ = write!(s, r#"<rect class="{class}" x="0" y="{y:.1}" width="{WIDTH}" height="{lane_h:.1}"/>"#);
        y += lane_h;
    }
    axis(s, scale, AXIS_H - 4.0, bottom, AXIS_H - 9.0);
    // Phase starts: a dashed line and the phase's name, skipping names that would collide.
    let mut free_from = 0.0;
    for (at, phase) in &tl.phases {
        let x = scale.x(*at);
        let _ = write!(
            s,
            r#"<line class="phase-line" x1="{x:.1}" y1="4" x2="{x:.1}" y2="{bottom:.1}"><title>phase {} started at {}</title></line>"#,
            esc(phase),
            offset(*at, scale.t0)
        );
        let w = phase.len() as f64 * 6.2;
        if x >= free_from {
            let (anchor, tx) = if x + w > WIDTH - 2.0 { ("end", WIDTH - 2.0) } else { ("start", x + 3.0) };
            let _ = write!(s, r#"<text class="phase" x="{tx:.1}" y="12" text-anchor="{anchor}">{}</text>"#, esc(phase));
            free_from = x + w + 12.0;
        }
    }
    let mut y = AXIS_H;
    for lane in lanes {
        let lane_h = ROW_H * lane.rows.len() as f64;
        let _ = write!(
            s,
            r#"<g class="lane" data-lane="{}"><text class="lane-name" x="8" y="{:.1}">{}</text>"#,
            esc(&lane.name),
            y + lane_h / 2.0 + 4.0,
            esc(&lane.name)
        );
        for row in &lane.rows {
            for (k, &i) in row.iter().enumerate() {
                let a = &tl.attempts[i];
                let next_x = row.get(k + 1).map_or(WIDTH - RIGHT_PAD, |&j| scale.x(tl.attempts[j].start));
                attempt_svg(s, a, scale, y, next_x, critical.contains(a.task.as_str()));
            }
            y += ROW_H;
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
}

fn attempt_svg(s: &mut String, a: &Attempt, scale: Scale, y: f64, next_x: f64, critical: bool) {
    let task = a.task.as_str();
    let (x0, x1) = (scale.x(a.start), scale.x(a.end()));
    let w = (x1 - x0).max(2.0);
    let by = y + BAR_Y;
    let class = if critical { "attempt critical" } else { "attempt" };
    let _ = write!(
        s,
        r#"<g class="task" data-task="{}" data-attempt="{}"><rect class="{class}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="3"><title>{} · attempt {} · {} · {} → {} ({}){}</title></rect>"#,
        esc(task),
        a.number,
        x0 - 1.5,
        by - 1.5,
        w + 3.0,
        BAR_H + 3.0,
        esc(task),
        a.number,
        esc(a.slot.as_deref().unwrap_or("no slot")),
        offset(a.start, scale.t0),
        offset(a.end(), scale.t0),
        dur(a.end() - a.start),
        if critical { " · on the critical path" } else { "" },
    );
    for seg in &a.segments {
        let sx = scale.x(seg.start);
        let sw = (scale.x(seg.end) - sx).max(1.5);
        let _ = write!(
            s,
            r#"<rect class="seg {}{}" x="{sx:.1}" y="{by:.1}" width="{sw:.1}" height="{BAR_H}"><title>{} · attempt {} · {} · {}
{} → {} ({})
{}</title></rect>"#,
            seg.kind.class(),
            seg.ending.class(),
            esc(task),
            a.number,
            seg.kind.name(),
            seg.ending.name(),
            offset(seg.start, scale.t0),
            offset(seg.end, scale.t0),
            dur(seg.end - seg.start),
            esc(&seg.detail)
        );
    }
    // The label may run on into the free space before the next attempt of the row.
    let label = if a.number > 1 { format!("{task} #{}", a.number) } else { task.to_owned() };
    let room = next_x - x0 - 8.0;
    let fit = (room / CHAR_W).floor().max(0.0) as usize;
    let shown = if label.chars().count() <= fit {
        Some(label)
    } else if fit >= 4 {
        Some(format!("{}…", label.chars().take(fit - 1).collect::<String>()))
    } else {
        None
    };
    if let Some(text) = shown {
        let _ = write!(s, r#"<text class="bar-label" x="{:.1}" y="{:.1}">{}</text>"#, x0 + 4.0, by + 13.0, esc(&text));
    }
    for m in &a.marks {
        mark_svg(s, m, task, scale.x(m.at), by + BAR_H / 2.0, scale.t0);
    }
    s.push_str("</g>");
}

/// The busy count as a step function: `(time, agents busy from then on)`.
fn steps(spans: &[Span]) -> Vec<(u64, usize)> {
    let mut points: Vec<(u64, i64)> = spans.iter().filter(|s| s.end > s.start).flat_map(|s| [(s.start, 1), (s.end, -1)]).collect();
    points.sort_unstable();
    let mut out: Vec<(u64, usize)> = Vec::new();
    let mut cur = 0i64;
    for (t, d) in points {
        cur += d;
        let n = usize::try_from(cur).unwrap_or(0);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 = n,
            _ => out.push((t, n)),
        }
    }
    out
}

fn concurrency_svg(s: &mut String, spans: &[Span], scale: Scale, peak: usize, mean: f64) {
    const TOP: f64 = 22.0;
    const PLOT_H: f64 = 96.0;
    let height = TOP + PLOT_H + 8.0;
    let top_n = peak.max(1) as f64;
    let yv = |n: f64| TOP + PLOT_H - n * PLOT_H / top_n;
    let _ = write!(
        s,
        r#"<svg id="concurrency" class="chart" role="img" aria-label="agents busy over time" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">"#
    );
    axis(s, scale, TOP - 4.0, TOP + PLOT_H, TOP - 8.0);
    let every = (peak / 6).max(1);
    for n in (0..=peak.max(1)).step_by(every) {
        let yy = yv(n as f64);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LABEL_W}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/><text class="ytick" x="{:.1}" y="{:.1}">{n}</text>"#,
            WIDTH - RIGHT_PAD,
            LABEL_W - 6.0,
            yy + 4.0
        );
    }
    let _ = write!(
        s,
        r#"<text class="lane-name" x="8" y="{:.1}">agents</text><text class="lane-name" x="8" y="{:.1}">busy</text>"#,
        TOP + 40.0,
        TOP + 55.0
    );
    let pts = steps(spans);
    let mut path = format!("M{:.1},{:.1}", scale.x(scale.t0), yv(0.0));
    for (k, &(t, n)) in pts.iter().enumerate() {
        let x = scale.x(t);
        let _ = write!(path, "H{x:.1}V{:.1}", yv(n as f64));
        if n > 0
            && let Some(&(t_next, _)) = pts.get(k + 1)
        {
            let xn = scale.x(t_next);
            let _ = write!(
                s,
                r#"<rect class="busy-step" x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{} → {}: {n} agent(s) busy</title></rect>"#,
                yv(n as f64),
                (xn - x).max(0.5),
                yv(0.0) - yv(n as f64),
                offset(t, scale.t0),
                offset(t_next, scale.t0)
            );
        }
    }
    let _ = write!(path, "H{:.1}", WIDTH - RIGHT_PAD);
    let _ = write!(s, r#"<path class="busy-line" d="{path}"/>"#);
    if peak > 0 {
        let ym = yv(mean);
        let _ = write!(
            s,
            r#"<line class="mean-line" x1="{LABEL_W}" y1="{ym:.1}" x2="{:.1}" y2="{ym:.1}"><title>mean {mean:.2} agents while any was busy</title></line><text class="mean-label" x="{:.1}" y="{:.1}">mean {mean:.2}</text>"#,
            WIDTH - RIGHT_PAD,
            WIDTH - RIGHT_PAD - 4.0,
            ym - 4.0
        );
        if let Some(&(t, _)) = pts.iter().find(|p| p.1 == peak) {
            let _ = write!(s, r#"<text class="peak-label" x="{:.1}" y="{:.1}">peak {peak}</text>"#, scale.x(t) + 3.0, yv(top_n) + 11.0);
        }
    }
    s.push_str("</svg>");
}

/// A spend figure of the task table: "-" when no agent ran, "unknown" when no run reported
/// it, `≥ x` when some runs did not.
fn spend_cell<T>(row: &crate::report::TaskRow, value: Option<T>, text: fn(Option<T>) -> String) -> String {
    crate::report::figure(value, row.agent_runs > 0 || !row.usage.is_unknown(), row.unreported_runs, text)
}

/// The hover text of a task's spend: the breakdown and the runs that said nothing.
fn spend_title(row: &crate::report::TaskRow) -> String {
    use crate::report::tokens_text;
    if row.agent_runs == 0 && row.usage.is_unknown() {
        return "no agent run finished".to_owned();
    }
    let u = &row.usage;
    let mut t = format!(
        "input {}, output {}, cache read {}, cache write {}; {} agent run(s)",
        tokens_text(u.input_tokens),
        tokens_text(u.output_tokens),
        tokens_text(u.cache_read_tokens),
        tokens_text(u.cache_write_tokens),
        row.agent_runs
    );
    if row.unreported_runs > 0 {
        let _ = write!(t, ", {} reported no usage", row.unreported_runs);
    }
    if let Some(n) = row.turns {
        let _ = write!(t, "; {n} turn(s)");
    }
    t
}

/// One agent run that reported usage: when it finished and what it spent.
#[derive(Debug, Clone)]
struct Spent {
    at: u64,
    task: TaskId,
    attempt: u32,
    iteration: u32,
    usage: Usage,
}

/// The agent runs that reported usage, in journal order, and how many reported none.
fn spending(records: &[Record], view: &RunView) -> (Vec<Spent>, u32) {
    let mut out = Vec::new();
    let mut unreported = 0;
    let mut last = view.first_ms;
    for r in records {
        let ms = fugue_core::time::parse_millis(&r.ts).unwrap_or(last);
        last = ms;
        if let Event::AgentFinished { task, attempt, iteration, usage, .. } = &r.event {
            if usage.is_unknown() {
                unreported += 1;
            } else {
                out.push(Spent { at: ms, task: task.clone(), attempt: *attempt, iteration: *iteration, usage: *usage });
            }
        }
    }
    (out, unreported)
}

/// The cumulative spend as a step curve: cost where any run reported one, tokens otherwise.
fn spend_svg(s: &mut String, spent: &[Spent], scale: Scale) {
    const TOP: f64 = 22.0;
    const PLOT_H: f64 = 96.0;
    let by_cost = spent.iter().any(|p| p.usage.cost_usd.is_some());
    let value = |u: &Usage| if by_cost { u.cost_usd.unwrap_or(0.0) } else { u.total_tokens().unwrap_or(0) as f64 };
    let label = |v: f64| if by_cost { crate::report::cost_text(Some(v)) } else { crate::report::tokens_text(Some(v.round() as u64)) };
    let total: f64 = spent.iter().map(|p| value(&p.usage)).sum();
    let top = if total > 0.0 { total } else { 1.0 };
    let height = TOP + PLOT_H + 8.0;
    let yv = |v: f64| TOP + PLOT_H - v * PLOT_H / top;
    let _ = write!(
        s,
        r#"<svg id="spend" class="chart" role="img" aria-label="cumulative agent spend over time" data-metric="{}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">"#,
        if by_cost { "cost" } else { "tokens" }
    );
    axis(s, scale, TOP - 4.0, TOP + PLOT_H, TOP - 8.0);
    for k in 0..=2 {
        let v = top * f64::from(k) / 2.0;
        let yy = yv(v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LABEL_W}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/><text class="ytick" x="{:.1}" y="{:.1}">{}</text>"#,
            WIDTH - RIGHT_PAD,
            LABEL_W - 6.0,
            yy + 4.0,
            esc(&if k == 0 { "0".to_owned() } else { label(v) })
        );
    }
    let _ = write!(
        s,
        r#"<text class="lane-name" x="8" y="{:.1}">{}</text><text class="lane-name" x="8" y="{:.1}">spent</text>"#,
        // Between the middle and the bottom y labels, clear of both.
        TOP + 64.0,
        if by_cost { "dollars" } else { "tokens" },
        TOP + 79.0
    );
    let mut path = format!("M{:.1},{:.1}", scale.x(scale.t0), yv(0.0));
    let mut points = String::new();
    let mut sum = 0.0;
    for p in spent {
        let x = scale.x(p.at);
        sum += value(&p.usage);
        let _ = write!(path, "H{x:.1}V{:.1}", yv(sum));
        let _ = write!(
            points,
            r#"<circle class="spend-point" data-task="{}" cx="{x:.1}" cy="{:.1}" r="3"><title>{} · attempt {} · iteration {} finished at {}: {} · {} in all</title></circle>"#,
            esc(p.task.as_str()),
            yv(sum),
            esc(p.task.as_str()),
            p.attempt,
            p.iteration + 1,
            offset(p.at, scale.t0),
            esc(&p.usage.brief().unwrap_or_default()),
            esc(&label(sum))
        );
    }
    let _ = write!(path, "H{:.1}", WIDTH - RIGHT_PAD);
    // The curve under its points, so every point stays on top to hover.
    let _ = write!(s, r#"<path class="spend-line" d="{path}"/>"#);
    s.push_str(&points);
    let _ =
        write!(s, r#"<text class="mean-label" x="{:.1}" y="{:.1}">{}</text>"#, WIDTH - RIGHT_PAD - 4.0, yv(top) - 6.0, esc(&label(total)));
    s.push_str("</svg>");
}

const CSS: &str = r#"
:root{--ink:#1f2328;--muted:#57606a;--line:#d0d7de;--bg:#ffffff;--panel:#f6f8fa;
--agent:#2563eb;--qa:#d97706;--merge:#15803d;--fail:#b91c1c;--crit:#7c3aed}
*{box-sizing:border-box}
body{margin:0 auto;padding:14px 20px 40px;max-width:1280px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",Helvetica,Arial,sans-serif;color:var(--ink);background:var(--bg)}
h1{font-size:20px;margin:0 0 2px}
h2{font-size:15px;margin:18px 0 6px}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.sub{color:var(--muted);font-size:12.5px;margin:0 0 10px;overflow-wrap:anywhere}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;vertical-align:2px;color:#fff;background:var(--muted)}
.badge.success,.badge.merged{background:var(--merge)}
.badge.failed,.badge.merge_conflict,.badge.interrupted{background:var(--fail)}
.badge.blocked{background:#6e7781}
.badge.running,.badge.in_progress,.badge.ready_for_qa,.badge.qa_approved,.badge.qa_rejected{background:#9a6700}
.badge.crit{background:var(--crit);font-weight:500}
.cards{display:flex;gap:10px;flex-wrap:wrap}
.card{flex:1 1 170px;background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:6px 10px}
.card b{display:block;font-size:19px}
.card span{color:var(--muted);font-size:12px}
.chart{display:block;max-width:100%;height:auto;font-size:11.5px}
.chart text{fill:var(--ink)}
.grid{stroke:#e6e9ed;stroke-width:1}
.tick,.ytick{fill:var(--muted)!important;font-size:10.5px}
.tick{text-anchor:middle}
.ytick{text-anchor:end}
.phase{fill:#4b5563!important;font-size:11px;font-style:italic}
.phase-line{stroke:#8c959f;stroke-dasharray:3 3}
.lane-bg{fill:transparent;stroke:#eaeef2}
.lane-bg.odd{fill:#f6f8fa}
.lane-name{font-weight:600;font-size:12px}
.attempt{fill:#fff;stroke:#8c959f;stroke-width:1}
.attempt.critical{stroke:var(--crit);stroke-width:2.5}
.seg.agent{fill:var(--agent)}
.seg.qa{fill:var(--qa)}
.seg.qa.rejected{fill:url(#hatch)}
.seg.qa.blocked{fill:#a8a29e}
.seg.merge{fill:var(--merge)}
.seg.failed,.seg.conflict{fill:var(--fail)}
.seg.interrupted{fill:#9ca3af}
.seg.running{opacity:.55}
.bar-label{font-size:11.5px;font-weight:600;fill:#111!important;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round;pointer-events:none}
.mark circle{stroke:#fff;stroke-width:1.5}
.mark.fail circle{fill:var(--fail)}
.mark.interrupt circle{fill:#57606a}
.mark path{stroke:#fff;stroke-width:1.8;stroke-linecap:round}
.busy-step{fill:#bfdbfe}
.busy-line{fill:none;stroke:var(--agent);stroke-width:1.6}
.spend-line{fill:none;stroke:var(--merge);stroke-width:1.8}
.spend-point{fill:var(--merge);stroke:#fff;stroke-width:1}
.mean-line{stroke:#9a3412;stroke-width:1.4;stroke-dasharray:6 4}
.mean-label{fill:#9a3412!important;text-anchor:end;font-weight:600}
.peak-label{font-weight:600}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;margin:4px 0 0;padding:0;list-style:none;font-size:12.5px;color:var(--muted)}
.legend li{display:flex;align-items:center;gap:5px}
.sw{display:inline-block;width:22px;height:11px;border-radius:2px}
.sw.agent{background:var(--agent)}.sw.qa{background:var(--qa)}.sw.merge{background:var(--merge)}
.sw.rejected{background:repeating-linear-gradient(45deg,#c2410c 0 3px,#fdba74 3px 6px)}
.sw.failed{background:var(--fail)}.sw.interrupted{background:#9ca3af}
.sw.crit{background:#fff;border:2.5px solid var(--crit)}
.sw.phase{width:0;height:14px;border-left:1.5px dashed #8c959f;border-radius:0}
.sw.x{width:13px;height:13px;border-radius:50%;background:var(--fail);color:#fff;font-size:10px;line-height:13px;text-align:center}
.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--panel);font-weight:600;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.err{color:var(--fail);font-size:12px;min-width:180px;overflow-wrap:anywhere}
td.err.old{color:var(--muted)}
td a{margin-right:8px;white-space:nowrap}
td:first-child,td:nth-child(2),td:nth-child(3),td:nth-child(11){white-space:nowrap}
tr.crit td:first-child{box-shadow:inset 3px 0 var(--crit)}
ul.problems{margin:0;padding-left:20px;font-size:13px}
ul.problems li{overflow-wrap:anywhere}
.none{color:var(--muted)}
footer{margin-top:18px;color:var(--muted);font-size:12px}
"#;

/// Renders the HTML page of a run. `records` are the journal's records (from
/// [`journal::read`](crate::journal::read)), `view` their replay, `graph` the planned graph
/// if there is one, `logs` the links to put in the task table.
pub fn render(view: &RunView, graph: Option<&DependencyGraph>, records: &[Record], logs: &TaskLogs) -> String {
    let report = crate::report::build(view, graph);
    let tl = replay(records, view);
    let lanes = lanes(&tl.attempts);
    let critical: HashSet<&str> =
        graph.map(|g| g.execution_strategy.critical_path.iter().map(TaskId::as_str).collect()).unwrap_or_default();
    let phase_of: HashMap<&str, String> =
        graph.map(|g| g.tasks.iter().map(|t| (t.id.as_str(), t.phase.to_string())).collect()).unwrap_or_default();
    let t_end = tl.attempts.iter().map(Attempt::end).fold(view.last_ms, u64::max);
    let scale = Scale { t0: view.first_ms, span: t_end.saturating_sub(view.first_ms).max(1) };
    let spans: Vec<Span> = view.order.iter().filter_map(|id| view.tasks.get(id)).flat_map(|t| t.busy.iter().copied()).collect();
    let conc = concurrency(&spans);

    let mut s = String::with_capacity(64 * 1024);
    let title = format!("fugue run {}", view.execution_id);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );

    // Header and the figures that answer "did parallelism pay?".
    let status = report.status.as_str();
    let _ = writeln!(
        s,
        r#"<header><h1>fugue run <code>{}</code> <span class="badge {}">{}</span></h1>"#,
        esc(&view.execution_id),
        esc(status),
        esc(status)
    );
    let base_commit: String = view.base_commit.chars().take(10).collect();
    let _ = writeln!(
        s,
        r#"<p class="sub">plan <code>{}</code> · base <code>{}</code> at <code>{}</code> · started {} · {} events</p></header>"#,
        esc(&view.plan),
        esc(&view.base),
        esc(&base_commit),
        esc(&view.started),
        view.events
    );
    let wall = view.last_ms.saturating_sub(view.first_ms);
    let retries: u32 = view.order.iter().map(|id| view.task(id).attempts.saturating_sub(1)).sum();
    let rejections = records.iter().filter(|r| matches!(&r.event, Event::QaFinished { verdict: QaVerdict::TaskRejected, .. })).count();
    let strategy = graph.map(|g| g.execution_strategy.max_agents).map_or_else(String::new, |n| format!(" · up to {n} agents"));
    let estimate = graph.map(|g| g.execution_strategy.estimate);
    s.push_str(r#"<section class="cards">"#);
    let _ = write!(s, r#"<div class="card" id="wall"><b>{}</b><span>wall time</span></div>"#, esc(&dur(wall)));
    let _ = write!(
        s,
        r#"<div class="card" id="speedup"><b>{:.2}× <small>measured</small></b><span>vs {:.2}× estimated by the plan{}</span></div>"#,
        report.measured_speedup,
        report.estimated_speedup,
        estimate.map(|e| format!(" ({:.0} s → {:.0} s)", e.sequential_s, e.parallel_s)).unwrap_or_default()
    );
    let _ = write!(
        s,
        r#"<div class="card" id="concurrency-figures"><b>peak {} · mean {:.2}</b><span>agents busy at once (mean while any was busy)</span></div>"#,
        conc.max, conc.mean
    );
    let _ = write!(
        s,
        r#"<div class="card"><b>{}/{} merged</b><span>{retries} retried attempt(s) · {rejections} QA rejection(s)</span></div>"#,
        report.merged,
        report.tasks.len()
    );
    let spend = if report.agent_runs == 0 && report.usage.is_unknown() {
        ("-".to_owned(), "no agent run finished".to_owned())
    } else {
        let ge = if report.unreported_runs > 0 && !report.usage.is_unknown() { "≥ " } else { "" };
        let b = match (report.cost_usd, report.tokens) {
            (Some(c), _) => format!("{ge}{}", crate::report::cost_text(Some(c))),
            (None, Some(t)) => format!("{ge}{} tokens", crate::report::tokens_text(Some(t))),
            (None, None) => "unknown".to_owned(),
        };
        let mut sub = match (report.cost_usd, report.tokens) {
            (Some(_), Some(t)) => format!("{} tokens · ", crate::report::tokens_text(Some(t))),
            _ => String::new(),
        };
        let _ = write!(sub, "{} agent run(s)", report.agent_runs);
        if report.unreported_runs > 0 {
            let _ = write!(sub, ", {} reported no usage", report.unreported_runs);
        }
        (b, sub)
    };
    let _ = write!(s, r#"<div class="card" id="spend-figures"><b>{}</b><span>{}</span></div>"#, esc(&spend.0), esc(&spend.1));
    let _ = write!(
        s,
        r#"<div class="card"><b>strategy {}</b><span>{}{}</span></div>"#,
        esc(if report.strategy.is_empty() { "?" } else { &report.strategy }),
        esc(&view.mode),
        esc(&strategy)
    );
    s.push_str("</section>\n");

    // Timeline.
    s.push_str("<h2>Timeline of the agents</h2>\n");
    if tl.attempts.is_empty() {
        s.push_str(r#"<p class="none">No agent has started yet.</p>"#);
    }
    timeline_svg(&mut s, &tl, &lanes, scale, &critical);
    s.push_str(
        r#"<ul class="legend"><li><span class="sw agent"></span>agent</li><li><span class="sw qa"></span>QA gates</li><li><span class="sw rejected"></span>QA rejected (another iteration)</li><li><span class="sw merge"></span>merge (queue + merge)</li><li><span class="sw failed"></span>failed phase</li><li><span class="sw x">✕</span>failure / conflict</li><li><span class="sw interrupted"></span>interrupted</li><li><span class="sw crit"></span>critical path</li><li><span class="sw phase"></span>phase start</li><li>hover a bar for details</li></ul>"#,
    );
    s.push('\n');
    let not_started: Vec<&str> = view.order.iter().filter(|id| !tl.attempts.iter().any(|a| &a.task == *id)).map(TaskId::as_str).collect();
    if !not_started.is_empty() {
        let _ = writeln!(s, r#"<p class="sub">never started: {}</p>"#, esc(&not_started.join(", ")));
    }

    // Concurrency.
    let _ = writeln!(
        s,
        r#"<h2>Agents busy over time <span class="sub">— peak {}, mean {:.2} while any was busy, {:.2} over the whole run</span></h2>"#,
        conc.max, conc.mean, report.measured_speedup
    );
    concurrency_svg(&mut s, &spans, scale, conc.max, conc.mean);

    // What the agents spent, as it accumulated.
    let (spent, unreported) = spending(records, view);
    if spent.is_empty() {
        let _ = writeln!(
            s,
            r#"<h2>Agent spend over time</h2>
<p class="none" id="spend-none">no agent reported usage{}</p>"#,
            if unreported > 0 { format!(" ({unreported} agent run(s) finished without reporting tokens or cost)") } else { String::new() }
        );
    } else {
        let total = spent.iter().fold(Usage::default(), |u, p| u.add(&p.usage));
        let _ = writeln!(
            s,
            r#"<h2>Agent spend over time <span class="sub">— {} in all{}{}</span></h2>"#,
            esc(&total.brief().unwrap_or_default()),
            if unreported > 0 {
                format!(" · {unreported} agent run(s) reported no usage (not counted: unknown, not 0)")
            } else {
                String::new()
            },
            if total.cost_usd.is_some() && spent.iter().any(|p| p.usage.cost_usd.is_none()) {
                " · some runs reported tokens but no cost"
            } else {
                ""
            }
        );
        spend_svg(&mut s, &spent, scale);
    }

    // Task table.
    // The table scrolls in its own box when it is wider than the window, never the page.
    s.push_str("\n<h2>Tasks</h2>\n<div class=\"table-wrap\"><table id=\"tasks\">\n<thead><tr><th>Task</th><th>Phase</th><th>Status</th><th>Duration</th><th>Attempts</th><th title=\"QA iterations\">QA iter.</th><th title=\"files changed\">Files</th><th>Review</th><th>Tokens</th><th>Cost</th><th>Logs</th><th>Last error</th></tr></thead>\n<tbody>\n");
    for row in &report.tasks {
        let crit = critical.contains(row.id.as_str());
        // A merged task's error is history from an earlier attempt: shown muted, in full on hover.
        let error = row.error.as_deref().unwrap_or("");
        let links: String = logs
            .of(&row.id)
            .iter()
            .map(|(label, href)| format!(r#"<a href="{}">{}</a>"#, esc(href), esc(label)))
            .collect::<Vec<_>>()
            .join("");
        let _ = writeln!(
            s,
            r#"<tr data-task="{}"{}><td><code>{}</code>{}</td><td>{}</td><td><span class="badge {}">{}</span></td><td class="n">{:.1}s</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n" title="{}">{}</td><td class="n">{}</td><td>{}</td><td class="{}" title="{}">{}</td></tr>"#,
            esc(&row.id),
            if crit { r#" class="crit""# } else { "" },
            esc(&row.id),
            if crit { r#" <span class="badge crit" title="on the critical path">critical</span>"# } else { "" },
            esc(phase_of.get(row.id.as_str()).map_or("", String::as_str)),
            row.status.as_str(),
            row.status.as_str(),
            row.duration_s,
            row.attempts,
            row.iterations,
            row.files_changed,
            row.review_score.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}")),
            esc(&spend_title(row)),
            esc(&spend_cell(row, row.tokens, crate::report::tokens_text)),
            esc(&spend_cell(row, row.cost_usd, crate::report::cost_text)),
            if links.is_empty() { "-".to_owned() } else { links },
            if row.status == TaskStatus::Merged { "err old" } else { "err" },
            esc(error),
            esc(&short(error, 150))
        );
    }
    s.push_str("</tbody>\n</table></div>\n");

    // Everything that went wrong, in order.
    if !tl.problems.is_empty() || !report.conflicts.is_empty() {
        s.push_str("<h2>Failures</h2>\n<ul class=\"problems\" id=\"failures\">\n");
        for (at, task, text) in &tl.problems {
            let who = if task.is_empty() { String::new() } else { format!("<code>{}</code> ", esc(task)) };
            let _ = writeln!(s, "<li>{} {who}{}</li>", offset(*at, view.first_ms), esc(text));
        }
        s.push_str("</ul>\n");
    }
    let outcome = match view.outcome {
        Some(RunOutcome::Success) => "finished successfully",
        Some(RunOutcome::Failed) => "finished with failures",
        Some(RunOutcome::Interrupted) => "was interrupted (continue it with `fugue resume`)",
        None => "was still running when this page was written",
    };
    let _ = writeln!(
        s,
        "<footer>The run {outcome}. Written by <code>fugue report --html</code> from the run's journal; durations are busy time (attempt start to QA verdict), the measured speedup is the sum of busy time over wall time.</footer>"
    );
    // Layout figures for automated checks (fugue's own test reads them from the rendered DOM).
    s.push_str("<script>(function(){var d=document.documentElement,t=document.getElementById('timeline').getBoundingClientRect();d.setAttribute('data-timeline-width',String(Math.round(t.width)));d.setAttribute('data-overflow',d.scrollWidth>d.clientWidth?'yes':'no');})();</script>\n");
    s.push_str("</body>\n</html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use fugue_core::state::{Estimate, ExecutionMode, ExecutionStrategy, Strategy};
    use fugue_core::{GateVerdict, Phase};

    use crate::test_support::{id, rec};

    fn started(t: &str, attempt: u32, slot: Option<&str>) -> Event {
        Event::AttemptStarted { task: id(t), attempt, worktree: "/w".into(), branch: None, slot: slot.map(str::to_owned) }
    }

    fn agent(t: &str, attempt: u32, iteration: u32) -> Event {
        Event::AgentFinished {
            task: id(t),
            attempt,
            iteration,
            outcome: AgentOutcome::ReadyForQa,
            summary: "edited <b>lib.rs</b>".into(),
            duration_ms: 5,
            usage: Usage::default(),
            session_id: None,
            turns: None,
            denials: vec![],
            failure: None,
            final_message: None,
        }
    }

    /// `records` with the usage of the agent runs set: the n-th `agent_finished` gets `usage[n]`.
    fn with_usage(records: &[Record], usage: &[Usage]) -> Vec<Record> {
        let mut n = 0;
        records
            .iter()
            .cloned()
            .map(|mut r| {
                if let Event::AgentFinished { usage: u, .. } = &mut r.event {
                    *u = usage.get(n).copied().unwrap_or_default();
                    n += 1;
                }
                r
            })
            .collect()
    }

    fn usage(tokens: Option<u64>, cost: Option<f64>) -> Usage {
        let mut u = Usage::default();
        u.input_tokens = tokens;
        u.cost_usd = cost;
        u
    }

    fn qa(t: &str, attempt: u32, iteration: u32, verdict: QaVerdict) -> Event {
        let gv = if verdict == QaVerdict::TaskApproved { GateVerdict::Pass } else { GateVerdict::Fail };
        Event::QaFinished {
            task: id(t),
            attempt,
            iteration,
            verdict,
            reports: vec![GateReport {
                gate: "review".into(),
                verdict: gv,
                score: Some(7.5),
                counts: None,
                coverage: None,
                findings: vec![],
                duration_ms: 9,
            }],
            duration_ms: 20,
        }
    }

    fn status(t: &str, status: TaskStatus) -> Event {
        Event::Status { task: id(t), status }
    }

    /// `ok` merges after one rejected QA round; `flaky` fails once, then merges; `broken` fails
    /// with a reason full of markup; `never` never starts.
    fn run() -> (RunView, Vec<Record>, DependencyGraph) {
        let evil = r#"<script>alert("x")</script> & 'quoted'"#;
        let events = vec![
            (
                0,
                Event::RunStarted {
                    execution_id: "exec-<1>".into(),
                    plan: "plan.yaml".into(),
                    base: "main".into(),
                    base_commit: "abc".into(),
                    mode: "PARALLEL".into(),
                    tasks: vec![id("ok"), id("flaky"), id("broken"), id("never")],
                    pid: 1,
                },
            ),
            (1, Event::PhaseStarted { phase: Phase::Implementation }),
            (10, started("ok", 1, Some("wt-1"))),
            (12, started("flaky", 1, Some("wt-2"))),
            (14, started("broken", 1, Some("wt-10"))),
            (100, agent("ok", 1, 0)),
            (150, qa("ok", 1, 0, QaVerdict::TaskRejected)),
            (200, Event::AttemptFailed { task: id("flaky"), attempt: 1, reason: "pool hiccup".into() }),
            (250, agent("ok", 1, 1)),
            (300, qa("ok", 1, 1, QaVerdict::TaskApproved)),
            (320, Event::Merged { task: id("ok"), commit: "0123456789abcdef".into(), files: vec!["src/a.rs".into()] }),
            (321, status("ok", TaskStatus::Merged)),
            (400, started("flaky", 2, Some("wt-2"))),
            (450, agent("flaky", 2, 0)),
            (500, qa("flaky", 2, 0, QaVerdict::TaskApproved)),
            (550, Event::Merged { task: id("flaky"), commit: "fedcba".into(), files: vec![] }),
            (551, status("flaky", TaskStatus::Merged)),
            (600, Event::AttemptFailed { task: id("broken"), attempt: 1, reason: evil.into() }),
            (601, status("broken", TaskStatus::Failed)),
            (602, status("never", TaskStatus::Blocked)),
            (700, Event::RunFinished { outcome: RunOutcome::Failed }),
        ];
        let records: Vec<Record> = events.into_iter().enumerate().map(|(i, (ms, e))| rec(i as u64 + 1, ms, e)).collect();
        let graph = DependencyGraph {
            version: 1,
            tasks: vec![],
            edges: vec![],
            execution_strategy: ExecutionStrategy {
                mode: ExecutionMode::Parallel,
                strategy: Strategy::A,
                max_agents: 3,
                parallel_groups: vec![],
                critical_path: vec![id("ok")],
                estimate: Estimate { sequential_s: 3.0, parallel_s: 1.0, speedup: 3.0 },
            },
        };
        (RunView::from_records(&records), records, graph)
    }

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    #[test]
    fn failures_retries_and_rejections_are_drawn() {
        let (view, records, graph) = run();
        let html = render(&view, Some(&graph), &records, &TaskLogs::none());
        // One lane per slot, in natural order (wt-10 after wt-2).
        let lanes: Vec<&str> = html.split(r#"<g class="lane" data-lane=""#).skip(1).map(|s| s.split('"').next().unwrap_or("")).collect();
        assert_eq!(lanes, ["wt-1", "wt-2", "wt-10"]);
        // Two attempts of `flaky`, the first with a failure mark.
        assert_eq!(count(&html, r#"<g class="task" data-task="flaky""#), 2);
        assert_eq!(count(&html, r#"<g class="mark fail" data-task="flaky""#), 1);
        assert_eq!(count(&html, r#"<g class="mark fail" data-task="broken""#), 1);
        assert!(html.contains("flaky #2"), "the retry is labelled");
        // The rejected QA round of `ok` and its second iteration, and the critical path.
        assert_eq!(count(&html, r#"class="seg qa rejected""#), 1);
        assert_eq!(count(&html, r#"class="attempt critical""#), 1);
        assert!(html.contains(r#"<tr data-task="ok" class="crit">"#));
        // The failed agent phase of `broken` is red, and the failures list names both.
        assert!(html.contains(r#"class="seg agent failed""#));
        assert!(html.contains("attempt 1 failed: pool hiccup"));
        assert!(html.contains("never started: never"));
        assert_eq!(count(&html, "<tr data-task="), 4);
    }

    #[test]
    fn every_journal_string_is_escaped() {
        let (view, records, graph) = run();
        let html = render(&view, Some(&graph), &records, &TaskLogs::none());
        assert!(!html.contains(r#"<script>alert"#), "raw markup from the journal leaked");
        assert!(!html.contains("<b>lib.rs"));
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;"));
        assert!(html.contains("exec-&lt;1&gt;"));
        // The only script is the page's own, and nothing is fetched from anywhere.
        assert_eq!(count(&html, "<script"), 1);
        assert!(!html.contains("src=") && !html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn rendering_is_deterministic_and_survives_an_empty_or_running_journal() {
        let (view, records, graph) = run();
        assert_eq!(render(&view, Some(&graph), &records, &TaskLogs::none()), render(&view, Some(&graph), &records, &TaskLogs::none()));
        let empty = render(&RunView::default(), None, &[], &TaskLogs::none());
        assert!(empty.contains("No agent has started yet"));
        // Cut the journal mid-run: open attempts are drawn as still running.
        let cut = &records[..7];
        let html = render(&RunView::from_records(cut), None, cut, &TaskLogs::none());
        assert!(html.contains("seg qa running") || html.contains("seg agent running"), "{html}");
    }

    /// The cell of column `col` (1-based) in the row of `task`.
    fn cell(html: &str, task: &str, col: usize) -> String {
        let row = html.split(&format!(r#"<tr data-task="{task}""#)).nth(1).and_then(|r| r.split("</tr>").next()).expect("row");
        let cell = row.split("<td").nth(col).expect("cell");
        cell.split_once('>').map(|(_, c)| c).unwrap_or_default().split("</td>").next().unwrap_or_default().to_owned()
    }

    #[test]
    fn spend_is_charted_and_unknown_figures_are_never_zero() {
        let (_, records, graph) = run();
        // Runs: ok #1 (tokens and cost), ok #2 (tokens only), flaky (nothing reported).
        let records = with_usage(&records, &[usage(Some(12_000), Some(0.05)), usage(Some(300), None), Usage::default()]);
        let view = RunView::from_records(&records);
        let html = render(&view, Some(&graph), &records, &TaskLogs::none());
        assert_eq!(count(&html, r#"<svg id="spend""#), 1);
        assert!(html.contains(r#"data-metric="cost""#), "charted by cost once any run reports one");
        assert_eq!(count(&html, r#"<circle class="spend-point""#), 2, "one point per run that reported usage");
        assert!(html.contains("1 agent run(s) reported no usage"));
        assert!(!html.contains("id=\"spend-none\""));
        // Columns 9 and 10 are tokens and cost.
        assert_eq!(cell(&html, "ok", 9), "12.3k");
        assert_eq!(cell(&html, "ok", 10), "$0.0500");
        assert_eq!(cell(&html, "flaky", 9), "unknown", "a run that reported nothing is unknown, not 0");
        assert_eq!(cell(&html, "flaky", 10), "unknown");
        assert_eq!(cell(&html, "never", 9), "-", "no agent ran");
        assert!(html.contains(r#"id="spend-figures"><b>≥ $0.0500</b>"#), "a lower bound: {html}");
        assert!(!html.contains("$0.0000") && !html.contains(">0 tokens"));
    }

    #[test]
    fn no_spend_chart_when_no_run_reported_usage() {
        let (view, records, graph) = run();
        let html = render(&view, Some(&graph), &records, &TaskLogs::none());
        assert!(!html.contains(r#"<svg id="spend""#));
        assert!(html.contains("no agent reported usage (3 agent run(s) finished without reporting tokens or cost)"), "{html}");
        assert_eq!(cell(&html, "ok", 9), "unknown");
        assert!(html.contains(r#"id="spend-figures"><b>unknown</b>"#));
        // Tokens only: charted by tokens.
        let records = with_usage(&records, &[usage(Some(100), None), usage(Some(50), None), usage(Some(7), None)]);
        let html = render(&RunView::from_records(&records), Some(&graph), &records, &TaskLogs::none());
        assert!(html.contains(r#"data-metric="tokens""#));
        assert_eq!(cell(&html, "ok", 10), "unknown", "tokens known, cost not");
    }

    #[test]
    fn lanes_are_packed_by_time_without_slots() {
        let recs = vec![
            rec(1, 0, started("a", 1, None)),
            rec(2, 5, started("b", 1, None)),
            rec(3, 50, status("a", TaskStatus::Failed)),
            rec(4, 60, started("c", 1, None)),
            rec(5, 90, status("b", TaskStatus::Failed)),
            rec(6, 95, status("c", TaskStatus::Failed)),
        ];
        let tl = replay(&recs, &RunView::from_records(&recs));
        let l = lanes(&tl.attempts);
        let names: Vec<&str> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["agent 1", "agent 2"]);
        assert_eq!(l[0].rows[0].len(), 2, "c reuses a's lane");
    }

    #[test]
    fn log_links_pick_the_newest_log_of_each_task() {
        let dir = tempfile::tempdir().expect("dir");
        let state = dir.path().join("repo/.claude");
        let logs = state.join("logs");
        std::fs::create_dir_all(&logs).expect("mkdir");
        for f in [
            "test-20260101T000000Z.md",
            "test-20260102T000000Z.md",
            "test-plan-20260101T000000Z.md",
            "test.agent.log",
            "report-exec-1.md",
            "notes.md",
        ] {
            std::fs::write(logs.join(f), "x").expect("write");
        }
        let found = TaskLogs::find(&state, &dir.path().join("repo/out dir/report.html"));
        assert_eq!(
            found.of("test"),
            [
                ("log".to_owned(), "../.claude/logs/test-20260102T000000Z.md".to_owned()),
                ("agent output".to_owned(), "../.claude/logs/test.agent.log".to_owned())
            ]
        );
        assert_eq!(found.of("test-plan").len(), 1);
        assert!(found.of("report").is_empty() && found.of("notes").is_empty());
        assert_eq!(relative_href(Path::new("/a/b"), Path::new("/a/c d/e#.md")), "../c%20d/e%23.md");
        assert!(TaskLogs::find(&dir.path().join("missing"), Path::new("x.html")).links.is_empty());
    }

    #[test]
    fn ticks_are_round_and_labelled() {
        assert_eq!(tick_step(2_000), 250);
        assert_eq!(tick_label(750, 250), "0.75s");
        assert_eq!(tick_step(600_000), 120_000);
        assert_eq!(tick_label(240_000, 120_000), "4m00s");
        assert_eq!(tick_label(0, 5), "0");
        assert!(tick_step(u64::MAX) > 0);
    }
}
