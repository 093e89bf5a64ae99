//! Capturing an agent's output: into the task log, and a capped copy for the report.
//!
//! Coding agents can print megabytes. The report keeps the head and the tail of the combined
//! stdout/stderr stream (the start says what the agent set out to do, the end why it stopped)
//! and notes how many bytes were dropped in between. The task log gets everything up to a
//! larger cap, then one line saying the rest was not written. Bytes are stored as they come and
//! only turned into text at the end, lossily, so non-UTF-8 output and a multi-byte character
//! split across two reads are both harmless.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The head and tail of a byte stream, within a fixed budget.
#[derive(Debug)]
pub(crate) struct Capture {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    total: u64,
}

impl Capture {
    /// A capture keeping at most `cap` bytes: a quarter from the start, the rest from the end.
    pub(crate) fn new(cap: usize) -> Self {
        let head_cap = cap / 4;
        Self { head: Vec::new(), head_cap, tail: VecDeque::new(), tail_cap: cap - head_cap, total: 0 }
    }

    pub(crate) fn push(&mut self, mut chunk: &[u8]) {
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

    /// Bytes seen but not kept.
    pub(crate) fn dropped(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// The kept text, with a note where bytes were dropped.
    pub(crate) fn text(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        let dropped = self.dropped();
        if dropped > 0 {
            out.push_str(&format!("\n[… {dropped} bytes of output dropped …]\n"));
        }
        let (a, b) = self.tail.as_slices();
        let tail: Vec<u8> = [a, b].concat();
        out.push_str(&String::from_utf8_lossy(&tail));
        out
    }
}

/// The agent log: appended to, up to a cap, and created only when there is something to keep.
///
/// Creating a file is the dearest thing a short run does on some disks (ext4 without a journal
/// scans past every recently deleted inode: 0.2–1.4 ms a file on the machines fugue is measured
/// on), and a silent agent that exits 0 leaves nothing worth reading. So a log that does not
/// exist yet is created with the first byte of output, or by [`keep`](Self::keep) when the
/// run did not go well; until then fugue's header line waits in memory. A log that already
/// exists (an earlier attempt wrote it) gets every run's header and footer, so its runs stay
/// in sequence.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: std::path::PathBuf,
    file: Option<File>,
    /// fugue's lines written before the file exists.
    pending: Vec<u8>,
    /// Creating the file failed: write nothing more (the capture still has the output).
    broken: bool,
    written: u64,
    cap: u64,
    truncated: bool,
    /// The last byte written was a newline (or nothing was written).
    at_line_start: bool,
}

impl LogFile {
    /// Opens `path` for appending if it exists; otherwise the file is created when first
    /// needed (with its directory). Errors other than "not there" come back at once.
    pub(crate) fn open(path: &Path, cap: u64) -> std::io::Result<Self> {
        let file = match std::fs::OpenOptions::new().append(true).open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Self { path: path.to_owned(), file, pending: Vec::new(), broken: false, written: 0, cap, truncated: false, at_line_start: true })
    }

    /// Creates the file now (if it does not exist yet) with what waited in memory: the run
    /// is worth a record even without output (it failed, timed out, was killed).
    pub(crate) fn keep(&mut self) {
        let _ = self.file();
    }

    fn file(&mut self) -> Option<&mut File> {
        if self.file.is_none() && !self.broken {
            let created = (|| {
                if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
                f.write_all(&self.pending)?;
                Ok::<_, std::io::Error>(f)
            })();
            match created {
                Ok(f) => self.file = Some(f),
                Err(_) => self.broken = true,
            }
            self.pending = Vec::new();
        }
        self.file.as_mut()
    }

    /// Writes fugue's own lines (headers, footers); they do not count against the cap.
    pub(crate) fn note(&mut self, line: &str) {
        // A failing log write must not fail the agent: the capture still has the output.
        let sep = if self.at_line_start { "" } else { "\n" };
        self.at_line_start = true;
        match &mut self.file {
            Some(f) => {
                let _ = writeln!(f, "{sep}{line}");
            }
            None if !self.broken => {
                let _ = writeln!(self.pending, "{sep}{line}");
            }
            None => {}
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.truncated || chunk.is_empty() {
            return;
        }
        let room = self.cap.saturating_sub(self.written);
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
        if n > 0 {
            let Some(f) = self.file() else { return };
            let _ = f.write_all(&chunk[..n]);
            self.written += n as u64;
            self.at_line_start = chunk[n - 1] == b'\n';
        }
        if n < chunk.len() {
            self.truncated = true;
            let cap = self.cap;
            self.note(&format!("[fugue: the log reached its cap of {cap} bytes; further output is not written]"));
        }
    }
}

/// Where output goes: the capture and, when there is one, the log.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) capture: Capture,
    pub(crate) log: Option<LogFile>,
}

impl Sink {
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.capture.push(chunk);
        if let Some(log) = &mut self.log {
            log.push(chunk);
        }
    }

    pub(crate) fn note(&mut self, line: &str) {
        if let Some(log) = &mut self.log {
            log.note(line);
        }
    }

    /// Makes sure the log exists (see [`LogFile::keep`]).
    pub(crate) fn keep_log(&mut self) {
        if let Some(log) = &mut self.log {
            log.keep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_cap() {
        let mut c = Capture::new(16);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.dropped(), 0);
        assert_eq!(c.text(), "hello world");
    }

    #[test]
    fn keeps_head_and_tail_over_the_cap() {
        let mut c = Capture::new(8);
        for chunk in [b"ab".as_slice(), b"cdefghij", b"klmnop", b"q"] {
            c.push(chunk);
        }
        assert_eq!(c.dropped(), 17 - 8);
        assert_eq!(c.text(), "ab\n[… 9 bytes of output dropped …]\nlmnopq");
    }

    #[test]
    fn non_utf8_is_lossy_not_fatal() {
        let mut c = Capture::new(64);
        c.push(&[0x66, 0x6f, 0xff, 0xfe, 0x6f]);
        c.push("é".as_bytes().split_at(1).0);
        c.push("é".as_bytes().split_at(1).1);
        assert_eq!(c.text(), "fo\u{fffd}\u{fffd}oé");
    }

    #[test]
    fn log_stops_at_its_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/t.log");
        let mut log = LogFile::open(&path, 5).expect("open");
        log.push(b"abc");
        log.push(b"defg");
        log.push(b"more");
        drop(log);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("abcde\n[fugue: the log reached its cap of 5 bytes"), "{text}");
        assert!(!text.contains("more"));
    }

    #[test]
    fn log_is_created_by_output_or_when_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/t.log");
        // A silent run leaves no file.
        let mut log = LogFile::open(&path, 100).expect("open");
        log.note("--- header");
        log.push(b"");
        log.note("--- exit code 0");
        drop(log);
        assert!(!path.exists());
        // A failed silent run is kept, with the lines that waited.
        let mut log = LogFile::open(&path, 100).expect("open");
        log.note("--- header 2");
        log.note("--- exit code 1");
        log.keep();
        drop(log);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "--- header 2\n--- exit code 1\n");
        // Output creates it; an existing log gets every run's lines.
        std::fs::remove_file(&path).expect("remove");
        let mut log = LogFile::open(&path, 100).expect("open");
        log.note("--- header 3");
        log.push(b"partial");
        log.note("--- exit code 0");
        drop(log);
        let mut log = LogFile::open(&path, 100).expect("open");
        log.note("--- header 4");
        log.note("--- exit code 0");
        drop(log);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "--- header 3\npartial\n--- exit code 0\n--- header 4\n--- exit code 0\n"
        );
    }

    proptest::proptest! {
        /// Whatever the chunking, the capture keeps exactly the first `cap/4` and the last bytes.
        #[test]
        fn head_and_tail_are_exact(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300), cuts in proptest::collection::vec(0usize..300, 0..8), cap in 4usize..64) {
            let mut c = Capture::new(cap);
            let mut points: Vec<usize> = cuts.into_iter().map(|x| x.min(data.len())).collect();
            points.sort_unstable();
            let mut last = 0;
            for p in points.into_iter().chain([data.len()]) {
                c.push(&data[last..p]);
                last = p;
            }
            let head_cap = cap / 4;
            let head = &data[..head_cap.min(data.len())];
            let rest = &data[head.len()..];
            let tail = &rest[rest.len().saturating_sub(cap - head_cap)..];
            proptest::prop_assert_eq!(&c.head, head);
            proptest::prop_assert_eq!(c.tail.iter().copied().collect::<Vec<u8>>(), tail.to_vec());
            proptest::prop_assert_eq!(c.dropped() as usize, data.len() - head.len() - tail.len());
        }
    }
}
