//! Secret redaction: values of secret-looking environment variables never reach a log, an
//! event, a report or an error message.
//!
//! **What is a secret.** An environment variable whose name contains (case-insensitively)
//! `TOKEN`, `KEY`, `SECRET`, `PASSWORD`, `PASSWD`, `PASSPHRASE`, `CREDENTIAL` or `PRIVATE`
//! ([`looks_secret`]). `AUTH` is deliberately *not* on the list: it would catch
//! `GIT_AUTHOR_NAME`/`GIT_AUTHOR_EMAIL`, and redacting the commit author everywhere helps no
//! one; an `*_AUTH_TOKEN` is caught by `TOKEN` anyway. A value is only worth redacting when it
//! could not be mistaken for ordinary text ([`is_meaningful`]): after trimming surrounding
//! whitespace it has at least [`MIN_SECRET_LEN`] bytes, is not a boolean-ish word (`true`,
//! `false`, `none`, `null`, `unset`) and, when it is all digits, has at least 8 of them (so
//! `KEY_TIMEOUT=3000` does not blank every `3000` in a log). A multi-line value (a PEM key) is
//! registered whole and line by line, since output rarely reproduces its exact line endings.
//! A value with a quote, a backslash or a control character is also registered in its
//! JSON-escaped spelling, so redacting serialised JSON finds it too.
//!
//! **How.** A [`Redactor`] holds the secrets (deduplicated by value; a value shared by two
//! names is labelled with the first name) and compiles them into one Aho-Corasick automaton —
//! a dense DFA over byte classes — so a text is scanned once, whatever the number of secrets:
//! each byte is one table lookup. Every match becomes an interval; overlapping intervals are
//! merged (two secrets overlapping in the text are both hidden, neither half leaks) and the
//! merged interval is replaced by `[REDACTED:NAME]`, NAME being the variable of the longest
//! secret in it. Matching is on bytes, so non-UTF-8 values and output work; a UTF-8 secret
//! matched in UTF-8 text always starts and ends on character boundaries.
//!
//! **Streams.** Output arrives in chunks and a secret can straddle two. A [`StreamRedactor`]
//! emits only the bytes no future match can reach: it holds back the last `max_len - 1`
//! bytes (and any match that could still grow) until the next chunk or [`StreamRedactor::finish`].
//!
//! **The process-wide redactor.** [`global`] is built once from the process environment and
//! grows with [`register`] (a plan's agent `env:` entries, say), so any writer can call
//! [`redact_str`] without threading a handle through. Registering rebuilds the automaton
//! (rare, cheap) and swaps it in; readers hold an `Arc` to the version they started with.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// Shortest value (in bytes, after trimming) that is redacted.
pub const MIN_SECRET_LEN: usize = 4;

/// Name fragments that make an environment variable a secret (matched case-insensitively).
pub const SECRET_NAME_PARTS: [&str; 8] = ["TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "PRIVATE"];

/// Values that are configuration, not secrets, whatever the variable is called.
const NOT_SECRETS: [&str; 5] = ["true", "false", "none", "null", "unset"];

/// Does the variable `name` hold a secret? See the module docs for the list.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|part| upper.contains(part))
}

/// Is `value` (trimmed) distinctive enough to redact? See the module docs.
pub fn is_meaningful(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    if value.len() < MIN_SECRET_LEN {
        return false;
    }
    if NOT_SECRETS.iter().any(|w| value.eq_ignore_ascii_case(w.as_bytes())) {
        return false;
    }
    !(value.iter().all(u8::is_ascii_digit) && value.len() < 8)
}

/// One secret value and the name it is shown as.
#[derive(Clone)]
struct Secret {
    name: String,
    value: Vec<u8>,
}

/// Replaces known secret values in text with `[REDACTED:NAME]`.
///
/// Its `Debug` output names the variables and never shows a value.
#[derive(Default)]
pub struct Redactor {
    secrets: Vec<Secret>,
    automaton: Option<Automaton>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").field("names", &self.names()).finish()
    }
}

impl Clone for Redactor {
    fn clone(&self) -> Self {
        let mut r = Self { secrets: self.secrets.clone(), automaton: None };
        r.rebuild();
        r
    }
}

impl Redactor {
    /// A redactor that knows no secret (and changes nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// A redactor for the secret-looking variables of `vars` (names sorted first, so that a
    /// value shared by two variables is always labelled the same way).
    pub fn from_vars<K: AsRef<OsStr>, V: AsRef<OsStr>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut pairs: Vec<(String, Vec<u8>)> = vars
            .into_iter()
            .filter_map(|(k, v)| {
                let name = k.as_ref().to_str()?;
                looks_secret(name).then(|| (name.to_owned(), v.as_ref().as_bytes().to_vec()))
            })
            .collect();
        pairs.sort();
        let mut r = Self::new();
        for (name, value) in pairs {
            r.insert(&name, &value);
        }
        r.rebuild();
        r
    }

    /// A redactor for the secret-looking variables of this process's environment.
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars_os())
    }

    /// Adds the secret `value` shown as `name`, whatever the name looks like, when the value
    /// is meaningful ([`is_meaningful`]). Returns whether anything new was added.
    pub fn add(&mut self, name: &str, value: impl AsRef<[u8]>) -> bool {
        let added = self.insert(name, value.as_ref());
        if added {
            self.rebuild();
        }
        added
    }

    /// [`add`](Self::add) by value.
    pub fn with(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.add(name, value);
        self
    }

    /// Does it know `value` (trimmed) already?
    pub fn knows(&self, value: impl AsRef<[u8]>) -> bool {
        let value = value.as_ref().trim_ascii();
        self.secrets.iter().any(|s| s.value == value)
    }

    /// Records `value` and its lines without rebuilding the automaton.
    fn insert(&mut self, name: &str, value: &[u8]) -> bool {
        let whole = value.trim_ascii();
        let mut added = false;
        let lines = whole.split(|b| *b == b'\n').map(<[u8]>::trim_ascii);
        let mut candidates: Vec<Vec<u8>> = std::iter::once(whole).chain(lines).map(<[u8]>::to_vec).collect();
        if let Ok(text) = std::str::from_utf8(whole) {
            let escaped = serde_json::Value::String(text.to_owned()).to_string();
            let escaped = escaped.as_bytes();
            if escaped.len() > 2 && &escaped[1..escaped.len() - 1] != whole {
                candidates.push(escaped[1..escaped.len() - 1].to_vec());
            }
        }
        for candidate in candidates.iter().map(Vec::as_slice) {
            if is_meaningful(candidate) && !self.secrets.iter().any(|s| s.value == candidate) {
                self.secrets.push(Secret { name: name.to_owned(), value: candidate.to_vec() });
                added = true;
            }
        }
        added
    }

    fn rebuild(&mut self) {
        self.automaton = (!self.secrets.is_empty()).then(|| Automaton::new(&self.secrets));
    }

    /// True when it knows no secret.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The number of secret values (a multi-line value counts once per line, plus once whole).
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// The names of the variables it redacts, sorted, without duplicates.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.secrets.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The longest secret, in bytes (0 when there is none).
    pub fn max_len(&self) -> usize {
        self.secrets.iter().map(|s| s.value.len()).max().unwrap_or(0)
    }

    /// The text shown instead of the secret `index`: plain enough to sit inside a JSON string,
    /// a shell word or a Markdown table unescaped.
    fn label(&self, index: u32) -> String {
        let name = usize::try_from(index).ok().and_then(|i| self.secrets.get(i)).map_or("SECRET", |s| s.name.as_str());
        let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' }).collect();
        format!("[REDACTED:{name}]")
    }

    /// `text` with every secret replaced; borrowed when nothing was found.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // A non-UTF-8 secret may have matched inside a character.
            Cow::Owned(bytes) => {
                Cow::Owned(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
            }
        }
    }

    /// `bytes` with every secret replaced; borrowed when nothing was found.
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let hits = self.hits(bytes);
        if hits.is_empty() {
            return Cow::Borrowed(bytes);
        }
        let mut out = Vec::with_capacity(bytes.len());
        self.write_redacted(bytes, &hits, &mut out);
        Cow::Owned(out)
    }

    /// Redacts every string (and object key) inside `value`, in place; returns whether
    /// anything changed. For JSON that is serialised afterwards: a secret holding a quote or a
    /// backslash is only found before escaping.
    pub fn redact_json(&self, value: &mut serde_json::Value) -> bool {
        if self.is_empty() {
            return false;
        }
        match value {
            serde_json::Value::String(s) => match self.redact(s) {
                Cow::Owned(new) => {
                    *s = new;
                    true
                }
                Cow::Borrowed(_) => false,
            },
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |changed, v| self.redact_json(v) | changed),
            serde_json::Value::Object(map) => {
                let mut changed = false;
                let keys: Vec<String> = map.keys().filter(|k| matches!(self.redact(k), Cow::Owned(_))).cloned().collect();
                for key in keys {
                    if let Some(v) = map.remove(&key) {
                        map.insert(self.redact(&key).into_owned(), v);
                        changed = true;
                    }
                }
                map.values_mut().fold(changed, |changed, v| self.redact_json(v) | changed)
            }
            _ => false,
        }
    }

    /// `json`, one serialised JSON document (a journal line, say), with every secret replaced
    /// and still valid JSON. The text is redacted as text (fast, and escaped spellings are
    /// known); only if that broke the document — a secret holding a quote matched across its
    /// structure — is it parsed, redacted string by string and serialised again. Text that
    /// was not JSON to begin with is returned redacted as text.
    pub fn redact_json_text<'a>(&self, json: &'a str) -> Cow<'a, str> {
        let redacted = self.redact(json);
        if matches!(redacted, Cow::Borrowed(_)) || serde_json::from_str::<serde::de::IgnoredAny>(&redacted).is_ok() {
            return redacted;
        }
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(mut value) => {
                self.redact_json(&mut value);
                Cow::Owned(value.to_string())
            }
            Err(_) => redacted,
        }
    }

    /// A stream redactor using this redactor.
    pub fn stream(self: &Arc<Self>) -> StreamRedactor {
        StreamRedactor::new(Arc::clone(self))
    }

    /// The merged, sorted, disjoint intervals of `bytes` that hold secrets.
    fn hits(&self, bytes: &[u8]) -> Vec<Hit> {
        let mut hits = Vec::new();
        if let Some(automaton) = &self.automaton {
            automaton.scan(bytes, &mut hits);
        }
        hits
    }

    fn write_redacted(&self, bytes: &[u8], hits: &[Hit], out: &mut Vec<u8>) {
        let mut at = 0;
        for hit in hits {
            out.extend_from_slice(&bytes[at..hit.start]);
            out.extend_from_slice(self.label(hit.secret).as_bytes());
            at = hit.end;
        }
        out.extend_from_slice(&bytes[at..]);
    }
}

/// A stretch of text to hide: `start..end`, shown as the label of `secret` (the longest
/// match in it, `len` bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hit {
    start: usize,
    end: usize,
    secret: u32,
    len: usize,
}

/// Adds the match `start..end` of `secret` to `hits` (sorted by end, as a scan finds them),
/// merging it with the intervals it overlaps.
fn push_hit(hits: &mut Vec<Hit>, start: usize, end: usize, secret: u32) {
    let mut hit = Hit { start, end, secret, len: end - start };
    while let Some(last) = hits.last().copied() {
        if last.end <= hit.start {
            break;
        }
        hits.pop();
        hit.start = hit.start.min(last.start);
        hit.end = hit.end.max(last.end);
        if last.len >= hit.len {
            hit.secret = last.secret;
            hit.len = last.len;
        }
    }
    hits.push(hit);
}

/// The Aho-Corasick automaton of the secrets, as a dense DFA over byte classes.
///
/// Bytes that occur in no secret share class 0, so the table has one column per distinct
/// secret byte plus one. `next` is indexed by `state * stride + class`; `longest[state]` is
/// the length of the longest secret ending in that state (0: none) and `secret[state]` its
/// index.
struct Automaton {
    classes: [u16; 256],
    /// Bytes some secret starts with: in the start state, everything else is skipped.
    starts: [bool; 256],
    stride: usize,
    /// Target states, with [`Automaton::MATCH`] set when a secret ends in the target.
    next: Vec<u32>,
    longest: Vec<u32>,
    secret: Vec<u32>,
}

impl Automaton {
    const MATCH: u32 = 1 << 31;

    fn new(secrets: &[Secret]) -> Self {
        let mut starts = [false; 256];
        for s in secrets {
            if let Some(&b) = s.value.first() {
                starts[usize::from(b)] = true;
            }
        }
        let mut classes = [0u16; 256];
        let mut count: u16 = 1;
        for s in secrets {
            for &b in &s.value {
                if classes[usize::from(b)] == 0 {
                    classes[usize::from(b)] = count;
                    count += 1;
                }
            }
        }
        let stride = usize::from(count);

        // The trie, with `u32::MAX` for "no edge".
        let mut next: Vec<u32> = vec![u32::MAX; stride];
        let mut longest: Vec<u32> = vec![0];
        let mut secret: Vec<u32> = vec![0];
        for (index, s) in secrets.iter().enumerate() {
            let mut state = 0usize;
            for &b in &s.value {
                let slot = state * stride + usize::from(classes[usize::from(b)]);
                if next[slot] == u32::MAX {
                    let id = longest.len();
                    next[slot] = u32::try_from(id).unwrap_or(u32::MAX);
                    next.extend(std::iter::repeat_n(u32::MAX, stride));
                    longest.push(0);
                    secret.push(0);
                }
                state = next[slot] as usize;
            }
            let len = u32::try_from(s.value.len()).unwrap_or(u32::MAX);
            if len > longest[state] {
                longest[state] = len;
                secret[state] = u32::try_from(index).unwrap_or(u32::MAX);
            }
        }

        // Breadth-first: fill the missing edges from the failure state and inherit its
        // output when it is longer (it never is for a proper suffix, but a shorter secret
        // ending here must still be found when this state's own secret is absent).
        let mut fail = vec![0usize; longest.len()];
        let mut queue = VecDeque::new();
        for target in &mut next[..stride] {
            match *target {
                u32::MAX => *target = 0,
                child => queue.push_back(child as usize),
            }
        }
        while let Some(state) = queue.pop_front() {
            let f = fail[state];
            if longest[state] == 0 && longest[f] != 0 {
                longest[state] = longest[f];
                secret[state] = secret[f];
            }
            for class in 0..stride {
                let slot = state * stride + class;
                let via_fail = next[f * stride + class];
                match next[slot] {
                    u32::MAX => next[slot] = via_fail,
                    child => {
                        fail[child as usize] = via_fail as usize;
                        queue.push_back(child as usize);
                    }
                }
            }
        }
        for target in &mut next {
            if longest[*target as usize] != 0 {
                *target |= Self::MATCH;
            }
        }
        Self { classes, starts, stride, next, longest, secret }
    }

    fn scan(&self, bytes: &[u8], hits: &mut Vec<Hit>) {
        let mut state = 0usize;
        let mut i = 0;
        while i < bytes.len() {
            if state == 0 {
                match bytes[i..].iter().position(|&b| self.starts[usize::from(b)]) {
                    Some(skip) => i += skip,
                    None => break,
                }
            }
            let target = self.next[state * self.stride + usize::from(self.classes[usize::from(bytes[i])])];
            state = (target & !Self::MATCH) as usize;
            if target & Self::MATCH != 0 {
                let len = self.longest[state] as usize;
                push_hit(hits, i + 1 - len, i + 1, self.secret[state]);
            }
            i += 1;
        }
    }
}

/// Redacts a byte stream that arrives in chunks, holding back what a secret split across
/// chunks could still cover.
#[derive(Debug)]
pub struct StreamRedactor {
    redactor: Arc<Redactor>,
    /// Bytes not yet emitted, after `done` bytes of already emitted context.
    buf: Vec<u8>,
    done: usize,
}

impl StreamRedactor {
    /// Held-back bytes beyond which a match that keeps growing (a secret repeated over and
    /// over) is emitted anyway.
    const MAX_HOLD: usize = 64 * 1024;

    /// A stream redactor using `redactor`.
    pub fn new(redactor: Arc<Redactor>) -> Self {
        Self { redactor, buf: Vec::new(), done: 0 }
    }

    /// The redacted bytes of `chunk` that are final: possibly fewer than given (held back),
    /// possibly more (released from an earlier chunk).
    pub fn push<'c>(&mut self, chunk: &'c [u8]) -> Cow<'c, [u8]> {
        if self.redactor.is_empty() && self.buf.is_empty() {
            return Cow::Borrowed(chunk);
        }
        self.buf.extend_from_slice(chunk);
        let hits = self.pending_hits();
        let keep = self.redactor.max_len().saturating_sub(1);
        let natural = self.buf.len().saturating_sub(keep).max(self.done);
        let mut cut = natural;
        // A match reaching into the held-back bytes could still merge with a later one, so it
        // is held back too, unless it has grown beyond all reason.
        if let Some(open) = hits.iter().find(|h| h.start < natural && h.end > natural) {
            cut = open.start.max(self.done);
            if self.buf.len() - cut > Self::MAX_HOLD + keep {
                cut = open.end;
            }
        }
        let mut out = Vec::with_capacity(cut - self.done);
        let emitted: Vec<Hit> = hits.into_iter().filter(|h| h.end <= cut).collect();
        self.redactor.write_redacted(&self.buf[self.done..cut], &shift(&emitted, self.done), &mut out);
        // Keep `keep` bytes of context before the cut so a match already begun is recognised.
        let drop = cut.saturating_sub(keep);
        self.buf.drain(..drop);
        self.done = cut - drop;
        Cow::Owned(out)
    }

    /// Everything still held back, redacted; the stream can go on afterwards.
    pub fn finish(&mut self) -> Vec<u8> {
        let hits = self.pending_hits();
        let mut out = Vec::new();
        self.redactor.write_redacted(&self.buf[self.done..], &shift(&hits, self.done), &mut out);
        self.buf.clear();
        self.done = 0;
        out
    }

    /// The hits of the buffer, clipped to the bytes not yet emitted.
    fn pending_hits(&self) -> Vec<Hit> {
        self.redactor
            .hits(&self.buf)
            .into_iter()
            .filter(|h| h.end > self.done)
            .map(|h| Hit { start: h.start.max(self.done), ..h })
            .collect()
    }
}

/// `hits` relative to `offset`.
fn shift(hits: &[Hit], offset: usize) -> Vec<Hit> {
    hits.iter().map(|h| Hit { start: h.start - offset, end: h.end - offset, ..*h }).collect()
}

fn global_cell() -> &'static RwLock<Arc<Redactor>> {
    static GLOBAL: OnceLock<RwLock<Arc<Redactor>>> = OnceLock::new();
    GLOBAL.get_or_init(|| RwLock::new(Arc::new(Redactor::from_env())))
}

/// The process-wide redactor: the secret-looking variables of the environment at first use,
/// plus everything [`register`]ed since.
pub fn global() -> Arc<Redactor> {
    Arc::clone(&global_cell().read().unwrap_or_else(PoisonError::into_inner))
}

/// Adds the secret `value` shown as `name` to the process-wide redactor, whatever the name
/// looks like (the caller decided it is a secret); values that are not meaningful
/// ([`is_meaningful`]) or already known are ignored. Returns whether it was added.
pub fn register(name: &str, value: &str) -> bool {
    if !is_meaningful(value.as_bytes()) || global().knows(value) {
        return false;
    }
    let mut cell = global_cell().write().unwrap_or_else(PoisonError::into_inner);
    let mut next = Redactor::clone(&cell);
    let added = next.add(name, value);
    if added {
        *cell = Arc::new(next);
    }
    added
}

/// [`register`]s the entries of `vars` whose names look secret ([`looks_secret`]), e.g. a
/// plan's `agents.<name>.env`; returns how many values were added.
pub fn register_vars<'a>(vars: impl IntoIterator<Item = (&'a String, &'a String)>) -> usize {
    let mut secret: Vec<(&String, &String)> = vars.into_iter().filter(|(k, _)| looks_secret(k)).collect();
    secret.sort();
    secret.into_iter().filter(|(name, value)| register(name, value)).count()
}

/// `text` with every secret of the process-wide redactor replaced by `[REDACTED:NAME]`.
pub fn redact_str(text: &str) -> Cow<'_, str> {
    global().redact(text)
}

/// `bytes` with every secret of the process-wide redactor replaced.
pub fn redact_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    global().redact_bytes(bytes)
}

/// Redacts every string in `value` with the process-wide redactor; returns whether anything
/// changed.
pub fn redact_json(value: &mut serde_json::Value) -> bool {
    global().redact_json(value)
}

/// [`Redactor::redact_json_text`] with the process-wide redactor: for a serialised JSON line.
pub fn redact_json_text(json: &str) -> Cow<'_, str> {
    global().redact_json_text(json)
}

/// A [`StreamRedactor`] over the process-wide redactor as it is now.
pub fn stream() -> StreamRedactor {
    StreamRedactor::new(global())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn redactor(pairs: &[(&str, &str)]) -> Redactor {
        pairs.iter().fold(Redactor::new(), |r, (n, v)| r.with(n, v))
    }

    /// The obvious implementation: every secret, longest first, replaced by its label.
    fn naive(r: &Redactor, text: &str) -> String {
        let mut secrets: Vec<&Secret> = r.secrets.iter().collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.value.len()));
        let mut out = text.to_owned();
        for s in secrets {
            let value = String::from_utf8_lossy(&s.value).into_owned();
            out = out.replace(&value, &format!("[REDACTED:{}]", s.name));
        }
        out
    }

    #[test]
    fn names_that_look_secret() {
        for name in ["GITHUB_TOKEN", "api_key", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "SMTP_PASSWD", "GOOGLE_CREDENTIALS", "SSH_PRIVATE"]
        {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["PATH", "HOME", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "FUGUE_TASK_ID", "LANG"] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn values_too_plain_to_redact() {
        for value in ["1", "abc", "true", "FALSE", "null", "3000", " 42 ", ""] {
            assert!(!is_meaningful(value.as_bytes()), "{value:?}");
        }
        for value in ["hunter22", "ghp_abcdef", "12345678", "s3cr"] {
            assert!(is_meaningful(value.as_bytes()), "{value:?}");
        }
    }

    #[test]
    fn from_vars_takes_secret_names_with_meaningful_values() {
        let r = Redactor::from_vars([
            ("GITHUB_TOKEN", "ghp_0123456789"),
            ("HOME", "/root/home-dir"),
            ("DEBUG_KEY", "1"),
            ("OTHER_TOKEN", "ghp_0123456789"),
            ("API_SECRET", "  padded-secret\n"),
        ]);
        assert_eq!(r.names(), ["API_SECRET", "GITHUB_TOKEN"]);
        let text = "token ghp_0123456789, home /root/home-dir, debug 1, padded-secret.";
        assert_eq!(r.redact(text), "token [REDACTED:GITHUB_TOKEN], home /root/home-dir, debug 1, [REDACTED:API_SECRET].");
        assert!(!format!("{r:?}").contains("ghp_"), "Debug must not show values: {r:?}");
    }

    #[test]
    fn serialised_json_stays_valid() {
        let r = redactor(&[("QUOTE_TOKEN", "ab\"cd\\ef"), ("PLAIN_KEY", "plain-secret"), ("ODD NAME\"", "odd-value")]);
        let doc = serde_json::json!({"msg": "x ab\"cd\\ef y", "k": "plain-secret", "o": "odd-value"}).to_string();
        let out = r.redact_json_text(&doc);
        let back: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(
            back,
            serde_json::json!({"msg": "x [REDACTED:QUOTE_TOKEN] y", "k": "[REDACTED:PLAIN_KEY]", "o": "[REDACTED:ODD_NAME_]"})
        );
        // A secret matching across the structure: the raw value is `a","b`.
        let r = redactor(&[("X_TOKEN", "1\",\"b")]);
        let doc = r#"{"a":"1","b":"2"}"#;
        let out = r.redact_json_text(doc);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&out).expect("still JSON"), serde_json::json!({"a": "1", "b": "2"}));
        assert!(matches!(r.redact_json_text("not json"), Cow::Borrowed(_)));
    }

    #[test]
    fn nothing_found_borrows() {
        let r = redactor(&[("A_TOKEN", "abcdef")]);
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        assert!(matches!(Redactor::new().redact("abcdef"), Cow::Borrowed(_)));
    }

    #[test]
    fn overlapping_and_nested_secrets_are_hidden_whole() {
        let r = redactor(&[("A_KEY", "abcdef"), ("B_KEY", "defghi"), ("C_KEY", "bcde"), ("D_KEY", "xyzw")]);
        assert_eq!(r.redact("..abcdefghi.."), "..[REDACTED:A_KEY].."); // union of A and B
        assert_eq!(r.redact("abcdef|bcde|xyzwxyzw"), "[REDACTED:A_KEY]|[REDACTED:C_KEY]|[REDACTED:D_KEY][REDACTED:D_KEY]");
        assert_eq!(r.redact("xyzxyzw"), "xyz[REDACTED:D_KEY]");
    }

    #[test]
    fn multi_line_values_are_redacted_by_line_too() {
        let pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n";
        let r = redactor(&[("SSH_PRIVATE_KEY", pem)]);
        let out = r.redact("key: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\r\n");
        assert_eq!(out, "key: [REDACTED:SSH_PRIVATE_KEY]\r\n");
    }

    #[test]
    fn non_utf8_and_utf8_secrets() {
        let r = Redactor::new().with("K_TOKEN", [0xff, 0xfe, 0x41, 0x42]).with("PASSWORD", "pässwörd");
        assert_eq!(r.redact_bytes(&[1, 0xff, 0xfe, 0x41, 0x42, 2]).as_ref(), b"\x01[REDACTED:K_TOKEN]\x02");
        assert_eq!(r.redact("é pässwörd é"), "é [REDACTED:PASSWORD] é");
    }

    #[test]
    fn json_strings_and_keys() {
        let r = redactor(&[("A_TOKEN", "tok-123456")]);
        let mut v = serde_json::json!({"msg": "sent tok-123456", "list": ["x", "tok-123456"], "tok-123456": 1, "n": 5});
        assert!(r.redact_json(&mut v));
        assert_eq!(
            v,
            serde_json::json!({"msg": "sent [REDACTED:A_TOKEN]", "list": ["x", "[REDACTED:A_TOKEN]"], "[REDACTED:A_TOKEN]": 1, "n": 5})
        );
        assert!(!r.redact_json(&mut v));
    }

    #[test]
    fn stream_splits_never_leak() {
        let r = Arc::new(redactor(&[("A_TOKEN", "secret-value-1"), ("B_KEY", "other")]));
        let text = b"start secret-value-1 mid other end secret-value-1";
        for split in 0..text.len() {
            let mut s = r.stream();
            let mut out = s.push(&text[..split]).into_owned();
            out.extend_from_slice(&s.push(&text[split..]));
            out.extend(s.finish());
            assert_eq!(
                String::from_utf8_lossy(&out),
                "start [REDACTED:A_TOKEN] mid [REDACTED:B_KEY] end [REDACTED:A_TOKEN]",
                "split at {split}"
            );
        }
    }

    #[test]
    fn stream_without_secrets_passes_through() {
        let mut s = Arc::new(Redactor::new()).stream();
        assert!(matches!(s.push(b"abc"), Cow::Borrowed(b"abc")));
        assert!(s.finish().is_empty());
    }

    #[test]
    fn a_match_that_keeps_growing_is_still_emitted() {
        let r = Arc::new(redactor(&[("A_KEY", "aaaa")]));
        let mut s = r.stream();
        let mut emitted = 0;
        for _ in 0..40 {
            let out = s.push(&[b'a'; 4096]);
            assert!(!out.windows(4).any(|w| w == b"aaaa"));
            emitted += out.len();
        }
        assert!(emitted > 0, "a run of secrets longer than the hold limit is flushed");
        let rest = s.finish();
        assert!(!rest.windows(4).any(|w| w == b"aaaa"));
    }

    #[test]
    fn global_registration() {
        assert!(register("FUGUE_TEST_REDACT_TOKEN", "glob-al-secret-42"));
        assert!(!register("FUGUE_TEST_REDACT_TOKEN", "glob-al-secret-42"), "known already");
        assert!(!register("FUGUE_TEST_REDACT_TOKEN", "yes"), "not meaningful");
        assert_eq!(redact_str("x glob-al-secret-42 y"), "x [REDACTED:FUGUE_TEST_REDACT_TOKEN] y");
        let env = std::collections::BTreeMap::from([
            ("FUGUE_TEST_REDACT_API_KEY".to_owned(), "plan-env-key-9".to_owned()),
            ("FUGUE_TEST_REDACT_MODE".to_owned(), "plain-value-9".to_owned()),
        ]);
        assert_eq!(register_vars(&env), 1);
        assert_eq!(redact_str("plan-env-key-9 plain-value-9"), "[REDACTED:FUGUE_TEST_REDACT_API_KEY] plain-value-9");
        let mut s = stream();
        let mut out = s.push(b"..plan-env").into_owned();
        out.extend_from_slice(&s.push(b"-key-9.."));
        out.extend(s.finish());
        assert_eq!(out, b"..[REDACTED:FUGUE_TEST_REDACT_API_KEY]..");
    }

    /// Throughput against the naive one-`replace`-per-secret approach. Not a timed assertion:
    /// `cargo test -p fugue-core --release --lib redact::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement; run explicitly with --release"]
    fn throughput() {
        use std::fmt::Write as _;
        use std::time::Instant;
        let mut text = String::new();
        let mut i = 0u64;
        while text.len() < 8 << 20 {
            let _ = writeln!(
                text,
                "line {i}: compiling crate_{} v0.{}.{} ... ok (token-like ghp_{:016x})",
                i % 97,
                i % 13,
                i % 7,
                i.wrapping_mul(0x9e37_79b9)
            );
            i += 1;
        }
        let mb = text.len() as f64 / 1e6;
        for n in [1usize, 10, 100, 1000] {
            let r = (0..n).fold(Redactor::new(), |r, k| {
                r.with(&format!("SECRET_{k}"), format!("sk-{k:04}-{:032x}", (k as u128).wrapping_mul(0x1234_5678_9abc)))
            });
            let mut planted = text.clone();
            planted.push_str(&format!("leak sk-0000-{:032x}\n", 0));
            // Best of three: the machine is shared.
            let best = |f: &mut dyn FnMut()| {
                (0..3)
                    .map(|_| {
                        let t = Instant::now();
                        f();
                        t.elapsed().as_secs_f64()
                    })
                    .fold(f64::MAX, f64::min)
            };
            let mut out = String::new();
            let secs = best(&mut || out = r.redact(&planted).into_owned());
            assert!(out.contains("[REDACTED:SECRET_0]"));
            let arc = Arc::new(Redactor::clone(&r));
            let mut total = 0;
            let stream_secs = best(&mut || {
                let mut s = arc.stream();
                total = 0;
                for chunk in planted.as_bytes().chunks(16 * 1024) {
                    total += s.push(chunk).len();
                }
                total += s.finish().len();
            });
            assert_eq!(total, out.len());
            let naive_rate = if n <= 100 {
                let t = Instant::now();
                let expected = naive(&r, &planted);
                let rate = mb / t.elapsed().as_secs_f64();
                assert_eq!(expected, out);
                format!("{rate:.0} MB/s")
            } else {
                "skipped".to_owned()
            };
            eprintln!(
                "redact {mb:.1} MB, {n} secrets: one pass {:.0} MB/s, stream (16 KiB chunks) {:.0} MB/s, naive replace-per-secret {naive_rate}",
                mb / secs,
                mb / stream_secs
            );
        }
    }

    proptest! {
        /// The one-pass redactor agrees with replace-per-secret when secrets do not overlap
        /// one another, and however a stream is chunked it gives the same bytes.
        #[test]
        fn agrees_with_naive_and_chunking(
            words in proptest::collection::vec("[a-e]{0,6}", 0..30),
            secrets in proptest::collection::vec("[a-e]{4,7}", 1..4),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let r = Arc::new(secrets.iter().enumerate().fold(Redactor::new(), |r, (i, v)| r.with(&format!("S{i}_KEY"), v)));
            let text = words.join(" ");
            let out = r.redact(&text).into_owned();
            // No secret survives anywhere outside a label.
            let stripped = out.split("[REDACTED:").map(|part| part.split_once(']').map_or(part, |(_, rest)| rest)).collect::<Vec<_>>().join("|");
            for s in &secrets {
                prop_assert!(!stripped.contains(s.as_str()), "{s} survived in {out}");
            }
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            points.sort_unstable();
            let mut stream = r.stream();
            let mut streamed = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([text.len()]) {
                streamed.extend_from_slice(&stream.push(&text.as_bytes()[last..p]));
                last = p;
            }
            streamed.extend(stream.finish());
            prop_assert_eq!(String::from_utf8_lossy(&streamed), out.as_str());
        }

        #[test]
        fn equals_naive_for_disjoint_secrets(words in proptest::collection::vec("(abc|[x-z]{1,3}|qq-secret|TOKVAL9| )", 0..40)) {
            let r = redactor(&[("A_KEY", "qq-secret"), ("B_TOKEN", "TOKVAL9")]);
            let text = words.concat();
            prop_assert_eq!(r.redact(&text).into_owned(), naive(&r, &text));
        }
    }
}
