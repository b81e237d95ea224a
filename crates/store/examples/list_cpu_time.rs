//! CPU time of listing 10,000 nodes (spec and Ready status each), steadier than wall clock on a
//! shared machine: `cargo run --release -p store --example list_cpu_time -- [iterations]
//! [shared|owned]` (`Store::list_shared`, what a reconcile pass takes, or `Store::list`).
//! Reads the thread's on-CPU time from `/proc/thread-self/schedstat` (Linux) around each list;
//! prints the first (cold: every row decoded) list apart from the warm ones.

#[path = "../benches/nodes/mod.rs"]
mod nodes;

use std::hint::black_box;
use std::time::Instant;

use store::Store;

/// Nanoseconds this thread has spent on a CPU, if the kernel reports it.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn timed(store: &store::SqliteStore, shared: bool) -> (u64, f64) {
    let (c, w) = (cpu_ns().unwrap_or(0), Instant::now());
    if shared {
        let listing = store.list_shared("Node").expect("list");
        assert_eq!(listing.items.len(), nodes::NODES);
        drop(black_box(listing));
    } else {
        let listing = store.list("Node").expect("list");
        assert_eq!(listing.items.len(), nodes::NODES);
        drop(black_box(listing));
    }
    (
        cpu_ns().unwrap_or(0).saturating_sub(c),
        w.elapsed().as_secs_f64() * 1e3,
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let shared = args.next().as_deref() != Some("owned");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = nodes::fleet_store(dir.path());
    let (cold_cpu, cold_wall) = timed(&store, shared);
    let (mut sum, mut best, mut wall) = (0u64, u64::MAX, 0.0);
    for _ in 0..iterations {
        let (cpu, w) = timed(&store, shared);
        sum += cpu;
        best = best.min(cpu);
        wall += w;
    }
    let n = f64::from(iterations.max(1));
    println!(
        "{} 10,000 nodes: first {:.1} ms CPU ({cold_wall:.1} ms wall); then {iterations} lists: CPU mean {:.1} ms, best {:.1} ms, wall mean {:.1} ms",
        if shared { "list_shared" } else { "list" },
        cold_cpu as f64 / 1e6,
        sum as f64 / n / 1e6,
        best as f64 / 1e6,
        wall / n
    );
}
