//! Scope patterns cannot name anything outside the repository, through the public API only:
//! `..` and non-repo-relative spellings are refused when a plan is read, and a leading `/`
//! means the repository root, never the filesystem's.

use fugue_core::{Pattern, PatternError, Scope};

fn parse(raw: &str) -> Result<Pattern, PatternError> {
    Pattern::parse(raw)
}

#[test]
fn parent_components_are_refused_wherever_they_are() {
    for raw in ["..", "../x", "../../etc/passwd", "src/../../x", "src/..", "a/b/../c", "./../x", "src//../x", "**/../x", "src/../"] {
        assert!(matches!(parse(raw), Err(PatternError::ParentDir(_))), "{raw} was accepted");
    }
    // `..` as part of a name is a name.
    for raw in ["a..b", "..foo", "src/...", "x/..rc"] {
        assert!(parse(raw).is_ok(), "{raw} was refused");
    }
}

#[test]
fn non_repo_relative_spellings_are_refused() {
    for raw in ["~/x", "~root/.ssh", "C:/x", "c:\\x", "a\\..\\b", "\\\\server\\share"] {
        assert!(matches!(parse(raw), Err(PatternError::NotRelative(_))), "{raw} was accepted");
    }
    for raw in ["src/\0/x", "a\nb", "tab\there"] {
        assert!(matches!(parse(raw), Err(PatternError::Control(_))), "{raw:?} was accepted");
    }
}

#[test]
fn a_leading_slash_is_the_repository_root() {
    let p = parse("/etc/passwd").expect("repo-rooted");
    assert_eq!(p.as_str(), "etc/passwd");
    assert!(p.matches("etc/passwd"));
    assert!(!p.matches("src/etc/passwd"));
    let all = parse("/**").expect("everything in the repo");
    assert!(all.matches("src/main.rs"));
    assert!(matches!(parse("/"), Err(PatternError::Empty)));
    assert!(matches!(parse("//./"), Err(PatternError::Empty)));
}

#[test]
fn plans_cannot_smuggle_escaping_patterns_through_deserialisation() {
    for raw in ["../x", "~/x", "a\\b"] {
        let parsed: Result<Scope, _> = serde_json::from_value(serde_json::json!(["src/**", raw]));
        assert!(parsed.is_err(), "{raw} was accepted as part of a scope");
    }
}

#[test]
fn globs_do_not_cross_into_dot_dot_at_match_time_for_git_paths() {
    // Paths as git prints them never hold `..`; a wildcard matches names, including dotfiles.
    let scope: Scope = serde_json::from_value(serde_json::json!(["src/**", "docs/*.md"])).expect("scope");
    assert!(scope.matches("src/a/b.rs"));
    assert!(scope.matches("src/.hidden"));
    assert!(!scope.matches("docs/a/b.md"));
    assert!(!scope.matches("srcx/a.rs"));
    assert!(!scope.matches(".git/config"));
}

/// A path *given to* `matches` that climbs out with `..` is never in scope: `src/**` must not
/// match `src/../../etc/passwd`, nor a literal `src` match `src/../x`. Git never produces such
/// paths, but callers that match user-supplied paths would be exposed.
#[test]
fn paths_climbing_out_never_match() {
    let glob = parse("src/**").expect("glob");
    let literal = parse("src").expect("literal");
    for path in ["src/../../etc/passwd", "src/../x", "src/a/../../.."] {
        assert!(!glob.matches(path), "`src/**` matches {path}");
        assert!(!literal.matches(path), "`src` matches {path}");
    }
}
