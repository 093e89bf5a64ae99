//! Checks the schema cannot express: references between tasks, agents and phases, scope
//! patterns, command lines, and the rule that parallel phases leave `common` paths alone.
//!
//! They run on the raw JSON value rather than on a deserialised `Plan`, so that they still run
//! (and report) when the schema check has already found other problems: the user sees every
//! error in one go.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::suggest::did_you_mean;
use crate::diag::{PlanIssue, pointer_join};
use crate::{CommandLine, HumanDuration, Pattern, Phase, TaskId};

fn arr(v: Option<&Value>) -> impl Iterator<Item = (usize, &Value)> {
    v.and_then(Value::as_array).into_iter().flatten().enumerate()
}

fn patterns(v: Option<&Value>, pointer: &str, out: &mut Vec<PlanIssue>) -> Vec<Pattern> {
    let mut ps = Vec::new();
    for (j, p) in arr(v) {
        let Some(s) = p.as_str() else { continue };
        match Pattern::parse(s) {
            Ok(p) => ps.push(p),
            Err(e) => out.push(
                PlanIssue::error("bad-pattern", pointer_join(pointer, j), e.to_string())
                    .with_help("write a repo-relative path or glob such as `src/api/**`; a leading `/` means the repository root"),
            ),
        }
    }
    ps
}

fn commands(v: Option<&Value>, pointer: &str, out: &mut Vec<PlanIssue>) {
    for (j, c) in arr(v) {
        if let Some(s) = c.as_str()
            && let Err(e) = CommandLine::parse(s)
        {
            out.push(PlanIssue::error("bad-command", pointer_join(pointer, j), e.to_string()));
        }
    }
}

fn duration(v: Option<&Value>, pointer: String, out: &mut Vec<PlanIssue>) {
    if let Some(s) = v.and_then(Value::as_str)
        && let Err(e) = HumanDuration::parse(s)
    {
        out.push(PlanIssue::error("bad-duration", pointer, e.to_string()));
    }
}

/// Every `pool.seed` key must name a cache of `pool.keep_ignored` (a seeded directory that is
/// not kept would be cleaned away at the slot's first recycle) and stay inside the checkout.
fn seeds(pool: Option<&Value>, out: &mut Vec<PlanIssue>) {
    let Some(seed) = pool.and_then(|p| p.get("seed")).and_then(Value::as_object) else { return };
    let kept: Vec<String> = match pool.and_then(|p| p.get("keep_ignored")) {
        Some(v) => arr(Some(v)).filter_map(|(_, k)| k.as_str().map(str::to_owned)).collect(),
        None => crate::PoolSpec::default().keep_ignored,
    };
    let norm = |s: &str| s.trim_start_matches('/').trim_end_matches('/').to_owned();
    for key in seed.keys() {
        let pointer = pointer_join("/pool/seed", key);
        let path = std::path::Path::new(key.trim_start_matches('/'));
        if key.trim_matches('/').is_empty() || path.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            out.push(
                PlanIssue::error("bad-seed", pointer, format!("`{key}` is not a directory inside the checkout"))
                    .with_help("name a build cache relative to the repository root, such as `target/`"),
            );
        } else if !kept.iter().any(|k| norm(k) == norm(key)) {
            out.push(
                PlanIssue::error(
                    "bad-seed",
                    pointer,
                    format!("`{key}` is seeded but not listed in `pool.keep_ignored`, so recycling a slot would delete it"),
                )
                .with_help(format!("add `{key}` to `pool.keep_ignored`, or remove it from `pool.seed`")),
            );
        }
    }
}

/// Runs every semantic check on the (defaults-merged) plan document.
pub(crate) fn check(doc: &Value) -> Vec<PlanIssue> {
    let mut out = Vec::new();
    let agents: Vec<String> = doc.get("agents").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();

    // Agents.
    if let Some(map) = doc.get("agents").and_then(Value::as_object) {
        for (name, spec) in map {
            let p = pointer_join("/agents", name);
            duration(spec.get("timeout"), pointer_join(&p, "timeout"), &mut out);
        }
    }

    // Caches confined agents may write: outside the repository, named so it is plain where.
    for (i, cache) in arr(doc.get("caches")) {
        let Some(text) = cache.as_str() else { continue };
        let path = crate::expand_home(text);
        let why = if text.trim().is_empty() {
            Some("a cache path is empty")
        } else if !path.is_absolute() {
            Some("a cache path must be absolute or start with `~/` (relative to what? the agent works in a worktree elsewhere)")
        } else if path.components().count() <= 1 {
            Some("`/` as a cache would let confined agents write anywhere")
        } else {
            None
        };
        if let Some(why) = why {
            out.push(
                PlanIssue::error("confine/cache", format!("/caches/{i}"), format!("cache `{text}`: {why}"))
                    .with_help("name the build cache's own directory, e.g. `~/.cargo` or `/var/cache/ccache`"),
            );
        }
    }

    // Boundaries.
    let boundaries = doc.get("boundaries");
    let common = patterns(boundaries.and_then(|b| b.get("common")), "/boundaries/common", &mut out);
    if let Some(serial) = boundaries.and_then(|b| b.get("serial")).and_then(Value::as_object) {
        for (class, v) in serial {
            patterns(Some(v), &pointer_join("/boundaries/serial", class), &mut out);
        }
    }

    // Gates and pool commands.
    let gates = doc.get("gates");
    commands(gates.and_then(|g| g.get("tests")).and_then(|t| t.get("commands")), "/gates/tests/commands", &mut out);
    commands(gates.and_then(|g| g.get("docs")).and_then(|t| t.get("commands")), "/gates/docs/commands", &mut out);
    commands(doc.get("pool").and_then(|p| p.get("setup")), "/pool/setup", &mut out);
    seeds(doc.get("pool"), &mut out);
    if let Some(reviewer) = gates.and_then(|g| g.get("review")).and_then(|r| r.get("agent")).and_then(Value::as_str)
        && !agents.iter().any(|a| a == reviewer)
    {
        out.push(unknown_agent(reviewer, "/gates/review/agent".into(), &agents));
    }

    // Tasks.
    let tasks: Vec<(usize, &Value)> = arr(doc.get("tasks")).collect();
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    let mut phase_of: HashMap<&str, Phase> = HashMap::new();
    for &(i, t) in &tasks {
        let Some(id) = t.get("id").and_then(Value::as_str) else { continue };
        if TaskId::new(id).is_err() {
            continue; // the schema reports it
        }
        let phase = match t.get("phase") {
            None => Some(Phase::default()),
            Some(p) => p.as_str().and_then(Phase::from_name),
        };
        match first_seen.get(id) {
            Some(&first) => out.push(
                PlanIssue::error("duplicate-id", format!("/tasks/{i}/id"), format!("duplicate task id `{id}`"))
                    .with_help(format!("task ids must be unique: rename this one (the first `{id}` is task #{})", first + 1)),
            ),
            None => {
                first_seen.insert(id, i);
                if let Some(p) = phase {
                    phase_of.insert(id, p);
                }
            }
        }
    }
    let ids: Vec<&str> = first_seen.keys().copied().collect();
    let common_set: HashSet<&Pattern> = common.iter().collect();
    for &(i, t) in &tasks {
        let tp = format!("/tasks/{i}");
        let id = t.get("id").and_then(Value::as_str).unwrap_or_default();
        let phase = t.get("phase").map_or(Some(Phase::default()), |p| p.as_str().and_then(Phase::from_name));
        if let Some(agent) = t.get("agent").and_then(Value::as_str)
            && !agents.iter().any(|a| a == agent)
        {
            out.push(unknown_agent(agent, format!("{tp}/agent"), &agents));
        }
        let modifies = patterns(t.get("modifies"), &format!("{tp}/modifies"), &mut out);
        patterns(t.get("reads"), &format!("{tp}/reads"), &mut out);
        commands(t.get("verify"), &format!("{tp}/verify"), &mut out);
        duration(t.get("estimate"), format!("{tp}/estimate"), &mut out);
        if t.get("modifies").and_then(Value::as_array).is_none_or(Vec::is_empty) && t.get("modifies").is_none_or(Value::is_array) {
            out.push(
                PlanIssue::warning(
                    "empty-scope",
                    tp.clone(),
                    format!("task `{id}` modifies nothing, so any change it makes will be rejected by the boundary gate"),
                )
                .with_help("list the paths it may change under `modifies:`"),
            );
        }
        if let Some(p) = phase.filter(|p| p.is_parallel()) {
            for (j, m) in modifies.iter().enumerate() {
                if let Some(c) = common_set.iter().find(|c| c.overlaps(m)) {
                    out.push(
                        PlanIssue::error("modifies-common", format!("{tp}/modifies/{j}"), format!("task `{id}` in parallel phase `{p}` modifies `{m}`, which overlaps the common path `{c}`"))
                            .with_help("common paths are read-only while parallel phases run: move this task to a serial phase such as `architecture`, or narrow its scope"),
                    );
                }
            }
        }
        for (j, d) in arr(t.get("depends_on")) {
            let Some(dep) = d.as_str() else { continue };
            let dp = format!("{tp}/depends_on/{j}");
            if dep == id {
                out.push(
                    PlanIssue::error("self-dependency", dp, format!("task `{id}` depends on itself"))
                        .with_help("remove it from its own `depends_on`"),
                );
            } else if !first_seen.contains_key(dep) {
                if TaskId::new(dep).is_ok() {
                    out.push(
                        PlanIssue::error(
                            "unknown-dependency",
                            dp,
                            format!("task `{id}` depends on `{dep}`, which is not a task of this plan"),
                        )
                        .with_help(format!(
                            "{}known tasks: {}",
                            did_you_mean(dep, ids.iter().copied()),
                            preview(&ids)
                        )),
                    );
                }
            } else if let (Some(mine), Some(theirs)) = (phase, phase_of.get(dep))
                && *theirs > mine
            {
                out.push(
                    PlanIssue::error(
                        "later-phase-dependency",
                        dp,
                        format!("task `{id}` (phase `{mine}`) depends on `{dep}` of the later phase `{theirs}`"),
                    )
                    .with_help(format!(
                        "phases run in order, so this can never be satisfied: move `{id}` to `{theirs}` or later, or drop the dependency"
                    )),
                );
            }
        }
    }
    out
}

fn preview(ids: &[&str]) -> String {
    let mut sorted: Vec<&str> = ids.to_vec();
    sorted.sort_unstable();
    if sorted.len() > 8 { format!("{}, … ({} in all)", sorted[..8].join(", "), sorted.len()) } else { sorted.join(", ") }
}

fn unknown_agent(name: &str, pointer: String, agents: &[String]) -> PlanIssue {
    let help = if agents.is_empty() {
        "define it under `agents:` (e.g. `claude: { command: [\"claude\", \"-p\", \"{prompt}\"] }`)".to_owned()
    } else {
        format!("{}define it under `agents:` or use one of: {}", did_you_mean(name, agents.iter().map(String::as_str)), agents.join(", "))
    };
    PlanIssue::error("unknown-agent", pointer, format!("unknown agent `{name}`")).with_help(help)
}
