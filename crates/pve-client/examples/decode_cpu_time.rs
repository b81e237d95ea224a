//! CPU time of decoding a 10,000-VM `cluster/resources` answer, for shared machines where
//! criterion's wall-clock figures are noisy:
//! `cargo build --release -p pve-client --example decode_cpu_time` then
//! `perf stat -e task-clock target/release/examples/decode_cpu_time 30` (and with `0` for the
//! set-up cost); (difference) / 30 = CPU time per decode.
//!
//! It also prints the fastest and the median wall time of a single decode (result dropped
//! included) to stderr: on a busy machine the fastest run is the one least disturbed by others.

use std::time::{Duration, Instant};

#[path = "../benches/support/resources_body.rs"]
mod resources_body;

fn main() -> Result<(), serde_json::Error> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let body = resources_body::cluster_resources_body(10_000);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let vms = pve_client::decode::cluster_resources(std::hint::black_box(body.as_bytes()))?;
        drop(std::hint::black_box(vms));
        times.push(start.elapsed());
    }
    times.sort();
    if let (Some(min), Some(median)) = (times.first(), times.get(times.len() / 2)) {
        eprintln!(
            "decode of 10,000 VMs ({} bytes), {runs} runs: fastest {:.2} ms, median {:.2} ms",
            body.len(),
            ms(*min),
            ms(*median)
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
