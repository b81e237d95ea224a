//! Isolation of a compromised instance: every NIC gets `link_down=1`, MAC and bridge kept.

mod scenario_support;

use scenario_support::{GOLD, Harness, node};
use store::Severity;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolate_taint_sets_link_down_on_every_nic_and_keeps_the_vm() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.converge().await;
    let before = h.admin.vm(4120).expect("vm");
    let net0_before = before.config["net0"].clone();

    h.taint_with(
        "worker-1",
        Severity::Warning,
        serde_json::json!({"action": "isolate"}),
    );
    h.converge().await;

    let after = h.admin.vm(4120).expect("kept for forensics");
    let net0 = &after.config["net0"];
    assert!(net0.split(',').any(|p| p == "link_down=1"), "{net0}");
    let mac = |v: &str| v.split(',').next().map(str::to_owned);
    assert_eq!(mac(net0), mac(&net0_before), "MAC kept");
    assert!(net0.contains("bridge=vmbr0"));
    let kinds = h.event_kinds("worker-1");
    assert_eq!(
        kinds.iter().filter(|k| *k == "Isolated").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_taint_isolates_at_once_then_replaces() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.converge().await;
    h.taint("worker-1", Severity::Critical);
    h.converge().await;

    assert_eq!(h.owned_vms(), vec![(4121, "worker-1".to_owned())]);
    let kinds = h.event_kinds("worker-1");
    let isolated = kinds
        .iter()
        .position(|k| k == "Isolated")
        .expect("isolated");
    let created = kinds
        .iter()
        .rposition(|k| k == "CreateStarted")
        .expect("replaced");
    assert!(isolated < created, "{kinds:?}");
}
