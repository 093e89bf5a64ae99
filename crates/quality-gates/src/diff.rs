//! The little of a unified diff the docs rule needs: per file, its path and its added lines
//! with their new line numbers.

/// One file of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileDiff {
    /// The new path (the old one for a deletion).
    pub(crate) path: String,
    /// The file was deleted.
    pub(crate) deleted: bool,
    /// Added lines: (1-based line in the new file, text without the `+`).
    pub(crate) added: Vec<(u32, String)>,
}

fn strip_side(raw: &str) -> Option<String> {
    let raw = raw.trim_end_matches('\t').trim();
    let unquoted = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
    if unquoted == "/dev/null" {
        return None;
    }
    let path = unquoted.strip_prefix("a/").or_else(|| unquoted.strip_prefix("b/")).unwrap_or(unquoted);
    Some(path.to_owned())
}

/// The new-file start line of a hunk header `@@ -a,b +c,d @@`.
fn hunk_start(line: &str) -> Option<u32> {
    let plus = line.split_whitespace().find(|w| w.starts_with('+'))?;
    plus[1..].split(',').next()?.parse().ok()
}

/// Parses `diff` (as `git diff` prints it); tolerant of anything it does not know.
pub(crate) fn parse(diff: &str) -> Vec<FileDiff> {
    let mut files: Vec<FileDiff> = Vec::new();
    let mut old_path: Option<String> = None;
    let mut next_line: Option<u32> = None;
    for line in diff.lines() {
        if line.starts_with("diff --git ") {
            next_line = None;
            old_path = None;
            continue;
        }
        if next_line.is_none() {
            if let Some(rest) = line.strip_prefix("--- ") {
                old_path = strip_side(rest);
            } else if let Some(rest) = line.strip_prefix("+++ ") {
                let (path, deleted) = match strip_side(rest) {
                    Some(p) => (p, false),
                    None => (old_path.clone().unwrap_or_default(), true),
                };
                files.push(FileDiff { path, deleted, added: Vec::new() });
            } else if line.starts_with("@@") {
                next_line = hunk_start(line);
            }
            continue;
        }
        let Some(n) = next_line else { continue };
        match line.as_bytes().first() {
            Some(b'+') => {
                if let Some(f) = files.last_mut() {
                    f.added.push((n, line[1..].to_owned()));
                }
                next_line = Some(n + 1);
            }
            Some(b' ') | None => next_line = Some(n + 1),
            Some(b'-' | b'\\') => {}
            Some(b'@') => next_line = hunk_start(line),
            // `--- a/…` of the next file after a diff without `diff --git` lines.
            _ => next_line = None,
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_lines_with_numbers() {
        let diff = "diff --git a/src/lib.rs b/src/lib.rs\nindex 1..2 100644\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,4 @@\n fn a() {}\n-fn b() {}\n+/// Doc.\n+pub fn c() {}\n \n@@ -10,0 +12,1 @@\n+pub struct S;\n\
                    diff --git a/old.py b/old.py\ndeleted file mode 100644\n--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n";
        let files = parse(diff);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "src/lib.rs");
        assert_eq!(files[0].added, vec![(2, "/// Doc.".to_owned()), (3, "pub fn c() {}".to_owned()), (12, "pub struct S;".to_owned())]);
        assert_eq!((files[1].path.as_str(), files[1].deleted, files[1].added.len()), ("old.py", true, 0));
    }

    #[test]
    fn garbage_is_harmless() {
        assert!(parse("+++\n@@ nonsense\n+x").iter().all(|f| f.added.is_empty()));
        assert!(parse("").is_empty());
    }
}
