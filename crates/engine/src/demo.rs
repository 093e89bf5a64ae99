//! `fugue demo`: a sample repository and a plan that exercises every part of fugue.
//!
//! The repository is a tiny Rust crate; the plan has nine tasks across four phases (a serial
//! architecture task, a serial test specification, five parallel implementation tasks of
//! which one depends on two others, and two parallel analysis tasks). Every task is done by
//! the built-in `codemod` agent (declarative edits, no model needed) and reviewed by the
//! default `heuristic-review` gate, so the demo runs anywhere in seconds.

use std::path::{Path, PathBuf};

use crate::error::EngineError;

/// The demo plan, as written into the sample repository.
pub const DEMO_PLAN: &str = include_str!("demo_plan.yaml");

const FILES: &[(&str, &str)] = &[
    ("README.md", "# greeter\n\nA tiny crate that `fugue demo` builds in parallel.\n"),
    ("Cargo.toml", "[package]\nname = \"greeter\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
    ("src/lib.rs", "//! greeter: greetings, farewells and a counter.\n\n// modules\n"),
    (".gitignore", "/target\n/.claude/\n"),
];

fn git(dir: &Path, args: &[&str]) -> Result<(), EngineError> {
    // The sample repository's commits carry the demo's identity and are never signed.
    fugue_core::git::Git::default()
        .cmd(dir)
        .args([
            "-c",
            "user.name=fugue demo",
            "-c",
            "user.email=demo@fugue.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .run()?;
    Ok(())
}

/// Creates the sample repository in `dir` (which must not exist or be empty) and returns
/// the plan's path.
pub fn create(dir: &Path) -> Result<PathBuf, EngineError> {
    if dir.exists() && std::fs::read_dir(dir).map_err(|e| EngineError::io("read", dir, e))?.next().is_some() {
        return Err(EngineError::Input(format!("{} is not empty: give `fugue demo --dir` a new or empty directory", dir.display())));
    }
    for (path, text) in FILES {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| EngineError::io("create", parent, e))?;
        }
        std::fs::write(&p, text).map_err(|e| EngineError::io("write", &p, e))?;
    }
    git(dir, &["init", "-q"])?;
    git(dir, &["add", "-A"])?;
    git(dir, &["commit", "-qm", "greeter: initial commit"])?;
    let plan = dir.join("fugue-demo.yaml");
    std::fs::write(&plan, DEMO_PLAN).map_err(|e| EngineError::io("write", &plan, e))?;
    Ok(plan)
}
