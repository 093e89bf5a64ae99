//! `fugue init`: write a commented starter plan that validates as written.
//!
//! The plan fits the project: the ecosystems found at the repository root (`Cargo.toml`,
//! `package.json`, `pyproject.toml`, `go.mod`) decide the build caches the pool keeps and
//! seeds (`pool.keep_ignored`, `pool.seed`) and the tests gate's commands. Per ecosystem:
//!
//! * Rust: `target/`, seeded by copy (reflinks where the file system has them). Never hard
//!   links: cargo rewrites fingerprints and incremental data in place, which would write
//!   through into the user's `target/`. `cargo test`.
//! * JavaScript: `node_modules/`, seeded by copy: a hard link would let an agent that edits a
//!   dependency in place (a patch, a debugging print) change the user's copy. `npm test`.
//! * Python: `.venv/`, kept but not seeded: a virtualenv is not relocatable (its scripts'
//!   `#!` lines and an editable install point at the user's checkout, so a copied one would
//!   test the user's code, not the task's). pip's own download cache is shared already. `pytest`.
//! * Go: no cache in the checkout: the build and module caches (`GOCACHE`, `GOMODCACHE`) are
//!   per user, content-addressed and locked by the go tool, so every slot shares them as they
//!   are. `go test ./...`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::{CliError, CliResult, Global};

/// The coding-agent CLIs `fugue init` has presets for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Preset {
    /// Claude Code (`claude -p`, stream-json, acceptEdits).
    Claude,
    /// OpenAI Codex CLI (`codex exec --json`, workspace-write sandbox).
    Codex,
    /// Gemini CLI (`gemini -p`, stream-json, auto_edit).
    Gemini,
    /// Aider (`aider --message --yes-always`).
    Aider,
    /// opencode (`opencode run --format json`).
    Opencode,
}

impl Preset {
    fn name(self) -> &'static str {
        match self {
            Preset::Claude => "claude",
            Preset::Codex => "codex",
            Preset::Gemini => "gemini",
            Preset::Aider => "aider",
            Preset::Opencode => "opencode",
        }
    }
}

/// Arguments of `fugue init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// Where to write the plan (relative to the repository).
    #[arg(long, default_value = "fugue.yaml", value_name = "FILE")]
    out: PathBuf,
    /// The agent CLI the starter tasks use.
    #[arg(long, value_enum, default_value = "claude")]
    agent: Preset,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

const TEMPLATE: &str = include_str!("init_template.yaml");

/// A project kind `fugue init` recognises by a file at the repository root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ecosystem {
    Rust,
    JavaScript,
    Python,
    Go,
}

impl Ecosystem {
    const ALL: [Ecosystem; 4] = [Ecosystem::Rust, Ecosystem::JavaScript, Ecosystem::Python, Ecosystem::Go];

    fn marker(self) -> &'static str {
        match self {
            Ecosystem::Rust => "Cargo.toml",
            Ecosystem::JavaScript => "package.json",
            Ecosystem::Python => "pyproject.toml",
            Ecosystem::Go => "go.mod",
        }
    }

    /// The build cache in the checkout and how a new slot is seeded with it (see the module docs).
    fn cache(self) -> Option<(&'static str, &'static str)> {
        match self {
            Ecosystem::Rust => Some(("target/", "copy")),
            Ecosystem::JavaScript => Some(("node_modules/", "copy")),
            Ecosystem::Python => Some((".venv/", "none")),
            Ecosystem::Go => None,
        }
    }

    /// Directories outside the checkout its build tools write (confined agents may write only
    /// these beyond their worktree): cargo's registry and git checkouts, npm's cache, pip's
    /// cache, Go's module and build caches.
    fn home_caches(self) -> &'static [&'static str] {
        match self {
            Ecosystem::Rust => &["~/.cargo"],
            Ecosystem::JavaScript => &["~/.npm"],
            Ecosystem::Python => &["~/.cache/pip"],
            Ecosystem::Go => &["~/go", "~/.cache/go-build"],
        }
    }

    fn test_command(self) -> &'static str {
        match self {
            Ecosystem::Rust => "cargo test",
            Ecosystem::JavaScript => "npm test",
            Ecosystem::Python => "pytest",
            Ecosystem::Go => "go test ./...",
        }
    }

    /// The ecosystems whose marker file is at `root`, in a fixed order.
    pub(crate) fn detect(root: &std::path::Path) -> Vec<Ecosystem> {
        Self::ALL.into_iter().filter(|e| root.join(e.marker()).is_file()).collect()
    }
}

/// The starter plan for `preset` in a project of these ecosystems (none found: the generic
/// caches, and the tests gate left commented out).
pub(crate) fn starter_plan(preset: Preset, ecosystems: &[Ecosystem]) -> String {
    let quoted = |items: &[&str]| items.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ");
    let (caches, tests) = if ecosystems.is_empty() {
        (
            "  keep_ignored: [\"target/\", \"node_modules/\"]   # build caches kept when a worktree is recycled\n".to_owned(),
            "  # tests: { commands: [\"cargo test\"], coverage: { report: lcov.info, format: lcov, min: 85 } }\n".to_owned(),
        )
    } else {
        let names: Vec<&str> = ecosystems.iter().map(|e| e.marker()).collect();
        let kept: Vec<(&str, &str)> = ecosystems.iter().filter_map(|e| e.cache()).collect();
        let mut caches = format!("  # found {}: its build caches and tests\n", names.join(", "));
        caches.push_str(&format!(
            "  keep_ignored: [{}]   # kept when a worktree or QA checkout is recycled\n",
            quoted(&kept.iter().map(|(p, _)| *p).collect::<Vec<_>>())
        ));
        if !kept.is_empty() {
            let seeds: Vec<String> = kept.iter().map(|(p, m)| format!("\"{p}\": {m}")).collect();
            caches.push_str(&format!(
                "  seed: {{ {} }}   # how a new slot gets them from your checkout: copy | reflink | hardlink | none\n",
                seeds.join(", ")
            ));
        }
        let commands: Vec<&str> = ecosystems.iter().map(|e| e.test_command()).collect();
        (caches, format!("  tests: {{ commands: [{}] }}\n", quoted(&commands)))
    };
    let home: Vec<&str> = ecosystems.iter().flat_map(|e| e.home_caches().iter().copied()).collect();
    let home_caches = if home.is_empty() {
        "# caches: [\"~/.cargo\"]        # directories outside the checkout agents may also write\n".to_owned()
    } else {
        format!("caches: [{}]   # outside the checkout, agents may also write these (the build tools' caches)\n", quoted(&home))
    };
    TEMPLATE
        .replace("{{AGENT}}", preset.name())
        .replace("{{POOL_CACHES}}", &caches)
        .replace("{{TESTS}}", &tests)
        .replace("{{HOME_CACHES}}", &home_caches)
}

pub(crate) fn run(global: &Global, args: InitArgs) -> CliResult {
    let path = if args.out.is_absolute() { args.out.clone() } else { global.repo.join(&args.out) };
    if path.exists() && !args.force {
        return Err(CliError::Input(format!(
            "{} already exists: pass --force to overwrite it, or --out to pick another file",
            path.display()
        )));
    }
    let ecosystems = Ecosystem::detect(&global.repo);
    fugue_core::state::write_atomic(&path, starter_plan(args.agent, &ecosystems).as_bytes())
        .map_err(|e| CliError::env(&format!("failed to write {}", path.display()), e))?;
    if !global.quiet {
        let found = if ecosystems.is_empty() {
            String::new()
        } else {
            format!(", caches and tests for {}", ecosystems.iter().map(|e| e.marker()).collect::<Vec<_>>().join(", "))
        };
        println!("wrote {} (agent: {}{found})", path.display(), args.agent.name());
        println!("next: edit the tasks, then `fugue plan {}`", args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_agents_may_write_the_build_tools_caches_of_the_ecosystem() {
        let plan = |ecos: &[Ecosystem]| {
            fugue_core::load::load_str("fugue.yaml", &starter_plan(Preset::Claude, ecos), &Default::default()).expect("valid").plan
        };
        assert_eq!(plan(&[Ecosystem::Rust]).caches, ["~/.cargo"]);
        assert_eq!(plan(&[Ecosystem::JavaScript, Ecosystem::Go]).caches, ["~/.npm", "~/go", "~/.cache/go-build"]);
        assert!(plan(&[]).caches.is_empty(), "none found: left commented out");
        assert!(starter_plan(Preset::Claude, &[]).contains("# budget: {"), "budgets are shown");
    }

    #[test]
    fn every_preset_yields_a_valid_plan() {
        for preset in [Preset::Claude, Preset::Codex, Preset::Gemini, Preset::Aider, Preset::Opencode] {
            let text = starter_plan(preset, &[]);
            let loaded = fugue_core::load::load_str("fugue.yaml", &text, &Default::default());
            assert!(loaded.is_ok(), "{preset:?}: {:?}", loaded.err().map(|e| e.issues().to_vec()));
            let plan = loaded.map(|l| l.plan).ok();
            assert!(plan.is_some_and(|p| p.tasks.iter().all(|t| t.agent == preset.name())));
        }
    }

    #[test]
    fn the_template_offers_the_agents_crate_presets() {
        let plan = fugue_core::load::load_str("fugue.yaml", &starter_plan(Preset::Claude, &[]), &Default::default()).expect("valid").plan;
        for preset in fugue_agents::presets() {
            let Some(spec) = plan.agents.get(preset.name) else {
                panic!("the starter plan lacks the `{}` preset", preset.name);
            };
            let timeout = spec.timeout().map(fugue_core::HumanDuration);
            assert_eq!(*spec, preset.spec(timeout), "`{}` drifted from fugue_agents::presets()", preset.name);
        }
    }

    /// The pool and tests settings `fugue init` writes for each kind of project.
    #[test]
    fn caches_and_tests_follow_the_ecosystem() {
        use Ecosystem::*;
        let mut shown = String::new();
        for eco in [&[][..], &[Rust], &[JavaScript], &[Python], &[Go], &[Rust, JavaScript]] {
            let text = starter_plan(Preset::Claude, eco);
            let loaded = fugue_core::load::load_str("fugue.yaml", &text, &Default::default());
            let plan = match loaded {
                Ok(l) => l.plan,
                Err(e) => panic!("{eco:?}: {:?}", e.issues()),
            };
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("keep_ignored") || l.contains("seed:") || l.contains("tests:") || l.contains("# found "))
                .collect();
            shown.push_str(&format!("## {eco:?}\n{}\n", lines.join("\n")));
            // What is written is what the plan means: every cache kept, the seeds parsed.
            for path in plan.pool.seed.keys() {
                assert!(plan.pool.keep_ignored.contains(path), "{eco:?}: {path}");
            }
        }
        insta::assert_snapshot!(shown);
    }

    #[test]
    fn detection_reads_the_marker_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Ecosystem::detect(dir.path()).is_empty());
        for f in ["go.mod", "Cargo.toml"] {
            std::fs::write(dir.path().join(f), "").expect("write");
        }
        assert_eq!(Ecosystem::detect(dir.path()), [Ecosystem::Rust, Ecosystem::Go]);
    }
}
