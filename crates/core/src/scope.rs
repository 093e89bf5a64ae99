//! Path patterns and scopes.
//!
//! A task declares what it `modifies` and `reads` as repo-relative globs. Two questions are
//! asked of them again and again — by the planner (conflict edges), the lock manager (claims)
//! and the boundary gate (did a change stay in bounds) — so they live here, once:
//!
//! * `Pattern::matches(path)`: does a concrete repo-relative path fall under the pattern?
//!   `*` and `?` stay inside one path component, `**` spans any number of components,
//!   `[abc]`/`[a-z]`/`[!x]` are character classes. A trailing `/` means "the directory and
//!   everything below it" (`src/a/` is `src/a/**`), the form the playbooks write.
//! * `Pattern::overlaps(other)`: could the two patterns ever name the same path? The test is
//!   deliberately conservative and cheap: take each pattern's *literal prefix* (the path
//!   components before the first one holding a glob meta-character) and report an overlap when
//!   one prefix is a path-component prefix of the other. It may report an overlap that a full
//!   glob intersection would not; it never misses one. Because it only looks at prefixes, an
//!   index keyed by path components (a trie) answers it without comparing every pair.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern was empty (or only `/`).
    #[error("empty path pattern")]
    Empty,
    /// A component was `..`.
    #[error("path pattern `{0}` climbs out of the repository with `..`")]
    ParentDir(String),
    /// A drive letter, `~` or a backslash path: not repo-relative.
    #[error("path pattern `{0}` is not repo-relative (use a path inside the repository; a leading `/` means the repository root)")]
    NotRelative(String),
    /// A `[` without its closing `]`.
    #[error("path pattern `{0}` has an unclosed `[` character class")]
    UnclosedClass(String),
    /// A NUL or other control character.
    #[error("path pattern `{0}` contains a control character")]
    Control(String),
}

/// A normalised, repo-relative path pattern.
///
/// Normalisation: a leading `/` (the repository root) is dropped, `.` components and repeated
/// slashes are removed, and a trailing `/` becomes `/**`. The original spelling is kept for
/// messages.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern {
    norm: String,
    /// Number of leading components that hold no glob meta-character.
    literal_len: usize,
}

fn is_meta(c: char) -> bool {
    matches!(c, '*' | '?' | '[')
}

impl Pattern {
    /// Parses and normalises a pattern.
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        if raw.chars().any(char::is_control) {
            return Err(PatternError::Control(raw.escape_debug().to_string()));
        }
        if raw.starts_with('~') || raw.contains('\\') || raw.as_bytes().get(1) == Some(&b':') {
            return Err(PatternError::NotRelative(raw.to_owned()));
        }
        let dir = raw.ends_with('/');
        let mut comps: Vec<&str> = Vec::new();
        for comp in raw.split('/') {
            match comp {
                "" | "." => {}
                ".." => return Err(PatternError::ParentDir(raw.to_owned())),
                c => comps.push(c),
            }
        }
        if comps.is_empty() {
            // `/` alone or `/**`-free root: only allowed as an explicit whole-repo glob.
            return Err(PatternError::Empty);
        }
        if dir && comps.last() != Some(&"**") {
            comps.push("**");
        }
        for c in &comps {
            let mut in_class = false;
            for ch in c.chars() {
                match ch {
                    '[' if !in_class => in_class = true,
                    ']' if in_class => in_class = false,
                    _ => {}
                }
            }
            if in_class {
                return Err(PatternError::UnclosedClass(raw.to_owned()));
            }
        }
        let literal_len = comps.iter().take_while(|c| !c.chars().any(is_meta)).count();
        Ok(Self { norm: comps.join("/"), literal_len })
    }

    /// The normalised pattern text.
    pub fn as_str(&self) -> &str {
        &self.norm
    }

    /// The path components before the first glob meta-character (possibly none).
    pub fn literal_components(&self) -> impl Iterator<Item = &str> + '_ {
        self.norm.split('/').take(self.literal_len)
    }

    /// The literal prefix as a path (`""` when the pattern starts with a glob).
    pub fn literal_prefix(&self) -> &str {
        if self.literal_len == 0 {
            return "";
        }
        let mut end = 0;
        for (i, comp) in self.norm.split('/').take(self.literal_len).enumerate() {
            end += comp.len() + usize::from(i > 0);
        }
        &self.norm[..end]
    }

    /// True when the pattern holds no glob meta-character: it names exactly one path.
    pub fn is_literal(&self) -> bool {
        self.literal_len == self.norm.split('/').count()
    }

    /// Does the repo-relative `path` fall under this pattern? A literal pattern also matches
    /// everything below it (naming a directory claims its contents).
    pub fn matches(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let pcomps: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        // A path that climbs with `..` could land anywhere, in the repository or out of it.
        if pcomps.contains(&"..") {
            return false;
        }
        let gcomps: Vec<&str> = self.norm.split('/').collect();
        if self.is_literal() {
            return pcomps.len() >= gcomps.len() && pcomps[..gcomps.len()] == gcomps[..];
        }
        match_components(&gcomps, &pcomps)
    }

    /// Could the two patterns name a common path? See the module docs for the rule.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        let a = self.literal_components();
        let b = other.literal_components();
        a.zip(b).all(|(x, y)| x == y)
    }
}

fn match_components(glob: &[&str], path: &[&str]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| match_components(rest, &path[skip..])),
        Some((g, rest)) => match path.split_first() {
            Some((p, prest)) => match_component(g.as_bytes(), p.as_bytes()) && match_components(rest, prest),
            None => false,
        },
    }
}

/// Matches one path component against one glob component (`*`, `?`, `[...]`), byte-wise
/// with UTF-8 awareness for `?` and classes.
fn match_component(glob: &[u8], name: &[u8]) -> bool {
    let glob = String::from_utf8_lossy(glob);
    let name = String::from_utf8_lossy(name);
    let g: Vec<char> = glob.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative wildcard matching with one backtrack point (the last `*`).
    let (mut gi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() {
            match g[gi] {
                '*' => {
                    star = Some((gi, ni));
                    gi += 1;
                    continue;
                }
                '?' => {
                    gi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, next)) = match_class(&g, gi, n[ni])
                        && ok
                    {
                        gi = next;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    gi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sg, sn)) => {
                gi = sg + 1;
                ni = sn + 1;
                star = Some((sg, sn + 1));
            }
            None => return false,
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class starting at `g[start] == '['`; returns (matched, index after `]`).
fn match_class(g: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(g.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < g.len() {
        if g[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if g.get(i + 1) == Some(&'-') && g.get(i + 2).is_some_and(|e| *e != ']') {
            if g[i] <= c && c <= g[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if g[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.norm)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.norm)
    }
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.norm)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Pattern::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "PathPattern".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "pattern": "^[^\\\\~]",
            "description": "A repo-relative path or glob (`*`, `?`, `**`, `[a-z]`). A leading `/` means the repository root; a trailing `/` means the directory and everything below it. `..` is not allowed."
        })
    }
}

/// A set of patterns: what one task may modify, or read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Scope(pub Vec<Pattern>);

impl Scope {
    /// Does any pattern match `path`?
    pub fn matches(&self, path: &str) -> bool {
        self.0.iter().any(|p| p.matches(path))
    }

    /// Every pair `(mine, theirs)` of overlapping patterns.
    pub fn overlapping<'a>(&'a self, other: &'a Scope) -> impl Iterator<Item = (&'a Pattern, &'a Pattern)> + 'a {
        self.0.iter().flat_map(move |a| other.0.iter().filter(move |b| a.overlaps(b)).map(move |b| (a, b)))
    }

    /// Could the two scopes name a common path?
    pub fn overlaps(&self, other: &Scope) -> bool {
        self.overlapping(other).next().is_some()
    }

    /// The patterns.
    pub fn patterns(&self) -> &[Pattern] {
        &self.0
    }

    /// True when the scope holds no pattern.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Pattern> for Scope {
    fn from_iter<I: IntoIterator<Item = Pattern>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).expect("valid pattern")
    }

    #[test]
    fn normalises_leading_and_trailing_slashes() {
        assert_eq!(p("/src/features/x/").as_str(), "src/features/x/**");
        assert_eq!(p("./a//b").as_str(), "a/b");
        assert_eq!(p("src/**").as_str(), "src/**");
        assert_eq!(p("src/a/**").literal_prefix(), "src/a");
        assert_eq!(p("**/*.rs").literal_prefix(), "");
        assert!(p("Cargo.toml").is_literal());
    }

    #[test]
    fn rejects_bad_patterns() {
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert_eq!(Pattern::parse("/"), Err(PatternError::Empty));
        assert!(matches!(Pattern::parse("a/../b"), Err(PatternError::ParentDir(_))));
        assert!(matches!(Pattern::parse("~/x"), Err(PatternError::NotRelative(_))));
        assert!(matches!(Pattern::parse("C:/x"), Err(PatternError::NotRelative(_))));
        assert!(matches!(Pattern::parse("a\\b"), Err(PatternError::NotRelative(_))));
        assert!(matches!(Pattern::parse("src/[ab"), Err(PatternError::UnclosedClass(_))));
        assert!(matches!(Pattern::parse("a\0b"), Err(PatternError::Control(_))));
    }

    #[test]
    fn matching() {
        assert!(p("src/a/**").matches("src/a/b/c.rs"));
        assert!(p("src/a/**").matches("src/a"));
        assert!(!p("src/a/**").matches("src/ab/c.rs"));
        assert!(p("src/*.rs").matches("src/lib.rs"));
        assert!(!p("src/*.rs").matches("src/a/lib.rs"));
        assert!(p("**/*.rs").matches("a/b/c.rs"));
        assert!(p("**/*.rs").matches("c.rs"));
        assert!(p("src/?.rs").matches("src/a.rs"));
        assert!(p("src/[a-c].rs").matches("src/b.rs"));
        assert!(!p("src/[!a-c].rs").matches("src/b.rs"));
        assert!(p("src/a").matches("src/a/deep/file"));
        assert!(p("Cargo.toml").matches("Cargo.toml"));
        assert!(!p("Cargo.toml").matches("Cargo.lock"));
        assert!(p("a*b*c").matches("axxbyyc"));
        assert!(!p("a*b*c").matches("axxbyy"));
    }

    #[test]
    fn overlap_is_prefix_based() {
        assert!(p("src/a/**").overlaps(&p("src/a/b.rs")));
        assert!(p("src/a/b.rs").overlaps(&p("src/a/**")));
        assert!(!p("src/a/**").overlaps(&p("src/ab/**")));
        assert!(!p("src/a.rs").overlaps(&p("src/b.rs")));
        assert!(p("**/*.rs").overlaps(&p("docs/x.md")));
        assert!(p("src/*.rs").overlaps(&p("src/deep/x.md")));
    }

    proptest::proptest! {
        /// Conservativeness: whenever one concrete path matches both patterns, they overlap.
        #[test]
        fn overlap_never_misses(a in "[ab*]{1,2}(/[ab*]{1,2}){0,2}(/\\*\\*)?", b in "[ab*]{1,2}(/[ab*]{1,2}){0,2}(/\\*\\*)?", path in "[ab]{1,2}(/[ab]{1,2}){0,3}") {
            let (pa, pb) = (p(&a), p(&b));
            if pa.matches(&path) && pb.matches(&path) {
                proptest::prop_assert!(pa.overlaps(&pb), "{a} and {b} both match {path}");
            }
        }
    }
}
