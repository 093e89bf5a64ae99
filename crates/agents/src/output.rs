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

/// The task log: appended to, up to a cap.
#[derive(Debug)]
pub(crate) struct LogFile {
    file: File,
    written: u64,
    cap: u64,
    truncated: bool,
    /// The last byte written was a newline (or nothing was written).
    at_line_start: bool,
}

impl LogFile {
    /// Opens `path` for appending, creating its directory.
    pub(crate) fn open(path: &Path, cap: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file, written: 0, cap, truncated: false, at_line_start: true })
    }

    /// Writes fugue's own lines (headers, footers); they do not count against the cap.
    pub(crate) fn note(&mut self, line: &str) {
        // A failing log write must not fail the agent: the capture still has the output.
        let sep = if self.at_line_start { "" } else { "\n" };
        let _ = writeln!(self.file, "{sep}{line}");
        self.at_line_start = true;
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.truncated {
            return;
        }
        let room = self.cap.saturating_sub(self.written);
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
        let _ = self.file.write_all(&chunk[..n]);
        self.written += n as u64;
        if n > 0 {
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
