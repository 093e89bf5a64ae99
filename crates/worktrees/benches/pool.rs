//! Warm acquire (a recycled slot, build caches kept) against a fresh `git worktree add`.
//!
//! Generates a 5,000-file repository (fixed seed) in a temp dir, then in one run measures:
//!
//! * `git worktree add` — the plain command a script would run for every task;
//! * cold acquire — `Pool::acquire` on a slot that does not exist yet;
//! * warm acquire — `Pool::acquire` on a released slot the previous task left dirty: edited
//!   tracked files, untracked files, an ignored `target/` cache of 2,000 files (kept), other
//!   ignored files (removed), and a base that moved by one commit touching 50 files.
//!
//! Each is repeated `REPS` times; medians are compared. The goal: warm ≤ 1/5 of a fresh add.
//! Run with `cargo bench -p fugue-worktrees --bench pool`.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fugue_core::{PoolSpec, TaskId};
use fugue_worktrees::{AcquireRequest, Pool, ReleaseMode};

const FILES: usize = 5_000;
const CACHE_FILES: usize = 2_000;
const REPS: usize = 9;
const SEED: u64 = 0x5eed_f00d;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let repo = tmp.path().join("repo");
    let started = Instant::now();
    generate_repo(&repo)?;
    println!("generated {FILES}-file repository in {:.2?}", started.elapsed());

    // The three are interleaved round by round, so that load from other processes on the
    // machine hits them alike; the per-round ratio is reported besides the medians. Fresh and
    // cold worktrees are kept until the end: deleting 5,000 files between rounds slows the
    // next round's file creation on some file systems (ext4 with `discard`), which would
    // flatter the ratio.
    let state = tmp.path().join("state");
    let spec = PoolSpec { size: 1, dir: path_str(&tmp.path().join("warm"))?.to_owned(), ..PoolSpec::default() };
    let warm_pool = Pool::open(&repo, &state.join("warm"), spec)?;
    let mut rng = Lcg(SEED ^ 1);
    let first = warm_pool.acquire(&AcquireRequest::new(TaskId::new("warm-first")?).base("main"))?;
    dirty_the_slot(&first.path, &mut rng)?;
    warm_pool.release(&first.slot, ReleaseMode::DiscardBranch)?;
    move_base(&repo, &mut rng, 0)?;

    let (mut fresh, mut cold, mut warm, mut ratios) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..REPS {
        // Plain `git worktree add`, the baseline.
        let dir = tmp.path().join(format!("fresh-{i}"));
        let t = Instant::now();
        git(&repo, &["worktree", "add", "-q", "--detach", path_str(&dir)?, "HEAD"])?;
        let f = t.elapsed();

        // Cold acquire: a slot created from nothing.
        let spec = PoolSpec { size: 1, dir: path_str(&tmp.path().join(format!("cold-{i}")))?.to_owned(), ..PoolSpec::default() };
        let pool = Pool::open(&repo, &state.join(format!("cold-{i}")), spec)?;
        let t = Instant::now();
        let acquired = pool.acquire(&AcquireRequest::new(TaskId::new(format!("cold-{i}"))?))?;
        cold.push(t.elapsed());
        pool.release(&acquired.slot, ReleaseMode::DiscardBranch)?;

        // Warm acquire: recycle the slot the previous round left dirty, on a base that moved.
        let t = Instant::now();
        let acquired = warm_pool.acquire(&AcquireRequest::new(TaskId::new(format!("warm-{i}"))?).base("main"))?;
        let w = t.elapsed();
        assert!(acquired.warm, "recycled");
        assert!(acquired.path.join("target/cache-0/f-0.o").exists(), "the build cache survives");
        assert!(!acquired.path.join("scratch").exists(), "leftovers are cleaned");
        dirty_the_slot(&acquired.path, &mut rng)?;
        warm_pool.release(&acquired.slot, ReleaseMode::DiscardBranch)?;
        move_base(&repo, &mut rng, i + 1)?;

        fresh.push(f);
        warm.push(w);
        ratios.push(w.as_secs_f64() / f.as_secs_f64());
    }

    let (f, c, w) = (median(&mut fresh), median(&mut cold), median(&mut warm));
    println!("repetitions: {REPS} each (median)");
    println!("git worktree add (fresh): {:>8.1} ms", ms(f));
    println!("pool acquire, cold:       {:>8.1} ms", ms(c));
    println!("pool acquire, warm:       {:>8.1} ms  ({:.3} of a fresh add; goal <= 0.200)", ms(w), w.as_secs_f64() / f.as_secs_f64());
    ratios.sort_by(f64::total_cmp);
    println!("per-round warm/fresh ratio: median {:.3}, worst {:.3}", ratios[ratios.len() / 2], ratios[ratios.len() - 1]);
    println!("warm samples: {:?}", warm.iter().map(|d| format!("{:.1}", ms(*d))).collect::<Vec<_>>());
    println!("fresh samples: {:?}", fresh.iter().map(|d| format!("{:.1}", ms(*d))).collect::<Vec<_>>());
    Ok(())
}

/// A deterministic generator (64-bit LCG, Knuth's constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn text(&mut self, lines: usize) -> String {
        (0..lines).map(|_| format!("let v{} = {};\n", self.next() % 1000, self.next())).collect()
    }
}

/// The path of generated file `i`: 5 top dirs × 20 subdirs × 50 files.
fn file_path(i: usize) -> String {
    format!("src/m{}/s{}/f{i}.rs", i % 5, (i / 5) % 20)
}

fn generate_repo(repo: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(repo)?;
    git(repo, &["init", "-q", "-b", "main"])?;
    let mut rng = Lcg(SEED);
    for i in 0..FILES {
        let p = repo.join(file_path(i));
        std::fs::create_dir_all(p.parent().ok_or("no parent")?)?;
        let lines = 5 + rng.below(40);
        std::fs::write(p, rng.text(lines))?;
    }
    std::fs::write(repo.join(".gitignore"), "target/\n*.log\n")?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", "generated"])?;
    // Packed, like a real repository (5,000 loose objects would slow every checkout down).
    git(repo, &["repack", "-adq"])?;
    // Move the main worktree off `main` so merges and base moves do not touch it.
    git(repo, &["checkout", "-q", "--detach"])?;
    Ok(())
}

/// What a finished task leaves behind in its slot.
fn dirty_the_slot(wt: &Path, rng: &mut Lcg) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..20 {
        std::fs::write(wt.join(file_path(rng.below(FILES))), rng.text(3))?;
    }
    for i in 0..10 {
        let p = wt.join("scratch").join(format!("new-{i}.rs"));
        std::fs::create_dir_all(p.parent().ok_or("no parent")?)?;
        std::fs::write(p, rng.text(2))?;
    }
    std::fs::write(wt.join("build.log"), "log")?;
    if !wt.join("target").exists() {
        for i in 0..CACHE_FILES {
            let p = wt.join(format!("target/cache-{}/f-{i}.o", i % 20));
            std::fs::create_dir_all(p.parent().ok_or("no parent")?)?;
            std::fs::write(p, [0u8; 512])?;
        }
    }
    Ok(())
}

/// Commits a change to 50 files on `main`, in a worktree of its own.
fn move_base(repo: &Path, rng: &mut Lcg, round: usize) -> Result<(), Box<dyn std::error::Error>> {
    let work = repo.parent().ok_or("no parent")?.join("base-edit");
    if !work.exists() {
        git(repo, &["worktree", "add", "-q", path_str(&work)?, "main"])?;
    }
    for _ in 0..50 {
        std::fs::write(work.join(file_path(rng.below(FILES))), rng.text(4))?;
    }
    git(&work, &["commit", "-q", "-a", "-m", &format!("base moves {round}")])?;
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@fugue.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@fugue.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()?;
    if !out.status.success() {
        return Err(format!("git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<&str, Box<dyn std::error::Error>> {
    p.to_str().ok_or_else(|| format!("non-UTF-8 path {}", p.display()).into())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
