//! What a task asks to lock, and the plan rules that shape the request.
//!
//! A task hands the manager a [`ClaimSet`]: the patterns it writes and the patterns it reads
//! (normally its `modifies` and `reads`). The manager resolves it against the [`LockPolicy`]
//! taken from the plan's `boundaries` before anything is checked:
//!
//! * every serial class whose scope overlaps one of the written patterns is added as an
//!   exclusive [`Resource::Serial`] claim — "package.json modifications run serially", so two
//!   tasks that modify different files of one class still never run at once;
//! * while a parallel phase runs, a written pattern that overlaps a `common` pattern is refused
//!   outright (common code is read-only then; waiting would not help).
//!
//! Identical resources are claimed once, a write absorbing a read of the same pattern, so a
//! grant lists each resource once.

use std::collections::BTreeMap;
use std::fmt;

use fugue_core::state::LockMode;
use fugue_core::{Boundaries, Pattern, Scope, TaskSpec};

/// A lockable thing: a path pattern, or a serial resource class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// A repo-relative path or glob.
    Path(Pattern),
    /// A serial resource class of the plan (`boundaries.serial`), held exclusively.
    Serial(String),
}

impl Resource {
    /// Parses a `locked_paths` entry of `RESOURCE_LOCKS.json` (`serial:<class>` or a pattern).
    pub(crate) fn parse_locked_path(s: &str) -> Result<Self, fugue_core::PatternError> {
        match s.strip_prefix(SERIAL_PREFIX) {
            Some(class) if !class.is_empty() => Ok(Resource::Serial(class.to_owned())),
            _ => Pattern::parse(s).map(Resource::Path),
        }
    }
}

/// How a serial class is spelled in `locked_paths`.
pub(crate) const SERIAL_PREFIX: &str = "serial:";

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Path(p) => write!(f, "{p}"),
            Resource::Serial(class) => write!(f, "{SERIAL_PREFIX}{class}"),
        }
    }
}

/// One resolved claim: a resource and a mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Claim {
    /// What is claimed.
    pub resource: Resource,
    /// Read (shared) or write (exclusive).
    pub mode: LockMode,
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            LockMode::Read => "read",
            LockMode::Write => "write",
        };
        write!(f, "{mode} {}", self.resource)
    }
}

/// What one owner asks to lock: written and read patterns, granted all at once or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimSet {
    writes: Vec<Pattern>,
    reads: Vec<Pattern>,
}

impl ClaimSet {
    /// An empty claim set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a written pattern.
    #[must_use]
    pub fn write(mut self, pattern: Pattern) -> Self {
        self.writes.push(pattern);
        self
    }

    /// Adds a read pattern.
    #[must_use]
    pub fn read(mut self, pattern: Pattern) -> Self {
        self.reads.push(pattern);
        self
    }

    /// Writes `modifies`, reads `reads`.
    pub fn from_scopes(modifies: &Scope, reads: &Scope) -> Self {
        Self { writes: modifies.patterns().to_vec(), reads: reads.patterns().to_vec() }
    }

    /// A task's claims: it writes what it `modifies` and reads what it `reads`.
    pub fn for_task(task: &TaskSpec) -> Self {
        Self::from_scopes(&task.modifies, &task.reads)
    }

    /// The written patterns.
    pub fn writes(&self) -> &[Pattern] {
        &self.writes
    }

    /// The read patterns.
    pub fn reads(&self) -> &[Pattern] {
        &self.reads
    }

    /// True when nothing is claimed.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.reads.is_empty()
    }
}

/// The plan's lock rules: read-only `common` paths during parallel phases, serial classes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockPolicy {
    /// Read-only while a parallel phase runs.
    pub common: Scope,
    /// Serial resource classes: class name → the paths that belong to it.
    pub serial: BTreeMap<String, Scope>,
}

impl LockPolicy {
    /// The rules of a plan's `boundaries`.
    pub fn from_boundaries(boundaries: &Boundaries) -> Self {
        Self { common: boundaries.common.clone(), serial: boundaries.serial.clone() }
    }

    /// The serial classes a written pattern belongs to.
    pub(crate) fn classes_of<'a>(&'a self, written: &'a Pattern) -> impl Iterator<Item = &'a str> + 'a {
        self.serial.iter().filter(|(_, scope)| scope.patterns().iter().any(|p| p.overlaps(written))).map(|(name, _)| name.as_str())
    }

    /// The first `common` pattern a written pattern overlaps.
    pub(crate) fn common_overlap(&self, written: &Pattern) -> Option<&Pattern> {
        self.common.patterns().iter().find(|c| c.overlaps(written))
    }

    /// Resolves a claim set: deduplicated path claims plus the serial classes of the writes.
    pub(crate) fn resolve(&self, claims: &ClaimSet) -> Vec<Claim> {
        let mut out: Vec<Claim> = Vec::with_capacity(claims.writes.len() + claims.reads.len());
        for p in &claims.writes {
            out.push(Claim { resource: Resource::Path(p.clone()), mode: LockMode::Write });
            for class in self.classes_of(p) {
                out.push(Claim { resource: Resource::Serial(class.to_owned()), mode: LockMode::Write });
            }
        }
        out.extend(claims.reads.iter().map(|p| Claim { resource: Resource::Path(p.clone()), mode: LockMode::Read }));
        // Sorted by resource, writes first, then one claim per resource: the write wins.
        out.sort_unstable_by(|a, b| a.resource.cmp(&b.resource).then(b.mode.cmp(&a.mode)));
        out.dedup_by(|later, kept| later.resource == kept.resource);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).expect("valid pattern")
    }

    fn policy() -> LockPolicy {
        LockPolicy {
            common: Scope(vec![p("common/**")]),
            serial: BTreeMap::from([
                ("manifests".to_owned(), Scope(vec![p("Cargo.toml"), p("package.json")])),
                ("migrations".to_owned(), Scope(vec![p("migrations/**")])),
            ]),
        }
    }

    #[test]
    fn resolve_adds_serial_classes_of_writes_only() {
        let claims = ClaimSet::new().write(p("package.json")).read(p("migrations/001.sql")).read(p("src/**"));
        let resolved: Vec<String> = policy().resolve(&claims).iter().map(ToString::to_string).collect();
        assert_eq!(resolved, ["read migrations/001.sql", "write package.json", "read src/**", "write serial:manifests"]);
    }

    #[test]
    fn resolve_dedups_and_write_absorbs_read() {
        let claims = ClaimSet::new().read(p("a/b")).write(p("a/b")).write(p("/a/b")).read(p("c"));
        let resolved: Vec<String> = LockPolicy::default().resolve(&claims).iter().map(ToString::to_string).collect();
        assert_eq!(resolved, ["write a/b", "read c"]);
    }

    #[test]
    fn locked_path_round_trip() {
        for s in ["serial:manifests", "src/a/**", "Cargo.toml"] {
            let r = Resource::parse_locked_path(s).expect("parses");
            assert_eq!(r.to_string(), s);
        }
        assert!(matches!(Resource::parse_locked_path("serial:"), Ok(Resource::Path(_))));
        assert!(Resource::parse_locked_path("../x").is_err());
    }

    #[test]
    fn common_overlap_names_the_common_pattern() {
        let pol = policy();
        assert_eq!(pol.common_overlap(&p("common/types/x.rs")).map(Pattern::as_str), Some("common/**"));
        assert_eq!(pol.common_overlap(&p("**/*.rs")).map(Pattern::as_str), Some("common/**"));
        assert!(pol.common_overlap(&p("src/x.rs")).is_none());
    }
}
