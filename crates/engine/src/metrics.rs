//! The playbook's efficiency metrics (Parallel_Orchestration mode, "Efficiency Metrics"),
//! computed from the journal.
//!
//! A task is *busy* from an attempt's start to its end (agent, QA iterations, merge): the same
//! spans the measured speedup sums. With `c(t)` the number of tasks busy at time `t`:
//!
//! - **Parallelization rate** (target > 80 %): the share of all busy time spent while at least
//!   one other task was busy too, `∫ c·[c ≥ 2] dt / ∫ c dt`. Work of a chain of dependent
//!   tasks counts as serial, however many agents the plan allowed.
//! - **Agent utilization** (target > 90 %): how busy the agents the run used were, `∫ c dt /
//!   (peak × wall)`, with `peak` the most tasks busy at once and `wall` the time from the
//!   first attempt's start to the last task's end. Idle slots while the run waits (for a
//!   dependency, a merge, a budget) lower it.
//! - **Quality-gate coverage** (target 100 %): of the files merged, the share merged after a
//!   QA round that approved them with at least one gate besides the built-in `changes` check.
//! - **First-time pass rate** (target > 90 %): of the tasks QA judged, the share whose first
//!   verdict (`qa_blocked` rounds left out: the environment, not the work) was an approval.
//!
//! A metric with nothing to measure (no task ran, no file merged) is `None`: unknown, not 0.

use serde::Serialize;

use crate::view::{RunView, Span};

/// One metric against its target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metric {
    /// The measured share, 0–1; `null` when there was nothing to measure.
    pub value: Option<f64>,
    /// The playbook's target, 0–1.
    pub target: f64,
    /// Whether the value meets it (`> target`; coverage `>= 1`); `null` when unknown.
    pub met: Option<bool>,
}

impl Metric {
    fn new(value: Option<f64>, target: f64, inclusive: bool) -> Self {
        let met = value.map(|v| if inclusive { v >= target - 1e-9 } else { v > target });
        Self { value, target, met }
    }

    /// `87.5 %`, or "unknown".
    pub fn text(&self) -> String {
        self.value.map_or_else(|| "unknown".to_owned(), |v| format!("{:.1} %", v * 100.0))
    }
}

/// The four metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Efficiency {
    /// Busy time spent alongside another busy task, over all busy time.
    pub parallelization_rate: Metric,
    /// Busy time over (peak agents × wall time).
    pub agent_utilization: Metric,
    /// Merged files approved by QA with at least one gate, over merged files.
    pub quality_gate_coverage: Metric,
    /// Tasks whose first QA verdict was an approval, over tasks QA judged.
    pub first_time_pass_rate: Metric,
}

impl Efficiency {
    /// Rows for a table: name, metric, target text.
    pub fn rows(&self) -> [(&'static str, Metric, &'static str); 4] {
        [
            ("Parallelization rate", self.parallelization_rate, "> 80 %"),
            ("Agent utilization", self.agent_utilization, "> 90 %"),
            ("Quality-gate coverage", self.quality_gate_coverage, "100 %"),
            ("First-time pass rate", self.first_time_pass_rate, "> 90 %"),
        ]
    }
}

/// `(∫ c dt, ∫ c·[c ≥ 2] dt, peak, first start, last end)` over `spans`.
fn sweep(spans: &[Span]) -> (u128, u128, u64, u64, u64) {
    let mut points: Vec<(u64, i64)> = spans.iter().filter(|s| s.end > s.start).flat_map(|s| [(s.start, 1), (s.end, -1)]).collect();
    points.sort_unstable();
    let (first, last) = (points.first().map_or(0, |p| p.0), points.last().map_or(0, |p| p.0));
    let (mut cur, mut peak, mut area, mut parallel) = (0i64, 0i64, 0u128, 0u128);
    let mut at = first;
    for (t, d) in points {
        let c = u128::try_from(cur).unwrap_or(0);
        area += u128::from(t - at) * c;
        if cur >= 2 {
            parallel += u128::from(t - at) * c;
        }
        cur += d;
        peak = peak.max(cur);
        at = t;
    }
    (area, parallel, u64::try_from(peak).unwrap_or(0), first, last)
}

#[expect(clippy::cast_precision_loss, reason = "ratios of durations and counts")]
fn ratio(a: u128, b: u128) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The metrics of the run in `view`.
pub fn efficiency(view: &RunView) -> Efficiency {
    let spans: Vec<Span> = view.tasks.values().flat_map(|t| t.busy.iter().copied()).collect();
    let (area, parallel, peak, first, last) = sweep(&spans);
    let wall = u128::from(last.saturating_sub(first));
    let (mut files, mut covered, mut judged, mut passed) = (0u128, 0u128, 0u128, 0u128);
    for t in view.tasks.values() {
        if t.merge_commit.is_some() {
            let n = t.files.len() as u128;
            files += n;
            if t.approved_gates > 0 {
                covered += n;
            }
        }
        if let Some(first) = t.first_verdict {
            judged += 1;
            passed += u128::from(first == fugue_core::QaVerdict::TaskApproved);
        }
    }
    Efficiency {
        parallelization_rate: Metric::new(ratio(parallel, area), 0.8, false),
        agent_utilization: Metric::new(ratio(area, wall * u128::from(peak)), 0.9, false),
        quality_gate_coverage: Metric::new(ratio(covered, files), 1.0, true),
        first_time_pass_rate: Metric::new(ratio(passed, judged), 0.9, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, end: u64) -> Span {
        Span { start, end }
    }

    #[test]
    fn the_sweep_splits_parallel_from_serial_time() {
        // Two tasks side by side for 10 ms, then one alone for 10 ms.
        let (area, parallel, peak, first, last) = sweep(&[span(0, 10), span(0, 20)]);
        assert_eq!((area, parallel, peak, first, last), (30, 20, 2, 0, 20));
        assert_eq!(ratio(parallel, area).map(|r| (r * 1000.0).round()), Some(667.0));
        // utilization: 30 busy of 2 agents × 20 wall.
        assert_eq!(ratio(area, 40), Some(0.75));
    }

    #[test]
    fn nothing_to_measure_is_unknown_not_zero() {
        let e = efficiency(&RunView::default());
        for (_, m, _) in e.rows() {
            assert_eq!((m.value, m.met), (None, None));
            assert_eq!(m.text(), "unknown");
        }
        assert_eq!(Metric::new(Some(1.0), 1.0, true).met, Some(true));
        assert_eq!(Metric::new(Some(0.8), 0.8, false).met, Some(false), "the playbook's targets are strict: > 80 %");
    }
}
