//! `fugue plan PLAN`: check a plan and show how it will execute.

use std::path::PathBuf;

use crate::{CliError, CliResult, Global};

/// Arguments of `fugue plan`.
#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// The plan file (YAML or JSON).
    plan: PathBuf,
}

pub(crate) fn run(_global: &Global, args: PlanArgs) -> CliResult {
    Err(CliError::Input(format!("cannot read {} yet", args.plan.display())))
}
