//! CPU time of decoding a 10,000-VM `cluster/resources` answer, for shared machines where
//! criterion's wall-clock figures are noisy:
//! `cargo build --release -p pve-client --example decode_cpu_time` then
//! `perf stat -e task-clock target/release/examples/decode_cpu_time 30` (and with `0` for the
//! set-up cost); (difference) / 30 = CPU time per decode.

#[path = "../benches/support/resources_body.rs"]
mod resources_body;

fn main() -> Result<(), serde_json::Error> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let body = resources_body::cluster_resources_body(10_000);
    for _ in 0..runs {
        let vms = pve_client::decode::cluster_resources(std::hint::black_box(body.as_bytes()))?;
        std::hint::black_box(vms);
    }
    Ok(())
}
