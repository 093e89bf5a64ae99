//! `fugue schema [--out DIR]`: write (or print) the JSON schemas of every file format, the
//! journal's lines included.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::{CliError, CliResult, Global};

/// Arguments of `fugue schema`.
#[derive(Debug, clap::Args)]
pub(crate) struct SchemaArgs {
    /// Write one `<name>.schema.json` per format into DIR instead of printing them.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Exit 1 when the files in DIR differ from the generated schemas, writing nothing.
    #[arg(long, requires = "out")]
    check: bool,
}

pub(crate) fn run(_global: &Global, args: SchemaArgs) -> CliResult {
    let schemas = fugue_engine::schemas();
    let Some(dir) = args.out else {
        let all: serde_json::Map<String, serde_json::Value> =
            schemas.iter().map(|(name, s)| ((*name).to_owned(), serde_json::to_value(s).unwrap_or_default())).collect();
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    };
    if args.check {
        let stale: Vec<&str> = schemas
            .iter()
            .filter(|(name, s)| std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(fugue_core::schema::render(s).as_str()))
            .map(|(name, _)| *name)
            .collect();
        if stale.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(CliError::Failed(format!(
            "schemas out of date in {}: {} (run `fugue schema --out {}`)",
            dir.display(),
            stale.join(", "),
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| CliError::env(&format!("failed to create {}", dir.display()), e))?;
    for (name, schema) in &schemas {
        let path = dir.join(name);
        fugue_core::state::write_atomic(&path, fugue_core::schema::render(schema).as_bytes())
            .map_err(|e| CliError::env(&format!("failed to write {}", path.display()), e))?;
    }
    println!("wrote {} schemas to {}", schemas.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}
