//! The bad-input corpus beyond plans: plugin configs, plugin manifests and libraries, plan
//! files that cannot be read, and damaged state files under `.claude/`.
//!
//! Every case is a row of a table: the input (a fixture under `fixtures/bad-inputs/<kind>/`),
//! the command, the exit code, and fragments the message must hold — the file it names, the
//! line or JSON pointer, and a stable piece of the wording that says what to change. No case
//! may panic.
//!
//! Exit codes follow DESIGN.md: input the user wrote (a plan, a plugin they point at) is bad
//! input, exit 2. A state file fugue wrote itself and found damaged (journal, saved plan,
//! snapshots) is exit 3: nothing in the command line or the plan can fix it, the state dir
//! (the environment) needs attention, and the message says how. A damaged snapshot that is
//! derived from the journal is not an error at all: `resume` rewrites it.
//!
//! The `gap_*` tests at the end pinned behaviour that was missing when the corpus was written
//! (a BOM in a plan, a journal without `run_started`, a saved plan that no longer matches the
//! journal, …); each is fixed and they now guard it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{Output, fixtures, fugue, git, temp};

fn corpus(kind: &str) -> PathBuf {
    fixtures().join("bad-inputs").join(kind)
}

/// A Rust panic prints `thread '…' panicked at FILE:LINE`; a message may say "panicked" itself
/// (a plugin whose `manifest()` panicked), so the location form is what counts.
fn assert_no_panic(case: &str, out: &Output) {
    let panicked = |s: &str| s.contains("panicked at") || s.contains("RUST_BACKTRACE");
    assert!(!panicked(&out.stderr) && !panicked(&out.stdout), "{case}: panicked\n{}", out.stderr);
}

fn assert_case(case: &str, out: &Output, code: i32, fragments: &[&str]) {
    assert_no_panic(case, out);
    assert_eq!(out.code, code, "{case}: exit code\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    for f in fragments {
        assert!(out.stderr.contains(f), "{case}: expected `{f}` in the message\n{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// Plugin configs: plans whose `config` violates the built-in codemod plugin's schema.

/// `# expect: LINE CODE POINTER` on the first line, or the same in `<file>.expect`.
fn config_expectation(path: &Path, text: &str) -> (usize, String, String) {
    let spec = match text.lines().next().and_then(|l| l.strip_prefix("# expect: ")) {
        Some(s) => s.to_owned(),
        None => std::fs::read_to_string(path.with_extension("json.expect")).expect("a `# expect:` line or a .expect file"),
    };
    let mut parts = spec.split_whitespace();
    let line = parts.next().and_then(|l| l.parse().ok()).expect("line number");
    let code = parts.next().expect("issue code").to_owned();
    let pointer = parts.next().expect("JSON pointer").to_owned();
    (line, code, pointer)
}

#[test]
fn every_bad_plugin_config_is_located_with_its_pointer() {
    let dir = temp();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus("configs")).expect("corpus").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    let mut cases = 0;
    for path in entries.iter().filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json")) {
        let text = std::fs::read_to_string(path).expect("read case");
        let (line, code, pointer) = config_expectation(path, &text);
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        std::fs::copy(path, dir.path().join(&name)).expect("copy");
        let out = fugue(dir.path(), &["plan", &name]);
        let fragments = [format!("[{name}:{line}:"), code, pointer];
        assert_case(&name, &out, 2, &fragments.iter().map(String::as_str).collect::<Vec<_>>());
        if out.stderr.contains("plugin/config") {
            assert!(out.stderr.contains("fugue plugins inspect codemod"), "{name}: the help names the schema's source\n{}", out.stderr);
        }
        cases += 1;
    }
    assert!(cases >= 10, "the config corpus holds {cases} cases");
}

// ---------------------------------------------------------------------------------------------
// Plan files that cannot be read or hold no plan at all (the located ones are in bad_plans.rs).

struct PlanCase {
    file: &'static str,
    /// Fragments besides the file name.
    expect: &'static [&'static str],
}

const PLAN_CASES: &[PlanCase] = &[
    PlanCase { file: "non-utf8.yaml", expect: &["failed to read non-utf8.yaml", "valid UTF-8"] },
    PlanCase { file: "empty.yaml", expect: &["failed to load empty.yaml", "expected object, found null"] },
    PlanCase { file: "comment-only.yaml", expect: &["failed to load comment-only.yaml", "expected object, found null"] },
    PlanCase { file: "binary.yaml", expect: &["[binary.yaml:1:1]", "expected object, found a string"] },
    PlanCase { file: "tab-indent.yaml", expect: &["[tab-indent.yaml:3:", "tabs disallowed"] },
    PlanCase { file: "undefined-alias.yaml", expect: &["[undefined-alias.yaml:5:", "unknown anchor"] },
    PlanCase { file: "two-documents.yaml", expect: &["[two-documents.yaml:3:", "remove the second `---`"] },
    PlanCase { file: "huge-duration.yaml", expect: &["[huge-duration.yaml:5:", "/tasks/0/estimate", "is not a duration"] },
    PlanCase { file: "huge-number.yaml", expect: &["[huge-number.yaml:2:", "/parallelization/max_agents"] },
    PlanCase { file: "bom-unknown-agent.yaml", expect: &["[bom-unknown-agent.yaml:5:", "unknown agent `shx`"] },
];

#[test]
fn unreadable_and_empty_plans_are_bad_input() {
    let dir = temp();
    for case in PLAN_CASES {
        std::fs::copy(corpus("plans").join(case.file), dir.path().join(case.file)).expect("copy");
        let out = fugue(dir.path(), &["plan", case.file]);
        assert_case(case.file, &out, 2, case.expect);
    }
    std::fs::create_dir(dir.path().join("a-directory.yaml")).expect("mkdir");
    for args in [["plan", "a-directory.yaml"], ["run", "a-directory.yaml"]] {
        let out = fugue(dir.path(), &args);
        assert_case("a-directory.yaml", &out, 2, &["failed to read a-directory.yaml", "Is a directory"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Plugin libraries and manifests.

/// `manifest_from_file.rs` compiled once: a raw-ABI plugin serving the manifest file named by
/// `FUGUE_TEST_MANIFEST` and exporting ABI `FUGUE_TEST_ABI` (default 1).
fn manifest_plugin() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BUILT
        .get_or_init(|| {
            let dir = tempfile::Builder::new().prefix("fugue-manifest-plugin-").tempdir().expect("tempdir");
            let lib = dir.path().join(format!("{}manifest_test{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let out = Command::new(rustc)
                .args(["--edition", "2024", "--crate-type", "cdylib", "--crate-name", "manifest_test", "-C", "debuginfo=0", "-o"])
                .arg(&lib)
                .arg(corpus("plugins").join("manifest_from_file.rs"))
                .output()
                .expect("run rustc");
            assert!(out.status.success(), "rustc failed:\n{}", String::from_utf8_lossy(&out.stderr));
            (dir, lib)
        })
        .1
}

fn inspect_with(lib: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_fugue"))
        .arg("plugins")
        .arg("inspect")
        .arg(lib)
        .env("NO_COLOR", "1")
        .env_remove("FUGUE_PLUGIN_PATH")
        .envs(env.iter().copied())
        .output()
        .expect("run fugue");
    out.into()
}

struct ManifestCase {
    file: &'static str,
    /// Fragments besides the library's path: the JSON pointer and the reason.
    expect: &'static [&'static str],
}

const MANIFEST_CASES: &[ManifestCase] = &[
    ManifestCase { file: "not-json.json", expect: &["returned a manifest that is not valid JSON", "line 1 column 17"] },
    ManifestCase { file: "empty.json", expect: &["returned a manifest that is not valid JSON", "EOF while parsing"] },
    ManifestCase {
        file: "array.json",
        expect: &["has an invalid manifest (at the top level:", "is not of type \"object\"", "fix the plugin's `manifest()`"],
    },
    ManifestCase { file: "missing-name.json", expect: &["has an invalid manifest (at the top level:", "\"name\" is a required property"] },
    ManifestCase { file: "bad-name.json", expect: &["has an invalid manifest (at /name:", "\"Bad Name\" does not match"] },
    ManifestCase { file: "bad-version.json", expect: &["has an invalid manifest (at /version:", "\"one\" does not match"] },
    ManifestCase { file: "bad-kind.json", expect: &["has an invalid manifest (at /kind:", "\"robot\""] },
    ManifestCase { file: "empty-description.json", expect: &["has an invalid manifest (at /description:", "shorter than 1 character"] },
    ManifestCase { file: "abi-zero.json", expect: &["has an invalid manifest (at /abi_version:", "less than the minimum of 1"] },
    ManifestCase { file: "abi-disagrees.json", expect: &["exports ABI 1 but its manifest says abi_version 2", "PluginManifest::new"] },
    ManifestCase {
        file: "config-schema-string.json",
        expect: &["has an invalid manifest (at /config_schema:", "is not of type \"object\""],
    },
    ManifestCase { file: "config-schema-invalid.json", expect: &["plugin `raw`", "has a config_schema that is not a valid JSON schema"] },
    ManifestCase { file: "unknown-field.json", expect: &["has an invalid manifest (at the top level:", "'entrypoint' was unexpected"] },
    ManifestCase { file: "metadata-not-object.json", expect: &["has an invalid manifest (at /metadata:", "is not of type \"object\""] },
];

#[test]
fn every_bad_manifest_names_the_library_and_the_pointer() {
    let lib = manifest_plugin();
    let shown = lib.display().to_string();
    let manifests = corpus("manifests");
    let valid = inspect_with(lib, &[("FUGUE_TEST_MANIFEST", manifests.join("valid.json").as_os_str())]);
    assert_eq!(valid.code, 0, "the harness plugin loads with a valid manifest: {}", valid.stderr);
    assert!(valid.stdout.contains("raw 0.1.0 (agent plugin)"), "{}", valid.stdout);
    let listed = std::fs::read_dir(&manifests).expect("corpus").count();
    assert_eq!(listed, MANIFEST_CASES.len() + 1, "every manifest fixture (and valid.json) has a row in MANIFEST_CASES");
    for case in MANIFEST_CASES {
        let out = inspect_with(lib, &[("FUGUE_TEST_MANIFEST", manifests.join(case.file).as_os_str())]);
        let mut fragments = vec![shown.as_str()];
        fragments.extend_from_slice(case.expect);
        assert_case(case.file, &out, 2, &fragments);
    }
    let null = inspect_with(lib, &[("FUGUE_TEST_MANIFEST", manifests.join("no-such-file.json").as_os_str())]);
    assert_case("null manifest", &null, 2, &[&shown, "returned no manifest", "null pointer"]);
    let abi = inspect_with(lib, &[("FUGUE_TEST_MANIFEST", manifests.join("valid.json").as_os_str()), ("FUGUE_TEST_ABI", "7".as_ref())]);
    assert_case("wrong ABI", &abi, 2, &[&shown, "was built for ABI 7, this fugue speaks ABI 1", "rebuild it against fugue-core"]);
}

#[test]
fn files_that_are_not_plugins_are_refused_by_name() {
    let dir = temp();
    let d = dir.path();
    std::fs::write(d.join("libtext.so"), "this is not a shared library\n").expect("write");
    std::fs::write(d.join("libempty.so"), "").expect("write");
    let elf = std::fs::read(env!("CARGO_BIN_EXE_fugue")).expect("read the fugue binary");
    std::fs::write(d.join("libtruncated.so"), &elf[..256]).expect("write");
    std::fs::copy(corpus("manifests").join("valid.json"), d.join("manifest.json")).expect("copy");
    std::fs::create_dir(d.join("libdir.so")).expect("mkdir");
    let cases: &[(&str, &[&str])] = &[
        ("./libtext.so", &["failed to load plugin", "libtext.so"]),
        ("./libempty.so", &["failed to load plugin", "libempty.so"]),
        ("./libtruncated.so", &["failed to load plugin", "libtruncated.so"]),
        ("./manifest.json", &["failed to load plugin", "manifest.json"]),
        ("./libdir.so", &["failed to find plugin", "libdir.so"]),
        ("./libmissing.so", &["failed to find plugin", "libmissing.so", "no such file; check the path"]),
        ("no-such-plugin", &["failed to find plugin `no-such-plugin`", "FUGUE_PLUGIN_PATH"]),
    ];
    for (spec, expect) in cases {
        let out = fugue(d, &["plugins", "inspect", spec]);
        assert_case(spec, &out, 2, expect);
    }
    // The same files named by a plan: located at the agent's `plugin` key.
    let plan = "version: 1\nagents:\n  t: { plugin: ./libtext.so }\n  m: { plugin: ./libmissing.so }\n  n: { plugin: no-such-plugin }\ntasks:\n  - { id: a, agent: t, modifies: [src/a/**] }\n  - { id: b, agent: m, modifies: [src/b/**] }\n  - { id: c, agent: n, modifies: [src/c/**] }\n";
    std::fs::write(d.join("plan.yaml"), plan).expect("write");
    let out = fugue(d, &["plan", "plan.yaml"]);
    assert_case(
        "plan naming broken plugins",
        &out,
        2,
        &["[plan.yaml:3:", "/agents/t/plugin", "[plan.yaml:4:", "/agents/m/plugin", "[plan.yaml:5:", "/agents/n/plugin", "plugin/load"],
    );
}

// ---------------------------------------------------------------------------------------------
// State files. Each case starts from `state/base` (an interrupted two-task run: `a` merged,
// `b` pending) in a fresh git repository and replaces one file with a fixture of `state/cases`.

/// Where a state case puts its fixture (relative to `.claude`), or what it does instead.
#[derive(Clone, Copy)]
enum Put {
    /// Copy `state/cases/<fixture>` to this path under `.claude`.
    File(&'static str, &'static str),
    /// Remove this file.
    Remove(&'static str),
    /// Replace this file by a directory.
    Dir(&'static str),
}

struct StateCase {
    name: &'static str,
    put: Put,
    commands: &'static [&'static [&'static str]],
    code: i32,
    /// Fragments every command's message holds: the file, the line or column, the fix.
    expect: &'static [&'static str],
}

const JOURNAL: &str = "fugue/journal.ndjson";
const PLAN: &str = "fugue/plan.json";
const GRAPH: &str = "DEPENDENCY_GRAPH.json";
const LOCKS: &str = "RESOURCE_LOCKS.json";
const POOL: &str = "pool-state.json";
const READERS: &[&[&str]] = &[&["status"], &["validate"], &["report"], &["report", "--json"], &["resume"]];
/// The readers that only show a run (`resume` rewrites the derived snapshots instead).
const REPORTERS: &[&[&str]] = &[&["status"], &["validate"], &["report"], &["report", "--json"]];
const CORRUPT: &str = "move it aside to start a fresh run, or restore it from a backup";
const LOCKS_FIX: &str = "fix the file or delete it";
const POOL_FIX: &str = "fix the file, or run `fugue pool reset`";

const STATE_CASES: &[StateCase] = &[
    // The journal: a bad line before the last is corruption, named by line, exit 3.
    StateCase {
        name: "journal: text garbage",
        put: Put::File("journal-text-garbage.ndjson", JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["journal.ndjson is corrupt at line 1", CORRUPT],
    },
    StateCase {
        name: "journal: binary",
        put: Put::File("journal-binary.ndjson", JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["journal.ndjson is corrupt at line 1", CORRUPT],
    },
    StateCase {
        name: "journal: garbage line in the middle",
        put: Put::File("journal-bad-middle-line.ndjson", JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["journal.ndjson is corrupt at line 5", CORRUPT],
    },
    StateCase {
        name: "journal: empty object",
        put: Put::File("journal-empty-object-line.ndjson", JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["corrupt at line 5", "missing field `seq`", CORRUPT],
    },
    StateCase {
        name: "journal: array line",
        put: Put::File("journal-array-line.ndjson", JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["corrupt at line 2", CORRUPT],
    },
    StateCase {
        name: "journal: unknown event",
        put: Put::File("journal-unknown-event.ndjson", JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["corrupt at line 5", "unknown variant `attempt_exploded`"],
    },
    StateCase {
        name: "journal: wrong field type",
        put: Put::File("journal-wrong-type.ndjson", JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["corrupt at line 5", "expected u32"],
    },
    StateCase {
        name: "journal: bad task id",
        put: Put::File("journal-bad-task-id.ndjson", JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["corrupt at line 3", "`Bad Id!` is not a valid task id"],
    },
    StateCase {
        name: "journal: non-UTF-8 line",
        put: Put::File("journal-non-utf8-line.ndjson", JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["corrupt at line 4", CORRUPT],
    },
    StateCase {
        name: "journal: NUL bytes line",
        put: Put::File("journal-nul-bytes-line.ndjson", JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["corrupt at line 6", CORRUPT],
    },
    StateCase {
        name: "journal: is a directory",
        put: Put::Dir(JOURNAL),
        commands: READERS,
        code: 3,
        expect: &["failed to read the journal", "journal.ndjson", "Is a directory"],
    },
    // No record at all: there is no run (exit 2, as for a state dir never used).
    StateCase {
        name: "journal: empty",
        put: Put::File("journal-empty.ndjson", JOURNAL),
        commands: READERS,
        code: 2,
        expect: &["there is no run to resume in", ".claude", "fugue run PLAN"],
    },
    StateCase {
        name: "journal: blank lines",
        put: Put::File("journal-blank-lines.ndjson", JOURNAL),
        commands: READERS,
        code: 2,
        expect: &["there is no run to resume in", ".claude"],
    },
    // The saved plan, read by `resume` only.
    StateCase {
        name: "plan.json: garbage",
        put: Put::File("plan-garbage.json", PLAN),
        commands: &[&["resume"]],
        code: 3,
        expect: &["failed to read", "plan.json", "line 1 column 2"],
    },
    StateCase {
        name: "plan.json: empty",
        put: Put::File("plan-empty.json", PLAN),
        commands: &[&["resume"]],
        code: 3,
        expect: &["plan.json", "EOF while parsing a value at line 1"],
    },
    StateCase {
        name: "plan.json: truncated",
        put: Put::File("plan-truncated.json", PLAN),
        commands: &[&["resume"]],
        code: 3,
        expect: &["plan.json", "EOF while parsing", "line 16"],
    },
    StateCase {
        name: "plan.json: an array",
        put: Put::File("plan-array.json", PLAN),
        commands: &[&["resume"]],
        code: 3,
        expect: &["plan.json", "expected struct Plan"],
    },
    StateCase {
        name: "plan.json: tasks not a list",
        put: Put::File("plan-tasks-not-a-list.json", PLAN),
        commands: &[&["resume"]],
        code: 3,
        expect: &["plan.json", "expected a sequence", "line 44"],
    },
    StateCase {
        name: "plan.json: pattern escapes the repo",
        put: Put::File("plan-escaping-pattern.json", PLAN),
        commands: &[&["resume"]],
        code: 3,
        expect: &["plan.json", "`../../etc/**` climbs out of the repository"],
    },
    StateCase {
        name: "plan.json: bad task id",
        put: Put::File("plan-bad-task-id.json", PLAN),
        commands: &[&["resume"]],
        code: 3,
        expect: &["plan.json", "`Bad Id` is not a valid task id"],
    },
    StateCase {
        name: "plan.json: cycle",
        put: Put::File("plan-cycle.json", PLAN),
        commands: &[&["resume"]],
        code: 2,
        expect: &["dependency cycle: a → b → a", "/tasks/0/depends_on/0"],
    },
    StateCase {
        name: "plan.json: missing",
        put: Put::Remove(PLAN),
        commands: &[&["resume"]],
        code: 3,
        expect: &["failed to read the saved plan", "plan.json", "No such file"],
    },
    // DEPENDENCY_GRAPH.json: read by every command that shows a run; `resume` rewrites it
    // (see `garbage_in_derived_snapshots_is_rewritten_by_resume`).
    StateCase {
        name: "graph: garbage",
        put: Put::File("graph-garbage.json", GRAPH),
        commands: REPORTERS,
        code: 3,
        expect: &["failed to read", "DEPENDENCY_GRAPH.json", "line 1 column 1"],
    },
    StateCase {
        name: "graph: wrong shape",
        put: Put::File("graph-wrong-shape.json", GRAPH),
        commands: &[&["validate"], &["report"]],
        code: 3,
        expect: &["DEPENDENCY_GRAPH.json", "missing field `version`"],
    },
    StateCase {
        name: "graph: missing",
        put: Put::Remove(GRAPH),
        commands: &[&["validate"]],
        code: 2,
        expect: &["has no DEPENDENCY_GRAPH.json: nothing to validate against"],
    },
    // RESOURCE_LOCKS.json: `locks` and `resume` refuse to guess which locks are held.
    StateCase {
        name: "locks: garbage",
        put: Put::File("locks-garbage.json", LOCKS),
        commands: &[&["locks"], &["locks", "--json"], &["locks", "release", "--stale"], &["resume"]],
        code: 3,
        expect: &["failed to read", "RESOURCE_LOCKS.json", "line 1 column 1", LOCKS_FIX],
    },
    StateCase {
        name: "locks: wrong shape",
        put: Put::File("locks-wrong-shape.json", LOCKS),
        commands: &[&["locks"], &["resume"]],
        code: 3,
        expect: &["RESOURCE_LOCKS.json", "invalid type: integer `5`", "line 1 column 25", LOCKS_FIX],
    },
    StateCase {
        name: "locks: truncated",
        put: Put::File("locks-truncated.json", LOCKS),
        commands: &[&["locks"], &["locks", "release", "--stale"]],
        code: 3,
        expect: &["RESOURCE_LOCKS.json", "EOF while parsing", LOCKS_FIX],
    },
    StateCase {
        name: "locks: NUL bytes",
        put: Put::File("locks-zeroes.json", LOCKS),
        commands: &[&["locks"]],
        code: 3,
        expect: &["RESOURCE_LOCKS.json", "line 1 column 1", LOCKS_FIX],
    },
    // pool-state.json: the pool refuses to guess which slots hold work.
    StateCase {
        name: "pool: garbage",
        put: Put::File("pool-garbage.json", POOL),
        commands: &[&["resume"], &["pool", "status"], &["pool", "health"]],
        code: 3,
        expect: &["failed to parse", "pool-state.json", "line 1 column 1", POOL_FIX],
    },
    StateCase {
        name: "pool: wrong shape",
        put: Put::File("pool-wrong-shape.json", POOL),
        commands: &[&["resume"], &["pool", "status"]],
        code: 3,
        expect: &["pool-state.json", "expected u32", "line 1 column 34", POOL_FIX],
    },
];

/// A git repository holding the interrupted run of `state/base` in `.claude`.
fn state_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README.md"), "x\n").expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "init"]);
    let state = repo.join(".claude");
    std::fs::create_dir_all(state.join("fugue")).expect("mkdir");
    let base = corpus("state").join("base");
    for (from, to) in [("journal.ndjson", JOURNAL), ("plan.json", PLAN), (GRAPH, GRAPH), (LOCKS, LOCKS)] {
        std::fs::copy(base.join(from), state.join(to)).expect("copy base state");
    }
    repo
}

fn apply(repo: &Path, put: Put) {
    let state = repo.join(".claude");
    match put {
        Put::File(fixture, to) => {
            std::fs::copy(corpus("state").join("cases").join(fixture), state.join(to)).expect("copy case");
        }
        Put::Remove(to) => std::fs::remove_file(state.join(to)).expect("remove"),
        Put::Dir(to) => {
            std::fs::remove_file(state.join(to)).expect("remove");
            std::fs::create_dir(state.join(to)).expect("mkdir");
        }
    }
}

#[test]
fn damaged_state_files_are_named_with_their_line_and_fix() {
    let mut used = std::collections::BTreeSet::new();
    for case in STATE_CASES {
        let dir = temp();
        let repo = state_repo(dir.path());
        apply(&repo, case.put);
        if let Put::File(fixture, _) = case.put {
            used.insert(fixture);
        }
        for args in case.commands {
            let out = fugue(&repo, args);
            assert_case(&format!("{} (fugue {})", case.name, args.join(" ")), &out, case.code, case.expect);
        }
        // A refusal leaves the damaged file as it was: nothing is silently rewritten.
        if let Put::File(fixture, to) = case.put {
            let now = std::fs::read(repo.join(".claude").join(to)).expect("still there");
            let was = std::fs::read(corpus("state").join("cases").join(fixture)).expect("fixture");
            assert_eq!(now, was, "{}: the damaged file was changed", case.name);
        }
    }
    let fixtures: std::collections::BTreeSet<String> = std::fs::read_dir(corpus("state").join("cases"))
        .expect("cases")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let unused: Vec<&String> = fixtures.iter().filter(|f| !used.contains(f.as_str()) && !IGNORED_FIXTURES.contains(&f.as_str())).collect();
    assert!(unused.is_empty(), "state fixtures without a case: {unused:?}");
}

/// Fixtures used by the recovery test and the `gap_*` tests below.
const IGNORED_FIXTURES: &[&str] = &[
    "journal-torn-tail.ndjson",
    "snapshot-garbage.json",
    "journal-only-torn-line.ndjson",
    "journal-no-run-started.ndjson",
    "plan-unknown-agent.json",
    "plan-task-dropped.json",
    "plan-version-2.json",
];

#[test]
fn a_torn_last_journal_line_is_reported_and_ignored() {
    let dir = temp();
    let repo = state_repo(dir.path());
    apply(&repo, Put::File("journal-torn-tail.ndjson", JOURNAL));
    let out = fugue(&repo, &["status"]);
    assert_no_panic("torn tail", &out);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("the journal ends with a torn line"), "{}", out.stdout);
    assert!(out.stdout.contains("merged"), "the records before the torn line count: {}", out.stdout);
    for args in [&["validate"][..], &["report"]] {
        let out = fugue(&repo, args);
        assert_no_panic("torn tail", &out);
        assert_eq!(out.code, 0, "fugue {args:?}: {}", out.stderr);
    }
}

/// Snapshots derived from the journal and the saved plan.
const SNAPSHOTS: [&str; 4] = ["PARALLEL_STATUS.json", "WORKFLOW_STATE.json", "BOUNDARIES.json", GRAPH];

#[test]
fn garbage_in_derived_snapshots_is_rewritten_by_resume() {
    let dir = temp();
    let repo = state_repo(dir.path());
    for file in SNAPSHOTS {
        std::fs::copy(corpus("state").join("cases").join("snapshot-garbage.json"), repo.join(".claude").join(file)).expect("copy");
    }
    let out = fugue(&repo, &["resume"]);
    assert_case("resume over garbage snapshots", &out, 0, &["run finished: Success"]);
    for file in SNAPSHOTS {
        let text = std::fs::read_to_string(repo.join(".claude").join(file)).expect("rewritten");
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{file} is JSON again: {text}");
    }
}

#[test]
fn representative_diagnostics() {
    let dir = temp();
    let repo = state_repo(dir.path());
    apply(&repo, Put::File("journal-bad-middle-line.ndjson", JOURNAL));
    let journal = fugue(&repo, &["status"]).stderr;
    let d = dir.path();
    std::fs::copy(corpus("configs").join("05-task-config-wrong-type.yaml"), d.join("plan.yaml")).expect("copy");
    let config = fugue(d, &["plan", "plan.yaml"]).stderr;
    let manifests = corpus("manifests");
    let lib = manifest_plugin();
    let manifest = inspect_with(lib, &[("FUGUE_TEST_MANIFEST", manifests.join("bad-name.json").as_os_str())])
        .stderr
        .replace(&lib.display().to_string(), "[LIB]");
    insta::assert_snapshot!(format!(
        "--- fugue status (journal line 5 garbage)\n{journal}\n--- fugue plan (plugin config)\n{config}\n--- fugue plugins inspect (manifest)\n{manifest}"
    ));
}

// ---------------------------------------------------------------------------------------------
// Gaps found by the corpus, fixed; these keep them fixed.

#[test]
fn gap_a_journal_with_only_a_torn_line_says_so() {
    let dir = temp();
    let repo = state_repo(dir.path());
    apply(&repo, Put::File("journal-only-torn-line.ndjson", JOURNAL));
    for args in [&["status"][..], &["resume"]] {
        let out = fugue(&repo, args);
        assert_case("only a torn line", &out, 3, &["journal.ndjson", "line 1"]);
    }
}

#[test]
fn gap_a_journal_without_run_started_is_corrupt() {
    let dir = temp();
    let repo = state_repo(dir.path());
    apply(&repo, Put::File("journal-no-run-started.ndjson", JOURNAL));
    for args in READERS {
        let out = fugue(&repo, args);
        assert_case("no run_started", &out, 3, &["journal.ndjson", "line 1", "run_started"]);
    }
}

#[test]
fn gap_resume_checks_the_saved_plan_like_a_plan() {
    for (fixture, expect) in [
        ("plan-unknown-agent.json", &["plan.json:", "/tasks/1/agent", "unknown agent `nobody`"][..]),
        ("plan-task-dropped.json", &["plan.json", "`b`"]),
        ("plan-version-2.json", &["plan.json:", "/version"]),
    ] {
        let dir = temp();
        let repo = state_repo(dir.path());
        apply(&repo, Put::File(fixture, PLAN));
        let out = fugue(&repo, &["resume"]);
        assert_case(fixture, &out, 3, expect);
    }
}

#[test]
fn gap_status_mentions_an_unreadable_locks_file() {
    let dir = temp();
    let repo = state_repo(dir.path());
    apply(&repo, Put::File("locks-garbage.json", LOCKS));
    let out = fugue(&repo, &["status"]);
    assert_no_panic("status", &out);
    assert!(out.stdout.contains("RESOURCE_LOCKS.json") || out.stderr.contains("RESOURCE_LOCKS.json"), "{}\n{}", out.stdout, out.stderr);
}

#[test]
fn gap_dlopen_failures_say_why() {
    let dir = temp();
    // Long enough for the loader to read an ELF header, and find none.
    std::fs::write(dir.path().join("libtext.so"), "not a library\n".repeat(100)).expect("write");
    let out = fugue(dir.path(), &["plugins", "inspect", "./libtext.so"]);
    assert_case("dlopen reason", &out, 2, &["libtext.so", "invalid ELF header"]);
}

#[test]
fn gap_a_byte_order_mark_is_ignored() {
    let dir = temp();
    std::fs::copy(corpus("plans").join("bom-unknown-agent.yaml"), dir.path().join("plan.yaml")).expect("copy");
    let out = fugue(dir.path(), &["plan", "plan.yaml"]);
    assert_case("BOM", &out, 2, &["1 error", "unknown agent `shx`"]);
}
