//! Building plugins for the tests: the real ones with cargo, the broken fixtures with rustc.
//!
//! The real plugins are built by `cargo build -p …` in the workspace (a no-op when the test
//! run already built them) and located from cargo's JSON artifact messages, so the target
//! directory's layout and `CARGO_TARGET_DIR` do not matter. Fixtures are single files compiled
//! with one `rustc --crate-type cdylib` each into a per-process temporary directory; the one
//! that needs fugue-core links the rlib cargo built for this test binary (found next to it in
//! `target/<profile>/deps`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The real plugins' libraries by package name.
pub(crate) fn real_plugins() -> &'static HashMap<String, PathBuf> {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args(["build", "--quiet", "--message-format=json", "-p", "fugue-plugin-codemod", "-p", "fugue-plugin-heuristic-review"])
            .output()
            .expect("run cargo");
        assert!(out.status.success(), "cargo build of the plugins failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let mut libs = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let package = msg["target"]["name"].as_str().unwrap_or_default().replace('_', "-");
            let shared = msg["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(std::env::consts::DLL_SUFFIX));
            if let Some(lib) = shared {
                libs.insert(package, PathBuf::from(lib));
            }
        }
        assert!(
            libs.contains_key("fugue-plugin-codemod") && libs.contains_key("fugue-plugin-heuristic-review"),
            "plugins not found in cargo's output: {libs:?}"
        );
        libs
    })
}

pub(crate) fn codemod() -> &'static Path {
    &real_plugins()["fugue-plugin-codemod"]
}

pub(crate) fn heuristic_review() -> &'static Path {
    &real_plugins()["fugue-plugin-heuristic-review"]
}

fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::Builder::new().prefix("fugue-plugin-fixtures-").tempdir().expect("tempdir")).path()
}

/// The newest rlib of fugue-core next to this test binary, and its deps directory.
fn fugue_core_rlib() -> (PathBuf, PathBuf) {
    let deps = std::env::current_exe().expect("test exe").parent().expect("deps dir").to_owned();
    let rlib = std::fs::read_dir(&deps)
        .expect("read deps")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libfugue_core-") && n.ends_with(".rlib")))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no libfugue_core-*.rlib in {}", deps.display()));
    (rlib, deps)
}

/// Compiles `tests/fixtures/<source>.rs` into `lib<name>.so` (once per process), with
/// `fugue_case="<case>"` set when given and fugue-core linked when `with_core`.
pub(crate) fn fixture(name: &str, source: &str, case: Option<&str>, with_core: bool) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    if let Some(path) = built.lock().expect("lock").get(name) {
        return path.clone();
    }
    let out = fixture_dir().join(format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{source}.rs"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.args(["--edition", "2024", "--crate-type", "cdylib", "--crate-name", name, "-C", "debuginfo=0", "--cap-lints", "allow", "-o"])
        .arg(&out)
        .arg(&src);
    if let Some(case) = case {
        cmd.args(["--cfg", &format!("fugue_case=\"{case}\"")]);
    }
    if with_core {
        let (rlib, deps) = fugue_core_rlib();
        cmd.arg("--extern").arg(format!("fugue_core={}", rlib.display())).arg("-L").arg(format!("dependency={}", deps.display()));
    }
    let status = cmd.output().expect("run rustc");
    assert!(status.status.success(), "rustc failed for fixture {name}:\n{}", String::from_utf8_lossy(&status.stderr));
    built.lock().expect("lock").insert(name.to_owned(), out.clone());
    out
}
