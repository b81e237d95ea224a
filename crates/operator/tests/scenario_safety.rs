//! Safety: foreign VMs are never touched; a VM whose identity changed is never destroyed.

mod scenario_support;

use pve_client::ConfigUpdate;
use scenario_support::{GOLD, Harness, client, node};
use store::Severity;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_vms_including_look_alikes_are_never_touched() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    // Inside the node's VMID range, and one with the node's own name.
    h.admin.create_foreign_vm("pve1", 4120, "someone-else");
    h.admin.create_foreign_vm("pve1", 4125, "worker-1");
    let before: Vec<_> = [4120, 4125]
        .iter()
        .map(|v| h.admin.vm(*v).expect("foreign exists"))
        .collect();
    h.admin.reset_counts();
    h.converge().await;
    h.taint("worker-1", Severity::Warning);
    h.converge().await;

    for (vmid, old) in [4120, 4125].iter().zip(&before) {
        let now = h.admin.vm(*vmid).expect("foreign VM still exists");
        assert_eq!(now.config, old.config, "VM {vmid} config changed");
        assert_eq!(now.status, old.status, "VM {vmid} power changed");
    }
    // No request named a foreign VM beyond the listing: every per-VM request was for ours.
    let owned: Vec<u32> = h.owned_vms().iter().map(|(v, _)| *v).collect();
    assert!(!owned.contains(&4120) && !owned.contains(&4125));
    for task in h.admin.tasks() {
        assert!(
            !task.upid.contains(":4120:") && !task.upid.contains(":4125:"),
            "task on a foreign VM: {}",
            task.upid
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_whose_smbios_uuid_changed_is_refused_destroy_and_the_node_is_held() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-2", "worker", 4130, "SurgeFirst", 0)
    ))
    .await;
    h.converge().await;
    // Someone changes the VM's SMBIOS uuid behind reborn's back.
    let pve = client(&h.sim);
    pve.update_config(
        &"pve1".parse().expect("node"),
        pve_client::VmId::new(4130).expect("vmid"),
        &ConfigUpdate::new().set("smbios1", "uuid=00000000-1111-2222-3333-444444444444"),
    )
    .await
    .expect("config updated");

    h.taint("worker-2", Severity::Warning);
    h.converge().await;

    let old = h.admin.vm(4130).expect("the changed VM is never destroyed");
    assert_eq!(old.status, "running");
    let kinds = h.event_kinds("worker-2");
    assert!(kinds.iter().any(|k| k == "DestroyRefused"), "{kinds:?}");
    assert!(!kinds.iter().any(|k| k == "Destroyed"), "{kinds:?}");
    assert!(h.ctl.held().contains_key("worker-2"));
    assert_eq!(h.condition("worker-2", "Held"), "True");
}

/// A plan made before the node's create finished (the loop's passes overlap running tasks)
/// still asks for a create; replayed after the create recorded its instance it clones nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_create_plan_replayed_after_the_create_clones_nothing() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.ctl.run_pass().await.expect("first pass");
    let stale = h.ctl.last_plan().expect("a plan");
    let create = stale
        .actions
        .iter()
        .find(|a| matches!(a.kind, planner::ActionKind::Create(_)))
        .expect("the first pass planned the create")
        .clone();
    h.converge().await;
    assert_eq!(h.owned_vms(), vec![(4120, "worker-1".to_owned())]);

    let config = std::sync::Arc::new(operator::ControllerConfig::fast(scenario_support::OPERATOR));
    let executor = operator::executor::Executor::new(
        client(&h.sim),
        h.store.clone(),
        config,
        scenario_support::OPERATOR.parse().expect("operator id"),
    );
    let err = executor
        .execute(&create)
        .await
        .expect_err("a second create of the node is refused");
    assert!(
        matches!(err, operator::executor::ExecError::StalePlan { .. }),
        "{err}"
    );
    assert_eq!(err.class(), operator::executor::ErrorClass::Replan);
    assert_eq!(h.owned_vms(), vec![(4120, "worker-1".to_owned())]);
    assert_eq!(
        h.event_kinds("worker-1")
            .iter()
            .filter(|k| *k == "CreateStarted")
            .count(),
        1
    );
}
