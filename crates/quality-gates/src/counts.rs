//! Test counts from runner output and JUnit XML.
//!
//! The tests gate judges by exit codes; counts are for people and reports (the task log,
//! `PARALLEL_STATUS.json`) and, when a runner says tests failed but exited 0 anyway, a second
//! opinion. The [`Scanner`] sees every output line of every command and recognises three
//! summaries, summing them over commands and test binaries:
//!
//! * cargo test: `test result: ok. 3 passed; 1 failed; 2 ignored; …` (one per test binary);
//! * cargo nextest: `Summary [ 0.01s] 5 tests run: 4 passed, 1 failed, 2 skipped`;
//! * pytest: `==== 3 passed, 1 failed, 2 skipped in 0.12s ====` (or the bare `-q` form).
//!
//! JUnit XML (written by nextest, pytest `--junitxml`, jest, gradle, …) is read by counting
//! `<testcase>` elements rather than trusting `<testsuite>` totals, which nest; a failed case's
//! name and message become a finding. No XML library: the format needed here is a handful of
//! tags and attributes, and a malformed file is simply not counted.

use std::io::Read;
use std::sync::LazyLock;

use fugue_core::TestCounts;
use regex::Regex;

fn re(pattern: &str) -> Regex {
    // Constant patterns; a unit test compiles each one.
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("constant regex `{pattern}` does not compile: {e}"))
}

static CARGO: LazyLock<Regex> = LazyLock::new(|| re(r"test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored"));
static NEXTEST: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*Summary \[[^\]]*\]\s+\d+ tests? run: (.+)$"));
static PYTEST: LazyLock<Regex> = LazyLock::new(|| re(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+|no tests ran) in [0-9.]+s(?: \([0-9:.]+\))?\s*=*$"));
static ITEM: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+) ([a-z]+(?: out)?)"));
static ATTR: LazyLock<Regex> = LazyLock::new(|| re(r#"([A-Za-z_][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')"#));

/// Removes ANSI escape sequences (colours) from a line.
fn strip_ansi(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('\u{1b}') {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn number(s: &str) -> u64 {
    s.parse().unwrap_or(0)
}

/// Sums the test summaries found in output lines.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scanner {
    counts: TestCounts,
    seen: bool,
}

impl Scanner {
    /// Looks at one output line (without its newline).
    pub(crate) fn line(&mut self, raw: &str) {
        let line = strip_ansi(raw);
        let line = line.trim_end_matches('\r');
        if !line.contains(" passed") && !line.contains(" failed") && !line.contains(" run: ") && !line.contains("no tests ran") {
            return;
        }
        if let Some(c) = CARGO.captures(line) {
            self.add(number(&c[1]), number(&c[2]), number(&c[3]));
        } else if let Some(c) = NEXTEST.captures(line) {
            let (mut p, mut f, mut s) = (0, 0, 0);
            for item in ITEM.captures_iter(&c[1]) {
                let n = number(&item[1]);
                match &item[2] {
                    "passed" => p += n,
                    "failed" | "timed out" => f += n,
                    "skipped" => s += n,
                    _ => {}
                }
            }
            self.add(p, f, s);
        } else if let Some(c) = PYTEST.captures(line.trim()) {
            let (mut p, mut f, mut s, mut known) = (0, 0, 0, c[1].starts_with("no tests"));
            for item in ITEM.captures_iter(&c[1]) {
                let n = number(&item[1]);
                match &item[2] {
                    "passed" | "xpassed" => p += n,
                    "failed" | "error" | "errors" => f += n,
                    "skipped" | "xfailed" | "deselected" => s += n,
                    "warning" | "warnings" | "rerun" => {}
                    _ => continue,
                }
                known = true;
            }
            if known {
                self.add(p, f, s);
            }
        }
    }

    fn add(&mut self, passed: u64, failed: u64, skipped: u64) {
        self.seen = true;
        self.counts.passed += passed;
        self.counts.failed += failed;
        self.counts.skipped += skipped;
    }

    /// The sums, when any summary was seen.
    pub(crate) fn counts(&self) -> Option<TestCounts> {
        self.seen.then_some(self.counts)
    }

    /// Looks at every line of `text`.
    pub(crate) fn text(&mut self, text: &str) {
        for line in text.lines() {
            self.line(line);
        }
    }

    /// Looks at every line of a byte stream, read in chunks: memory stays bounded whatever the
    /// stream's size, a line longer than [`MAX_LINE`] is cut there, and invalid UTF-8 is
    /// replaced rather than fatal.
    pub(crate) fn stream(&mut self, mut reader: impl Read) -> std::io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut line: Vec<u8> = Vec::new();
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            for &b in &buf[..n] {
                if b == b'\n' {
                    self.line(&String::from_utf8_lossy(&line));
                    line.clear();
                } else if line.len() < MAX_LINE {
                    line.push(b);
                }
            }
        }
        if !line.is_empty() {
            self.line(&String::from_utf8_lossy(&line));
        }
        Ok(())
    }
}

/// Longest line the scanner looks at; the rest of a longer line is ignored.
const MAX_LINE: usize = 8 * 1024;

/// Adds `b` to `a`.
pub(crate) fn add_counts(a: Option<TestCounts>, b: Option<TestCounts>) -> Option<TestCounts> {
    match (a, b) {
        (Some(a), Some(b)) => Some(TestCounts { passed: a.passed + b.passed, failed: a.failed + b.failed, skipped: a.skipped + b.skipped }),
        (a, b) => a.or(b),
    }
}

/// A failed test case from a JUnit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedCase {
    pub(crate) name: String,
    pub(crate) message: String,
}

/// What a JUnit XML file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Junit {
    pub(crate) counts: TestCounts,
    pub(crate) failures: Vec<FailedCase>,
}

/// Decodes the five XML entities and numeric character references.
pub(crate) fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The attributes of a start tag's text (`name="v" …`), decoded.
pub(crate) fn attributes(tag: &str) -> Vec<(String, String)> {
    ATTR.captures_iter(tag)
        .map(|c| {
            let value = c.get(2).or_else(|| c.get(3)).map_or("", |m| m.as_str());
            (c[1].to_owned(), unescape(value))
        })
        .collect()
}

pub(crate) fn attribute(tag: &str, name: &str) -> Option<String> {
    attributes(tag).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The end of the start tag beginning at `xml[start]` (`<`): the index after `>`, honouring
/// quoted attribute values.
pub(crate) fn tag_end(xml: &str, start: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, b) in xml.as_bytes()[start..].iter().enumerate() {
        match (quote, *b) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(*b),
            (None, b'>') => return Some(start + i + 1),
            _ => {}
        }
    }
    None
}

/// Positions of `<name` start tags (not `<nameX`).
pub(crate) fn start_tags(xml: &str, name: &str) -> Vec<usize> {
    let needle = format!("<{name}");
    xml.match_indices(&needle)
        .map(|(i, _)| i)
        .filter(|&i| xml.as_bytes().get(i + needle.len()).is_some_and(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/'))
        .collect()
}

/// Parses a JUnit XML document; `None` when it holds no `<testcase>`.
pub(crate) fn parse_junit(xml: &str) -> Option<Junit> {
    let mut counts = TestCounts::default();
    let mut failures = Vec::new();
    let mut any = false;
    for start in start_tags(xml, "testcase") {
        let Some(end) = tag_end(xml, start) else { break };
        any = true;
        let tag = &xml[start..end];
        let name = match (attribute(tag, "classname"), attribute(tag, "name")) {
            (Some(c), Some(n)) if !c.is_empty() => format!("{c}::{n}"),
            (_, Some(n)) => n,
            (c, None) => c.unwrap_or_else(|| "unnamed test".to_owned()),
        };
        if tag.ends_with("/>") {
            counts.passed += 1;
            continue;
        }
        let body_end = xml[end..].find("</testcase").map_or(xml.len(), |i| end + i);
        let body = &xml[end..body_end];
        let problem = start_tags(body, "failure").into_iter().chain(start_tags(body, "error")).min();
        if let Some(p) = problem {
            counts.failed += 1;
            let ptag_end = tag_end(body, p).unwrap_or(body.len());
            let ptag = &body[p..ptag_end];
            let message = attribute(ptag, "message").filter(|m| !m.trim().is_empty()).unwrap_or_else(|| {
                let text = body[ptag_end..].split('<').next().unwrap_or("");
                let text = unescape(text.trim());
                if text.is_empty() { "failed".to_owned() } else { text }
            });
            failures.push(FailedCase { name, message });
        } else if !start_tags(body, "skipped").is_empty() {
            counts.skipped += 1;
        } else {
            counts.passed += 1;
        }
    }
    any.then_some(Junit { counts, failures })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> Option<TestCounts> {
        let mut s = Scanner::default();
        s.text(text);
        s.counts()
    }

    fn tc(passed: u64, failed: u64, skipped: u64) -> Option<TestCounts> {
        Some(TestCounts { passed, failed, skipped })
    }

    #[test]
    fn constant_regexes_compile() {
        for r in [&CARGO, &NEXTEST, &PYTEST, &ITEM, &ATTR] {
            assert!(!r.as_str().is_empty());
        }
    }

    #[test]
    fn cargo_test_sums_every_binary() {
        let out = "running 3 tests\ntest a ... ok\n\ntest result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
                   running 2 tests\ntest result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(scan(out), tc(4, 1, 1));
        assert_eq!(scan("\u{1b}[32mtest result: ok\u{1b}[0m. 2 passed; 0 failed; 0 ignored"), tc(2, 0, 0));
    }

    #[test]
    fn nextest_summary() {
        assert_eq!(scan("     Summary [   0.010s] 5 tests run: 5 passed, 1 skipped"), tc(5, 0, 1));
        assert_eq!(scan("     Summary [   1.2s] 6 tests run: 3 passed (1 flaky), 2 failed, 1 timed out, 4 skipped"), tc(3, 3, 4));
        assert_eq!(scan("Summary [0.001s] 1 test run: 1 passed, 0 skipped"), tc(1, 0, 0));
    }

    #[test]
    fn pytest_summary() {
        assert_eq!(scan("============ 3 passed, 1 failed, 2 skipped in 0.12s ============"), tc(3, 1, 2));
        assert_eq!(scan("5 passed in 0.01s"), tc(5, 0, 0));
        assert_eq!(scan("== 1 failed, 2 passed, 1 error, 3 warnings, 1 xfailed in 1.50s (0:00:01) =="), tc(2, 2, 1));
        assert_eq!(scan("============ no tests ran in 0.01s ============"), tc(0, 0, 0));
    }

    #[test]
    fn unrelated_lines_count_nothing() {
        assert_eq!(scan("3 passed the bar\nall failed in spirit\nrun: x"), None);
        assert_eq!(scan("the 2 files were passed in 5s"), None);
    }

    #[test]
    fn junit_counts_cases_and_failures() {
        let xml = r#"<?xml version="1.0"?>
<testsuites tests="4" failures="1">
  <testsuite name="s" tests="4" failures="1" skipped="1">
    <testcase classname="m" name="ok1" time="0.1"/>
    <testcase classname="m" name="ok2"></testcase>
    <testcase classname="m" name="bad"><failure message="expected &lt;1&gt; got 2" type="assert">trace</failure></testcase>
    <testcase name="err"><error>boom &amp; bust</error></testcase>
    <testcase name="skip"><skipped/></testcase>
  </testsuite>
</testsuites>"#;
        let j = parse_junit(xml).expect("cases");
        assert_eq!(j.counts, TestCounts { passed: 2, failed: 2, skipped: 1 });
        assert_eq!(j.failures[0], FailedCase { name: "m::bad".to_owned(), message: "expected <1> got 2".to_owned() });
        assert_eq!(j.failures[1], FailedCase { name: "err".to_owned(), message: "boom & bust".to_owned() });
        assert_eq!(parse_junit("<testsuites/>"), None);
        assert_eq!(parse_junit("<testcase name='a>b'/>").map(|j| j.counts.passed), Some(1));
    }

    #[test]
    fn streams_lines_across_chunks_and_cuts_long_ones() {
        let mut text = "x".repeat(20_000);
        text.push_str("test result: ok. 9 passed; 0 failed; 0 ignored\n");
        text.push_str(&"noise\n".repeat(5000));
        text.push_str("test result: ok. 1 passed; 2 failed; 3 ignored");
        let mut s = Scanner::default();
        s.stream(text.as_bytes()).expect("in memory");
        assert_eq!(s.counts(), tc(1, 2, 3), "a summary after an over-long line is cut off with it; the last, unterminated one counts");

        let mut s = Scanner::default();
        s.stream(&b"\xff\xfe\ntest result: ok. 4 passed; 0 failed; 0 ignored\n"[..]).expect("in memory");
        assert_eq!(s.counts(), tc(4, 0, 0));
    }

    #[test]
    fn entities() {
        assert_eq!(unescape("a &amp;&lt;&#65;&#x42;&bogus; & b"), "a &<AB&bogus; & b");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in "\\PC{0,120}") {
            let mut s = Scanner::default();
            s.line(&line);
            let _ = parse_junit(&line);
            let _ = unescape(&line);
        }
    }
}
