//! The journal: an append-only NDJSON file of [`Event`]s, the source of truth of a run.
//!
//! Every event is one line, written with a single `write`. [`Journal::append`] follows each
//! with `fsync`; the engine's loop instead writes a burst of events with [`Journal::write`] and
//! makes them durable with one [`Journal::sync`] before it acts on them (group commit), so
//! after a crash the file holds a prefix of the history, plus at most one torn last line. Reading tolerates exactly that: a final line that does not parse is reported as
//! [`Replay::torn_tail`] and ignored; a bad line anywhere else is corruption and an error that
//! names the line. The state files under `.claude/` are snapshots derived from this journal.
//!
//! Records are not passed through the secret redactor here: the journal must replay exactly
//! (a task id that happened to equal a secret value would otherwise break it). Its free text —
//! agent summaries, failure reasons, gate findings — is redacted where it is produced (the
//! executors and the command agent), and every surface that shows it (progress, events on
//! stdout, logs, reports) redacts again.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::events::Event;

/// One journal line: a sequence number, a timestamp and the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1-based position in the journal.
    pub seq: u64,
    /// When it was written (RFC 3339, milliseconds).
    pub ts: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
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

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    next_seq: u64,
    sync: bool,
    unsynced: bool,
    syncs: u64,
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
        Ok(Self { file, path: path.to_owned(), next_seq, sync: true, unsynced: false, syncs: 0 })
    }

    /// Turns the per-event fsync off (benchmarks and tests that do not simulate crashes).
    pub fn without_fsync(mut self) -> Self {
        self.sync = false;
        self
    }

    /// Appends one event durably and returns its record.
    pub fn append(&mut self, event: Event) -> Result<Record, JournalError> {
        let record = self.write(event)?;
        self.sync()?;
        Ok(record)
    }

    /// Appends one event without waiting for the disk; [`sync`](Self::sync) makes every record
    /// written so far durable at once (group commit). A crash before the sync loses a suffix of
    /// the history, never a record in the middle of it.
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
        self.unsynced = true;
        Ok(record)
    }

    /// Makes every record written so far durable (one fsync, if anything is pending and fsync
    /// is on).
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.sync && self.unsynced {
            self.file.sync_data().map_err(|e| JournalError::Io { action: "fsync", path: self.path.clone(), source: e })?;
            self.syncs += 1;
        }
        self.unsynced = false;
        Ok(())
    }

    /// How many fsyncs the journal has done.
    pub fn syncs(&self) -> u64 {
        self.syncs
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
        let mut j = Journal::open(&path, &Replay::default()).expect("open");
        for r in ["a", "b", "c"] {
            j.write(ev(r)).expect("write");
        }
        j.sync().expect("sync");
        j.sync().expect("nothing pending: no second fsync");
        assert_eq!(j.syncs(), 1);
        j.append(ev("d")).expect("append");
        assert_eq!(j.syncs(), 2);
        let r = read(&path).expect("read");
        let seqs: Vec<u64> = r.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
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
}
