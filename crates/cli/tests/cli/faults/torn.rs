//! Torn writes: a run killed with SIGKILL while one agent works, then a journal whose last line
//! is cut short, a journal line in the middle replaced with garbage, or one state file
//! truncated or garbled before `fugue resume`. Acceptable outcomes: resume recovers (finishes
//! with every invariant), or it refuses with an error that names the file (and the line for
//! the journal) and, once the file is restored, resumes without loss. Anything else is a
//! silent loss.

use super::{Expect, Scenario, check_invariants, merges_of};

/// `a`, `b` quick; `slow` waits for `signals/release` after touching `signals/started`; `after`
/// in the next phase.
pub(crate) fn blocking_plan(signals: &std::path::Path) -> String {
    let s = signals.display();
    format!(
        r#"version: 1
base: main
parallelization: {{ max_agents: 3, min_tasks: 2, retry_on_failure: 1 }}
agents:
  quick: {{ command: ["sh", "-c", "mkdir -p src/$FUGUE_TASK_ID && echo \"$FUGUE_TASK_ID $$\" > src/$FUGUE_TASK_ID/out.txt"] }}
  slow: {{ command: ["sh", "-c", "touch {s}/started; while [ ! -e {s}/release ]; do sleep 0.02; done; mkdir -p src/slow && echo \"slow $$\" > src/slow/out.txt; touch {s}/finished"] }}
gates: {{ review: false }}
tasks:
  - {{ id: a, agent: quick, modifies: [src/a/**] }}
  - {{ id: slow, agent: slow, modifies: [src/slow/**] }}
  - {{ id: b, agent: quick, modifies: [src/b/**], depends_on: [a] }}
  - {{ id: after, phase: analysis, agent: quick, modifies: [src/after/**] }}
"#
    )
}

pub(crate) const BLOCKING_TASKS: [Expect<'static>; 4] = [
    Expect { id: "a", worktree: true, file: Some("src/a/out.txt") },
    Expect { id: "slow", worktree: true, file: Some("src/slow/out.txt") },
    Expect { id: "b", worktree: true, file: Some("src/b/out.txt") },
    Expect { id: "after", worktree: true, file: Some("src/after/out.txt") },
];

/// A run of [`blocking_plan`] killed (SIGKILL) while `slow` works and after `a` and `b` merged;
/// the orphaned `slow` agent is then let finish.
pub(crate) fn crashed_run() -> Scenario {
    let s = Scenario::new(blocking_plan);
    let mut child = s.spawn(&["run", "plan.yaml"]);
    s.wait_signal("started");
    super::wait_until("a and b merged", || merges_of(&s.repo, "a") == 1 && merges_of(&s.repo, "b") == 1);
    // Let the journal catch up with the merge of b.
    super::wait_until("b merged in the journal", || s.journal_lines().iter().any(|l| l.contains(r#""task":"b","status":"merged""#)));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    s.signal("release");
    s.wait_signal("finished");
    assert!(super::wait_quiet(s.root()).is_empty(), "orphans still running");
    s
}

fn assert_recovered(s: &Scenario, what: &str) {
    let out = s.fugue(&["resume"]);
    assert_eq!(out.code, 0, "{what}: resume failed: {}\n{}", out.stdout, out.stderr);
    let bad = check_invariants(s, &BLOCKING_TASKS);
    assert!(bad.is_empty(), "{what}: {bad:#?}");
}

#[test]
fn a_journal_whose_last_line_is_cut_short_resumes_without_loss() {
    let s = crashed_run();
    let text = std::fs::read(s.journal_path()).expect("journal");
    // Cut the last line in the middle (no newline): what a crash inside write(2) leaves.
    let body = &text[..text.len() - 1];
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let cut = start + (body.len() - start) / 2;
    std::fs::write(s.journal_path(), &text[..cut]).expect("tear");
    let before = s.journal_lines().len();
    assert_recovered(&s, "torn last line");
    assert!(s.journal_lines().len() > before, "resume appended");
}

#[test]
fn a_torn_run_finished_line_is_finished_again_without_a_second_merge() {
    let s = Scenario::new(blocking_plan);
    s.signal("release");
    let out = s.fugue(&["run", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let text = std::fs::read(s.journal_path()).expect("journal");
    let body = &text[..text.len() - 1];
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    assert!(String::from_utf8_lossy(&body[start..]).contains("run_finished"));
    std::fs::write(s.journal_path(), &text[..start + 10]).expect("tear");
    // The run now looks unfinished: resume must finish it, merging nothing again.
    assert_recovered(&s, "torn run_finished");
}

#[test]
fn a_garbled_line_in_the_middle_of_the_journal_is_named_and_nothing_is_touched() {
    let s = crashed_run();
    let path = s.journal_path();
    let original = std::fs::read_to_string(&path).expect("journal");
    let mut lines: Vec<&str> = original.lines().collect();
    let line = lines.len() / 2;
    lines[line - 1] = "{\"seq\": garbage";
    let garbled = format!("{}\n", lines.join("\n"));
    std::fs::write(&path, &garbled).expect("garble");
    let main_before = super::git(&s.repo, &["rev-parse", "main"]);
    let out = s.fugue(&["resume"]);
    assert_ne!(out.code, 0, "resume must refuse a corrupt journal: {}", out.stdout);
    assert!(
        out.stderr.contains("journal.ndjson") && out.stderr.contains(&format!("line {line}")),
        "names file and line {line}: {}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).expect("journal"), garbled, "the journal is left as it was");
    assert_eq!(super::git(&s.repo, &["rev-parse", "main"]), main_before, "nothing merged");
    // Restored from a backup, the run resumes without loss.
    std::fs::write(&path, original).expect("restore");
    assert_recovered(&s, "restored journal");
}

/// How a state file is damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut to half its length.
    Truncated,
    /// Replaced with bytes that are not JSON (nor UTF-8).
    Garbage,
    /// Emptied (a crash between create and write of a non-atomic writer).
    Empty,
}

/// Damages `files` (relative to the state dir) after a crash in each way of `damages`,
/// resumes, and judges the outcome.
fn damaged_state_files(files: &[&str], damages: &[Damage]) {
    let mut failures = Vec::new();
    for &damage in damages {
        let mut s = crashed_run();
        let mut originals = Vec::new();
        for file in files {
            let path = s.state().join(file);
            let original = std::fs::read(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
            let damaged: Vec<u8> = match damage {
                Damage::Truncated => original[..original.len() / 2].to_vec(),
                Damage::Garbage => b"\x00\xff{ not json \x80".to_vec(),
                Damage::Empty => Vec::new(),
            };
            std::fs::write(&path, &damaged).expect("damage");
            originals.push((path, original));
        }
        let main_before = super::git(&s.repo, &["rev-parse", "main"]);
        let out = s.fugue(&["resume"]);
        let named = files.iter().any(|f| out.stderr.contains(std::path::Path::new(f).file_name().and_then(|n| n.to_str()).unwrap_or(f)));
        let verdict = if out.code == 0 {
            let bad = check_invariants(&s, &BLOCKING_TASKS);
            if bad.is_empty() { Ok("recovered".to_owned()) } else { Err(format!("resume succeeded but: {bad:?}")) }
        } else if !named {
            Err(format!("resume exited {} without naming the damaged file: {}", out.code, out.stderr.trim()))
        } else if super::git(&s.repo, &["rev-parse", "main"]) != main_before {
            Err(format!("resume refused ({}) but moved main", out.stderr.trim()))
        } else {
            for (path, original) in &originals {
                std::fs::write(path, original).expect("restore");
            }
            let again = s.fugue(&["resume"]);
            let bad = check_invariants(&s, &BLOCKING_TASKS);
            if again.code == 0 && bad.is_empty() {
                Ok(format!("refused (exit {}: {}); resumed once restored", out.code, out.stderr.trim()))
            } else {
                Err(format!("refused ({}), then after restoring: exit {} {bad:?}", out.stderr.trim(), again.code))
            }
        };
        // Shown with `--nocapture`: what RELIABILITY.md records.
        if let Ok(how) = &verdict {
            super::note(&format!("torn {files:?} {damage:?}: {how}"));
        }
        if let Err(e) = verdict {
            let kept = s.keep();
            failures.push(format!("{files:?} {damage:?} (kept {}): {e}", kept.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn damaged_snapshots_are_rebuilt_from_the_journal() {
    damaged_state_files(
        &["PARALLEL_STATUS.json", "WORKFLOW_STATE.json", "BOUNDARIES.json"],
        &[Damage::Truncated, Damage::Garbage, Damage::Empty],
    );
}

#[test]
fn a_truncated_dependency_graph_is_named() {
    damaged_state_files(&["DEPENDENCY_GRAPH.json"], &[Damage::Truncated, Damage::Empty]);
}

#[test]
fn a_garbled_dependency_graph_is_named_or_rebuilt() {
    damaged_state_files(&["DEPENDENCY_GRAPH.json"], &[Damage::Garbage]);
}

#[test]
fn a_damaged_lock_table_is_rebuilt_or_named() {
    damaged_state_files(&["RESOURCE_LOCKS.json"], &[Damage::Truncated, Damage::Garbage]);
}

#[test]
fn a_damaged_pool_state_is_rebuilt_or_named() {
    damaged_state_files(&["pool-state.json"], &[Damage::Truncated, Damage::Garbage]);
}

#[test]
fn a_damaged_saved_plan_is_named() {
    damaged_state_files(&["fugue/plan.json"], &[Damage::Truncated, Damage::Garbage]);
}
