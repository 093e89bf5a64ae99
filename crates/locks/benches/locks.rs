//! Lock-manager throughput: 100k held locks on random paths, then conflict checks.
//!
//! Run with `cargo bench -p fugue-locks`. Paths come from a fixed-seed xorshift generator, so
//! every run measures the same table and the same queries. The goal is at least 1M conflict
//! checks per second against 100k held locks; a naive pairwise scan is timed on a few queries
//! for comparison.
//!
//! Rates are wall-clock (`Instant`). On a shared machine the process may not get a whole CPU,
//! so each line also gives the rate per second of this thread's CPU time (`cpu`): what the code
//! costs while it actually runs.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::hint::black_box;
use std::time::Instant;

use fugue_core::Pattern;
use fugue_locks::{ClaimSet, LockManager, LockMode, LockPolicy, Resource, TryAcquire};

const HELD: usize = 100_000;
const CHECKS: usize = 1_000_000;
const CYCLES: usize = 200_000;
const SCAN_CHECKS: usize = 200;

/// xorshift64*: tiny, fast, and reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random repo path: `src/` and 2-5 directories of 12 names each, then a file of 40 names or
/// (`glob_percent` of the time) a `/**` glob.
fn random_pattern(rng: &mut Rng, glob_percent: u64) -> Pattern {
    let depth = 2 + rng.below(4);
    let mut s = String::from("src");
    for _ in 0..depth {
        s.push_str(&format!("/d{}", rng.below(12)));
    }
    if rng.below(100) < glob_percent {
        s.push_str("/**");
    } else {
        s.push_str(&format!("/f{}.rs", rng.below(40)));
    }
    match Pattern::parse(&s) {
        Ok(p) => p,
        Err(e) => panic!("generated pattern {s} is invalid: {e}"),
    }
}

/// One pattern, read a quarter of the time, else written.
fn random_claim(rng: &mut Rng, glob_percent: u64) -> ClaimSet {
    let p = random_pattern(rng, glob_percent);
    if rng.below(4) == 0 { ClaimSet::new().read(p) } else { ClaimSet::new().write(p) }
}

/// A wall-clock and a thread-CPU-time stopwatch.
struct Clock {
    wall: Instant,
    cpu: f64,
}

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the call only fills it in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

impl Clock {
    fn start() -> Self {
        Self { wall: Instant::now(), cpu: thread_cpu_seconds() }
    }

    /// (wall seconds, cpu seconds) since the start.
    fn stop(&self) -> (f64, f64) {
        (self.wall.elapsed().as_secs_f64(), thread_cpu_seconds() - self.cpu)
    }
}

/// The rate of `n` operations, wall-clock and per CPU second.
fn rate(n: usize, (wall, cpu): (f64, f64)) -> String {
    let n = n as f64;
    format!("{:.2}M/s, {:.0} ns each (cpu: {:.2}M/s, {:.0} ns)", n / wall / 1e6, wall * 1e9 / n, n / cpu / 1e6, cpu * 1e9 / n)
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let manager = LockManager::new(LockPolicy::default());

    let clock = Clock::start();
    let mut owners = 0usize;
    let mut refused = 0usize;
    while manager.held_claims() < HELD {
        let claim = random_claim(&mut rng, 1);
        match manager.try_acquire(&format!("t{owners}"), &claim) {
            Ok(TryAcquire::Granted(_)) => owners += 1,
            Ok(TryAcquire::Conflict(_)) => refused += 1,
            Err(e) => panic!("fill failed: {e}"),
        }
    }
    let fill = clock.stop();
    println!("fill: {HELD} held locks ({owners} owners; {refused} requests refused as conflicts) in {:.2}s", fill.0);
    println!("  try_acquire: {}", rate(owners + refused, fill));

    let files: Vec<ClaimSet> = (0..CHECKS).map(|_| random_claim(&mut rng, 0)).collect();
    let dirs: Vec<ClaimSet> = (0..CHECKS / 10).map(|_| random_claim(&mut rng, 100)).collect();
    let mixed: Vec<ClaimSet> = (0..CHECKS).map(|_| random_claim(&mut rng, 10)).collect();
    for (name, queries) in [("file claims", &files), ("dir/** claims", &dirs), ("mixed, 10% dir/**", &mixed)] {
        let clock = Clock::start();
        let mut blocked = 0usize;
        for q in queries {
            blocked += usize::from(manager.would_block(black_box(q)));
        }
        let first = clock.stop();
        let clock = Clock::start();
        let mut blockers = 0usize;
        for q in queries {
            blockers += manager.check(black_box(q)).len();
        }
        let all = clock.stop();
        let n = queries.len();
        println!("{name}: {n} queries, {:.1}% blocked, {:.2} blockers each", 100.0 * blocked as f64 / n as f64, blockers as f64 / n as f64);
        println!("  would_block (first conflict): {}", rate(n, first));
        println!("  check (every blocker):        {}", rate(n, all));
    }

    let clock = Clock::start();
    let mut granted = 0usize;
    for i in 0..CYCLES {
        let claim = random_claim(&mut rng, 10);
        let who = format!("c{i}");
        if let Ok(TryAcquire::Granted(_)) = manager.try_acquire(&who, &claim) {
            granted += 1;
            if let Err(e) = manager.release(&who) {
                panic!("release failed: {e}");
            }
        }
    }
    println!("cycle: {CYCLES} try_acquire on the full table, released when granted ({granted} were)");
    println!("  try_acquire (+release): {}", rate(CYCLES, clock.stop()));

    // Baseline: the same question answered by comparing against every held pattern.
    let held: Vec<(Pattern, bool)> = manager
        .grants()
        .into_iter()
        .flat_map(|g| g.claims.into_iter())
        .filter_map(|c| match c.resource {
            Resource::Path(p) => Some((p, c.mode == LockMode::Write)),
            Resource::Serial(_) => None,
        })
        .collect();
    let clock = Clock::start();
    let mut scan_hits = 0usize;
    for q in mixed.iter().take(SCAN_CHECKS) {
        let (p, write) = match (q.writes().first(), q.reads().first()) {
            (Some(p), _) => (p, true),
            (None, Some(p)) => (p, false),
            (None, None) => continue,
        };
        scan_hits += held.iter().filter(|(h, hw)| (write || *hw) && h.overlaps(p)).count();
    }
    let scan = clock.stop();
    let trie_hits: usize = mixed.iter().take(SCAN_CHECKS).map(|q| manager.check(q).len()).sum();
    println!("baseline: pairwise scan of {} held locks, same answers as the trie: {}", held.len(), scan_hits == trie_hits);
    println!("  scan: {}", rate(SCAN_CHECKS, scan));
}
