//! What each slot costs on disk.
//!
//! A slot is a checkout of the whole repository plus whatever builds left in it, and on a big
//! repository with build caches that is gigabytes a slot: what users of other worktree tools
//! complain about most. [`Pool::disk_usage`] walks each slot's directory (and its admin dir in
//! the common `.git/worktrees/`, which holds the slot's index) and sums the blocks the files
//! really occupy (`st_blocks`, so sparse files count what they use), each inode once (hard links
//! to one file are one file), without following symlinks or crossing into another file system.
//! The bytes under a `pool.keep_ignored` directory (`target/`, `node_modules/`, …) are reported
//! apart: those are the caches the pool keeps warm on purpose.
//!
//! Reflinked or deduplicated extents cannot be told apart from the outside: a reflinked cache
//! counts in full here, though the file system shares it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::Pool;
use crate::repo;

/// One slot's disk use.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SlotDisk {
    /// The slot id (`wt-N`).
    pub slot: String,
    /// Bytes of every file of the slot, caches and its git admin dir included.
    pub bytes: u64,
    /// Of which under `pool.keep_ignored` directories.
    pub cache_bytes: u64,
    /// Files counted.
    pub files: u64,
    /// The slot has no checkout (never used, or removed).
    pub missing: bool,
}

impl Pool {
    /// Every slot's disk use, in pool order. A slot that cannot be read is counted as far as it
    /// can be (unreadable entries are skipped: this is a report, not a check).
    pub fn disk_usage(&self) -> Result<Vec<SlotDisk>, crate::PoolError> {
        let state = self.status()?;
        let caches = cache_names(&self.spec.keep_ignored);
        Ok(state
            .worktrees
            .iter()
            .map(|w| {
                let path = PathBuf::from(&w.path);
                let mut usage = SlotDisk { slot: w.id.clone(), missing: !path.is_dir(), ..SlotDisk::default() };
                if usage.missing {
                    return usage;
                }
                let mut seen = HashSet::new();
                walk(&path, &path, &caches, false, &mut seen, &mut usage);
                // The slot's own index, HEAD and logs live in the common git dir.
                if let Some(admin) = repo::worktree_gitdir(&path).filter(|g| !g.starts_with(&path)) {
                    walk(&admin, &admin, &[], false, &mut seen, &mut usage);
                }
                usage
            })
            .collect())
    }
}

/// Bytes the trees under `roots` take on disk, measured like a slot (`st_blocks`, each inode
/// once however many hard links or roots reach it, symlinks not followed, one file system per
/// root); for the run's QA checkouts and other trees that are not pool slots.
pub fn disk_usage<'a>(roots: impl IntoIterator<Item = &'a Path>) -> u64 {
    let mut seen = HashSet::new();
    let mut usage = SlotDisk::default();
    for root in roots {
        walk(root, root, &[], false, &mut seen, &mut usage);
    }
    usage.bytes
}

/// The `keep_ignored` entries as directory names or root-relative paths (`target/` → `target`,
/// `/build/` → `/build`); glob patterns are not cache dirs this report can name, and are left out.
fn cache_names(keep: &[String]) -> Vec<String> {
    keep.iter().map(|k| k.trim().trim_end_matches('/').to_owned()).filter(|k| !k.is_empty() && !k.contains(['*', '?', '[', '!'])).collect()
}

/// Whether the directory `rel` (relative to the slot, `/`-separated) is one of the caches: a
/// bare name matches at any depth, as in a `.gitignore`; a name with a slash, from the root.
fn is_cache(rel: &str, caches: &[String]) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    caches.iter().any(|c| match c.strip_prefix('/') {
        Some(rooted) => rel == rooted,
        None if c.contains('/') => rel == c,
        None => name == c,
    })
}

#[cfg(unix)]
fn walk(root: &Path, dir: &Path, caches: &[String], in_cache: bool, seen: &mut HashSet<(u64, u64)>, usage: &mut SlotDisk) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let root_dev = std::fs::symlink_metadata(root).map(|m| m.dev()).ok();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if root_dev.is_some_and(|d| d != meta.dev()) {
            continue;
        }
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let bytes = meta.blocks().saturating_mul(512);
        usage.bytes = usage.bytes.saturating_add(bytes);
        if in_cache {
            usage.cache_bytes = usage.cache_bytes.saturating_add(bytes);
        }
        if meta.is_dir() {
            let rel = path.strip_prefix(root).map(|r| r.to_string_lossy().replace('\\', "/")).unwrap_or_default();
            let cache = in_cache || is_cache(&rel, caches);
            if cache && !in_cache {
                usage.cache_bytes = usage.cache_bytes.saturating_add(bytes);
            }
            walk(root, &path, caches, cache, seen, usage);
        } else {
            usage.files += 1;
        }
    }
}

#[cfg(not(unix))]
fn walk(root: &Path, dir: &Path, caches: &[String], in_cache: bool, _seen: &mut HashSet<(u64, u64)>, usage: &mut SlotDisk) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            let rel = path.strip_prefix(root).map(|r| r.to_string_lossy().replace('\\', "/")).unwrap_or_default();
            walk(root, &path, caches, in_cache || is_cache(&rel, caches), _seen, usage);
        } else {
            usage.bytes = usage.bytes.saturating_add(meta.len());
            if in_cache {
                usage.cache_bytes = usage.cache_bytes.saturating_add(meta.len());
            }
            usage.files += 1;
        }
    }
}

/// `bytes` for people: `512 B`, `12.3 KiB`, `4.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dirs_match_like_gitignore_names() {
        let caches = cache_names(&["target/".into(), "/build/".into(), "web/node_modules".into(), "*.o".into()]);
        assert_eq!(caches, ["target", "/build", "web/node_modules"]);
        assert!(is_cache("target", &caches) && is_cache("crates/a/target", &caches));
        assert!(is_cache("build", &caches) && !is_cache("src/build", &caches));
        assert!(is_cache("web/node_modules", &caches) && !is_cache("node_modules", &caches));
        assert!(!is_cache("src", &caches));
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
