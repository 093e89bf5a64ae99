//! Argv templates: `{prompt}`, `{task_id}`, `{worktree}`, `{feedback}` and `{prompt_file}`
//! replaced inside each word of a command agent's argv.
//!
//! Expansion is a single left-to-right pass, so a value that itself contains `{task_id}` (a
//! prompt quoting a template, say) is inserted verbatim and never expanded again. Braces that do
//! not form a known placeholder stay as written, which keeps JSON or shell snippets in argv
//! intact. Words are built as `OsString`s because worktree paths need not be UTF-8; no shell
//! ever sees them, so quotes, `$(…)`, backticks and `;` in a prompt arrive literally.

use std::ffi::{OsStr, OsString};

/// The names a template may use.
pub(crate) const PLACEHOLDERS: [&str; 5] = ["prompt", "task_id", "worktree", "feedback", "prompt_file"];

/// Expands the known placeholders of `word`; `lookup` gives a placeholder's value.
pub(crate) fn expand<'a>(word: &str, lookup: impl Fn(&str) -> Option<&'a OsStr>) -> OsString {
    let mut out = OsString::with_capacity(word.len());
    let mut rest = word;
    while let Some(open) = rest.find('{') {
        out.push(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| lookup(&after[..close]).map(|v| (v, close)));
        match value {
            Some((v, close)) => {
                out.push(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push("{");
                rest = after;
            }
        }
    }
    out.push(rest);
    out
}

/// Names written like placeholders (`{word}` of lowercase letters and `_`) that are not
/// known placeholders: most likely typos such as `{promt}`.
pub(crate) fn unknown_placeholders(word: &str) -> Vec<&str> {
    let mut unknown = Vec::new();
    let mut rest = word;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find('}') {
            let name = &rest[..close];
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && !PLACEHOLDERS.contains(&name) {
                unknown.push(name);
            }
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<&'static OsStr> {
        match name {
            "prompt" => Some(OsStr::new("say {task_id} $(rm -rf /); `x` \"q\" 'p'")),
            "task_id" => Some(OsStr::new("t1")),
            "worktree" => Some(OsStr::new("/w t")),
            _ => None,
        }
    }

    #[test]
    fn replaces_known_placeholders_once() {
        assert_eq!(expand("{prompt}", vars), OsStr::new("say {task_id} $(rm -rf /); `x` \"q\" 'p'"));
        assert_eq!(expand("--id={task_id}/{worktree}", vars), OsStr::new("--id=t1//w t"));
        assert_eq!(expand("{unknown} {\"json\": 1} {", vars), OsStr::new("{unknown} {\"json\": 1} {"));
        assert_eq!(expand("{{task_id}}", vars), OsStr::new("{t1}"));
        assert_eq!(expand("", vars), OsStr::new(""));
    }

    #[test]
    fn flags_likely_typos() {
        assert_eq!(unknown_placeholders("{promt} {task_id} {\"a\": 1} {X} {}"), ["promt"]);
        assert!(unknown_placeholders("--message={prompt}").is_empty());
    }

    proptest::proptest! {
        /// Words without a known placeholder come back unchanged, whatever braces they hold.
        #[test]
        fn words_without_placeholders_are_untouched(word in "[a-z{} ]{0,24}") {
            let known = PLACEHOLDERS.iter().any(|p| word.contains(&format!("{{{p}}}")));
            proptest::prop_assume!(!known);
            proptest::prop_assert_eq!(expand(&word, vars), OsString::from(&word));
        }
    }
}
