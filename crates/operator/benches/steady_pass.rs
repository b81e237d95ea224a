//! Bench binary: the time of a steady-state reconcile pass over a 10,000-VM fleet, and the PVE
//! requests it makes (counted at the simulator). `cargo bench -p operator --bench steady_pass`.

#[path = "../tests/scenario_support/fleet.rs"]
mod fleet;

use std::time::{Duration, Instant};

use operator::{Controller, ControllerConfig};
use store::Store;

fn main() {
    let n: u32 = std::env::var("FLEET_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let setup = Instant::now();
        let f = fleet::build(n).await;
        let (ctl, _handle) = Controller::new(
            ControllerConfig::fast(fleet::FLEET_OPERATOR),
            f.store.clone(),
            fleet::client(&f.sim),
        )
        .expect("controller");
        println!("fleet of {n} VMs built in {:?}", setup.elapsed());
        let cold = Instant::now();
        let first = ctl.run_pass().await.expect("pass");
        ctl.settle().await;
        println!(
            "cold pass: {:?} ({} config reads, {} actions)",
            cold.elapsed(),
            first.config_reads,
            first.planned
        );
        let admin = f.sim.admin();
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..20 {
            admin.reset_counts();
            let t = Instant::now();
            let r = ctl.run_pass().await.expect("pass");
            times.push(t.elapsed());
            assert_eq!(r.planned, 0);
            assert_eq!(admin.total_requests(), 1, "{:?}", admin.request_counts());
        }
        times.sort();
        // Where a pass spends its time: the parts measured alone.
        let pve = fleet::client(&f.sim);
        let t = Instant::now();
        let listing = pve.cluster_vms().await.expect("listing");
        let listing_time = t.elapsed();
        let t = Instant::now();
        let nodes = f.store.list_shared("Node").expect("list");
        let list_time = t.elapsed();
        let t = Instant::now();
        let instances = f.store.instances(None).expect("instances");
        let instances_time = t.elapsed();
        println!(
            "parts: GET /cluster/resources ({} VMs, simulator in-process) {listing_time:?}; \
             store list_shared of {} nodes {list_time:?}; \
             store instances ({}) {instances_time:?}",
            listing.len(),
            nodes.items.len(),
            instances.len()
        );
        println!(
            "steady pass over {n} VMs: median {:?}, min {:?}, max {:?}; PVE requests per pass: 1",
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    });
}
