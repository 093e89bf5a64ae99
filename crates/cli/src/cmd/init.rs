//! `fugue init`: write a commented starter plan that validates as written.

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

/// The starter plan for `preset`.
pub(crate) fn starter_plan(preset: Preset) -> String {
    TEMPLATE.replace("{{AGENT}}", preset.name())
}

pub(crate) fn run(global: &Global, args: InitArgs) -> CliResult {
    let path = if args.out.is_absolute() { args.out.clone() } else { global.repo.join(&args.out) };
    if path.exists() && !args.force {
        return Err(CliError::Input(format!(
            "{} already exists: pass --force to overwrite it, or --out to pick another file",
            path.display()
        )));
    }
    fugue_core::state::write_atomic(&path, starter_plan(args.agent).as_bytes())
        .map_err(|e| CliError::env(&format!("failed to write {}", path.display()), e))?;
    if !global.quiet {
        println!("wrote {} (agent: {})", path.display(), args.agent.name());
        println!("next: edit the tasks, then `fugue plan {}`", args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_yields_a_valid_plan() {
        for preset in [Preset::Claude, Preset::Codex, Preset::Gemini, Preset::Aider, Preset::Opencode] {
            let text = starter_plan(preset);
            let loaded = fugue_core::load::load_str("fugue.yaml", &text, &Default::default());
            assert!(loaded.is_ok(), "{preset:?}: {:?}", loaded.err().map(|e| e.issues().to_vec()));
            let plan = loaded.map(|l| l.plan).ok();
            assert!(plan.is_some_and(|p| p.tasks.iter().all(|t| t.agent == preset.name())));
        }
    }

    #[test]
    fn the_template_offers_the_agents_crate_presets() {
        let plan = fugue_core::load::load_str("fugue.yaml", &starter_plan(Preset::Claude), &Default::default()).expect("valid").plan;
        for preset in fugue_agents::presets() {
            let Some(spec) = plan.agents.get(preset.name) else {
                panic!("the starter plan lacks the `{}` preset", preset.name);
            };
            let timeout = spec.timeout().map(fugue_core::HumanDuration);
            assert_eq!(*spec, preset.spec(timeout), "`{}` drifted from fugue_agents::presets()", preset.name);
        }
    }
}
