//! A loaded plan → `fugue_planner::DefaultPlanner` (`plan` and `plan_sealed`), then everything
//! the CLI derives from an execution plan (human view, boundaries, priorities).
//!
//! Two ways in: through the loader (what `fugue plan`/`run` do), and straight from serde
//! without the loader's checks (what `fugue resume` does with `.claude/fugue/plan.json`).
//! Neither may panic; the planner answers with an execution plan or located issues.
#![no_main]

use fugue_core::load::{LoadOptions, load_str};
use fugue_core::{Plan, Planner};
use fugue_planner::{DefaultPlanner, boundaries, priorities, render_human};
use libfuzzer_sys::fuzz_target;

fn plan_all(plan: &Plan) -> Result<(), Vec<fugue_core::PlanIssue>> {
    let planner = DefaultPlanner::new();
    let plain = planner.plan(plan);
    let sealed = planner.plan_sealed(plan);
    assert_eq!(plain.is_ok(), sealed.is_ok(), "plan and plan_sealed disagree");
    match sealed {
        Ok(s) => {
            let exec = s.execution_plan();
            let _ = render_human(plan, exec);
            let _ = boundaries(plan, exec);
            let p = priorities(plan, exec);
            assert_eq!(p.len(), plan.tasks.len());
            Ok(())
        }
        Err(e) => {
            assert!(!e.issues.is_empty(), "a planner error without issues");
            Err(e.issues)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(loaded) = load_str("plan.yaml", &text, &LoadOptions::default()) {
        if let Err(issues) = plan_all(&loaded.plan) {
            let d = loaded.diagnostics(issues);
            let _ = d.to_short_string();
        }
    }
    if let Ok(plan) = serde_json::from_str::<Plan>(&text) {
        let _ = plan_all(&plan);
    }
});
