//! `fugue plugins list` and `fugue plugins inspect PATH`: what plugins there are and what they
//! expect.
//!
//! `list` scans the directories of `FUGUE_PLUGIN_PATH` and the repository's `target/debug` and
//! `target/release` (where `cargo build -p fugue-plugin-…` puts them) and loads each plugin
//! found, so a broken one shows its error in the list. `inspect` loads one plugin, by path or
//! by bare name, and prints its manifest, ABI version and config schema. Loading checks the
//! ABI version, the manifest and the config schema exactly as a run would; a plugin that fails
//! is bad input (exit 2).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fugue_agents::{builtin_plugins, discover_plugins, open_plugin_in, plugin_search_path};
use fugue_core::plugin::PLUGIN_ABI_VERSION;

use crate::{CliError, CliResult, Global};

/// Arguments of `fugue plugins`.
#[derive(Debug, clap::Args)]
pub(crate) struct PluginsArgs {
    #[command(subcommand)]
    command: PluginsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PluginsCommand {
    /// List the plugins in FUGUE_PLUGIN_PATH and in the repository's target/{debug,release}.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a plugin's manifest, ABI version and config schema.
    Inspect {
        /// The plugin library, or a bare name looked up like in a plan.
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(global: &Global, args: PluginsArgs) -> CliResult {
    match args.command {
        PluginsCommand::List { json } => list(global, json),
        PluginsCommand::Inspect { path, json } => inspect(global, &path, json),
    }
}

fn search_dirs(repo: &Path) -> Vec<PathBuf> {
    let mut dirs = plugin_search_path();
    for profile in ["debug", "release"] {
        dirs.push(repo.join("target").join(profile));
    }
    dirs
}

fn to_json(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Writes the command's output at once; a reader that went away (`| head`) is not an error.
fn emit(out: &str) -> CliResult {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::env("failed to write to stdout", e)),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn list(global: &Global, json: bool) -> CliResult {
    let dirs = search_dirs(&global.repo);
    let found = discover_plugins(&dirs);
    let builtins = builtin_plugins();
    let mut out = String::new();
    if json {
        let rows: Vec<serde_json::Value> = found
            .iter()
            .map(|s| match &s.plugin {
                Ok(p) => serde_json::json!({"path": s.path, "ok": true, "manifest": p.manifest()}),
                Err(e) => serde_json::json!({"path": s.path, "ok": false, "error": e.to_string()}),
            })
            .chain(builtins.iter().map(|b| serde_json::json!({"path": null, "builtin": true, "ok": true, "manifest": b.manifest()})))
            .collect();
        return emit(&format!("{}\n", to_json(&serde_json::Value::Array(rows))));
    }
    if found.is_empty() && builtins.is_empty() {
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let _ = writeln!(out, "no plugins found in {}", searched.join(", "));
        let _ = writeln!(
            out,
            "build the bundled ones with `cargo build -p fugue-plugin-codemod -p fugue-plugin-heuristic-review`, or set FUGUE_PLUGIN_PATH"
        );
        return emit(&out);
    }
    let width = found
        .iter()
        .filter_map(|s| s.plugin.as_ref().ok())
        .map(|p| p.name().len())
        .chain(builtins.iter().map(|b| b.name().len()))
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(out, "{:<width$}  {:<8}  {:<5}  {:<8}  PATH", "NAME", "VERSION", "KIND", "STATUS");
    for b in &builtins {
        let m = b.manifest();
        let _ = writeln!(
            out,
            "{:<width$}  {:<8}  {:<5}  {:<8}  (built in; a library of the same name on the search path wins)",
            m.name, m.version, m.kind, "ok"
        );
    }
    for s in &found {
        match &s.plugin {
            Ok(p) => {
                let m = p.manifest();
                let _ = writeln!(out, "{:<width$}  {:<8}  {:<5}  {:<8}  {}", m.name, m.version, m.kind, "ok", s.path.display());
            }
            Err(e) => {
                let _ = writeln!(out, "{:<width$}  {:<8}  {:<5}  {:<8}  {}", "?", "?", "?", "broken", s.path.display());
                let _ = writeln!(out, "{:<width$}  {e}", "");
            }
        }
    }
    emit(&out)
}

fn inspect(global: &Global, spec: &Path, json: bool) -> CliResult {
    let cwd = std::env::current_dir().map_err(|e| CliError::env("failed to read the current directory", e))?;
    // Every way a plugin fails to load is a problem with the plugin file the user named.
    let plugin = open_plugin_in(spec, &cwd, &search_dirs(&global.repo)).map_err(|e| CliError::Input(e.to_string()))?;
    let location = plugin.path().map_or_else(|| "built into this fugue binary".to_owned(), |p| p.display().to_string());
    let m = plugin.manifest();
    let mut out = String::new();
    if json {
        let value = serde_json::json!({
            "path": plugin.path(),
            "builtin": plugin.path().is_none(),
            "abi_version": m.abi_version,
            "host_abi_version": PLUGIN_ABI_VERSION,
            "manifest": m,
        });
        return emit(&format!("{}\n", to_json(&value)));
    }
    let _ = writeln!(out, "{} {} ({} plugin)", m.name, m.version, m.kind);
    let _ = writeln!(out, "  {}", m.description);
    let _ = writeln!(out, "path:        {location}");
    let _ = writeln!(out, "abi:         {} (this fugue speaks {PLUGIN_ABI_VERSION})", m.abi_version);
    let also: Vec<&str> = [fugue_core::plugin::PluginKind::Agent, fugue_core::plugin::PluginKind::Gate]
        .into_iter()
        .filter(|k| *k != m.kind && plugin.supports(*k))
        .map(|k| k.as_str())
        .collect();
    if !also.is_empty() {
        let _ = writeln!(out, "also serves: {}", also.join(", "));
    }
    for (key, value) in m.metadata.iter().filter(|(k, _)| k.as_str() != fugue_core::plugin::CAPABILITIES_KEY) {
        let _ = writeln!(out, "{key}: {value}");
    }
    let _ = writeln!(out, "config schema:");
    for line in to_json(&m.config_schema).lines() {
        let _ = writeln!(out, "  {line}");
    }
    emit(&out)
}
