//! Seeding a new slot's build caches, and measuring what slots cost on disk.
//!
//! A new checkout — an agent's pool slot or a QA checkout — has no `target/` or
//! `node_modules/`, so its first build is a cold one. [`seed_caches`] fills each cache the
//! plan names in `pool.seed` from a warm checkout (the user's, or a free warm slot) before
//! anything runs there:
//!
//! * [`SeedMode::Copy`]: a reflink per file (`ioctl(FICLONE)`, what `cp --reflink=auto`
//!   does) where the file system shares extents (btrfs, XFS, bcachefs), else a byte copy.
//!   Either way the copy is private: a build that rewrites a file in place (cargo does, for
//!   its fingerprints and incremental data) changes this slot only.
//! * [`SeedMode::Reflink`]: reflinks only; where the file system has none, the cache is left
//!   empty rather than paying a full copy.
//! * [`SeedMode::Hardlink`]: hard links, which cost no data blocks but share every byte with
//!   the source: safe only for caches whose files are replaced, never rewritten in place.
//!
//! Modification times are kept. Build tools compare them: cargo decides a crate is fresh
//! when its dep-info file is newer than every source it lists, so a copy stamped "now" would
//! look newer than the task's freshly checked-out sources and a stale artifact would be
//! reused. With the original times, every source checked out after the build is newer and
//! is rebuilt; only what did not change (the registry dependencies, fingerprinted by hash)
//! is reused. Symlinks are copied as symlinks (`node_modules/.bin`), never followed.
//!
//! [`disk_usage`](crate::disk_usage) is the other half: what a tree really takes (`st_blocks × 512`, each
//! hard-linked inode once), which is what reflinks and hard links save and what a copy costs.

use std::path::Path;

use fugue_core::SeedMode;

/// What seeding one checkout did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SeedReport {
    /// The caches seeded (as named in the plan).
    pub seeded: Vec<String>,
    /// Files cloned with a reflink.
    pub reflinked: u64,
    /// Files copied byte by byte.
    pub copied: u64,
    /// Files hard-linked.
    pub linked: u64,
}

/// Why seeding a cache failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// A file-system operation failed.
    #[error("failed to seed the build cache {cache} ({action} {path}): {source}")]
    Io {
        /// The cache, as named in the plan.
        cache: String,
        /// What was being done.
        action: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A cache path that leaves the checkout.
    #[error(
        "failed to seed the build cache `{0}`: it is not a directory inside the checkout; name it relative to the repository root in `pool.seed`"
    )]
    BadPath(String),
}

/// Seeds each cache of `caches` (path, mode) into the checkout `dest` from the checkout `src`.
/// A cache missing in `src`, already present in `dest`, or with mode `none` is skipped. A
/// cache whose seeding fails is removed again (half a cache is worse than none) and the error
/// returned; the caller may go on with an empty cache.
pub fn seed_caches(src: &Path, dest: &Path, caches: &[(String, SeedMode)]) -> Result<SeedReport, SeedError> {
    let mut report = SeedReport::default();
    for (cache, mode) in caches {
        let rel = Path::new(cache.trim_start_matches('/'));
        if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(SeedError::BadPath(cache.clone()));
        }
        let (from, to) = (src.join(rel), dest.join(rel));
        if *mode == SeedMode::None || !from.is_dir() || to.symlink_metadata().is_ok() {
            continue;
        }
        if *mode == SeedMode::Reflink && !reflinks_supported(dest) {
            tracing::debug!(cache = %cache, "no reflinks on this file system: the cache is not seeded");
            continue;
        }
        let mut copier = Copier { cache, mode: *mode, reflinks: true, report: &mut report };
        if let Err(e) = copier.tree(&from, &to) {
            let _ = std::fs::remove_dir_all(&to);
            return Err(e);
        }
        report.seeded.push(cache.clone());
    }
    Ok(report)
}

struct Copier<'a> {
    cache: &'a str,
    mode: SeedMode,
    /// Cleared at the first file the file system refuses to clone: no point asking again.
    reflinks: bool,
    report: &'a mut SeedReport,
}

impl Copier<'_> {
    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SeedError {
        let (cache, path) = (self.cache.to_owned(), path.to_path_buf());
        move |source| SeedError::Io { cache, action, path, source }
    }

    fn tree(&mut self, from: &Path, to: &Path) -> Result<(), SeedError> {
        std::fs::create_dir_all(to).map_err(self.io("create", to))?;
        for entry in std::fs::read_dir(from).map_err(self.io("read", from))? {
            let entry = entry.map_err(self.io("read", from))?;
            let (src, dest) = (entry.path(), to.join(entry.file_name()));
            let kind = entry.file_type().map_err(self.io("stat", &src))?;
            if kind.is_dir() {
                self.tree(&src, &dest)?;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&src).map_err(self.io("read the link", &src))?;
                std::os::unix::fs::symlink(&target, &dest).map_err(self.io("create the link", &dest))?;
            } else if kind.is_file() {
                self.file(&src, &dest)?;
            }
            // Sockets, fifos and devices are no build output: skipped.
        }
        Ok(())
    }

    fn file(&mut self, src: &Path, dest: &Path) -> Result<(), SeedError> {
        if self.mode == SeedMode::Hardlink {
            std::fs::hard_link(src, dest).map_err(self.io("hard-link", dest))?;
            self.report.linked += 1;
            return Ok(());
        }
        let meta = std::fs::metadata(src).map_err(self.io("stat", src))?;
        let input = std::fs::File::open(src).map_err(self.io("open", src))?;
        let output = std::fs::OpenOptions::new().write(true).create_new(true).open(dest).map_err(self.io("create", dest))?;
        if self.reflinks && reflink(&input, &output) {
            self.report.reflinked += 1;
        } else {
            self.reflinks = false;
            if self.mode == SeedMode::Reflink {
                // No reflinks here: this cache stays empty (the caller removes what was made).
                drop(output);
                let _ = std::fs::remove_file(dest);
                return Err(SeedError::Io {
                    cache: self.cache.to_owned(),
                    action: "reflink",
                    path: dest.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::Unsupported, "the file system has no reflinks"),
                });
            }
            let mut reader = std::io::BufReader::new(&input);
            let mut writer = &output;
            std::io::copy(&mut reader, &mut writer).map_err(self.io("copy", dest))?;
            self.report.copied += 1;
        }
        output.set_permissions(meta.permissions()).map_err(self.io("set the permissions of", dest))?;
        let times = std::fs::FileTimes::new().set_modified(meta.modified().map_err(self.io("stat", src))?);
        output.set_times(times).map_err(self.io("set the times of", dest))?;
        Ok(())
    }
}

/// Clones `input`'s extents into `output` (`ioctl(FICLONE)`); false where the file system
/// cannot (ext4, tmpfs, across file systems).
fn reflink(input: &std::fs::File, output: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd as _;
    // FICLONE is _IOW(0x94, 9, int) on every Linux architecture.
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: both descriptors are open for the call; FICLONE reads the int argument only.
    // (`as _`: the request's type differs between libc targets, and the value fits all.)
    let rc = unsafe { libc::ioctl(output.as_raw_fd(), FICLONE as _, input.as_raw_fd()) };
    rc == 0
}

/// The caches of a pool spec with their seed modes: every `keep_ignored` entry that
/// `pool.seed` names (trailing and leading slashes ignored in the match), in `keep_ignored`
/// order.
pub fn plan_caches(spec: &fugue_core::PoolSpec) -> Vec<(String, SeedMode)> {
    let norm = |s: &str| s.trim_matches('/').to_owned();
    spec.keep_ignored
        .iter()
        .filter_map(|k| spec.seed.iter().find(|(p, _)| norm(p) == norm(k)).map(|(_, m)| (k.clone(), *m)))
        .filter(|(_, m)| *m != SeedMode::None)
        .collect()
}

/// Whether the file system holding `dir` clones files with reflinks (one probe file, removed).
pub fn reflinks_supported(dir: &Path) -> bool {
    let probe = |name: &str| dir.join(format!(".fugue-reflink-probe-{}-{name}", std::process::id()));
    let (a, b) = (probe("a"), probe("b"));
    let ok = (|| {
        std::fs::write(&a, b"probe").ok()?;
        let input = std::fs::File::open(&a).ok()?;
        let output = std::fs::File::create(&b).ok()?;
        Some(reflink(&input, &output))
    })()
    .unwrap_or(false);
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caches(list: &[(&str, SeedMode)]) -> Vec<(String, SeedMode)> {
        list.iter().map(|(p, m)| ((*p).to_owned(), *m)).collect()
    }

    #[test]
    fn a_copy_keeps_contents_times_links_and_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        std::fs::create_dir_all(src.join("target/debug/deps")).expect("mkdir");
        let lib = src.join("target/debug/deps/libx.rlib");
        std::fs::write(&lib, b"artifact").expect("write");
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options().write(true).open(&lib).and_then(|f| f.set_modified(old)).expect("times");
        std::os::unix::fs::symlink("deps/libx.rlib", src.join("target/debug/link")).expect("symlink");
        std::fs::create_dir_all(&dest).expect("mkdir");

        let report = seed_caches(&src, &dest, &caches(&[("target/", SeedMode::Copy), ("node_modules/", SeedMode::Copy)])).expect("seed");
        assert_eq!(report.seeded, vec!["target/".to_owned()], "a cache missing in the source is skipped");
        assert_eq!(report.copied + report.reflinked, 1);
        let copy = dest.join("target/debug/deps/libx.rlib");
        assert_eq!(std::fs::read(&copy).expect("read"), b"artifact");
        assert_eq!(std::fs::metadata(&copy).and_then(|m| m.modified()).expect("mtime"), old, "times are kept for cargo's fingerprints");
        assert_eq!(std::fs::read_link(dest.join("target/debug/link")).expect("link"), Path::new("deps/libx.rlib"));
        std::fs::write(&copy, b"rewritten in place").expect("write");
        assert_eq!(std::fs::read(&lib).expect("read"), b"artifact", "a copy never writes through to the source");

        // An existing cache is never overwritten.
        let again = seed_caches(&src, &dest, &caches(&[("target/", SeedMode::Copy)])).expect("seed");
        assert!(again.seeded.is_empty());
    }

    #[test]
    fn hard_links_share_and_are_counted_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        std::fs::create_dir_all(src.join("node_modules/x")).expect("mkdir");
        std::fs::write(src.join("node_modules/x/index.js"), vec![b'x'; 64 * 1024]).expect("write");
        std::fs::create_dir_all(&dest).expect("mkdir");
        let before = crate::disk_usage([src.as_path()]);
        let report = seed_caches(&src, &dest, &caches(&[("node_modules", SeedMode::Hardlink)])).expect("seed");
        assert_eq!(report.linked, 1);
        let both = crate::disk_usage([src.as_path(), dest.as_path()]);
        assert!(both < before + 64 * 1024, "the linked file is counted once: {before} then {both}");
    }

    #[test]
    fn none_and_bad_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("a/.venv")).expect("mkdir");
        let report = seed_caches(&dir.path().join("a"), dir.path(), &caches(&[(".venv/", SeedMode::None)])).expect("seed");
        assert!(report.seeded.is_empty());
        assert!(matches!(seed_caches(dir.path(), dir.path(), &caches(&[("../x", SeedMode::Copy)])), Err(SeedError::BadPath(_))));
    }
}
