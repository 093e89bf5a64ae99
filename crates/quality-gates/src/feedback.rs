//! Turning gate reports into text: the `{feedback}` an agent gets for its next iteration, and
//! one-line summaries for logs.
//!
//! Feedback lists every finding of every gate that did not pass — gate, verdict and figures,
//! then one line per finding with severity, `file:line` and message — because the agent can
//! only fix what it is told. Passing gates are left out: their low-severity notes would bury
//! what must change.

use std::fmt::Write as _;

use fugue_core::{Finding, GateReport, GateVerdict, QaVerdict};

fn verdict_word(v: GateVerdict) -> &'static str {
    match v {
        GateVerdict::Pass => "pass",
        GateVerdict::Fail => "fail",
        GateVerdict::Blocked => "blocked",
    }
}

fn severity_word(f: &Finding) -> String {
    serde_json::to_value(f.severity).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The figures of a report: score, counts, coverage, duration.
fn figures(r: &GateReport) -> String {
    let mut parts = Vec::new();
    if let Some(s) = r.score {
        parts.push(format!("score {s}/10"));
    }
    if let Some(c) = r.counts {
        parts.push(format!("{} passed, {} failed, {} skipped", c.passed, c.failed, c.skipped));
    }
    if let Some(c) = r.coverage {
        parts.push(format!("coverage {c:.1}%"));
    }
    if parts.is_empty() { String::new() } else { format!(" ({})", parts.join("; ")) }
}

/// One finding as a list item: `- [severity] file:line: message`.
pub fn format_finding(f: &Finding) -> String {
    let location = match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{file}:{line}: "),
        (Some(file), None) => format!("{file}: "),
        _ => String::new(),
    };
    format!("- [{}] {location}{}", severity_word(f), f.message)
}

/// The feedback for an agent whose work QA rejected: every finding of every gate that did not
/// pass. `head_commit` (the judged commit) is named when given.
pub fn format_feedback(reports: &[GateReport], head_commit: Option<&str>) -> String {
    let mut out = String::from("QA rejected this work");
    if let Some(head) = head_commit {
        let short: String = head.chars().take(12).collect();
        let _ = write!(out, " (commit {short})");
    }
    out.push_str(". It was checked in a fresh checkout of the task branch, so only committed files count; untracked and ignored files are not there. Fix every finding below, then finish again.\n");
    for r in reports.iter().filter(|r| !r.passed()) {
        let _ = write!(out, "\n## {}: {}{}\n", r.gate, verdict_word(r.verdict), figures(r));
        if r.findings.is_empty() {
            out.push_str("- (no details were given)\n");
        }
        for f in &r.findings {
            out.push_str(&format_finding(f));
            out.push('\n');
        }
    }
    out
}

/// A one-line summary of a QA round for logs and status files.
pub fn summarize(verdict: QaVerdict, reports: &[GateReport]) -> String {
    let list = |filter: GateVerdict| reports.iter().filter(|r| r.verdict == filter).map(|r| r.gate.as_str()).collect::<Vec<_>>().join(", ");
    match verdict {
        QaVerdict::TaskApproved => format!("TASK_APPROVED: {} gate(s) passed", reports.len()),
        QaVerdict::TaskRejected => {
            let findings: usize = reports.iter().filter(|r| r.verdict == GateVerdict::Fail).map(|r| r.findings.len()).sum();
            format!("TASK_REJECTED: {} failed with {findings} finding(s)", list(GateVerdict::Fail))
        }
        QaVerdict::QaBlocked => {
            let why: Vec<String> = reports
                .iter()
                .filter(|r| r.verdict == GateVerdict::Blocked)
                .filter_map(|r| r.findings.first().map(|f| format!("{}: {}", r.gate, f.message.lines().next().unwrap_or(""))))
                .collect();
            format!("QA_BLOCKED: {}", why.join("; "))
        }
    }
}

/// The QA verdict of a set of gate reports: blocked when any gate is blocked (the environment
/// must be fixed first, and judging the rest would burn an iteration), rejected when any
/// failed, approved otherwise.
pub fn qa_verdict(reports: &[GateReport]) -> QaVerdict {
    if reports.iter().any(|r| r.verdict == GateVerdict::Blocked) {
        QaVerdict::QaBlocked
    } else if reports.iter().any(|r| r.verdict == GateVerdict::Fail) {
        QaVerdict::TaskRejected
    } else {
        QaVerdict::TaskApproved
    }
}

#[cfg(test)]
mod tests {
    use fugue_core::{Severity, TestCounts};

    use super::*;

    fn finding(severity: Severity, file: Option<&str>, line: Option<u32>, message: &str) -> Finding {
        Finding { severity, file: file.map(str::to_owned), line, message: message.to_owned() }
    }

    #[test]
    fn feedback_lists_failing_gates_only() {
        let mut review =
            GateReport::fail("review", vec![finding(Severity::Medium, Some("src/lib.rs"), Some(3), "`unwrap` in non-test code")]);
        review.score = Some(5.5);
        let mut tests = GateReport::fail("tests", vec![finding(Severity::High, None, None, "command `cargo test` exited with code 101")]);
        tests.counts = Some(TestCounts { passed: 3, failed: 1, skipped: 0 });
        tests.coverage = Some(60.0);
        let mut docs = GateReport::pass("docs");
        docs.findings.push(finding(Severity::Low, Some("x"), None, "a passing note"));
        let text = format_feedback(&[review, tests, docs], Some("0123456789abcdef0123"));
        assert!(text.starts_with("QA rejected this work (commit 0123456789ab)."), "{text}");
        assert!(text.contains("## review: fail (score 5.5/10)\n- [medium] src/lib.rs:3: `unwrap` in non-test code\n"), "{text}");
        assert!(text.contains("## tests: fail (3 passed, 1 failed, 0 skipped; coverage 60.0%)\n- [high] command `cargo test`"), "{text}");
        assert!(!text.contains("docs") && !text.contains("passing note"), "{text}");
    }

    #[test]
    fn verdicts_and_summaries() {
        let pass = GateReport::pass("a");
        let fail = GateReport::fail("b", vec![finding(Severity::High, None, None, "m")]);
        let blocked =
            GateReport { verdict: GateVerdict::Blocked, ..GateReport::fail("c", vec![finding(Severity::High, None, None, "no git")]) };
        assert_eq!(qa_verdict(std::slice::from_ref(&pass)), QaVerdict::TaskApproved);
        assert_eq!(qa_verdict(&[pass.clone(), fail.clone()]), QaVerdict::TaskRejected);
        assert_eq!(qa_verdict(&[fail.clone(), blocked.clone()]), QaVerdict::QaBlocked);
        assert_eq!(summarize(QaVerdict::TaskApproved, std::slice::from_ref(&pass)), "TASK_APPROVED: 1 gate(s) passed");
        assert_eq!(summarize(QaVerdict::TaskRejected, &[pass, fail.clone()]), "TASK_REJECTED: b failed with 1 finding(s)");
        assert_eq!(summarize(QaVerdict::QaBlocked, &[fail, blocked]), "QA_BLOCKED: c: no git");
    }
}
