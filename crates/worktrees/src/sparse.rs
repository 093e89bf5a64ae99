//! Sparse checkout patterns from task scopes (`pool.sparse: scope`).
//!
//! A sparse worktree holds only what the task declared: its `modifies`, its `reads` and the
//! plan's common paths, plus the files at the repository root (manifests such as `Cargo.toml`
//! or `package.json` that every build needs). Scope patterns are repo-relative globs; sparse
//! checkout in non-cone mode takes gitignore-style patterns, so each pattern is anchored with a
//! leading `/` — `src/a/**` becomes `/src/a/**`, and a literal path such as `src/a` matches the
//! file or the whole directory, just as a literal scope pattern claims a directory's contents.

use fugue_core::{Pattern, Scope};

/// The root files of the repository, not its directories (cone mode's base set).
const ROOT_FILES: [&str; 2] = ["/*", "!/*/"];

/// The sparse-checkout patterns for a set of scopes, deduplicated, root files first.
pub(crate) fn patterns<'a>(scopes: impl IntoIterator<Item = &'a Scope>) -> Vec<String> {
    let mut out: Vec<String> = ROOT_FILES.iter().map(|s| (*s).to_owned()).collect();
    for scope in scopes {
        for p in scope.patterns() {
            let line = anchored(p);
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out
}

/// One scope pattern as an anchored gitignore pattern.
fn anchored(p: &Pattern) -> String {
    let mut s = String::with_capacity(p.as_str().len() + 1);
    s.push('/');
    s.push_str(p.as_str());
    // gitignore strips unescaped trailing spaces, and `!`/`#` are special only at the start,
    // which is now `/`; a backslash is never in a parsed pattern, so escaping is safe.
    let trailing = s.len() - s.trim_end_matches(' ').len();
    if trailing > 0 {
        s.truncate(s.len() - trailing);
        for _ in 0..trailing {
            s.push_str("\\ ");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(ps: &[&str]) -> Scope {
        ps.iter().map(|p| Pattern::parse(p).expect("pattern")).collect()
    }

    #[test]
    fn anchors_and_dedups() {
        let m = scope(&["/src/features/x/", "api/*.rs"]);
        let r = scope(&["common/types/**", "src/features/x/**"]);
        let c = scope(&["Cargo.toml"]);
        assert_eq!(patterns([&m, &r, &c]), ["/*", "!/*/", "/src/features/x/**", "/api/*.rs", "/common/types/**", "/Cargo.toml"]);
        assert_eq!(anchored(&Pattern::parse("a b ").expect("pattern")), "/a b\\ ");
    }

    proptest::proptest! {
        /// Every line is anchored (or the root exclusion) and none is duplicated.
        #[test]
        fn lines_are_anchored_and_unique(ps in proptest::collection::vec("[a-c*]{1,3}(/[a-c*]{1,3}){0,2}/?", 0..8)) {
            let s: Scope = ps.iter().filter_map(|p| Pattern::parse(p).ok()).collect();
            let lines = patterns([&s, &s]);
            for l in &lines {
                proptest::prop_assert!(l.starts_with('/') || l == "!/*/");
            }
            let mut sorted = lines.clone();
            sorted.sort();
            sorted.dedup();
            proptest::prop_assert_eq!(sorted.len(), lines.len());
        }
    }
}
