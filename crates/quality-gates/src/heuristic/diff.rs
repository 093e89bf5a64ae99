//! A small unified-diff reader: files, hunks and lines with their new-file line numbers.
//!
//! It reads what `git diff` prints. Hunk bodies are read by the counts in their `@@` header,
//! so a removed line that starts with `--` is never mistaken for a file header; `\ No newline
//! at end of file` is attached to the line before it. Anything it does not understand is
//! skipped: a reviewer must not fail on an odd diff.

/// What a diff line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Added,
    Removed,
    Context,
}

/// One line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) kind: Kind,
    /// The line's number in the new file (for a removed line: where it was).
    pub(crate) number: u32,
    pub(crate) text: String,
}

/// One hunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Hunk {
    /// The text after the second `@@` (git's function context).
    pub(crate) context: String,
    pub(crate) lines: Vec<Line>,
}

/// One file of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileDiff {
    /// The new path (the old one for a deleted file).
    pub(crate) path: String,
    pub(crate) deleted: bool,
    /// The file is new: its one hunk is the whole file.
    pub(crate) created: bool,
    pub(crate) hunks: Vec<Hunk>,
    /// The new file's last line, when the diff says it has no trailing newline.
    pub(crate) no_newline_at: Option<u32>,
}

impl FileDiff {
    /// Lines added, with their numbers.
    pub(crate) fn added(&self) -> impl Iterator<Item = &Line> {
        self.hunks.iter().flat_map(|h| h.lines.iter()).filter(|l| l.kind == Kind::Added)
    }
}

fn strip_prefix_path(raw: &str) -> String {
    let raw = raw.trim_end();
    let unquoted = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
    let path = unquoted.strip_prefix("b/").or_else(|| unquoted.strip_prefix("a/")).unwrap_or(unquoted);
    path.split('\t').next().unwrap_or(path).to_owned()
}

fn parse_range(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.splitn(2, ',');
    let start = parts.next()?.parse().ok()?;
    let count = parts.next().map_or(Some(1), |c| c.parse().ok())?;
    Some((start, count))
}

/// `@@ -a,b +c,d @@ context` → (old count, new start, new count, context).
fn parse_hunk_header(line: &str) -> Option<(u32, u32, u32, String)> {
    let rest = line.strip_prefix("@@ -")?;
    let (old, rest) = rest.split_once(" +")?;
    let (new, rest) = rest.split_once(" @@")?;
    let (_, old_count) = parse_range(old)?;
    let (new_start, new_count) = parse_range(new)?;
    Some((old_count, new_start, new_count, rest.trim().to_owned()))
}

/// Reads a unified diff.
pub(crate) fn parse(diff: &str) -> Vec<FileDiff> {
    let mut files: Vec<FileDiff> = Vec::new();
    let mut lines = diff.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            let path = rest.rsplit_once(" b/").map_or_else(|| rest.to_owned(), |(_, b)| b.to_owned());
            files.push(FileDiff { path, ..FileDiff::default() });
        } else if let Some(rest) = line.strip_prefix("--- ") {
            if files.is_empty() || files.last().is_some_and(|f| !f.hunks.is_empty()) {
                // A plain `diff -u` without `diff --git` lines.
                files.push(FileDiff { path: strip_prefix_path(rest), ..FileDiff::default() });
            }
            if let Some(file) = files.last_mut() {
                file.created = rest.trim_end() == "/dev/null";
            }
        } else if let Some(rest) = line.strip_prefix("+++ ") {
            let Some(file) = files.last_mut() else { continue };
            if rest.trim_end() == "/dev/null" {
                file.deleted = true;
            } else {
                file.path = strip_prefix_path(rest);
            }
        } else if let Some((mut old_left, new_start, mut new_left, context)) = parse_hunk_header(line) {
            let Some(file) = files.last_mut() else { continue };
            let mut hunk = Hunk { context, lines: Vec::new() };
            let mut number = new_start;
            while old_left > 0 || new_left > 0 {
                let Some(body) = lines.next() else { break };
                let (kind, text) = match body.as_bytes().first() {
                    Some(b'+') => (Kind::Added, &body[1..]),
                    Some(b'-') => (Kind::Removed, &body[1..]),
                    Some(b' ') => (Kind::Context, &body[1..]),
                    None => (Kind::Context, ""),
                    Some(b'\\') => {
                        mark_no_newline(file, &hunk);
                        continue;
                    }
                    Some(_) => break,
                };
                match kind {
                    Kind::Added => new_left = new_left.saturating_sub(1),
                    Kind::Removed => old_left = old_left.saturating_sub(1),
                    Kind::Context => {
                        old_left = old_left.saturating_sub(1);
                        new_left = new_left.saturating_sub(1);
                    }
                }
                hunk.lines.push(Line { kind, number, text: text.to_owned() });
                if kind != Kind::Removed {
                    number += 1;
                }
            }
            if lines.peek().is_some_and(|l| l.starts_with('\\')) {
                lines.next();
                mark_no_newline(file, &hunk);
            }
            file.hunks.push(hunk);
        }
    }
    files
}

fn mark_no_newline(file: &mut FileDiff, hunk: &Hunk) {
    if let Some(last) = hunk.lines.last() {
        if last.kind == Kind::Added {
            file.no_newline_at = Some(last.number);
        } else if last.kind == Kind::Context {
            // Both sides lack it: not this change's doing.
            file.no_newline_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "\
diff --git a/src/lib.rs b/src/lib.rs
index 1..2 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,4 @@ mod x
 fn a() {}
--- not a header
+fn b() {}
+fn c() {}
 fn d() {}
diff --git a/gone.rs b/gone.rs
deleted file mode 100644
--- a/gone.rs
+++ /dev/null
@@ -1 +0,0 @@
-x
diff --git a/new.txt b/new.txt
new file mode 100644
--- /dev/null
+++ b/new.txt
@@ -0,0 +1,2 @@
+one
+two
\\ No newline at end of file
";

    #[test]
    fn reads_files_hunks_and_numbers() {
        let files = parse(DIFF);
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].path, "src/lib.rs");
        assert_eq!(files[0].hunks[0].context, "mod x");
        let added: Vec<(u32, &str)> = files[0].added().map(|l| (l.number, l.text.as_str())).collect();
        assert_eq!(added, [(2, "fn b() {}"), (3, "fn c() {}")]);
        assert_eq!(files[0].hunks[0].lines[1], Line { kind: Kind::Removed, number: 2, text: "-- not a header".to_owned() });
        assert!(files[1].deleted);
        assert!(files[2].created && !files[0].created);
        assert_eq!(files[2].path, "new.txt");
        assert_eq!(files[2].no_newline_at, Some(2));
        assert_eq!(files[0].no_newline_at, None);
    }

    #[test]
    fn survives_garbage() {
        assert!(parse("").is_empty());
        assert!(parse("@@ -1 +1 @@\n+x\n").is_empty());
        let odd = parse("diff --git a/x b/x\n@@ -1,2 +1,2 @@\n+only one\n");
        assert_eq!(odd[0].added().count(), 1);
    }
}
