//! Planning benchmark: JSON plans of 1k, 10k and 100k tasks with random scopes and random
//! declared dependencies (fixed seed, xorshift), parsed with serde_json into `Plan` and
//! planned with `DefaultPlanner`; the time is parse + plan.
//!
//! The generated plans: 1 % architecture tasks (serial), 10 % test implementation, 79 %
//! implementation, 10 % validation, in that order. Each task modifies one to three paths in a
//! tree of `n / k` modules (a whole module, a sub-directory or one file), reads zero to two
//! such paths, reads the common types one time in four, and one task in a hundred also writes
//! the migrations (a serial class). `k` is 8 tasks per module, and 40 in a second, denser 100k
//! row. Each task depends on zero to two of the 200 tasks before it (never on a later phase).
//!
//! Run with `cargo bench -p fugue-planner`; `FUGUE_BENCH_ONLY=100000` keeps the rows of one
//! size, `FUGUE_BENCH_PER_MODULE=8` those of one density. Wall times are medians over the
//! runs; the CPU column (this thread's CPU time) is steadier on a busy machine.
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use fugue_core::state::EdgeReason;
use fugue_core::{Plan, Planner};
use fugue_planner::DefaultPlanner;

/// xorshift64*: a tiny deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn phase_of(i: usize, n: usize) -> &'static str {
    let f = i * 100 / n.max(1);
    match f {
        0 => "architecture",
        1..=10 => "test-implementation",
        11..=89 => "implementation",
        _ => "validation",
    }
}

fn path(rng: &mut Rng, modules: u64) -> String {
    let m = rng.below(modules);
    let s = rng.below(6);
    match rng.below(4) {
        0 => format!("src/m{m}/**"),
        1 => format!("src/m{m}/s{s}/"),
        _ => format!("src/m{m}/s{s}/f{}.rs", rng.below(12)),
    }
}

fn generate(n: usize, tasks_per_module: u64, seed: u64) -> String {
    let mut rng = Rng(seed);
    let modules = (n as u64 / tasks_per_module).max(4);
    let mut s = String::with_capacity(n * 200);
    s.push_str(r#"{"version":1,"parallelization":{"max_agents":8},"boundaries":{"common":["common/**"],"serial":{"migrations":["migrations/**"]}},"agents":{"claude":{"command":["claude","-p","{prompt}"]}},"tasks":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let phase = phase_of(i, n);
        let _ = write!(
            s,
            r#"{{"id":"t{i}","phase":"{phase}","agent":"claude","prompt":"task {i}","estimate":"{}s","modifies":["#,
            30 + rng.below(600)
        );
        let writes = 1 + rng.below(3);
        for k in 0..writes {
            if k > 0 {
                s.push(',');
            }
            let _ = write!(s, "\"{}\"", path(&mut rng, modules));
        }
        if rng.below(100) == 0 {
            s.push_str(",\"migrations/**\"");
        }
        s.push_str("],\"reads\":[");
        let mut reads: Vec<String> = (0..rng.below(3)).map(|_| format!("\"{}\"", path(&mut rng, modules))).collect();
        if rng.below(4) == 0 {
            reads.push("\"common/types/**\"".to_owned());
        }
        s.push_str(&reads.join(","));
        s.push_str("],\"depends_on\":[");
        let mut deps: Vec<usize> = Vec::new();
        for _ in 0..rng.below(3) {
            if i == 0 {
                break;
            }
            let back = 1 + rng.below(200.min(i as u64)) as usize;
            let d = i - back;
            if !deps.contains(&d) {
                deps.push(d);
            }
        }
        s.push_str(&deps.iter().map(|d| format!("\"t{d}\"")).collect::<Vec<_>>().join(","));
        s.push_str("]}");
    }
    s.push_str("]}");
    s
}

/// CPU time of this thread: unlike wall time, it does not count time the machine spent on
/// other processes.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Row {
    parse: Duration,
    plan: Duration,
    total: Duration,
    cpu: Duration,
}

fn main() {
    println!("fugue-planner: parse (serde_json → Plan) + plan (DefaultPlanner)");
    println!("wall times are medians; `best` is the fastest run; `cpu` is this thread's CPU time (median)");
    println!(
        "{:>7} {:>4} {:>4} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}  edges (declared/phase/write-write/write-read/serial), groups, warnings",
        "tasks", "/mod", "runs", "parse", "plan", "total", "best", "cpu", "µs/task", "cpu µs"
    );
    // `FUGUE_BENCH_ONLY=100000` runs only the rows of that size, `FUGUE_BENCH_PER_MODULE=8` only
    // those of that density.
    let only: Option<usize> = std::env::var("FUGUE_BENCH_ONLY").ok().and_then(|v| v.parse().ok());
    let only_density: Option<u64> = std::env::var("FUGUE_BENCH_PER_MODULE").ok().and_then(|v| v.parse().ok());
    for (n, per_module, runs) in [(1_000usize, 8u64, 21usize), (10_000, 8, 9), (100_000, 8, 7), (100_000, 40, 5)] {
        if only.is_some_and(|o| o != n) || only_density.is_some_and(|o| o != per_module) {
            continue;
        }
        let json = generate(n, per_module, 0x5EED_F00D ^ n as u64);
        let mut rows = Vec::new();
        let mut stats = String::new();
        for _ in 0..runs {
            let (t0, c0) = (Instant::now(), cpu_time());
            let parsed: Plan = match serde_json::from_str(&json) {
                Ok(p) => p,
                Err(e) => {
                    println!("generated plan does not parse: {e}");
                    std::process::exit(1);
                }
            };
            let t1 = Instant::now();
            let exec = match DefaultPlanner.plan(black_box(&parsed)) {
                Ok(x) => x,
                Err(e) => {
                    println!("generated plan does not plan: {e}");
                    std::process::exit(1);
                }
            };
            let (t2, c2) = (Instant::now(), cpu_time());
            rows.push(Row { parse: t1 - t0, plan: t2 - t1, total: t2 - t0, cpu: c2.saturating_sub(c0) });
            if stats.is_empty() {
                let g = exec.graph();
                let mut by = [0usize; 5];
                for e in &g.edges {
                    let k = match e.reason {
                        EdgeReason::Declared => 0,
                        EdgeReason::Phase => 1,
                        EdgeReason::WriteWrite => 2,
                        EdgeReason::WriteRead => 3,
                        _ => 4,
                    };
                    by[k] += 1;
                }
                stats = format!(
                    "{} ({}/{}/{}/{}/{}), {}, {}",
                    g.edges.len(),
                    by[0],
                    by[1],
                    by[2],
                    by[3],
                    by[4],
                    g.execution_strategy.parallel_groups.len(),
                    exec.warnings().len()
                );
            }
            drop(black_box((exec, parsed)));
        }
        let med = |f: fn(&Row) -> Duration| median(rows.iter().map(f).collect());
        let ms = |d: Duration| format!("{:.1}ms", d.as_secs_f64() * 1e3);
        let (total, cpu) = (med(|r| r.total), med(|r| r.cpu));
        let best = rows.iter().map(|r| r.total).min().unwrap_or_default();
        println!(
            "{:>7} {:>4} {:>4} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8.2} {:>8.2}  {stats}",
            n,
            per_module,
            runs,
            ms(med(|r| r.parse)),
            ms(med(|r| r.plan)),
            ms(total),
            ms(best),
            ms(cpu),
            total.as_secs_f64() * 1e6 / n as f64,
            cpu.as_secs_f64() * 1e6 / n as f64,
        );
    }
}
