//! Each gate on its own, with real commands and real report files.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fugue_core::{
    AgentSpec, CommandLine, DocsGateSpec, ExecError, Executor, GateContext, GateReport, GateVerdict, ProcessOutcome, ProcessSpec,
    QualityGate, ReviewGateSpec, Severity, TestCounts, TestsGateSpec, async_trait,
};
use fugue_quality_gates::{BoundaryGate, DocsGate, GateSettings, ReviewGate, Reviewer, TestsGate, run_gates};
use serde_json::json;

use crate::common::{added_file, context, scope, write};

fn settings() -> Arc<GateSettings> {
    Arc::new(GateSettings::default().with_grace(Duration::from_millis(100)))
}

fn commands(list: &[&str]) -> Vec<CommandLine> {
    list.iter().map(|c| CommandLine::parse(c).expect("command")).collect()
}

fn tests_spec(cmds: &[&str], coverage: Option<serde_json::Value>) -> TestsGateSpec {
    let mut v = json!({ "commands": cmds });
    if let Some(c) = coverage {
        v["coverage"] = c;
    }
    serde_json::from_value(v).expect("tests spec")
}

async fn run_tests_gate(dir: &std::path::Path, spec: &TestsGateSpec, verify: &[&str], settings: Arc<GateSettings>) -> GateReport {
    let gate = TestsGate::new(Some(spec), &commands(verify), settings).expect("something to run");
    gate.check(&context(dir, "", &[], &["**"])).await.expect("report")
}

fn messages(r: &GateReport) -> String {
    r.findings.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn tests_gate_passes_and_counts_cargo_pytest_and_nextest_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = tests_spec(
        &[
            "sh -c 'echo \"test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out\"'",
            "sh -c 'echo \"===== 2 passed, 1 skipped in 0.05s =====\"'",
        ],
        None,
    );
    let report =
        run_tests_gate(dir.path(), &spec, &["sh -c 'echo \"     Summary [   0.010s] 4 tests run: 4 passed, 0 skipped\" >&2'"], settings())
            .await;
    assert_eq!(report.verdict, GateVerdict::Pass, "{report:?}");
    assert_eq!(report.counts, Some(TestCounts { passed: 9, failed: 0, skipped: 2 }));
    assert!(report.findings.is_empty());
    assert_eq!(report.gate, "tests");
}

#[tokio::test]
async fn tests_gate_fails_on_a_failing_command_and_quotes_its_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = tests_spec(
        &["sh -c 'echo assertion left == right failed; echo \"test result: FAILED. 1 passed; 1 failed; 0 ignored\"; exit 101'", "true"],
        None,
    );
    let report = run_tests_gate(dir.path(), &spec, &[], settings()).await;
    assert_eq!(report.verdict, GateVerdict::Fail);
    assert_eq!(report.counts, Some(TestCounts { passed: 1, failed: 1, skipped: 0 }));
    assert_eq!(report.findings.len(), 1, "{report:?}");
    let m = &report.findings[0].message;
    assert!(m.contains("exited with code 101"), "{m}");
    assert!(m.contains("    assertion left == right failed"), "{m}");
    assert_eq!(report.findings[0].severity, Severity::High);
}

#[tokio::test]
async fn tests_gate_runs_in_the_checkout_with_fugue_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "data/input.txt", "42\n");
    let spec = tests_spec(
        &["sh -c 'test \"$(cat data/input.txt)\" = 42 && test \"$FUGUE_TASK_ID\" = t1 && test \"$FUGUE_HEAD_COMMIT\" = head'"],
        None,
    );
    let report = run_tests_gate(dir.path(), &spec, &[], settings()).await;
    assert_eq!(report.verdict, GateVerdict::Pass, "{report:?}");
}

#[tokio::test]
async fn a_program_that_does_not_exist_blocks_the_gate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = tests_spec(&["fugue-no-such-test-runner --all", "sh -c 'touch ran-after'"], None);
    let report = run_tests_gate(dir.path(), &spec, &[], settings()).await;
    assert_eq!(report.verdict, GateVerdict::Blocked);
    assert!(messages(&report).contains("program `fugue-no-such-test-runner` was not found"), "{}", messages(&report));
    assert!(!dir.path().join("ran-after").exists(), "commands after a blocked one do not run");
}

#[tokio::test]
async fn a_hanging_command_times_out_with_its_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = tests_spec(&["sh -c 'sleep 60 & echo $! > bg.pid; wait'"], None);
    let s = Arc::new(GateSettings::default().with_command_timeout(Duration::from_millis(300)).with_grace(Duration::from_millis(100)));
    let report = run_tests_gate(dir.path(), &spec, &[], s).await;
    assert_eq!(report.verdict, GateVerdict::Fail);
    assert!(messages(&report).contains("timed out after 300ms and was stopped"), "{}", messages(&report));
    let pid = std::fs::read_to_string(dir.path().join("bg.pid")).expect("pid").trim().to_owned();
    // The background sleep was in the command's group: gone or a zombie awaiting its reaper.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    let alive = state.as_deref().and_then(|s| s.rsplit(')').next()).map(|rest| rest.split_whitespace().next() != Some("Z"));
    assert_ne!(alive, Some(true), "background process {pid} survived: {state:?}");
}

#[tokio::test]
async fn huge_output_is_capped_but_still_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = tests_spec(
        &[
            "sh -c 'i=0; while [ $i -lt 3000 ]; do echo \"noise line $i padding padding padding\"; i=$((i+1)); done; echo \"test result: ok. 7 passed; 0 failed; 0 ignored\"; i=0; while [ $i -lt 3000 ]; do echo \"more noise $i\"; i=$((i+1)); done; exit 1'",
        ],
        None,
    );
    let s = Arc::new(GateSettings::default().with_output_cap(4096).with_grace(Duration::from_millis(100)));
    let report = run_tests_gate(dir.path(), &spec, &[], s).await;
    assert_eq!(report.counts, Some(TestCounts { passed: 7, failed: 0, skipped: 0 }));
    let m = messages(&report);
    assert!(m.contains("more noise 2999"), "the tail is quoted");
    assert!(m.len() < 6000, "finding is bounded: {} bytes", m.len());
}

#[tokio::test]
async fn coverage_from_lcov_cobertura_and_llvm_cov_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lcov = tests_spec(
        &["sh -c 'printf \"TN:\\nSF:src/a.rs\\nDA:1,1\\nLF:20\\nLH:18\\nend_of_record\\n\" > lcov.info'"],
        Some(json!({"report": "lcov.info", "format": "lcov"})),
    );
    let report = run_tests_gate(dir.path(), &lcov, &[], settings()).await;
    assert_eq!((report.verdict, report.coverage), (GateVerdict::Pass, Some(90.0)), "{report:?}");

    let cobertura = tests_spec(
        &[
            "sh -c 'mkdir -p cov && echo \"<?xml version=\\\"1.0\\\"?><coverage line-rate=\\\"0.6\\\" branch-rate=\\\"0\\\"><packages/></coverage>\" > cov/coverage.xml'",
        ],
        Some(json!({"report": "cov/coverage.xml", "format": "cobertura"})),
    );
    let report = run_tests_gate(dir.path(), &cobertura, &[], settings()).await;
    assert_eq!((report.verdict, report.coverage), (GateVerdict::Fail, Some(60.0)), "{report:?}");
    assert!(messages(&report).contains("line coverage is 60.0%, below the minimum of 85%"), "{}", messages(&report));

    write(
        dir.path(),
        "gen.sh",
        "echo '{\"data\":[{\"totals\":{\"lines\":{\"count\":50,\"covered\":40,\"percent\":80.0}}}]}' > llvm.json\n",
    );
    let llvm = tests_spec(&["sh gen.sh"], Some(json!({"report": "llvm.json", "format": "llvm-cov-json", "min": 75})));
    let report = run_tests_gate(dir.path(), &llvm, &[], settings()).await;
    assert_eq!((report.verdict, report.coverage), (GateVerdict::Pass, Some(80.0)), "{report:?}");
}

#[tokio::test]
async fn a_missing_coverage_report_fails_naming_the_file_and_an_unreadable_one_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = tests_spec(&["true"], Some(json!({"report": "target/lcov.info", "format": "lcov"})));
    let report = run_tests_gate(dir.path(), &spec, &[], settings()).await;
    assert_eq!(report.verdict, GateVerdict::Fail);
    let expected = dir.path().join("target/lcov.info");
    assert!(
        messages(&report).contains(&format!(
            "the coverage report `target/lcov.info` (lcov) was not written by the test commands: expected it at {}",
            expected.display()
        )),
        "{}",
        messages(&report)
    );
    assert_eq!(report.findings[0].file.as_deref(), Some("target/lcov.info"));

    std::fs::create_dir_all(&expected).expect("a directory where the report should be");
    let report = run_tests_gate(dir.path(), &spec, &[], settings()).await;
    assert_eq!(report.verdict, GateVerdict::Blocked, "{report:?}");
    assert!(messages(&report).contains("cannot be read"), "{}", messages(&report));
}

#[tokio::test]
async fn coverage_is_not_judged_when_tests_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = tests_spec(&["false"], Some(json!({"report": "lcov.info", "format": "lcov"})));
    let report = run_tests_gate(dir.path(), &spec, &[], settings()).await;
    assert_eq!(report.verdict, GateVerdict::Fail);
    assert_eq!(report.findings.len(), 1, "only the failing command, not the missing report: {report:?}");
}

/// An executor that runs nothing: it records every spec and answers by program name.
#[derive(Debug, Default)]
struct Recording {
    specs: Mutex<Vec<ProcessSpec>>,
}

impl Recording {
    fn specs(&self) -> Vec<ProcessSpec> {
        self.specs.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn clear(&self) {
        self.specs.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

#[async_trait]
impl Executor for Recording {
    fn name(&self) -> &str {
        "recording"
    }

    async fn run(&self, spec: ProcessSpec) -> Result<ProcessOutcome, ExecError> {
        self.specs.lock().unwrap_or_else(PoisonError::into_inner).push(spec.clone());
        match spec.program() {
            Some("missing") => Err(ExecError::Spawn {
                program: "missing".to_owned(),
                cwd: spec.cwd.clone(),
                kind: std::io::ErrorKind::NotFound,
                message: "No such file or directory (os error 2)".to_owned(),
            }),
            Some("hang") => Ok(ProcessOutcome::timed_out().with_output("waiting…\n", 0)),
            Some("crash") => Ok(ProcessOutcome::killed_by(11).with_output("core dumped\n", 0)),
            Some("model-cli") => Ok(ProcessOutcome::exited(0).with_output("{\"score\": 9, \"findings\": []}\n", 0)),
            _ => Ok(ProcessOutcome::exited(0).with_output("test result: ok. 2 passed; 0 failed; 1 ignored\n", 0)),
        }
    }
}

fn recording_settings(executor: &Arc<Recording>) -> GateSettings {
    GateSettings::default()
        .with_command_timeout(Duration::from_secs(42))
        .with_grace(Duration::from_millis(250))
        .with_output_cap(1000)
        .with_env("EXTRA", "1")
        .with_executor(Arc::clone(executor) as Arc<dyn Executor>)
}

#[tokio::test]
async fn the_tests_gate_hands_its_commands_to_the_executor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let executor = Arc::new(Recording::default());
    let spec = tests_spec(&["cargo test --workspace", "sh -c 'touch ran'"], None);
    let report = run_tests_gate(dir.path(), &spec, &["pytest -q 'tests/unit tests'"], Arc::new(recording_settings(&executor))).await;
    assert_eq!(report.verdict, GateVerdict::Pass, "{report:?}");
    assert_eq!(report.counts, Some(TestCounts { passed: 6, failed: 0, skipped: 3 }), "counts come from the executor's output");
    assert!(!dir.path().join("ran").exists(), "the executor, not the gate, decides how commands run");

    let specs = executor.specs();
    let argvs: Vec<Vec<&str>> = specs.iter().map(|s| s.argv.iter().map(String::as_str).collect()).collect();
    assert_eq!(argvs, [vec!["cargo", "test", "--workspace"], vec!["sh", "-c", "touch ran"], vec!["pytest", "-q", "tests/unit tests"]]);
    for spec in &specs {
        assert_eq!(spec.cwd, dir.path(), "commands run in the checkout");
        assert_eq!(spec.timeout, Some(Duration::from_secs(42)));
        assert_eq!((spec.grace, spec.output_cap, spec.stdin.as_deref()), (Duration::from_millis(250), 1000, None));
        assert_eq!(spec.label, "t1");
        let env = |k: &str| spec.env.get(k).map(String::as_str);
        assert_eq!((env("FUGUE_TASK_ID"), env("FUGUE_HEAD_COMMIT"), env("EXTRA")), (Some("t1"), Some("head"), Some("1")));
        assert_eq!(env("FUGUE_CHECKOUT"), dir.path().to_str());
    }
}

#[tokio::test]
async fn executor_outcomes_and_errors_become_verdicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let executor = Arc::new(Recording::default());
    let settings = Arc::new(recording_settings(&executor));

    let report = run_tests_gate(dir.path(), &tests_spec(&["hang --forever", "crash", "true"], None), &[], Arc::clone(&settings)).await;
    assert_eq!(report.verdict, GateVerdict::Fail, "{report:?}");
    let m = messages(&report);
    assert!(m.contains("command `hang --forever` timed out after 42s and was stopped:\n    waiting…"), "{m}");
    assert!(m.contains("command `crash` was killed by signal 11"), "{m}");
    assert_eq!(report.findings.len(), 2, "{m}");
    assert_eq!(executor.specs().len(), 3, "a failing command does not stop the list");

    executor.clear();
    let report = run_tests_gate(dir.path(), &tests_spec(&["missing --all", "true"], None), &[], settings).await;
    assert_eq!(report.verdict, GateVerdict::Blocked, "{report:?}");
    assert!(
        messages(&report)
            .contains("command `missing --all` could not be started: program `missing` was not found: install it or put it on PATH"),
        "{}",
        messages(&report)
    );
    assert_eq!(executor.specs().len(), 1, "a command that cannot start stops the list");
}

#[tokio::test]
async fn a_plan_command_reviewer_runs_through_the_settings_executor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let executor = Arc::new(Recording::default());
    let settings = recording_settings(&executor);
    let agents: BTreeMap<String, AgentSpec> =
        serde_json::from_value(json!({"model": {"command": ["model-cli", "-p", "{prompt}"]}})).expect("agents");
    let spec = ReviewGateSpec { agent: Some("model".to_owned()), ..ReviewGateSpec::default() };
    let reviewer = Reviewer::from_plan(&spec, &agents, dir.path(), &settings).expect("reviewer");
    let gate = ReviewGate::new(spec, Arc::new(reviewer), Arc::new(settings));
    let report = gate.check(&context(dir.path(), &added_file("src/lib.rs", CLEAN), &["src/lib.rs"], &["src/**"])).await.expect("report");
    assert_eq!((report.verdict, report.score), (GateVerdict::Pass, Some(9.0)), "{report:?}");

    let specs = executor.specs();
    assert_eq!(specs.len(), 1);
    assert_eq!((specs[0].program(), specs[0].cwd.as_path(), specs[0].grace), (Some("model-cli"), dir.path(), Duration::from_millis(250)));
    assert!(specs[0].argv[2].contains("Review the change of task `t1`"), "{:?}", specs[0].argv);
    assert!(specs[0].env.contains_key("FUGUE_DIFF_FILE"));
}

const JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="pkg" tests="3" failures="1">
    <testcase classname="pkg.math" name="adds" time="0.01"/>
    <testcase classname="pkg.math" name="subtracts" time="0.01">
      <failure message="expected 1, got 2">assert 1 == 2</failure>
    </testcase>
    <testcase classname="pkg.math" name="later"><skipped/></testcase>
  </testsuite>
</testsuites>
"#;

#[tokio::test]
async fn junit_files_written_by_the_run_give_counts_and_failed_tests() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A stale report committed before the run does not count.
    write(dir.path(), "reports/old-junit.xml", &JUNIT.replace("subtracts", "stale"));
    write(dir.path(), "junit-src.xml.in", JUNIT);
    let spec = tests_spec(&["sh -c 'mkdir -p test-results && cp junit-src.xml.in test-results/junit.xml'"], None);
    let report = run_tests_gate(dir.path(), &spec, &[], settings()).await;
    assert_eq!(report.verdict, GateVerdict::Fail, "a failed case fails the gate even when the command exits 0");
    assert_eq!(report.counts, Some(TestCounts { passed: 1, failed: 1, skipped: 1 }));
    assert_eq!(messages(&report), "test `pkg.math::subtracts` failed: expected 1, got 2");

    let passing = JUNIT.replace(r#"<failure message="expected 1, got 2">assert 1 == 2</failure>"#, "");
    write(dir.path(), "junit-src.xml.in", &passing);
    let report = run_tests_gate(dir.path(), &spec, &[], settings()).await;
    assert_eq!(report.verdict, GateVerdict::Pass, "{report:?}");
    assert_eq!(report.counts, Some(TestCounts { passed: 2, failed: 0, skipped: 1 }));
}

#[tokio::test]
async fn docs_gate_runs_commands_and_requires_documented_public_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec: DocsGateSpec = serde_json::from_value(json!({"commands": ["sh -c 'echo building docs'"]})).expect("docs spec");
    let gate = DocsGate::new(&spec, settings());
    let undocumented = added_file("src/api.rs", "pub fn area(w: u32, h: u32) -> u32 {\n    w * h\n}\n");
    let report = gate.check(&context(dir.path(), &undocumented, &["src/api.rs"], &["**"])).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Fail);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(
        (report.findings[0].severity, report.findings[0].file.as_deref(), report.findings[0].line),
        (Severity::Medium, Some("src/api.rs"), Some(1))
    );
    assert!(report.findings[0].message.contains("new public API (`area`) without documentation"));

    let documented = added_file("src/api.rs", "/// The area of a w×h rectangle.\npub fn area(w: u32, h: u32) -> u32 {\n    w * h\n}\n");
    let report = gate.check(&context(dir.path(), &documented, &["src/api.rs"], &["**"])).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Pass, "{report:?}");

    let failing: DocsGateSpec =
        serde_json::from_value(json!({"commands": ["sh -c 'echo warning: missing docs >&2; exit 1'"]})).expect("spec");
    let report = DocsGate::new(&failing, settings()).check(&context(dir.path(), &documented, &[], &["**"])).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Fail);
    assert!(messages(&report).contains("warning: missing docs"), "{}", messages(&report));
}

const DIRTY: &str = "pub fn parse(s: &str) -> u32 {\n    // TODO: handle errors\n    let a: u32 = s.parse().unwrap();\n    let b: u32 = s.trim().parse().unwrap();\n    let c: u32 = s.trim_end().parse().unwrap();\n    a + b + c\n}\n";
const CLEAN: &str = "/// Parses a number.\npub fn parse(s: &str) -> Result<u32, std::num::ParseIntError> {\n    s.parse()\n}\n";
const CLEAN_TEST: &str = "#[test]\nfn parses() {\n    assert_eq!(demo::parse(\"1\"), Ok(1));\n}\n";

fn review_gate(reviewer: Reviewer) -> ReviewGate {
    ReviewGate::new(ReviewGateSpec::default(), Arc::new(reviewer), settings())
}

#[tokio::test]
async fn heuristic_review_fails_unwraps_and_todos_and_passes_a_clean_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = review_gate(Reviewer::heuristic());
    let report = gate.check(&context(dir.path(), &added_file("src/lib.rs", DIRTY), &["src/lib.rs"], &["src/**"])).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Fail, "{report:?}");
    let score = report.score.expect("score");
    assert!(score < 7.0, "{score}");
    assert!(
        report.findings[0].message.starts_with(&format!("the review score {score}/10 is below the minimum of 7")),
        "{}",
        report.findings[0].message
    );
    let m = messages(&report);
    assert!(m.contains("`unwrap` in non-test code") && m.contains("new TODO"), "{m}");
    let unwrap = report.findings.iter().find(|f| f.message.contains("unwrap")).expect("unwrap finding");
    assert_eq!((unwrap.file.as_deref(), unwrap.line), (Some("src/lib.rs"), Some(3)));

    let clean = added_file("src/lib.rs", CLEAN) + &added_file("tests/parse.rs", CLEAN_TEST);
    let report = gate.check(&context(dir.path(), &clean, &["src/lib.rs", "tests/parse.rs"], &["src/**"])).await.expect("report");
    assert_eq!((report.verdict, report.score), (GateVerdict::Pass, Some(10.0)), "{report:?}");
}

#[tokio::test]
async fn blocking_severities_fail_whatever_the_score() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strict = ReviewGateSpec { min_score: 0, block_on: vec![Severity::Low], ..ReviewGateSpec::default() };
    let gate = ReviewGate::new(strict, Arc::new(Reviewer::heuristic()), settings());
    let diff = added_file("notes/todo.txt", "TODO: later\n");
    let report = gate.check(&context(dir.path(), &diff, &[], &["**"])).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Fail);
    assert!(
        report.findings[0].message.starts_with("1 finding(s) of a blocking severity fail the review"),
        "{}",
        report.findings[0].message
    );
}

fn command_reviewer(script: &str) -> Reviewer {
    let spec = serde_json::from_value(json!({"command": ["sh", "-c", script]})).expect("command spec");
    Reviewer::from_agent("model", Arc::new(fugue_agents::CommandAgent::new("model", spec)), json!({}), None)
}

#[tokio::test]
async fn a_command_reviewer_prints_its_report_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let diff = added_file("src/lib.rs", CLEAN);
    // The reviewer reads the diff from FUGUE_DIFF_FILE and talks before printing its report.
    let script = r#"grep -q 'pub fn parse' "$FUGUE_DIFF_FILE" || exit 3; echo 'reviewing…' >&2; printf '{"score": 8.5, "findings": [{"severity": "low", "file": "src/lib.rs", "line": 2, "message": "name it better"}]}\n'"#;
    let report =
        review_gate(command_reviewer(script)).check(&context(dir.path(), &diff, &["src/lib.rs"], &["src/**"])).await.expect("report");
    assert_eq!((report.verdict, report.score), (GateVerdict::Pass, Some(8.5)), "{report:?}");
    assert_eq!(report.findings[0].message, "name it better");

    let harsh = r#"echo '{"score": 4, "findings": [{"severity": "high", "message": "wrong algorithm"}], "summary": "no"}'"#;
    let report = review_gate(command_reviewer(harsh)).check(&context(dir.path(), &diff, &[], &["**"])).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Fail);
}

#[tokio::test]
async fn a_broken_reviewer_blocks_the_gate_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let diff = added_file("src/lib.rs", CLEAN);
    let cases = [
        (r#"echo '{"score": 11, "findings": [{"severity": "bad", "message": "x"}]}'"#, "does not match review-report.schema.json"),
        ("echo 'looks good to me'", "printed no JSON review report"),
        ("echo crashed >&2; exit 2", "exited with code 2"),
    ];
    for (script, expected) in cases {
        let report = review_gate(command_reviewer(script)).check(&context(dir.path(), &diff, &[], &["**"])).await.expect("report");
        assert_eq!(report.verdict, GateVerdict::Blocked, "{script}: {report:?}");
        assert!(messages(&report).contains(expected), "{script}: {}", messages(&report));
    }
    let missing = Reviewer::from_agent(
        "ghost",
        Arc::new(fugue_agents::CommandAgent::new(
            "ghost",
            serde_json::from_value(json!({"command": ["fugue-no-such-reviewer"]})).expect("spec"),
        )),
        json!({}),
        None,
    );
    let report = review_gate(missing).check(&context(dir.path(), &diff, &[], &["**"])).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Blocked);
    assert!(messages(&report).contains("fugue-no-such-reviewer"), "{}", messages(&report));
}

#[tokio::test]
async fn the_heuristic_plugin_also_reviews_as_an_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = fugue_agents::InProcess::new(fugue_quality_gates::heuristic::HeuristicReview).named("heuristic-agent");
    let reviewer = Reviewer::from_agent("heuristic-agent", Arc::new(agent), json!({"diff": added_file("src/lib.rs", DIRTY)}), None);
    let report = review_gate(reviewer).check(&context(dir.path(), "", &[], &["**"])).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Fail, "{report:?}");
    assert!(messages(&report).contains("`unwrap` in non-test code"));
}

#[tokio::test]
async fn boundary_gate_lists_every_violation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ctx = context(dir.path(), "", &["src/a/ok.rs", "src/b/no.rs", "common/shared.rs"], &["src/a/**", "common/**"]);
    ctx.common = scope(&["common/**"]);
    let report = BoundaryGate::new(true).check(&ctx).await.expect("report");
    assert_eq!(report.verdict, GateVerdict::Fail);
    let files: Vec<_> = report.findings.iter().filter_map(|f| f.file.as_deref()).collect();
    assert_eq!(files, ["src/b/no.rs", "common/shared.rs"]);
    assert_eq!(BoundaryGate::new(false).check(&ctx).await.expect("report").findings.len(), 1);
}

/// A gate that waits until `n` gates are running at once: it can only finish if the gates
/// really run concurrently.
#[derive(Debug)]
struct Rendezvous(&'static str, Arc<tokio::sync::Barrier>);

#[async_trait]
impl QualityGate for Rendezvous {
    fn name(&self) -> &str {
        self.0
    }
    async fn check(&self, _ctx: &GateContext) -> Result<GateReport, fugue_core::GateError> {
        self.1.wait().await;
        Ok(GateReport::pass(self.0))
    }
}

#[derive(Debug)]
struct Broken;

#[async_trait]
impl QualityGate for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    async fn check(&self, _ctx: &GateContext) -> Result<GateReport, fugue_core::GateError> {
        Err(fugue_core::GateError::Environment { gate: "broken".to_owned(), message: "the service is down".to_owned() })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_run_concurrently_and_keep_their_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let gates: Vec<Arc<dyn QualityGate>> = vec![
        Arc::new(Rendezvous("first", Arc::clone(&barrier))),
        Arc::new(Broken),
        Arc::new(Rendezvous("second", Arc::clone(&barrier))),
        Arc::new(Rendezvous("third", barrier)),
    ];
    let reports = tokio::time::timeout(Duration::from_secs(30), run_gates(&gates, &context(dir.path(), "", &[], &["**"])))
        .await
        .expect("no deadlock");
    let names: Vec<_> = reports.iter().map(|r| r.gate.as_str()).collect();
    assert_eq!(names, ["first", "broken", "second", "third"]);
    assert_eq!(reports[1].verdict, GateVerdict::Blocked);
    assert!(reports[1].findings[0].message.contains("the service is down"));
}
