//! CPU time of one `plan()` over the benchmark fleet (10,000 converged nodes), steadier than
//! wall clock on a shared machine: `cargo run --release -p planner --example plan_cpu_time --
//! [iterations] [cached|computed]`. Reads the thread's on-CPU time from `/proc/thread-self/schedstat`
//! (nanoseconds, Linux) around the loop; prints wall clock too.

#[path = "../benches/fleet/mod.rs"]
mod fleet;

use planner::Taints;
use std::hint::black_box;
use std::time::Instant;

/// Nanoseconds this thread has spent on a CPU, if the kernel reports it.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let cached = args.next().as_deref() != Some("computed");
    let (desired, observed, records, policy) = fleet::fleet(10_000);
    let desired = if cached {
        fleet::with_cached_hashes(&desired)
    } else {
        desired
    };
    let taints = Taints::default();
    let now = fleet::now();
    let p = planner::plan(&desired, &observed, &records, &taints, &policy, now);
    assert!(
        p.is_empty() && p.holds.is_empty(),
        "fleet must be converged"
    );
    let mut best = u64::MAX;
    let (cpu0, wall0) = (cpu_ns(), Instant::now());
    for _ in 0..iterations {
        let c = cpu_ns();
        black_box(planner::plan(
            black_box(&desired),
            black_box(&observed),
            black_box(&records),
            black_box(&taints),
            black_box(&policy),
            now,
        ));
        if let (Some(a), Some(b)) = (c, cpu_ns()) {
            best = best.min(b - a);
        }
    }
    let wall = wall0.elapsed() / iterations.max(1);
    let hashes = if cached { "cached" } else { "computed" };
    match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) => println!(
            "{iterations} plans ({hashes} hashes): CPU mean {:.2} ms, CPU best {:.2} ms, wall mean {:.2} ms",
            (b - a) as f64 / f64::from(iterations.max(1)) / 1e6,
            best as f64 / 1e6,
            wall.as_secs_f64() * 1e3
        ),
        _ => println!(
            "{iterations} plans ({hashes} hashes): wall mean {:.2} ms (no schedstat)",
            wall.as_secs_f64() * 1e3
        ),
    }
}
