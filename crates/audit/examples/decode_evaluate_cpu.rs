//! The `decode_evaluate` bench workload, timed in thread CPU time rather than wall clock, so
//! that it can be measured on a loaded machine: `cargo run --release -p audit --example
//! decode_evaluate_cpu [BATCHES]` (Linux: reads `/proc/thread-self/schedstat`).

use std::hint::black_box;

use audit::{IngestReport, Ingestor};

#[path = "../benches/support/workload.rs"]
mod workload;

/// Nanoseconds this thread has spent on a CPU.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat is readable")
}

fn main() {
    let batches: u32 = std::env::args()
        .nth(1)
        .map_or(20, |a| a.parse().expect("BATCHES is a number"));
    let data = workload::input();
    let book = workload::addresses();
    let mut best = u64::MAX;
    let mut total = 0u64;
    for _ in 0..batches {
        let start = thread_cpu_ns();
        let mut ing = Ingestor::new(workload::policies(), book.clone());
        let mut report = IngestReport::default();
        let taints = ing.process(black_box(&data), &mut report);
        assert_eq!(report.check_decisions, workload::LINES as u64);
        black_box(taints);
        drop(ing);
        let spent = thread_cpu_ns() - start;
        best = best.min(spent);
        total += spent;
    }
    let rate = |ns: u64| workload::LINES as f64 * 1e9 / ns as f64;
    println!(
        "{} lines x {batches} batches: best {:.1} k lines/s of CPU time, mean {:.1} k lines/s",
        workload::LINES,
        rate(best) / 1e3,
        rate(total / u64::from(batches)) / 1e3,
    );
}
