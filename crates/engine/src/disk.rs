//! What a run's slots cost on disk: measured once at the end of the run, shown in the report.
//!
//! Peers' users report 4.5 GB per worktree once the build caches are in, so the report says
//! what fugue's slots take: every pool slot (`wt-N`, and the integration worktree) and every QA
//! checkout (`q-N`), each with the part its build caches (`pool.keep_ignored`) take. The run
//! walks the directories after its last QA round and before the pool is cleaned up, sums
//! `st_blocks × 512` (what the file system really allocated: a sparse or reflinked file costs
//! what it costs), counts a hard-linked inode once, and writes `fugue/disk.json` in the state
//! dir; `fugue report` reads it back ([`DiskUsage::load`]). A snapshot, like the other state
//! files: a resumed run measures again and replaces it. One limit: `st_blocks` cannot see
//! extents shared by reflinks, so on btrfs or XFS a reflinked cache is counted in full in every
//! slot (an upper bound; the file system's free space shows what the copies really cost).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One measured checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SlotDisk {
    /// `wt-3`, `integration`, `q-1`.
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
    /// Bytes on disk, caches included.
    pub bytes: u64,
    /// Of which the build caches (`pool.keep_ignored` directories at the checkout's top level).
    pub cache_bytes: u64,
}

/// The run's slots on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DiskUsage {
    /// When it was measured (RFC 3339).
    pub measured_at: String,
    /// The worktree pool's slots and the integration worktree.
    pub pool: Vec<SlotDisk>,
    /// The QA checkouts.
    pub qa: Vec<SlotDisk>,
    /// All of them together, each inode once (less than the sum when they share hard links).
    pub total_bytes: u64,
}

impl DiskUsage {
    /// Where the measurement is kept.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("fugue").join("disk.json")
    }

    /// The last measurement of the run in `state_dir`, if any.
    pub fn load(state_dir: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(Self::path(state_dir)).ok()?).ok()
    }

    /// Measures the checkouts under `pool_dir` and `qa_dir`.
    pub fn measure(pool_dir: Option<&Path>, qa_dir: &Path, caches: &[String]) -> Self {
        let pool = pool_dir.map(|d| slots(d, |n| n == "integration" || n.strip_prefix("wt-").is_some(), caches)).unwrap_or_default();
        let qa = slots(qa_dir, |n| n.strip_prefix("q-").is_some(), caches);
        let total_bytes = fugue_worktrees::disk_usage(pool.iter().chain(&qa).map(|s| s.path.as_path()));
        Self { measured_at: fugue_core::time::now(), pool, qa, total_bytes }
    }

    /// The report's section: one line per kind, the biggest checkout, the caches' share.
    pub fn markdown(&self) -> String {
        let mut s = String::from("\n### Disk (slots at the end of the run, caches included)\n");
        if self.pool.is_empty() && self.qa.is_empty() {
            s.push_str("- no slot or QA checkout was left to measure\n");
            return s;
        }
        for (what, list) in [("Pool slots", &self.pool), ("QA checkouts", &self.qa)] {
            if list.is_empty() {
                continue;
            }
            let bytes: u64 = list.iter().map(|x| x.bytes).sum();
            let caches: u64 = list.iter().map(|x| x.cache_bytes).sum();
            let each: Vec<String> = list.iter().map(|x| format!("{} {}", x.name, bytes_text(x.bytes))).collect();
            s.push_str(&format!(
                "- {what}: {} in {} ({} of it build caches): {}\n",
                bytes_text(bytes),
                list.len(),
                bytes_text(caches),
                each.join(", ")
            ));
        }
        s.push_str(&format!("- Total: {} (hard-linked files counted once)\n", bytes_text(self.total_bytes)));
        s
    }
}

/// Measures the run's checkouts and writes `fugue/disk.json`; failures are logged (the run
/// itself is over and fine).
pub(crate) async fn record(state_dir: &Path, pool_dir: Option<PathBuf>, caches: Vec<String>) {
    let state_dir = state_dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || {
        let usage = DiskUsage::measure(pool_dir.as_deref(), &state_dir.join("fugue").join("qa"), &caches);
        let path = DiskUsage::path(&state_dir);
        let written = serde_json::to_vec_pretty(&usage)
            .map_err(std::io::Error::other)
            .and_then(|bytes| fugue_core::state::write_snapshot(&path, &bytes));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "failed to write the disk measurement");
        }
    })
    .await;
}

fn slots(dir: &Path, is_slot: impl Fn(&str) -> bool, caches: &[String]) -> Vec<SlotDisk> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<SlotDisk> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            is_slot(&name).then(|| {
                let path = e.path();
                let cache_dirs: Vec<PathBuf> = caches.iter().map(|c| path.join(c.trim_matches('/'))).collect();
                SlotDisk {
                    bytes: fugue_worktrees::disk_usage([path.as_path()]),
                    cache_bytes: fugue_worktrees::disk_usage(cache_dirs.iter().map(PathBuf::as_path)),
                    name,
                    path,
                }
            })
        })
        .collect();
    // wt-2 before wt-10.
    out.sort_by_key(|s| (s.name.trim_start_matches(|c: char| !c.is_ascii_digit()).parse::<u64>().unwrap_or(u64::MAX), s.name.clone()));
    out
}

/// `512 B`, `12.3 MB`, `4.50 GB` (powers of 1000, like `df -H`).
pub fn bytes_text(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.2} GB", b / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_slots_with_their_caches_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pool, qa) = (dir.path().join("pool"), dir.path().join("state/fugue/qa"));
        for (d, body) in [(pool.join("wt-1/target"), 40_000), (pool.join("wt-10"), 8_000), (qa.join("q-1/target"), 20_000)] {
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("f"), vec![1u8; body]).expect("write");
        }
        std::fs::create_dir_all(pool.join("not-a-slot")).expect("mkdir");
        std::fs::hard_link(pool.join("wt-1/target/f"), qa.join("q-1/target/linked")).expect("link");
        let u = DiskUsage::measure(Some(&pool), &qa, &["target/".to_owned()]);
        assert_eq!(u.pool.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["wt-1", "wt-10"]);
        assert_eq!(u.qa.len(), 1);
        assert!(u.pool[0].cache_bytes >= 40_000 && u.pool[0].bytes > u.pool[0].cache_bytes);
        assert_eq!(u.pool[1].cache_bytes, 0);
        let sum: u64 = u.pool.iter().chain(&u.qa).map(|s| s.bytes).sum();
        assert!(u.total_bytes + 40_000 <= sum, "the hard link is counted once in the total: {} vs {sum}", u.total_bytes);
        let md = u.markdown();
        assert!(md.contains("- Pool slots: ") && md.contains("in 2 (") && md.contains("wt-1 ") && md.contains("- QA checkouts: "), "{md}");

        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(record(&dir.path().join("state"), Some(pool.clone()), vec!["target/".to_owned()]));
        let back = DiskUsage::load(&dir.path().join("state")).expect("written");
        assert_eq!(back.pool.len(), 2);
    }

    #[test]
    fn sizes_read_like_df() {
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(12_300_000), "12.3 MB");
        assert_eq!(bytes_text(4_500_000_000), "4.50 GB");
    }
}
