//! `fugue init`: write a commented starter plan.

use crate::{CliError, CliResult, Global};

/// Arguments of `fugue init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {}

pub(crate) fn run(_global: &Global, _args: InitArgs) -> CliResult {
    Err(CliError::Input("not yet".into()))
}
