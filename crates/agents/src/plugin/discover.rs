//! Finding plugins: by path, by bare name in `FUGUE_PLUGIN_PATH`, and by scanning directories.
//!
//! A plan names a plugin by path (relative to the plan's directory) or by bare name. A bare
//! name (`codemod`) is looked up in the directories of `FUGUE_PLUGIN_PATH` (colon-separated)
//! as `lib<name>.so`, then with `-` spelled `_`, then as `libfugue_plugin_<name>.so`, the file
//! cargo builds for the package `fugue-plugin-<name>`. On macOS the suffix is `.dylib`.
//!
//! Only those two sources are ever consulted: a plan's path (made absolute against the plan's
//! directory) and the directories of `FUGUE_PLUGIN_PATH`. Relative entries in
//! `FUGUE_PLUGIN_PATH` are ignored with a warning — like `.` in `PATH`, they would make the
//! lookup depend on whatever directory fugue was started in — and the loader hands `dlopen`
//! only canonical absolute paths, so neither the working directory nor `LD_LIBRARY_PATH` can
//! supply a library.
//!
//! Scanning a directory (for `fugue plugins list`) looks at shared libraries only and, before
//! loading one, checks that its bytes contain the name of the ABI-version export: loading
//! runs a library's initialisers, which the user did not ask for on arbitrary files.

use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Plugin, PluginError};

/// The environment variable listing plugin directories.
const SEARCH_PATH_VAR: &str = "FUGUE_PLUGIN_PATH";

/// The absolute directories of `FUGUE_PLUGIN_PATH`, in order (empty when unset); empty and
/// relative entries are left out.
pub fn plugin_search_path() -> Vec<PathBuf> {
    std::env::var_os(SEARCH_PATH_VAR).map(|v| search_path_from(&v)).unwrap_or_default()
}

/// The absolute directories of a `FUGUE_PLUGIN_PATH` value.
fn search_path_from(value: &OsStr) -> Vec<PathBuf> {
    std::env::split_paths(value)
        .filter(|p| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                tracing::warn!(entry = %p.display(), "ignoring a relative directory in FUGUE_PLUGIN_PATH: give it as an absolute path");
            }
            p.is_absolute()
        })
        .collect()
}

/// The file names a bare plugin name may have, in the order they are tried.
pub fn library_file_names(name: &str) -> Vec<String> {
    let snake = name.replace('-', "_");
    let mut names = vec![format!("{DLL_PREFIX}{name}{DLL_SUFFIX}")];
    for candidate in [format!("{DLL_PREFIX}{snake}{DLL_SUFFIX}"), format!("{DLL_PREFIX}fugue_plugin_{snake}{DLL_SUFFIX}")] {
        if !names.contains(&candidate) {
            names.push(candidate);
        }
    }
    names
}

fn is_bare_name(spec: &Path) -> bool {
    spec.components().count() == 1 && spec.extension().is_none() && !spec.as_os_str().is_empty()
}

/// Resolves a plugin reference from a plan: a path (relative ones against `base_dir`) or a
/// bare name looked up in `search` directories.
pub fn resolve_plugin_in(spec: &Path, base_dir: &Path, search: &[PathBuf]) -> Result<PathBuf, PluginError> {
    if !is_bare_name(spec) {
        let path = if spec.is_absolute() { spec.to_owned() } else { base_dir.join(spec) };
        // A plan in the working directory has an empty `base_dir`; the path is still the
        // plan's, made absolute here so nothing downstream resolves it again.
        let path = std::path::absolute(&path).unwrap_or(path);
        return if path.is_file() { Ok(path) } else { Err(PluginError::Missing { path }) };
    }
    let name = spec.to_string_lossy().into_owned();
    let candidates = library_file_names(&name);
    search
        .iter()
        .flat_map(|dir| candidates.iter().map(move |file| dir.join(file)))
        .find(|path| path.is_file())
        .ok_or_else(|| PluginError::NotFound { name, candidates, searched: search.to_vec() })
}

/// [`resolve_plugin_in`] with the directories of `FUGUE_PLUGIN_PATH`.
pub fn resolve_plugin(spec: &Path, base_dir: &Path) -> Result<PathBuf, PluginError> {
    resolve_plugin_in(spec, base_dir, &plugin_search_path())
}

/// A plugin found by [`discover_plugins`]: loaded, or the reason it could not be.
#[derive(Debug)]
pub struct PluginSummary {
    /// The library file.
    pub path: PathBuf,
    /// The loaded plugin, or why loading failed.
    pub plugin: Result<Arc<Plugin>, PluginError>,
}

/// Finds the fugue plugins in `dirs` (not recursive), sorted by path and without duplicates,
/// and loads each. Files that are not shared libraries or do not mention the plugin ABI are
/// skipped without being loaded.
pub fn discover_plugins(dirs: &[PathBuf]) -> Vec<PluginSummary> {
    let mut paths: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| looks_like_plugin(p))
        .filter_map(|p| std::fs::canonicalize(&p).ok())
        .collect();
    paths.sort();
    paths.dedup();
    paths.into_iter().map(|path| PluginSummary { plugin: Plugin::load(&path), path }).collect()
}

fn looks_like_plugin(path: &Path) -> bool {
    let named = path.file_name().and_then(OsStr::to_str).is_some_and(|n| n.starts_with(DLL_PREFIX) && n.ends_with(DLL_SUFFIX));
    named && path.is_file() && std::fs::read(path).is_ok_and(|bytes| contains(&bytes, b"fugue_plugin_abi_version"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_search_directories_count() {
        let dirs = search_path_from(OsStr::new("/opt/fugue/plugins::.:plugins:/usr/lib/fugue"));
        assert_eq!(dirs, [PathBuf::from("/opt/fugue/plugins"), PathBuf::from("/usr/lib/fugue")]);
        assert!(search_path_from(OsStr::new("")).is_empty());
    }

    #[test]
    fn file_names_for_a_bare_name() {
        assert_eq!(library_file_names("codemod"), ["libcodemod.so", "libfugue_plugin_codemod.so"]);
        assert_eq!(
            library_file_names("heuristic-review"),
            ["libheuristic-review.so", "libheuristic_review.so", "libfugue_plugin_heuristic_review.so"]
        );
    }

    #[test]
    fn resolves_paths_and_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&a).expect("mkdir");
        std::fs::create_dir_all(&b).expect("mkdir");
        std::fs::write(b.join("libfugue_plugin_codemod.so"), b"x").expect("write");
        std::fs::write(a.join("libmine.so"), b"x").expect("write");
        let search = [a.clone(), b.clone()];
        assert_eq!(resolve_plugin_in(Path::new("codemod"), dir.path(), &search).ok(), Some(b.join("libfugue_plugin_codemod.so")));
        assert_eq!(resolve_plugin_in(Path::new("mine"), dir.path(), &search).ok(), Some(a.join("libmine.so")));
        assert_eq!(resolve_plugin_in(Path::new("a/libmine.so"), dir.path(), &[]).ok(), Some(a.join("libmine.so")));
        let err = resolve_plugin_in(Path::new("nope"), dir.path(), &search).expect_err("absent");
        let text = err.to_string();
        assert!(text.contains("failed to find plugin `nope`: no libnope.so or libfugue_plugin_nope.so in"), "{text}");
        assert!(text.contains(&a.display().to_string()), "{text}");
        let err = resolve_plugin_in(Path::new("nope"), dir.path(), &[]).expect_err("absent");
        assert!(err.to_string().contains("FUGUE_PLUGIN_PATH (unset)"), "{err}");
        assert!(matches!(resolve_plugin_in(Path::new("x/libnope.so"), dir.path(), &[]), Err(PluginError::Missing { .. })));
    }

    #[test]
    fn scanning_skips_files_that_are_not_plugins() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("libother.so"), b"\x7fELF nothing here").expect("write");
        std::fs::write(dir.path().join("notes.txt"), b"fugue_plugin_abi_version").expect("write");
        assert!(discover_plugins(&[dir.path().to_owned(), dir.path().join("missing")]).is_empty());
        let fake = dir.path().join("libfake.so");
        std::fs::write(&fake, b"garbage mentioning fugue_plugin_abi_version").expect("write");
        let found = discover_plugins(&[dir.path().to_owned()]);
        assert_eq!(found.len(), 1);
        assert!(matches!(found[0].plugin, Err(PluginError::Open { .. })), "{:?}", found[0].plugin);
    }
}
