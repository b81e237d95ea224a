//! Faults: PVE errors, 596 with unknown outcome, failed tasks, locks, a VMID taken
//! concurrently, lagging `cluster/resources`. Each converges without duplicates or orphans.

mod scenario_support;

use std::time::Duration;

use pve_sim::Fault;
use scenario_support::{GOLD, Harness, OPERATOR, node};
use store::{Severity, Store};

const CLONE: &str = "POST /nodes/{node}/qemu/{vmid}/clone";

fn one_worker() -> String {
    format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    )
}

/// Converges and checks: exactly one owned VM for worker-1, it is Ready, no lease leaks.
async fn assert_converged(h: &Harness) -> u32 {
    for _ in 0..20 {
        h.converge().await;
        if h.owned_vms().len() == 1 && h.condition("worker-1", "Ready") == "True" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let vms = h.owned_vms();
    assert_eq!(vms.len(), 1, "exactly one VM: {vms:?}");
    assert_eq!(
        h.condition("worker-1", "Ready"),
        "True",
        "{}",
        h.status("worker-1")
    );
    let leases = h.store.vmid_leases().expect("leases");
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0].vmid, vms[0].0);
    assert!(h.store.journal_in_flight().expect("journal").is_empty());
    vms[0].0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_500_on_clone_is_retried_on_a_later_pass() {
    let h = Harness::new(&one_worker()).await;
    h.admin.inject(Fault::ErrorRate {
        endpoint: CLONE.to_owned(),
        rate: 1.0,
        status: 500,
        message: "internal error".to_owned(),
        count: Some(1),
    });
    assert_converged(&h).await;
    assert!(
        h.event_kinds("worker-1")
            .contains(&"ActionFailed".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_answered_with_596_is_re_read_not_repeated() {
    let h = Harness::new(&one_worker()).await;
    h.admin.inject(Fault::Timeout {
        endpoint: CLONE.to_owned(),
        rate: 1.0,
        after_ms: 0,
        apply: true,
        count: Some(1),
    });
    let vmid = assert_converged(&h).await;
    assert_eq!(vmid, 4120);
    assert_eq!(
        h.admin.request_count(CLONE),
        1,
        "the clone was not sent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_clone_task_releases_its_lease_and_is_retried() {
    let h = Harness::new(&one_worker()).await;
    h.admin.inject(Fault::TaskFailure {
        task_type: "qmclone".to_owned(),
        message: "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout".to_owned(),
        count: Some(1),
    });
    assert_converged(&h).await;
    assert_eq!(h.admin.request_count(CLONE), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_lock_on_the_old_vm_holds_the_node_without_touching_it() {
    let h = Harness::new(&one_worker()).await;
    assert_converged(&h).await;
    h.admin.inject(Fault::HoldLock {
        vmid: 4120,
        lock: "backup".to_owned(),
    });
    h.taint("worker-1", Severity::Warning);
    h.converge().await;
    let vm = h.admin.vm(4120).expect("still there");
    assert_eq!(vm.status, "running");
    assert!(
        h.admin.vm(4121).is_none(),
        "no replacement while the backup runs"
    );
    assert_eq!(
        h.condition("worker-1", "Held"),
        "True",
        "{}",
        h.status("worker-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmid_taken_between_plan_and_clone_moves_to_the_next_vmid() {
    let h = Harness::new(&one_worker()).await;
    h.admin.inject(Fault::Latency {
        endpoint: CLONE.to_owned(),
        millis: 400,
    });
    let admin = h.admin.clone();
    let intruder = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        admin.create_foreign_vm("pve1", 4120, "intruder");
    });
    h.ctl.run_pass().await.expect("pass");
    intruder.await.expect("intruder");
    h.ctl.settle().await;
    h.admin.clear_faults();
    let vmid = assert_converged(&h).await;
    assert_eq!(vmid, 4121);
    assert_eq!(
        h.admin.vm(4120).expect("intruder kept").config["name"],
        "intruder"
    );
    assert!(
        h.event_kinds("worker-1")
            .contains(&"ActionFailed".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_cluster_resources_do_not_cause_duplicates() {
    let mut sim = scenario_support::attested_fast_sim();
    sim.resources_lag_ms = 300;
    let h = Harness::with_sim(
        &one_worker(),
        operator::ControllerConfig::fast(OPERATOR),
        sim,
    )
    .await;
    assert_converged(&h).await;
    h.taint("worker-1", Severity::Warning);
    for _ in 0..40 {
        h.converge().await;
        if h.admin.vm(4120).is_none() && h.owned_vms().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(h.owned_vms(), vec![(4121, "worker-1".to_owned())]);
}

/// PVE's `cluster/resources` shows the power state pvestatd sampled (every 10 s), and `unknown`
/// for a VM cloned since. Here the sampler never runs again: a replacement that trusted only
/// the listing would wait forever to see its new VM running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_does_not_wait_for_the_listing_to_show_its_vm_running() {
    let mut sim = scenario_support::attested_fast_sim();
    sim.resources_lag_ms = 3_600_000;
    let mut config = operator::ControllerConfig::fast(OPERATOR);
    config.listing_lag_ms = 3_600_000;
    let h = Harness::with_sim(&one_worker(), config, sim).await;
    h.converge().await;
    assert_eq!(h.status("worker-1")["instance"]["ready"], true);
    h.taint("worker-1", Severity::Warning);
    h.converge().await;
    assert_eq!(
        h.owned_vms(),
        vec![(4121, "worker-1".to_owned())],
        "{:?}\n{:?}",
        h.ctl.last_plan(),
        h.event_kinds("worker-1")
    );
}
