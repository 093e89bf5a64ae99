//! Spend and budgets end to end: `fugue run plan.yaml` from the repository root with the real
//! Claude Code and Codex CLIs against the scripted model (every Anthropic answer reports 1000
//! input, 200 output, 300 cache-read and 100 cache-write tokens: 1600 a step; every OpenAI
//! answer 1000 input of which 300 cached, and 200 output). `@loop` is an agent that never
//! stops on its own.

use std::path::Path;

use serde_json::Value;

use crate::agents::CODEX_MODEL;
use crate::drivers::{Setup, assert_ran, claude_agent};

/// Tokens of one scripted Anthropic answer.
const CLAUDE_STEP: u64 = 1000 + 200 + 300 + 100;

fn tokens(usage: &Value) -> u64 {
    ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"].iter().filter_map(|k| usage[k].as_u64()).sum()
}

/// Processes whose working directory is inside `dir` (an agent left running there).
fn processes_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd"))
            && cwd.starts_with(dir)
        {
            found.push(format!("{} in {}", entry.file_name().to_string_lossy(), cwd.display()));
        }
    }
    found
}

#[test]
fn a_task_budget_stops_a_runaway_claude_agent_with_budget_named() {
    let Some(s) = Setup::claude("task_budget_stops_claude") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 2 }}\nagents:\n  claude: {}\ntasks:\n  - {{ id: spin, agent: claude, prompt: \"@loop\", modifies: [\"x/**\"], budget: {{ tokens: 8000 }} }}\n",
        claude_agent("")
    );
    let out = s.run(&plan);
    assert_ran(&out, 1);
    let runs = s.events("agent_finished", "spin");
    assert_eq!(runs.len(), 1, "a budget stop is not retried: {runs:?}");
    assert_eq!(runs[0]["failure"], "budget", "{runs:?}");
    assert!(runs[0]["summary"].as_str().is_some_and(|m| m.contains("stopped by fugue") && m.contains("8000 tokens")), "{runs:?}");
    let spent = tokens(&runs[0]["usage"]);
    let hit = s.events("budget_exceeded", "spin");
    assert_eq!(hit.len(), 1, "{hit:?}");
    assert_eq!(hit[0]["scope"], "task");
    // A step is one answer (its stream reports the output tokens only at the end).
    let step = hit[0]["step"]["tokens"].as_u64().unwrap_or(0);
    assert!(step > 0 && step <= CLAUDE_STEP, "one answer's tokens: {hit:?}");
    // Stopped at the first reading that reached the budget: within it plus the steps in flight.
    assert!((8000..=8000 + 2 * CLAUDE_STEP).contains(&spent), "spent {spent}");
    let reason = s.events("attempt_failed", "spin")[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.starts_with("budget:") && reason.contains("8000 tokens"), "{reason}");
    // The agent is gone, and the report and validate agree on the bound.
    let worktree = s.events("attempt_started", "spin")[0]["worktree"].as_str().map(std::path::PathBuf::from).expect("worktree");
    assert!(processes_in(&worktree).is_empty(), "{:?}", processes_in(&worktree));
    let report = s.fugue(&["report"]).stdout;
    assert!(report.contains("`spin` was stopped by its budget of 8000 tokens"), "{report}");
    let validate = s.fugue(&["validate"]);
    assert_eq!(validate.code, 0, "{}{}", validate.stdout, validate.stderr);
}

#[test]
fn a_claude_dollar_budget_is_passed_to_claude_codes_own_limit() {
    let Some(s) = Setup::claude("task_budget_usd_claude") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 0 }}\nagents:\n  claude: {}\ntasks:\n  - {{ id: spin, agent: claude, prompt: \"@loop\", modifies: [\"x/**\"] }}\n",
        claude_agent(", budget: { usd: 0.05 }")
    );
    let out = s.run(&plan);
    assert_ran(&out, 1);
    let runs = s.events("agent_finished", "spin");
    assert_eq!(runs[0]["failure"], "budget", "{runs:?}");
    // Claude Code's stream has no live cost: its own `--max-budget-usd` ended the session, with
    // the result that says so (fugue, reading that result's cost, may stop the process first).
    let log = std::fs::read_to_string(s.repo.join(".claude/logs/spin.agent.log")).unwrap_or_default();
    assert!(log.contains("error_max_budget_usd"), "{log}");
    let cost = runs[0]["usage"]["cost_usd"].as_f64().expect("Claude Code reports its cost");
    assert!(cost >= 0.05, "stopped once the limit was reached: {cost}");
    let reason = s.events("attempt_failed", "spin")[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("budget") || reason.contains("spending limit"), "{reason}");
}

#[test]
fn a_run_budget_stops_dispatch_and_the_agents_with_four_running_and_resume_continues_its_totals() {
    let Some(s) = Setup::claude("run_budget_four_agents") else { return };
    let mut plan = format!(
        "version: 1\nparallelization: {{ max_agents: 4, retry_on_failure: 0 }}\nbudget: {{ tokens: 20000 }}\nagents:\n  claude: {}\ntasks:\n",
        claude_agent("")
    );
    for i in 1..=6 {
        plan.push_str(&format!("  - {{ id: spin{i}, agent: claude, prompt: \"@loop\", modifies: [\"s{i}/**\"] }}\n"));
    }
    let out = s.run(&plan);
    assert_ran(&out, 4);
    assert!(out.stderr.contains("budget is spent") && out.stderr.contains("--budget-tokens"), "{}", out.stderr);
    let journal = s.journal();
    let started: Vec<&Value> = journal.iter().filter(|e| e["event"] == "attempt_started").collect();
    assert_eq!(started.len(), 4, "four agents ran, the other two were never dispatched: {started:?}");
    let hit: Vec<&Value> = journal.iter().filter(|e| e["event"] == "budget_exceeded").collect();
    assert_eq!(hit.len(), 1, "{hit:?}");
    assert_eq!(hit[0]["scope"], "run");
    // Nothing was dispatched after the budget was spent.
    let hit_at = journal.iter().position(|e| e["event"] == "budget_exceeded").unwrap_or(0);
    assert!(journal[hit_at..].iter().all(|e| e["event"] != "attempt_started"), "dispatch stopped");
    // Every running agent was stopped for the budget, and its task left pending.
    let stopped: Vec<&Value> = journal.iter().filter(|e| e["event"] == "agent_finished").collect();
    assert_eq!(stopped.len(), 4, "{stopped:?}");
    assert!(stopped.iter().all(|e| e["failure"] == "budget"), "{stopped:?}");
    let status: Value = serde_json::from_str(&s.fugue(&["status", "--json"]).stdout).expect("status");
    assert_eq!(status["state"], "budget_exhausted", "{status}");
    assert!(status["tasks"].as_array().expect("tasks").iter().all(|t| t["status"] == "pending"), "{status}");
    assert_eq!(status["budget"]["limit"]["tokens"], 20000, "{status}");
    // The bound: the budget plus the crossing step plus one step per agent in flight.
    let spent = status["tokens"].as_u64().expect("tokens");
    let slack = hit[0]["step"]["tokens"].as_u64().unwrap_or(0) + hit[0]["in_flight"]["tokens"].as_u64().unwrap_or(0);
    assert!(spent >= 20000 && spent <= 20000 + slack, "spent {spent}, slack {slack}");
    assert!(slack <= 5 * CLAUDE_STEP, "{slack}");
    let validate = s.fugue(&["validate"]);
    assert_eq!(validate.code, 0, "{}{}", validate.stdout, validate.stderr);

    // A raised budget continues the run from what it spent, not from zero.
    let resumed = s.fugue(&["resume", "--budget-tokens", &(spent + 6000).to_string()]);
    assert_ran(&resumed, 4);
    let journal = s.journal();
    let reserved: Vec<&Value> = journal.iter().filter(|e| e["event"] == "budget_reserved").collect();
    let after_resume = journal.iter().position(|e| e["event"] == "run_resumed").expect("resumed");
    let first_claim = journal[after_resume..].iter().find(|e| e["event"] == "budget_reserved").expect("a reservation after resume");
    assert!(first_claim["claimed"]["tokens"].as_u64().unwrap_or(0) >= spent, "starts from {spent}: {first_claim}");
    assert_eq!(first_claim["limit"]["tokens"].as_u64(), Some(spent + 6000));
    assert!(reserved.len() >= 8, "{reserved:?}");
    let status: Value = serde_json::from_str(&s.fugue(&["status", "--json"]).stdout).expect("status");
    let total = status["tokens"].as_u64().expect("tokens");
    assert!(total >= spent + 6000, "the resumed run added to the total: {total} after {spent}");
    assert_eq!(s.fugue(&["validate"]).code, 0);
}

#[test]
fn reservations_hold_back_a_fifth_task_until_one_ends_and_every_task_still_merges() {
    let Some(s) = Setup::claude("run_budget_reservations") else { return };
    let mut plan = format!(
        "version: 1\nparallelization: {{ max_agents: 6, retry_on_failure: 0 }}\nbudget: {{ tokens: 42000, per_task: {{ tokens: 10000 }} }}\nagents:\n  claude: {}\ntasks:\n",
        claude_agent("")
    );
    for i in 1..=6 {
        plan.push_str(&format!("  - {{ id: w{i}, agent: claude, prompt: \"@write w{i}/done.txt {i}\", modifies: [\"w{i}/**\"] }}\n"));
    }
    let out = s.run(&plan);
    assert_ran(&out, 0);
    for i in 1..=6 {
        assert_eq!(s.on_main(&format!("w{i}/done.txt")).as_deref(), Some(i.to_string().as_str()));
    }
    let journal = s.journal();
    // Four reservations of 10000 fit in 42000; the fifth waited for a task to end.
    let order: Vec<&str> = journal
        .iter()
        .filter_map(|e| match e["event"].as_str() {
            Some(k @ ("budget_reserved" | "merged")) => Some(k),
            _ => None,
        })
        .collect();
    assert_eq!(&order[..4], ["budget_reserved"; 4], "{order:?}");
    assert_eq!(order[4], "merged", "the fifth task waited for room: {order:?}");
    for r in journal.iter().filter(|e| e["event"] == "budget_reserved") {
        let after = r["claimed"]["tokens"].as_u64().unwrap_or(0) + r["reserved"]["tokens"].as_u64().unwrap_or(0);
        assert!(after <= 42000, "{r}");
    }
    assert_eq!(s.fugue(&["validate"]).code, 0);
}

#[test]
fn parallel_claude_and_codex_tasks_show_what_each_task_and_the_run_spent() {
    // Codex reports tokens only: its dollars come from the plan's price table.
    let Some(s) = Setup::codex("claude_and_codex_spend") else { return };
    if crate::agents::require_cli("claude", "claude_and_codex_spend").is_none() {
        return;
    }
    let env = crate::agents::claude_env(&s.model, &s.home);
    let mut s = s;
    for (k, v) in env {
        if !s.env.iter().any(|(key, _)| *key == k) {
            s.env.push((k, v));
        }
    }
    let plan = format!(
        "version: 1\nparallelization: {{ max_agents: 4, retry_on_failure: 0 }}\nbudget: {{ usd: 5.0, per_task: {{ usd: 1.0 }} }}\n\
         prices:\n  {CODEX_MODEL}: {{ input: 2.0, output: 8.0, cache_read: 0.5 }}\nagents:\n  claude: {}\n  codex: {}\ntasks:\n\
         \x20 - {{ id: c1, agent: claude, prompt: \"@write c1.txt one\", modifies: [\"c1.txt\"] }}\n\
         \x20 - {{ id: c2, agent: claude, prompt: \"@write c2.txt two\", modifies: [\"c2.txt\"] }}\n\
         \x20 - {{ id: x1, agent: codex, prompt: \"@write x1.txt one\", modifies: [\"x1.txt\"] }}\n\
         \x20 - {{ id: x2, agent: codex, prompt: \"@write x2.txt two\", modifies: [\"x2.txt\"] }}\n",
        claude_agent(""),
        s.codex_agent("")
    );
    let out = s.run(&plan);
    assert_ran(&out, 0);
    let report: Value = serde_json::from_str(&s.fugue(&["report", "--json"]).stdout).expect("report");
    let tasks = report["tasks"].as_array().expect("tasks");
    let mut sum = 0.0;
    for t in tasks {
        let cost = t["cost_usd"].as_f64().unwrap_or_else(|| panic!("every task has a cost: {t}"));
        assert!(cost > 0.0, "{t}");
        sum += cost;
    }
    assert!((report["cost_usd"].as_f64().expect("total") - sum).abs() < 1e-9, "the run's total is the tasks' sum");
    // Codex's cost is the table's: (700 input × $2 + 300 cached × $0.5 + 200 output × $8) per
    // million tokens per answer, and priced runs are marked as such.
    for id in ["x1", "x2"] {
        for run in s.events("agent_finished", id) {
            assert_eq!(run["priced"], true, "{run}");
            let u = &run["usage"];
            let want = (u["input_tokens"].as_f64().unwrap_or(0.0) * 2.0
                + u["cache_read_tokens"].as_f64().unwrap_or(0.0) * 0.5
                + u["output_tokens"].as_f64().unwrap_or(0.0) * 8.0)
                / 1e6;
            assert!((u["cost_usd"].as_f64().unwrap_or(0.0) - want).abs() < 1e-12, "{run}");
        }
    }
    for id in ["c1", "c2"] {
        assert!(s.events("agent_finished", id).iter().all(|r| r["priced"].is_null()), "Claude Code's own cost is kept");
    }
    assert_eq!(report["budget"]["limit"]["usd"], 5.0, "{report}");
    let md = s.fugue(&["report"]).stdout;
    assert!(md.contains("- Run budget: $") && md.contains("of $5.0000"), "{md}");
    assert!(md.contains("| Parallelization rate |") && md.contains("| First-time pass rate | 100.0 % | > 90 % | ✅ |"), "{md}");
    let status = s.fugue(&["status"]).stdout;
    assert!(status.contains("budget: $"), "{status}");
    assert_eq!(s.fugue(&["validate"]).code, 0);
}

#[test]
fn spend_adds_up_over_iterations_and_attempts_in_the_journal_report_and_status() {
    let Some(s) = Setup::claude("spend_adds_up") else { return };
    let plan = format!(
        "version: 1\nparallelization: {{ retry_on_failure: 1 }}\ngates: {{ max_iterations: 2 }}\nagents:\n  claude: {}\ntasks:\n{}\
         \x20 - {{ id: never, agent: claude, prompt: \"@write never.txt x\", modifies: [\"never.txt\"], verify: [\"false\"] }}\n",
        claude_agent(""),
        crate::drivers::fixing_task("fix", "claude", "out.txt", "fixed")
    );
    let out = s.run(&plan);
    assert_ran(&out, 1);
    let report: Value = serde_json::from_str(&s.fugue(&["report", "--json"]).stdout).expect("report");
    let task = |id: &str| report["tasks"].as_array().and_then(|t| t.iter().find(|t| t["id"] == id)).cloned().expect("task");
    let mut run_total = 0;
    for (id, runs_per_attempt) in [("fix", vec![2]), ("never", vec![2, 2])] {
        let runs = s.events("agent_finished", id);
        assert_eq!(runs.len(), runs_per_attempt.iter().sum::<usize>(), "{id}: {runs:?}");
        let t = task(id);
        let attempts = t["attempts_usage"].as_array().expect("attempts");
        assert_eq!(attempts.len(), runs_per_attempt.len(), "{t}");
        for a in attempts {
            let n = a["attempt"].as_u64().unwrap_or(0);
            let journaled: u64 = runs.iter().filter(|r| r["attempt"].as_u64() == Some(n)).map(|r| tokens(&r["usage"])).sum();
            assert_eq!(tokens(&a["usage"]), journaled, "{id} attempt {n}");
        }
        let all: u64 = runs.iter().map(|r| tokens(&r["usage"])).sum();
        assert_eq!(t["tokens"].as_u64(), Some(all), "{t}");
        run_total += all;
    }
    assert_eq!(report["tokens"].as_u64(), Some(run_total));
    let status: Value = serde_json::from_str(&s.fugue(&["status", "--json"]).stdout).expect("status");
    assert_eq!(status["tokens"].as_u64(), Some(run_total), "{status}");
}
