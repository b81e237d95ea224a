//! Quarantine against the simulator: the tainted instance is isolated and replaced, the old VM
//! is kept stopped and isolated (and shown in the node's status) until the retention has passed
//! since the taint, then destroyed.

mod scenario_support;

use scenario_support::{GOLD, Harness, node};
use store::Severity;

/// Long enough for the replacement to finish well before it ends; the test waits it out.
const RETENTION_SECS: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantined_vm_is_kept_stopped_and_isolated_until_its_retention_then_destroyed() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.converge().await;
    assert_eq!(h.owned_vms(), vec![(4120, "worker-1".to_owned())]);

    let tainted_at = std::time::Instant::now();
    h.taint_with(
        "worker-1",
        Severity::Critical,
        serde_json::json!({"action": {"kind": "Quarantine", "retentionSecs": RETENTION_SECS}}),
    );
    h.converge().await;

    // Replaced, and the old VM is still there: stopped, every NIC link down.
    assert_eq!(
        h.owned_vms(),
        vec![(4120, "worker-1".to_owned()), (4121, "worker-1".to_owned())]
    );
    let old = h.admin.vm(4120).expect("quarantined VM kept");
    assert_eq!(old.status, "stopped");
    let nets: Vec<&String> = old
        .config
        .iter()
        .filter(|(k, _)| k.starts_with("net"))
        .map(|(_, v)| v)
        .collect();
    assert!(!nets.is_empty());
    assert!(nets.iter().all(|n| n.contains("link_down=1")), "{nets:?}");
    assert_eq!(h.condition("worker-1", "Ready"), "True");
    assert_eq!(h.condition("worker-1", "Held"), "False");
    let status = h.status("worker-1");
    let kept = &status["quarantined"][0];
    assert_eq!(kept["vmid"], 4120, "{status}");
    assert_eq!(kept["name"], "worker-1", "{status}");
    assert!(kept["until"].is_string(), "{status}");
    let plan = h.ctl.last_plan().expect("a plan").to_string();
    assert!(plan.contains("VM 4120 quarantined until"), "{plan}");
    assert!(
        !h.event_kinds("worker-1").iter().any(|k| k == "Destroyed"),
        "destroyed during the quarantine"
    );
    let kept_events = h.events_of("Quarantined");
    assert_eq!(kept_events.len(), 1, "one event when the quarantine starts");
    assert!(
        kept_events[0].message.starts_with("VM 4120 (instance "),
        "{}",
        kept_events[0].message
    );

    // Once the retention has passed, the next pass destroys it (identity-proven).
    let end = std::time::Duration::from_secs(RETENTION_SECS + 1);
    if let Some(left) = end.checked_sub(tainted_at.elapsed()) {
        tokio::time::sleep(left).await;
    }
    h.converge().await;
    assert_eq!(h.owned_vms(), vec![(4121, "worker-1".to_owned())]);
    assert!(h.admin.vm(4120).is_none());
    assert!(h.status("worker-1").get("quarantined").is_none());
    let destroyed = h.events_of("Destroyed");
    assert_eq!(destroyed.len(), 1);
    assert_eq!(destroyed[0].data["vmid"], 4120);
    insta::assert_snapshot!(h.golden());
}
