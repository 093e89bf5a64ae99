//! The journal: an append-only NDJSON file of [`Event`]s, the source of truth of a run.
//!
//! Every event is one line, written with a single `write` the moment it happens, so a killed
//! fugue process never loses a record it wrote: the file holds a prefix of the history, plus
//! at most one torn last line. Reading tolerates exactly that: a final line that does not parse
//! is reported as [`Replay::torn_tail`] and ignored; a bad line anywhere else is corruption and
//! an error that names the line. The state files under `.claude/` are snapshots derived from
//! this journal.
//!
//! Durability against power loss is fsync's job, and an fsync costs 0.3–1 ms on the disks fugue
//! meets, so nobody waits for one unless they must. A syncer thread makes what was written
//! durable in group commits, at most [`SYNC_LAG`] after it was published with
//! [`Journal::sync_soon`]; the engine publishes before it acts on events (dispatch) and goes
//! on. Only [`Journal::sync`] waits — before a state file derived from the journal is written,
//! so no snapshot ever runs ahead of the durable history — and [`Journal::append`] is write +
//! sync. Nothing a resume decides depends on a record being durable before the next agent
//! starts: resume reads a task's progress from facts (a journaled merge commit, an approval, an
//! attempt begun), and a fact lost with the page cache is one it finds again in git or redoes.
//! A failed fsync is kept and returned by the next `sync_soon` or `sync`, which fails the run.
//!
//! Records are not passed through the secret redactor here: the journal must replay exactly
//! (a task id that happened to equal a secret value would otherwise break it). Its free text —
//! agent summaries, failure reasons, gate findings — is redacted where it is produced (the
//! executors and the command agent), and every surface that shows it (progress, events on
//! stdout, logs, reports) redacts again.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::events::Event;

/// One journal line: a sequence number, a timestamp and the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "journal.ndjson line")]
pub struct Record {
    /// 1-based position in the journal.
    #[schemars(range(min = 1))]
    pub seq: u64,
    /// When it was written (RFC 3339, milliseconds).
    pub ts: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// The file name of [`record_schema`] under `schemas/`.
pub const RECORD_SCHEMA_FILE: &str = "journal-record.schema.json";

/// The JSON schema of one journal line (`schemas/journal-record.schema.json`), generated from
/// [`Record`] with the settings of [`fugue_core::schema`].
///
/// schemars describes the flattened, internally tagged [`Event`] as a `oneOf` of its variants,
/// which is exact but makes a validator reject any bad line with one "not valid under any of the
/// given schemas" at the root. The schema picks the variant by its `event` tag instead (an
/// `enum` of the tags, then one `if`/`then` per variant), so a rejection names the field at
/// fault: `/event` for an unknown event, `/attempt` for an attempt that is not a number.
pub fn record_schema() -> Schema {
    let mut schema = SchemaSettings::draft2020_12().for_deserialize().into_generator().into_root_schema_for::<Record>();
    select_variant_by_tag(&mut schema);
    schema
}

/// Rewrites the root `oneOf` of tagged variants into `if`/`then` on the tag; leaves the schema
/// as generated (still exact) if it does not have that shape.
fn select_variant_by_tag(schema: &mut Schema) {
    let Some(root) = schema.as_object_mut() else { return };
    let Some(Value::Array(variants)) = root.get("oneOf") else { return };
    let Some(tags) = variants.iter().map(|v| v.pointer("/properties/event/const").cloned()).collect::<Option<Vec<Value>>>() else {
        return;
    };
    let cases: Vec<Value> = variants
        .iter()
        .zip(&tags)
        .map(|(variant, tag)| json!({ "if": { "properties": { "event": { "const": tag } }, "required": ["event"] }, "then": variant }))
        .collect();
    let event = json!({
        "description": "What happened: the kind of event, which decides the other fields.",
        "type": "string",
        "enum": tags,
    });
    if !(root.get("properties").is_some_and(Value::is_object) && root.get("required").is_some_and(Value::is_array)) {
        return;
    }
    if let Some(Value::Object(properties)) = root.get_mut("properties") {
        properties.insert("event".to_owned(), event);
    }
    if let Some(Value::Array(required)) = root.get_mut("required") {
        required.push(json!("event"));
    }
    root.remove("oneOf");
    root.insert("allOf".to_owned(), Value::Array(cases));
}

/// Failures reading or writing the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// An I/O error.
    #[error("failed to {action} the journal {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The journal.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line in the middle of the journal is not a valid record.
    #[error("the journal {} is corrupt at line {line}: {message}; move it aside to start a fresh run, or restore it from a backup", path.display())]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parse error.
        message: String,
    },
}

/// How long a published record may wait for its fsync: the syncer gathers what is written in
/// that window into one commit (a few per second instead of one per event).
pub const SYNC_LAG: Duration = Duration::from_millis(10);

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    next_seq: u64,
    /// Records written by this process (the syncer's unit of progress).
    written: u64,
    /// `None` when fsync is off.
    syncer: Option<Syncer>,
}

/// What the loop and the syncer thread share.
#[derive(Debug, Default)]
struct SyncState {
    /// Records published for syncing.
    published: u64,
    /// Records known durable.
    synced: u64,
    /// Somebody waits in [`Journal::sync`]: no lag.
    urgent: bool,
    closing: bool,
    syncs: u64,
    error: Option<std::io::Error>,
    /// [`SYNC_LAG`], or a test's.
    lag: Duration,
}

#[derive(Debug)]
struct Syncer {
    shared: Arc<(Mutex<SyncState>, Condvar)>,
    /// `None` when no thread could be started: syncs then happen inline.
    thread: Option<JoinHandle<()>>,
    /// The file, for inline syncs.
    file: File,
}

fn lock(m: &Mutex<SyncState>) -> MutexGuard<'_, SyncState> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Syncer {
    fn start(file: &File) -> std::io::Result<Self> {
        let shared = Arc::new((Mutex::new(SyncState { lag: SYNC_LAG, ..SyncState::default() }), Condvar::new()));
        let theirs = Arc::clone(&shared);
        let their_file = file.try_clone()?;
        let thread = std::thread::Builder::new().name("fugue-journal-sync".to_owned()).spawn(move || sync_loop(&their_file, &theirs)).ok();
        Ok(Self { shared, thread, file: file.try_clone()? })
    }

    /// Hands the first `written` records over; with `wait`, returns once they are durable.
    fn publish(&self, written: u64, wait: bool) -> std::io::Result<()> {
        let (m, cv) = &*self.shared;
        let mut s = lock(m);
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        if written <= s.synced {
            return Ok(());
        }
        s.published = s.published.max(written);
        if self.thread.is_none() {
            drop(s);
            self.file.sync_data()?;
            let mut s = lock(m);
            s.synced = s.synced.max(written);
            s.syncs += 1;
            return Ok(());
        }
        s.urgent |= wait;
        cv.notify_all();
        if !wait {
            return Ok(());
        }
        while s.synced < written && s.error.is_none() {
            s = cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        match s.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The syncer thread: waits for published records, lets more gather for up to [`SYNC_LAG`]
/// (unless someone waits), fsyncs once, reports.
fn sync_loop(file: &File, shared: &(Mutex<SyncState>, Condvar)) {
    let (m, cv) = shared;
    let mut s = lock(m);
    loop {
        while s.published <= s.synced && !s.closing {
            s = cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        if s.published <= s.synced {
            return;
        }
        if !s.urgent && !s.closing {
            let lag = s.lag;
            s = cv.wait_timeout_while(s, lag, |s| !s.urgent && !s.closing).unwrap_or_else(PoisonError::into_inner).0;
        }
        let target = s.published;
        s.urgent = false;
        drop(s);
        let result = file.sync_data();
        s = lock(m);
        s.syncs += 1;
        match result {
            Ok(()) => s.synced = s.synced.max(target),
            // Kept for the loop; the records stay unsynced, so a waiter is not misled.
            Err(e) => {
                s.error.get_or_insert(e);
            }
        }
        cv.notify_all();
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Whatever was written becomes durable before the syncer stops.
        if let Some(s) = &self.syncer {
            let _ = s.publish(self.written, false);
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (m, cv) = &*self.shared;
        lock(m).closing = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What reading a journal found.
#[derive(Debug, Default)]
pub struct Replay {
    /// The records, in order.
    pub records: Vec<Record>,
    /// The text of a final line that was cut short by a crash, if any.
    pub torn_tail: Option<String>,
}

impl Journal {
    /// Opens (creating) the journal at `path` for appending after `next_seq - 1` records.
    /// A torn tail left by a crash is cut off first so new records start on a clean line.
    pub fn open(path: &Path, replay: &Replay) -> Result<Self, JournalError> {
        let io = |action, source| JournalError::Io { action, path: path.to_owned(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        }
        if replay.torn_tail.is_some() {
            let text = std::fs::read(path).map_err(|e| io("read", e))?;
            // Cut the last non-empty line, whether or not it ended with a newline.
            let end = text.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
            let keep = text[..end].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let f = OpenOptions::new().write(true).open(path).map_err(|e| io("open", e))?;
            f.set_len(keep as u64).map_err(|e| io("truncate the torn tail of", e))?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| io("open", e))?;
        let next_seq = replay.records.last().map_or(1, |r| r.seq + 1);
        let syncer = Some(Syncer::start(&file).map_err(|e| io("open", e))?);
        Ok(Self { file, path: path.to_owned(), next_seq, written: 0, syncer })
    }

    /// Turns fsync off (benchmarks and tests that do not simulate power loss).
    pub fn without_fsync(mut self) -> Self {
        self.syncer = None;
        self
    }

    /// Appends one event durably and returns its record.
    pub fn append(&mut self, event: Event) -> Result<Record, JournalError> {
        let record = self.write(event)?;
        self.sync()?;
        Ok(record)
    }

    /// Appends one event without waiting for the disk; [`sync_soon`](Self::sync_soon) and
    /// [`sync`](Self::sync) make every record written so far durable at once (group commit).
    /// Power lost before that loses a suffix of the history, never a record in the middle.
    pub fn write(&mut self, event: Event) -> Result<Record, JournalError> {
        let record = Record { seq: self.next_seq, ts: fugue_core::time::rfc3339_millis(std::time::SystemTime::now()), event };
        let mut line = serde_json::to_vec(&record).map_err(|e| JournalError::Io {
            action: "encode an event for",
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| JournalError::Io { action: "append to", path: self.path.clone(), source: e })?;
        self.next_seq += 1;
        self.written += 1;
        Ok(record)
    }

    /// Sets how long published records may wait for their fsync (tests).
    #[cfg(test)]
    fn with_sync_lag(self, lag: Duration) -> Self {
        if let Some(s) = &self.syncer {
            lock(&s.shared.0).lag = lag;
        }
        self
    }

    /// Makes every record written so far durable within [`SYNC_LAG`], without waiting; returns
    /// the error of an earlier fsync that failed.
    pub fn sync_soon(&mut self) -> Result<(), JournalError> {
        self.publish(false)
    }

    /// Makes every record written so far durable before returning (at most one fsync).
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.publish(true)
    }

    fn publish(&mut self, wait: bool) -> Result<(), JournalError> {
        match &self.syncer {
            Some(s) => s.publish(self.written, wait).map_err(|e| JournalError::Io { action: "fsync", path: self.path.clone(), source: e }),
            None => Ok(()),
        }
    }

    /// How many fsyncs the journal has done.
    pub fn syncs(&self) -> u64 {
        self.syncer.as_ref().map_or(0, |s| lock(&s.shared.0).syncs)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads every record of the journal at `path` (an absent journal reads as empty).
pub fn read(path: &Path) -> Result<Replay, JournalError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replay::default()),
        Err(source) => return Err(JournalError::Io { action: "open", path: path.to_owned(), source }),
    };
    let mut lines: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut reader = BufReader::new(file);
    loop {
        let mut buf = Vec::new();
        let n = reader.read_until(b'\n', &mut buf).map_err(|source| JournalError::Io { action: "read", path: path.to_owned(), source })?;
        if n == 0 {
            break;
        }
        lines.push((lines.len() + 1, buf));
    }
    let mut replay = Replay::default();
    let count = lines.len();
    for (no, raw) in lines {
        let text = String::from_utf8_lossy(&raw);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(trimmed) {
            Ok(r) => replay.records.push(r),
            Err(_) if no == count => {
                replay.torn_tail = Some(trimmed.to_owned());
            }
            Err(e) => return Err(JournalError::Corrupt { path: path.to_owned(), line: no, message: e.to_string() }),
        }
    }
    Ok(replay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    fn ev(reason: &str) -> Event {
        Event::Interrupted { reason: reason.to_owned() }
    }

    #[test]
    fn group_commit_syncs_once_per_burst_and_keeps_order() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("fugue/journal.ndjson");
        let mut j = Journal::open(&path, &Replay::default()).expect("open").with_sync_lag(Duration::from_secs(3600));
        for r in ["a", "b", "c"] {
            j.write(ev(r)).expect("write");
        }
        j.sync().expect("sync");
        j.sync().expect("nothing pending: no second fsync");
        assert_eq!(j.syncs(), 1);
        j.append(ev("d")).expect("append");
        assert_eq!(j.syncs(), 2);
        // Published bursts gather into one background commit; a waiting sync cuts the lag short.
        for r in ["e", "f", "g"] {
            j.write(ev(r)).expect("write");
            j.sync_soon().expect("publish");
        }
        j.sync().expect("sync");
        assert_eq!(j.syncs(), 3, "three published bursts, one fsync");
        // Closing syncs what was published and not yet durable.
        j.write(ev("h")).expect("write");
        j.sync_soon().expect("publish");
        let shared = Arc::clone(&j.syncer.as_ref().expect("fsync on").shared);
        drop(j);
        let closed = lock(&shared.0);
        assert_eq!((closed.synced, closed.syncs), (8, 4));
        let r = read(&path).expect("read");
        let seqs: Vec<u64> = r.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(r.records[2].event, ev("c"));
        let mut quiet = Journal::open(&dir.path().join("q.ndjson"), &Replay::default()).expect("open").without_fsync();
        quiet.append(ev("x")).expect("append");
        assert_eq!(quiet.syncs(), 0);
    }

    #[test]
    fn appends_and_replays_with_sequence_numbers() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("fugue/journal.ndjson");
        let mut j = Journal::open(&path, &Replay::default()).expect("open");
        j.append(ev("a")).expect("append");
        j.append(ev("b")).expect("append");
        let r = read(&path).expect("read");
        assert_eq!(r.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(r.torn_tail.is_none());
        let mut j = Journal::open(&path, &r).expect("reopen");
        assert_eq!(j.append(ev("c")).expect("append").seq, 3);
    }

    #[test]
    fn a_torn_last_line_is_tolerated_and_cut() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("j.ndjson");
        let mut j = Journal::open(&path, &Replay::default()).expect("open");
        j.append(ev("a")).expect("append");
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"seq\":2,\"ts\":\"2026-").expect("torn write");
        let r = read(&path).expect("read");
        assert_eq!(r.records.len(), 1);
        assert!(r.torn_tail.is_some());
        let mut j = Journal::open(&path, &r).expect("reopen cuts the tail");
        j.append(ev("b")).expect("append");
        let r = read(&path).expect("read");
        assert_eq!(r.records.len(), 2);
        assert!(r.torn_tail.is_none());
    }

    #[test]
    fn corruption_in_the_middle_names_the_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("j.ndjson");
        let mut j = Journal::open(&path, &Replay::default()).expect("open");
        j.append(ev("a")).expect("append");
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"garbage\n").expect("write");
        drop(f);
        let mut j = Journal::open(&path, &read(&path).expect("last line garbage is a torn tail")).expect("open");
        j.append(ev("b")).expect("append");
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"garbage\n").expect("write");
        f.write_all(b"{\"seq\":9,\"ts\":\"x\",\"event\":\"interrupted\",\"reason\":\"z\"}\n").expect("write");
        drop(f);
        match read(&path) {
            Err(JournalError::Corrupt { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn record_schema_selects_the_variant_by_tag() {
        let schema = serde_json::to_value(record_schema()).unwrap_or_default();
        assert!(schema.get("oneOf").is_none(), "the variants were left as a oneOf");
        let tags = schema.pointer("/properties/event/enum").and_then(Value::as_array).cloned().unwrap_or_default();
        let cases = schema.get("allOf").and_then(Value::as_array).cloned().unwrap_or_default();
        assert_eq!(tags.len(), cases.len());
        assert!(tags.contains(&json!("agent_activity")) && tags.contains(&json!("agent_finished")), "{tags:?}");
        for (tag, case) in tags.iter().zip(&cases) {
            assert_eq!(case.pointer("/if/properties/event/const"), Some(tag));
            assert_eq!(case.pointer("/then/properties/event/const"), Some(tag));
        }
    }
}
