//! The tests gate: the plan's test commands and the task's `verify` commands, test counts,
//! JUnit results and line coverage.
//!
//! Data flow: the commands run in the checkout ([`run_commands`]); their output is scanned for
//! runner summaries; then JUnit XML files *written during the run* (modification time after
//! the gate started, so reports committed to the repository or left by an earlier run do not
//! count) are looked for in the usual places — the checkout's top three levels (skipping
//! `.git`, `node_modules` and `target`) and `target/nextest/<profile>/`. Counts come from the
//! output when a runner printed a summary, else from JUnit; every failed JUnit case becomes a
//! finding naming the test. Coverage is read last, and only when every command passed: a
//! missing report after failing tests is noise. Verdicts:
//!
//! * blocked — a command could not be started, or the coverage report is unreadable;
//! * fail — a command exited non-zero or timed out, a test is reported failed, the coverage
//!   report is missing (the finding names the expected file) or unparsable, or coverage is
//!   below `min`;
//! * pass — otherwise.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use fugue_core::{
    CommandLine, CoverageSpec, Finding, GateContext, GateError, GateReport, GateVerdict, QualityGate, Severity, TestsGateSpec, async_trait,
};

use crate::commands::run_commands;
use crate::counts::{Junit, parse_junit};
use crate::coverage::{CoverageError, read_coverage};
use crate::elapsed_ms;
use crate::settings::GateSettings;

/// The gate's name in reports.
pub const TESTS_GATE: &str = "tests";

/// Largest JUnit file read, and most files read.
const JUNIT_MAX_BYTES: u64 = 16 * 1024 * 1024;
const JUNIT_MAX_FILES: usize = 64;

/// The tests gate of one task.
#[derive(Debug, Clone)]
pub struct TestsGate {
    commands: Vec<CommandLine>,
    coverage: Option<CoverageSpec>,
    settings: Arc<GateSettings>,
}

impl TestsGate {
    /// The gate for the plan's `gates.tests` and a task's `verify`; `None` when there is
    /// nothing to run or measure.
    pub fn new(spec: Option<&TestsGateSpec>, verify: &[CommandLine], settings: Arc<GateSettings>) -> Option<Self> {
        let mut commands: Vec<CommandLine> = spec.map(|s| s.commands.clone()).unwrap_or_default();
        commands.extend(verify.iter().cloned());
        let coverage = spec.and_then(|s| s.coverage.clone());
        if commands.is_empty() && coverage.is_none() {
            return None;
        }
        Some(Self { commands, coverage, settings })
    }

    /// The commands it runs, in order.
    pub fn commands(&self) -> &[CommandLine] {
        &self.commands
    }
}

#[async_trait]
impl QualityGate for TestsGate {
    fn name(&self) -> &str {
        TESTS_GATE
    }

    async fn check(&self, ctx: &GateContext) -> Result<GateReport, GateError> {
        let started = Instant::now();
        let wall_start = SystemTime::now();
        let run = run_commands(&self.commands, ctx, &self.settings).await;
        let mut findings = run.findings;
        let mut blocked = run.blocked;
        let mut failed = !run.all_passed || !findings.is_empty();

        let junit = collect_junit(&ctx.checkout, wall_start);
        let mut counts = run.counts;
        if let Some(j) = &junit {
            counts = counts.or(Some(j.counts));
            for case in j.failures.iter().take(50) {
                failed = true;
                findings.push(Finding {
                    severity: Severity::High,
                    file: None,
                    line: None,
                    message: format!("test `{}` failed: {}", case.name, case.message.lines().take(20).collect::<Vec<_>>().join("\n")),
                });
            }
        }

        let mut coverage = None;
        if let Some(spec) = self.coverage.as_ref().filter(|_| run.all_passed) {
            let path = ctx.checkout.join(&spec.report);
            let format = serde_json::to_value(spec.format).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            match read_coverage(&path, spec.format) {
                Ok(percent) => {
                    coverage = Some((percent * 100.0).round() / 100.0);
                    if percent < spec.min {
                        failed = true;
                        findings.push(Finding {
                            severity: Severity::High,
                            file: Some(spec.report.clone()),
                            line: None,
                            message: format!(
                                "line coverage is {percent:.1}%, below the minimum of {}%: add tests for the uncovered code",
                                spec.min
                            ),
                        });
                    }
                }
                Err(CoverageError::Missing(p)) => {
                    failed = true;
                    findings.push(Finding {
                        severity: Severity::High,
                        file: Some(spec.report.clone()),
                        line: None,
                        message: format!(
                            "the coverage report `{}` ({format}) was not written by the test commands: expected it at {}",
                            spec.report,
                            p.display()
                        ),
                    });
                }
                Err(CoverageError::Unreadable { path, message }) => {
                    blocked = true;
                    findings.push(Finding {
                        severity: Severity::High,
                        file: Some(spec.report.clone()),
                        line: None,
                        message: format!("the coverage report {} cannot be read: {message}", path.display()),
                    });
                }
                Err(CoverageError::Invalid { path, message }) => {
                    failed = true;
                    findings.push(Finding {
                        severity: Severity::High,
                        file: Some(spec.report.clone()),
                        line: None,
                        message: format!("the coverage report {} is not a usable {format} report: {message}", path.display()),
                    });
                }
            }
        }

        let verdict = if blocked {
            GateVerdict::Blocked
        } else if failed {
            GateVerdict::Fail
        } else {
            GateVerdict::Pass
        };
        Ok(GateReport { gate: TESTS_GATE.to_owned(), verdict, score: None, counts, coverage, findings, duration_ms: elapsed_ms(started) })
    }
}

fn is_junit_candidate(path: &Path, since: SystemTime) -> bool {
    if path.extension().and_then(|e| e.to_str()) != Some("xml") {
        return false;
    }
    let Ok(meta) = std::fs::metadata(path) else { return false };
    meta.is_file() && meta.len() <= JUNIT_MAX_BYTES && meta.modified().is_ok_and(|m| m >= since)
}

fn walk(dir: &Path, depth: usize, since: SystemTime, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if out.len() >= JUNIT_MAX_FILES {
            return;
        }
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if depth > 0 && !name.starts_with('.') && name != "node_modules" && name != "target" {
                walk(&path, depth - 1, since, out);
            }
        } else if kind.is_file() && is_junit_candidate(&path, since) {
            out.push(path);
        }
    }
}

/// JUnit files written since `since`, merged.
fn collect_junit(checkout: &Path, since: SystemTime) -> Option<Junit> {
    let mut files = Vec::new();
    walk(checkout, 3, since, &mut files);
    if let Ok(profiles) = std::fs::read_dir(checkout.join("target/nextest")) {
        for profile in profiles.flatten() {
            walk(&profile.path(), 0, since, &mut files);
        }
    }
    files.sort();
    files.dedup();
    let mut merged: Option<Junit> = None;
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let head: String = text.chars().take(4096).collect();
        if !head.contains("<testsuite") && !head.contains("<testcase") {
            continue;
        }
        let Some(j) = parse_junit(&text) else { continue };
        merged = Some(match merged {
            None => j,
            Some(mut m) => {
                m.counts.passed += j.counts.passed;
                m.counts.failed += j.counts.failed;
                m.counts.skipped += j.counts.skipped;
                m.failures.extend(j.failures);
                m
            }
        });
    }
    merged
}
