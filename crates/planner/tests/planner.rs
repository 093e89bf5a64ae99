//! The planner through its public API, on plans written as users write them (JSON).

use fugue_core::state::{EdgeReason, ExecutionMode, Strategy};
use fugue_core::{ExecutionPlan, IssueLevel, PhaseMachine, Plan, PlanError, Planner};
use fugue_planner::DefaultPlanner;
use serde_json::json;

fn plan(v: serde_json::Value) -> Plan {
    serde_json::from_value(v).expect("valid plan JSON")
}

/// A plan with the given settings merged over defaults; every task gets `"agent": "claude"`.
fn plan_with(settings: serde_json::Value, tasks: serde_json::Value) -> Plan {
    let mut tasks = tasks;
    for t in tasks.as_array_mut().expect("task list") {
        t.as_object_mut().expect("task object").entry("agent").or_insert_with(|| "claude".into());
    }
    let mut doc = json!({ "version": 1, "agents": { "claude": { "command": ["claude", "-p", "{prompt}"] } }, "tasks": tasks });
    for (k, v) in settings.as_object().expect("settings object") {
        doc[k] = v.clone();
    }
    plan(doc)
}

fn tasks(tasks: serde_json::Value) -> Plan {
    plan_with(json!({}), tasks)
}

fn run(p: &Plan) -> ExecutionPlan {
    match DefaultPlanner.plan(p) {
        Ok(x) => x,
        Err(e) => panic!("planning failed: {:#?}", e.issues),
    }
}

fn fail(p: &Plan) -> PlanError {
    match DefaultPlanner.plan(p) {
        Ok(x) => panic!("planning should fail, got {:#?}", x.graph()),
        Err(e) => e,
    }
}

fn edges_of(x: &ExecutionPlan, reason: &EdgeReason) -> Vec<(String, String)> {
    x.graph().edges.iter().filter(|e| &e.reason == reason).map(|e| (e.from.to_string(), e.to.to_string())).collect()
}

fn groups(x: &ExecutionPlan) -> Vec<(String, Vec<String>)> {
    x.graph()
        .execution_strategy
        .parallel_groups
        .iter()
        .map(|g| (g.group_id.clone(), g.tasks.iter().map(|t| t.id.to_string()).collect()))
        .collect()
}

fn p(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

fn g(id: &str, members: &[&str]) -> (String, Vec<String>) {
    (id.to_owned(), members.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn declared_edges_make_groups() {
    let x = run(&tasks(json!([
        { "id": "a", "modifies": ["src/a/**"] },
        { "id": "b", "modifies": ["src/b/**"], "depends_on": ["a"] },
        { "id": "c", "modifies": ["src/c/**"] },
    ])));
    assert_eq!(edges_of(&x, &EdgeReason::Declared), [p("a", "b")]);
    assert_eq!(x.graph().edges.len(), 1, "no other edges: {:?}", x.graph().edges);
    assert_eq!(groups(&x), [g("implementation-1", &["a", "c"]), g("implementation-2", &["b"])]);
    let es = &x.graph().execution_strategy;
    assert_eq!(es.strategy, Strategy::C);
    assert_eq!(es.mode, ExecutionMode::Sequential, "widest group has 2 < min_tasks 3");
    assert_eq!(x.predecessors(1), [(0, EdgeReason::Declared)]);
}

#[test]
fn phase_edges_join_sinks_and_sources_compactly() {
    let x = run(&tasks(json!([
        { "id": "arch1", "phase": "architecture", "modifies": ["contracts/a.rs"] },
        { "id": "arch2", "phase": "architecture", "modifies": ["contracts/b.rs"] },
        { "id": "i1", "modifies": ["src/1/**"] },
        { "id": "i2", "modifies": ["src/2/**"], "depends_on": ["arch2"] },
        { "id": "i3", "modifies": ["src/3/**"], "depends_on": ["i1"] },
    ])));
    // Sinks of architecture: arch1, arch2; sources of implementation: i1, i2. Every sink → the
    // first source, the last sink → the other sources, except where a declared edge exists.
    assert_eq!(edges_of(&x, &EdgeReason::Phase), [p("arch1", "i1"), p("arch2", "i1")]);
    assert_eq!(edges_of(&x, &EdgeReason::Declared), [p("arch2", "i2"), p("i1", "i3")]);
    assert_eq!(
        groups(&x),
        [
            g("architecture-1", &["arch1"]),
            g("architecture-2", &["arch2"]),
            g("implementation-1", &["i1", "i2"]),
            g("implementation-2", &["i3"]),
        ]
    );
}

#[test]
fn write_write_overlap_follows_plan_order() {
    let x = run(&tasks(json!([
        { "id": "a", "modifies": ["src/a/**"] },
        { "id": "b", "modifies": ["/src/a/x.rs"] },
        { "id": "c", "modifies": ["src/ab/**"] },
    ])));
    assert_eq!(edges_of(&x, &EdgeReason::WriteWrite), [p("a", "b")]);
    assert_eq!(groups(&x), [g("implementation-1", &["a", "c"]), g("implementation-2", &["b"])]);
    assert!(x.warnings().is_empty());
}

#[test]
fn conflict_edges_follow_dependency_then_plan_order() {
    // `a` is first in the plan but depends on `c`, so the order is b, c, a: the conflict edge
    // between a and b runs b → a, and can never close a loop with the declared c → a.
    let x = run(&tasks(json!([
        { "id": "a", "modifies": ["shared/x"], "depends_on": ["c"] },
        { "id": "b", "modifies": ["shared/x"] },
        { "id": "c", "modifies": ["other/y"] },
    ])));
    assert_eq!(edges_of(&x, &EdgeReason::WriteWrite), [p("b", "a")]);
    assert_eq!(edges_of(&x, &EdgeReason::Declared), [p("c", "a")]);
    assert_eq!(groups(&x), [g("implementation-1", &["b", "c"]), g("implementation-2", &["a"])]);
}

#[test]
fn a_conflict_already_declared_gets_no_edge() {
    let x = run(&tasks(json!([
        { "id": "a", "modifies": ["src/**"] },
        { "id": "b", "modifies": ["src/x.rs"], "depends_on": ["a"] },
    ])));
    assert_eq!(x.graph().edges.len(), 1);
    assert_eq!(edges_of(&x, &EdgeReason::Declared), [p("a", "b")]);
}

#[test]
fn writer_before_reader_is_quiet() {
    let x = run(&tasks(json!([
        { "id": "schema", "modifies": ["db/schema/**"] },
        { "id": "api", "modifies": ["src/api/**"], "reads": ["db/schema/users.sql"] },
    ])));
    assert_eq!(edges_of(&x, &EdgeReason::WriteRead), [p("schema", "api")]);
    assert!(x.warnings().is_empty(), "{:?}", x.warnings());
}

#[test]
fn reader_first_warns_and_suggests_the_dependency() {
    let x = run(&tasks(json!([
        { "id": "api", "modifies": ["src/api/**"], "reads": ["db/schema/users.sql"] },
        { "id": "schema", "modifies": ["db/schema/**"] },
    ])));
    assert_eq!(edges_of(&x, &EdgeReason::WriteRead), [p("api", "schema")]);
    let [w] = x.warnings() else { panic!("one warning expected: {:?}", x.warnings()) };
    assert_eq!((w.level, w.code.as_str(), w.pointer.as_str()), (IssueLevel::Warning, "reader-first", "/tasks/1"));
    assert_eq!(w.message, "task `api` reads `db/schema/users.sql` (overlapping `db/schema/**`), which `schema` writes, but runs before it");
    let help = w.help.as_deref().unwrap_or_default();
    assert!(help.contains("add `schema` to the depends_on of `api`"), "{help}");
    assert!(help.contains("add `api` to the depends_on of `schema`"), "{help}");

    // With a depends_on list on the writer, the pointer names it.
    let x = run(&tasks(json!([
        { "id": "base", "modifies": ["base/**"] },
        { "id": "api", "modifies": ["src/api/**"], "reads": ["db/schema/**"] },
        { "id": "schema", "modifies": ["db/schema/**"], "depends_on": ["base"] },
    ])));
    let pointers: Vec<&str> = x.warnings().iter().map(|w| w.pointer.as_str()).collect();
    assert_eq!(pointers, ["/tasks/2/depends_on"]);
}

#[test]
fn mutual_reads_still_warn() {
    // Each reads what the other writes: whichever runs first reads before a change.
    let x = run(&tasks(json!([
        { "id": "a", "modifies": ["a/**"], "reads": ["b/**"] },
        { "id": "b", "modifies": ["b/**"], "reads": ["a/**"] },
    ])));
    assert_eq!(edges_of(&x, &EdgeReason::WriteRead), [p("a", "b")]);
    let codes: Vec<&str> = x.warnings().iter().map(|w| w.code.as_str()).collect();
    assert_eq!(codes, ["reader-first"]);
}

#[test]
fn a_declared_path_silences_reader_first() {
    let x = run(&tasks(json!([
        { "id": "api", "modifies": ["src/api/**"], "reads": ["db/schema/**"] },
        { "id": "mid", "modifies": ["src/mid/**"], "depends_on": ["api"] },
        { "id": "schema", "modifies": ["db/schema/x.sql"], "depends_on": ["mid"] },
    ])));
    assert!(x.warnings().is_empty(), "{:?}", x.warnings());
    assert!(edges_of(&x, &EdgeReason::WriteRead).is_empty(), "implied by api → mid → schema");
}

#[test]
fn serial_classes_chain_their_writers() {
    let settings = json!({ "boundaries": { "serial": { "migrations": ["migrations/**"], "manifests": ["Cargo.toml"] } } });
    let x = run(&plan_with(
        settings.clone(),
        json!([
            { "id": "m1", "modifies": ["migrations/001.sql"] },
            { "id": "m2", "modifies": ["migrations/002.sql"] },
            { "id": "app", "modifies": ["src/**"] },
            { "id": "m3", "modifies": ["migrations/003.sql", "Cargo.toml"] },
        ]),
    ));
    // The three migration files do not overlap, but they share the class.
    assert_eq!(edges_of(&x, &EdgeReason::Serial("migrations".into())), [p("m1", "m2"), p("m2", "m3")]);
    assert_eq!(x.graph().edges.len(), 2);
    assert_eq!(groups(&x), [g("implementation-1", &["m1", "app"]), g("implementation-2", &["m2"]), g("implementation-3", &["m3"])]);

    // A reader of the migrations is ordered against each writer; edges another two-step path
    // already implies are left out (m1 → app → m2 orders m1 before m2).
    let x = run(&plan_with(
        settings,
        json!([
            { "id": "m1", "modifies": ["migrations/001.sql"] },
            { "id": "app", "modifies": ["src/**"], "reads": ["migrations/**"] },
            { "id": "m2", "modifies": ["migrations/002.sql"] },
            { "id": "m3", "modifies": ["migrations/003.sql"] },
        ]),
    ));
    assert_eq!(edges_of(&x, &EdgeReason::WriteRead), [p("m1", "app"), p("app", "m2")]);
    assert_eq!(edges_of(&x, &EdgeReason::Serial("migrations".into())), [p("m2", "m3")]);
    assert_eq!(x.warnings().iter().filter(|w| w.code == "reader-first").count(), 2, "app reads before m2 and m3 write");
    let ids: Vec<Vec<String>> = groups(&x).into_iter().map(|(_, t)| t).collect();
    assert_eq!(ids, [vec!["m1"], vec!["app"], vec!["m2"], vec!["m3"]]);
    assert_eq!(x.graph().execution_strategy.strategy, Strategy::D);
}

#[test]
fn isolate_lets_overlapping_writers_share_a_group() {
    let settings = json!({ "parallelization": { "overlap": "isolate" } });
    let x = run(&plan_with(
        settings.clone(),
        json!([
            { "id": "a", "modifies": ["src/shared/**"] },
            { "id": "b", "modifies": ["src/shared/x.rs"] },
            { "id": "c", "modifies": ["src/other/**"] },
        ]),
    ));
    assert!(x.graph().edges.is_empty(), "{:?}", x.graph().edges);
    let es = &x.graph().execution_strategy;
    assert_eq!(groups(&x), [g("implementation-1", &["a", "b", "c"])]);
    assert!(es.parallel_groups[0].can_conflict);
    assert_eq!((es.strategy, es.mode), (Strategy::B, ExecutionMode::Parallel));

    // Readers are still ordered against every overlapping writer.
    let x = run(&plan_with(
        settings,
        json!([
            { "id": "a", "modifies": ["src/x/**"] },
            { "id": "b", "modifies": ["src/x/**"] },
            { "id": "r", "modifies": ["docs/**"], "reads": ["src/x/y.rs"] },
        ]),
    ));
    assert_eq!(edges_of(&x, &EdgeReason::WriteRead), [p("a", "r"), p("b", "r")]);
    let es = &x.graph().execution_strategy;
    assert_eq!(groups(&x), [g("implementation-1", &["a", "b"]), g("implementation-2", &["r"])]);
    assert_eq!((es.parallel_groups[0].can_conflict, es.parallel_groups[1].can_conflict), (true, false));
}

#[test]
fn strategies() {
    let strategy = |p: &Plan| run(p).graph().execution_strategy.strategy;
    let disjoint = json!([
        { "id": "a", "modifies": ["a/**"] },
        { "id": "b", "modifies": ["b/**"] },
        { "id": "c", "modifies": ["c/**"] },
    ]);
    assert_eq!(strategy(&tasks(disjoint)), Strategy::A);
    let with_foundation = json!([
        { "id": "arch", "phase": "architecture", "modifies": ["contracts/**"] },
        { "id": "a", "modifies": ["a/**"] },
        { "id": "b", "modifies": ["b/**"] },
    ]);
    assert_eq!(strategy(&tasks(with_foundation)), Strategy::A, "phases alone do not make it phased");
    let chain = json!([
        { "id": "a", "modifies": ["a/**"] },
        { "id": "b", "modifies": ["b/**"], "depends_on": ["a"] },
        { "id": "c", "modifies": ["c/**"], "depends_on": ["b"] },
    ]);
    assert_eq!(strategy(&tasks(chain)), Strategy::D);
    let phased = json!([
        { "id": "a", "modifies": ["a/**"] },
        { "id": "b", "modifies": ["b/**"] },
        { "id": "c", "modifies": ["c/**"], "depends_on": ["a", "b"] },
    ]);
    assert_eq!(strategy(&tasks(phased)), Strategy::C);
    let overlapping = json!([
        { "id": "a", "modifies": ["a/**"] },
        { "id": "b", "modifies": ["a/x"] },
    ]);
    assert_eq!(strategy(&plan_with(json!({ "parallelization": { "overlap": "isolate" } }), overlapping.clone())), Strategy::B);
    assert_eq!(strategy(&tasks(overlapping)), Strategy::D, "serialized, the two run one after the other");
}

#[test]
fn mode_needs_enabled_and_a_wide_enough_group() {
    let three = json!([
        { "id": "a", "modifies": ["a/**"] },
        { "id": "b", "modifies": ["b/**"] },
        { "id": "c", "modifies": ["c/**"] },
    ]);
    let mode = |settings: serde_json::Value| run(&plan_with(settings, three.clone())).graph().execution_strategy.mode;
    assert_eq!(mode(json!({})), ExecutionMode::Parallel);
    assert_eq!(mode(json!({ "parallelization": { "min_tasks": 4 } })), ExecutionMode::Sequential);
    assert_eq!(mode(json!({ "parallelization": { "enabled": false } })), ExecutionMode::Sequential);
    assert_eq!(mode(json!({ "parallelization": { "min_tasks": 1 } })), ExecutionMode::Parallel);
}

#[test]
fn serial_phase_has_one_task_per_group_in_dependency_then_plan_order() {
    let x = run(&tasks(json!([
        { "id": "p", "phase": "architecture", "depends_on": ["q"] },
        { "id": "q", "phase": "architecture" },
        { "id": "r", "phase": "architecture" },
    ])));
    assert_eq!(groups(&x), [g("architecture-1", &["q"]), g("architecture-2", &["p"]), g("architecture-3", &["r"])]);
}

#[test]
fn estimate_critical_path_and_priorities() {
    let p = plan_with(
        json!({ "parallelization": { "max_agents": 2, "min_tasks": 2 } }),
        json!([
            { "id": "arch", "phase": "architecture", "estimate": "2m" },
            { "id": "a", "modifies": ["a/**"] },
            { "id": "b", "modifies": ["b/**"] },
            { "id": "c", "modifies": ["c/**"], "estimate": 30 },
        ]),
    );
    let sealed = DefaultPlanner.plan_sealed(&p).expect("plans");
    let es = &sealed.graph().execution_strategy;
    assert_eq!(es.mode, ExecutionMode::Parallel);
    // 2m of architecture, then 1m + 1m + 30s on two agents: a and b at once, then c.
    assert_eq!((es.estimate.sequential_s, es.estimate.parallel_s, es.estimate.speedup), (270.0, 210.0, 1.29));
    let cp: Vec<&str> = es.critical_path.iter().map(|t| t.as_str()).collect();
    assert_eq!(cp, ["arch", "a"]);
    assert_eq!(sealed.critical_path_s(), 180.0);
    assert_eq!(sealed.priorities(), [180.0, 60.0, 60.0, 30.0]);
    assert_eq!(fugue_planner::priorities(&p, sealed.execution_plan()), sealed.priorities());
    assert_eq!(sealed.agents(), 2);

    // SEQUENTIAL: one agent, so the estimate is the sum.
    let mut p = p;
    p.parallelization.enabled = false;
    let x = run(&p);
    let e = x.graph().execution_strategy.estimate;
    assert_eq!((e.parallel_s, e.speedup), (270.0, 1.0));
}

#[test]
fn priorities_drive_the_phase_machine() {
    let p = tasks(json!([
        { "id": "short", "modifies": ["a/**"], "estimate": "1m" },
        { "id": "long", "modifies": ["b/**"], "estimate": "5m" },
        { "id": "after", "modifies": ["c/**"], "depends_on": ["long"] },
    ]));
    let sealed = DefaultPlanner.plan_sealed(&p).expect("plans");
    let m = PhaseMachine::from_plan(sealed.execution_plan()).with_priorities(sealed.priorities());
    assert_eq!(m.ready(), [1, 0], "the task on the critical path goes first");
}

#[test]
fn sealed_plan_exposes_the_petgraph_graph() {
    let p = tasks(json!([
        { "id": "a", "modifies": ["x/**"] },
        { "id": "b", "modifies": ["x/y"] },
        { "id": "c", "modifies": ["z/**"], "depends_on": ["a"] },
    ]));
    let sealed = DefaultPlanner.plan_sealed(&p).expect("plans");
    let tg = sealed.task_graph();
    assert_eq!(tg.node_count(), 3);
    assert_eq!(tg.edge_count(), sealed.graph().edges.len());
    assert!(!petgraph::algo::is_cyclic_directed(tg));
    assert_eq!(sealed.order(), [0, 1, 2]);
    assert_eq!((sealed.group_of(0), sealed.group_of(1), sealed.group_of(2), sealed.group_of(3)), (Some(0), Some(1), Some(1), None));
}

#[test]
fn cycle_lists_the_loop_and_the_edge_to_cut() {
    let e = fail(&tasks(json!([
        { "id": "a", "depends_on": ["c"] },
        { "id": "b", "depends_on": ["a"] },
        { "id": "c", "depends_on": ["b"] },
        { "id": "d" },
    ])));
    let [issue] = e.issues.as_slice() else { panic!("one issue: {:?}", e.issues) };
    assert_eq!((issue.code.as_str(), issue.pointer.as_str()), ("cycle", "/tasks/0/depends_on/0"));
    assert_eq!(issue.message, "dependency cycle: a → b → c → a");
    assert_eq!(issue.help.as_deref(), Some("remove `c` from the depends_on of `a`"));
    assert!(e.to_string().contains("a → b → c → a"), "{e}");
    insta::assert_snapshot!("cycle_issues", serde_json::to_string_pretty(&e.issues).expect("json"));
}

#[test]
fn cycle_against_the_phase_order() {
    let e = fail(&tasks(json!([
        { "id": "contracts", "phase": "architecture", "depends_on": ["feature"] },
        { "id": "feature", "phase": "implementation" },
    ])));
    let [issue] = e.issues.as_slice() else { panic!("one issue: {:?}", e.issues) };
    assert_eq!(issue.pointer, "/tasks/0/depends_on/0");
    assert_eq!(
        issue.message,
        "dependency cycle: contracts → feature → contracts (`contracts` (architecture) runs before `feature` (implementation) by phase order)"
    );
    let help = issue.help.as_deref().unwrap_or_default();
    assert!(help.starts_with("remove `feature` from the depends_on of `contracts`"), "{help}");
    assert!(help.contains("own or an earlier phase"), "{help}");
    insta::assert_snapshot!("phase_cycle_issues", serde_json::to_string_pretty(&e.issues).expect("json"));
}

#[test]
fn self_dependency_and_several_cycles() {
    let e = fail(&tasks(json!([
        { "id": "a", "depends_on": ["a"] },
        { "id": "b", "depends_on": ["c"] },
        { "id": "c", "depends_on": ["b"] },
    ])));
    let messages: Vec<&str> = e.issues.iter().map(|i| i.message.as_str()).collect();
    assert_eq!(messages, ["dependency cycle: a → a", "dependency cycle: b → c → b"]);
    assert!(e.issues.iter().all(|i| i.is_error() && i.code == "cycle"));
}

#[test]
fn unknown_dependencies_and_duplicate_ids() {
    let e = fail(&tasks(json!([
        { "id": "a", "depends_on": ["nope"] },
        { "id": "a" },
    ])));
    let found: Vec<(&str, &str)> = e.issues.iter().map(|i| (i.code.as_str(), i.pointer.as_str())).collect();
    assert_eq!(found, [("duplicate-id", "/tasks/1/id"), ("unknown-dependency", "/tasks/0/depends_on/0")]);
}

#[test]
fn repeated_dependency_warns_once() {
    let x = run(&tasks(json!([
        { "id": "a" },
        { "id": "b", "depends_on": ["a", "a"] },
    ])));
    assert_eq!(edges_of(&x, &EdgeReason::Declared), [p("a", "b")]);
    let codes: Vec<(&str, &str)> = x.warnings().iter().map(|w| (w.code.as_str(), w.pointer.as_str())).collect();
    assert_eq!(codes, [("duplicate-dependency", "/tasks/1/depends_on/1")]);
}

#[test]
fn boundaries_file() {
    let p = plan_with(
        json!({ "boundaries": { "common": ["common/**"] } }),
        json!([
            { "id": "arch", "phase": "architecture", "modifies": ["common/types/**"] },
            { "id": "a", "modifies": ["src/a/**"], "reads": ["common/types/**"], "depends_on": ["arch"] },
            { "id": "b", "modifies": ["src/b/**"] },
            { "id": "c", "modifies": ["src/a/x.rs", "src/b/**"] },
            { "id": "d", "modifies": ["docs/**"] },
        ]),
    );
    let x = run(&p);
    let file = fugue_planner::boundaries(&p, &x);
    let json = serde_json::to_value(&file).expect("serializes");
    assert_eq!(
        json["a"],
        json!({
            "dependencies": ["common/types/**", "arch"],
            "can_modify": ["src/a/**"],
            "cannot_modify": ["common/**", "src/a/x.rs"],
            "parallel_safe": false,
            "status": "active"
        })
    );
    assert_eq!(json["c"]["cannot_modify"], json!(["common/**", "src/a/**"]), "overlapping writes only; its own patterns are left out");
    assert_eq!(json["d"]["cannot_modify"], json!(["common/**"]), "nothing of the phase overlaps docs/**");
    assert_eq!(json["d"]["parallel_safe"], json!(true));
    assert_eq!(json["arch"]["parallel_safe"], json!(false), "a serial phase never runs in parallel");
    assert_eq!(json["arch"]["cannot_modify"], json!(["common/**"]));
}

#[test]
fn isolate_boundaries_mark_overlapping_writers_unsafe() {
    let p = plan_with(
        json!({ "parallelization": { "overlap": "isolate" } }),
        json!([
            { "id": "a", "modifies": ["src/**"] },
            { "id": "b", "modifies": ["src/x"] },
            { "id": "c", "modifies": ["docs/**"] },
        ]),
    );
    let file = fugue_planner::boundaries(&p, &run(&p));
    let safe: Vec<bool> = file.0.values().map(|b| b.parallel_safe).collect();
    assert_eq!(safe, [false, false, true]);
}

#[test]
fn conflicts_grow_linearly_not_quadratically() {
    // 3000 packages, each task writes its own and reads the common code; one task rewrites
    // every package. Pairwise comparison would see 4.5 million pairs; the trie sees each
    // task's path once, and the writer of `pkg/**` orders against the others through one chain.
    let n = 3000;
    let mut list: Vec<serde_json::Value> =
        (0..n).map(|i| json!({ "id": format!("t{i}"), "modifies": [format!("pkg/p{i}/**")], "reads": ["common/**"] })).collect();
    list.push(json!({ "id": "all", "modifies": ["pkg/**"] }));
    let x = run(&tasks(json!(list)));
    let ww = edges_of(&x, &EdgeReason::WriteWrite);
    assert_eq!(ww.len(), n);
    assert!(ww.iter().all(|(_, to)| to == "all"));
    assert!(edges_of(&x, &EdgeReason::WriteRead).is_empty(), "nobody writes common/**");
    assert_eq!(groups(&x).len(), 2);
}

fn representative() -> Plan {
    plan(json!({
        "version": 1,
        "parallelization": { "max_agents": 3 },
        "boundaries": { "common": ["common/**"], "serial": { "migrations": ["migrations/**"] } },
        "agents": {
            "claude": { "command": ["claude", "-p", "{prompt}"] },
            "codex": { "command": ["codex", "exec", "{prompt}"] }
        },
        "tasks": [
            { "id": "define-contracts", "phase": "architecture", "agent": "claude", "modifies": ["common/types/**"], "estimate": "10m" },
            { "id": "test-utils", "phase": "test-infrastructure", "agent": "claude", "modifies": ["tests/support/**"], "estimate": "5m" },
            { "id": "trading", "agent": "claude", "modifies": ["src/features/trading/**", "api/trading/**"], "reads": ["common/types/**"], "estimate": "15m" },
            { "id": "analysis", "agent": "codex", "modifies": ["src/features/analysis/**"], "reads": ["common/types/**"], "estimate": "12m" },
            { "id": "sidebar", "agent": "codex", "modifies": ["src/ui/sidebar.tsx"], "estimate": "5m" },
            { "id": "header", "agent": "claude", "modifies": ["src/ui/header.tsx"], "estimate": "5m" },
            { "id": "migration", "agent": "claude", "modifies": ["migrations/0042_orders.sql"], "estimate": "3m" },
            { "id": "orders", "agent": "claude", "modifies": ["src/features/orders/**"], "reads": ["migrations/**"], "depends_on": ["migration"], "estimate": "8m" },
            { "id": "dashboard", "agent": "codex", "modifies": ["src/ui/dashboard.tsx"], "depends_on": ["trading", "analysis"], "estimate": "6m" },
            { "id": "docs", "phase": "analysis", "agent": "claude", "modifies": ["docs/**"], "reads": ["src/**"], "estimate": "4m" }
        ]
    }))
}

#[test]
fn human_view_parallel() {
    let p = representative();
    let out = fugue_planner::render_human(&p, &run(&p));
    assert!(out.contains("⚡ Execution Mode: PARALLEL"));
    assert!(out.contains("Agents: 3 (limited by max_agents config)"));
    assert!(out.contains("Progress: [░░░░░░░░░░░░░░░░] 0/10 tasks complete"));
    insta::assert_snapshot!("human_parallel", out);
}

#[test]
fn human_view_sequential() {
    let p = tasks(json!([
        { "id": "types", "modifies": ["src/types.ts"] },
        { "id": "component", "modifies": ["src/component.tsx"], "reads": ["src/types.ts"] },
    ]));
    let out = fugue_planner::render_human(&p, &run(&p));
    assert!(out.contains("Order: types → component"));
    insta::assert_snapshot!("human_sequential", out);
}

#[test]
fn json_shape_matches_the_design() {
    let p = tasks(json!([
        { "id": "architecture", "phase": "architecture", "estimate": "5m" },
        { "id": "trading", "modifies": ["src/features/trading/**"], "depends_on": ["architecture"], "estimate": "5m" },
    ]));
    let v = serde_json::to_value(run(&p).graph()).expect("serializes");
    assert_eq!(
        v,
        json!({
            "version": 1,
            "tasks": [
                { "id": "architecture", "phase": "architecture", "agent": "claude", "modifies": [], "reads": [], "depends_on": [] },
                { "id": "trading", "phase": "implementation", "agent": "claude", "modifies": ["src/features/trading/**"], "reads": [], "depends_on": ["architecture"] }
            ],
            "edges": [ { "from": "architecture", "to": "trading", "reason": "declared" } ],
            "execution_strategy": {
                "mode": "SEQUENTIAL", "strategy": "D", "max_agents": 5,
                "parallel_groups": [
                    { "group_id": "architecture-1", "phase": "architecture", "tasks": [ { "id": "architecture", "agent": "claude", "scope": [] } ], "can_conflict": false },
                    { "group_id": "implementation-1", "phase": "implementation", "tasks": [ { "id": "trading", "agent": "claude", "scope": ["src/features/trading/**"] } ], "can_conflict": false }
                ],
                "critical_path": ["architecture", "trading"],
                "estimate": { "sequential_s": 600.0, "parallel_s": 600.0, "speedup": 1.0 }
            }
        })
    );
}

#[test]
fn human_view_shortens_long_lists() {
    let list: Vec<serde_json::Value> = (0..30).map(|i| json!({ "id": format!("t{i}"), "modifies": [format!("src/m{i}/**")] })).collect();
    let p = plan_with(json!({ "parallelization": { "enabled": false } }), json!(list));
    let out = fugue_planner::render_human(&p, &run(&p));
    assert!(out.contains("Reason: parallelization is disabled in the plan"), "{out}");
    assert!(out.contains("Order: t0 → t1 → t2 → t3 → t4 → t5 → t6 → t7 → t8 → … → t28 → t29"), "{out}");
    assert!(out.contains("Skipping parallel orchestration (disabled)"), "{out}");
    assert_box_is_even(&out);

    let mut p = p;
    p.parallelization.enabled = true;
    let out = fugue_planner::render_human(&p, &run(&p));
    assert!(out.contains("└── … 18 more tasks"), "{out}");
    assert!(out.contains("Agents: 5 (limited by max_agents config)"), "{out}");
    assert_box_is_even(&out);
}

/// Every line of the box has the same width in terminal columns.
fn assert_box_is_even(out: &str) {
    let widths: Vec<usize> = out.lines().take_while(|l| !l.starts_with("Critical")).map(unicode_width::UnicodeWidthStr::width).collect();
    assert!(widths.len() > 3 && widths.windows(2).all(|w| w[0] == w[1]), "{out}");
}
