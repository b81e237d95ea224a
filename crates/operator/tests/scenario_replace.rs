//! Replacement of tainted nodes: StopFirst and SurgeFirst, budgets, the breaker.

mod scenario_support;

use scenario_support::{GOLD, Harness, budget, node};
use store::{Severity, Store};

fn position(kinds: &[String], kind: &str) -> usize {
    kinds
        .iter()
        .position(|k| k == kind)
        .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_first_replacement_destroys_the_old_vm_only_after_the_new_one_is_ready() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.converge().await;
    assert_eq!(h.owned_vms(), vec![(4120, "worker-1".to_owned())]);

    h.taint("worker-1", Severity::Warning);
    h.converge().await;

    assert_eq!(h.owned_vms(), vec![(4121, "worker-1".to_owned())]);
    assert!(h.admin.vm(4120).is_none(), "old VM destroyed");
    let kinds = h.event_kinds("worker-1");
    // The new instance is Ready before the old one is destroyed.
    let ready_positions: Vec<usize> = kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| *k == "Ready")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ready_positions.len(), 2, "{kinds:?}");
    assert!(
        ready_positions[1] < position(&kinds, "Destroyed"),
        "{kinds:?}"
    );
    assert!(position(&kinds, "Stopped") < position(&kinds, "CreateStarted") + 10);
    assert_eq!(h.condition("worker-1", "Ready"), "True");
    assert!(
        h.status("worker-1")["lastRecoverySeconds"].is_number(),
        "{}",
        h.status("worker-1")
    );
    insta::assert_snapshot!(h.golden());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_first_replacement_keeps_the_old_vm_running_until_the_new_one_is_ready() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-2", "worker", 4130, "SurgeFirst", 0)
    ))
    .await;
    h.converge().await;
    h.taint("worker-2", Severity::Warning);
    h.converge().await;

    assert_eq!(h.owned_vms(), vec![(4131, "worker-2".to_owned())]);
    let kinds = h.event_kinds("worker-2");
    assert!(
        !kinds.iter().any(|k| k == "Stopped"),
        "SurgeFirst never stops first: {kinds:?}"
    );
    let last_ready = kinds.iter().rposition(|k| k == "Ready").expect("ready");
    assert!(last_ready < position(&kinds, "Destroyed"), "{kinds:?}");
    insta::assert_snapshot!(h.golden());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tainted_ingress_nodes_under_max_unavailable_one_are_replaced_one_at_a_time() {
    let manifests = format!(
        "{GOLD}{}{}{}",
        node("ingress-1", "ingress", 4100, "StopFirst", 11),
        node("ingress-2", "ingress", 4110, "StopFirst", 12),
        budget("ingress", "ingress", 1)
    );
    let mut config = operator::ControllerConfig::fast(scenario_support::OPERATOR);
    // Two of two tainted would trip the default breaker; this test is about the budget.
    config.breaker.max_tainted_percent = 100;
    let h = Harness::with_config(&manifests, config).await;
    h.converge().await;
    h.taint("ingress-1", Severity::Warning);
    h.taint("ingress-2", Severity::Warning);
    h.converge().await;

    assert_eq!(
        h.owned_vms(),
        vec![
            (4101, "ingress-1".to_owned()),
            (4111, "ingress-2".to_owned())
        ]
    );
    // Never both down: one node's stop comes after the other node's new instance is Ready.
    let events = h
        .store
        .events(&store::EventQuery::default())
        .expect("events");
    let at = |node: &str, kind: &str, nth: usize| {
        events
            .iter()
            .filter(|e| e.node.as_deref() == Some(node) && e.kind == kind)
            .nth(nth)
            .map(|e| e.id)
            .unwrap_or_else(|| panic!("{node} {kind} #{nth}"))
    };
    let (first, second) = if at("ingress-1", "Stopped", 0) < at("ingress-2", "Stopped", 0) {
        ("ingress-1", "ingress-2")
    } else {
        ("ingress-2", "ingress-1")
    };
    assert!(
        at(first, "Ready", 1) < at(second, "Stopped", 0),
        "second stop before first replacement was ready"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_trips_when_every_node_is_tainted_and_nothing_is_destroyed() {
    let manifests = format!(
        "{GOLD}{}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21),
        node("worker-2", "worker", 4130, "StopFirst", 22),
    );
    let h = Harness::new(&manifests).await;
    h.converge().await;
    h.taint("worker-1", Severity::Warning);
    h.taint("worker-2", Severity::Warning);
    h.converge().await;

    assert_eq!(
        h.owned_vms(),
        vec![(4120, "worker-1".to_owned()), (4130, "worker-2".to_owned())]
    );
    for vmid in [4120, 4130] {
        assert_eq!(h.admin.vm(vmid).expect("kept").status, "running");
    }
    let all = h.golden();
    assert!(all.contains("BreakerTripped"), "{all}");
    assert!(!all.contains("Destroyed"), "{all}");
    assert!(h.handle.breaker().tripped);
    assert_eq!(h.condition("worker-1", "Held"), "True");
}
