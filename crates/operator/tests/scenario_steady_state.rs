//! A steady-state pass over 10,000 VMs makes exactly one PVE request.

#[path = "scenario_support/fleet.rs"]
mod fleet;

use operator::{Controller, ControllerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_pass_over_ten_thousand_vms_makes_exactly_one_pve_request() {
    let f = fleet::build(10_000).await;
    let (ctl, _handle) = Controller::new(
        ControllerConfig::fast(fleet::FLEET_OPERATOR),
        f.store.clone(),
        fleet::client(&f.sim),
    )
    .expect("controller");
    // First pass: a cold cache reads every owned VM's config once; nothing to do.
    let first = ctl.run_pass().await.expect("first pass");
    ctl.settle().await;
    assert_eq!(
        first.planned,
        0,
        "{}",
        ctl.last_plan().map(|p| p.to_string()).unwrap_or_default()
    );
    assert_eq!(first.config_reads, 10_000);

    let admin = f.sim.admin();
    admin.reset_counts();
    let steady = ctl.run_pass().await.expect("steady pass");
    ctl.settle().await;
    assert_eq!(steady.planned, 0);
    assert_eq!(steady.started, 0);
    assert_eq!(steady.config_reads, 0);
    assert_eq!(admin.total_requests(), 1, "{:?}", admin.request_counts());
    assert_eq!(admin.request_count("GET /cluster/resources"), 1);
}
