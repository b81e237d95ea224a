//! A new instance that never becomes ready (decision 0014): reported, retried with backoff,
//! given up on after a bound; the failed VM is destroyed, the old one serves again where that
//! is safe, and the node does not hold its disruption budget forever.

mod scenario_support;

use std::time::Duration;

use operator::ControllerConfig;
use planner::BlockedBy;
use pve_sim::Fault;
use scenario_support::{GOLD, Harness, OPERATOR, budget, node};
use store::{Severity, Store};

const AGENT_PING: &str = "POST /nodes/{node}/qemu/{vmid}/agent/ping";

/// Fast, with two short readiness waits before giving up, and a retry after a give-up that
/// never comes within a test (an hour): what follows a give-up stays observable.
fn config() -> ControllerConfig {
    let mut c = ControllerConfig::fast(OPERATOR);
    c.readiness.default_timeout_ms = Some(50);
    c.readiness.max_attempts = 2;
    c.readiness.give_up_backoff.initial_ms = 3_600_000;
    c.readiness.give_up_backoff.max_ms = 3_600_000;
    c
}

/// worker-3: a new node whose readiness probe goes to a loopback port nothing listens on.
fn never_ready_node() -> String {
    node("worker-3", "worker", 4500, "StopFirst", 33)
        .replace(
            "readiness: {guestAgent: true, timeout: 5m}",
            "readiness: {guestAgent: false, tcp: 9, timeout: 5m}",
        )
        .replace(
            "address: 10.0.10.33/24, gateway: 10.0.10.1",
            "address: 127.0.0.33/8, gateway: 127.0.0.1",
        )
}

/// The guest agent of every VM stops answering (the new image's agent never starts).
fn agent_never_answers(h: &Harness) {
    h.admin.inject(Fault::ErrorRate {
        endpoint: AGENT_PING.to_owned(),
        rate: 1.0,
        status: 500,
        message: "QEMU guest agent is not running".to_owned(),
        count: None,
    });
}

/// Runs passes (settling after each) until `done` holds; panics after many passes.
async fn drive_until(h: &Harness, what: &str, done: impl Fn(&Harness) -> bool) {
    for _ in 0..400 {
        if done(h) {
            return;
        }
        let _ = h.ctl.run_pass().await;
        h.ctl.settle().await;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    panic!("never reached: {what}; events: {}", h.golden());
}

fn has_event(h: &Harness, node: &str, kind: &str) -> bool {
    h.event_kinds(node).iter().any(|k| k == kind)
}

/// `wanted` appear in `kinds` in this order (other kinds may come between).
fn assert_in_order(kinds: &[String], wanted: &[&str]) {
    let mut at = 0;
    for w in wanted {
        match kinds[at..].iter().position(|k| k == w) {
            Some(i) => at += i + 1,
            None => panic!("{w} missing after position {at} (want {wanted:?}) in {kinds:?}"),
        }
    }
}

fn vmids_of(h: &Harness, node: &str) -> Vec<u32> {
    let mut v: Vec<u32> = h
        .store
        .instances(Some(node))
        .expect("instances")
        .into_iter()
        .map(|r| r.vmid)
        .collect();
    v.sort_unstable();
    v
}

fn worker_pair(strategy: &str, ip1: u8, ip2: u8) -> String {
    format!(
        "{GOLD}{}{}{}",
        node("worker-1", "worker", 4300, strategy, ip1),
        node("worker-2", "worker", 4400, strategy, ip2),
        budget("workers", "worker", 1)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_first_replacement_never_ready_is_destroyed_and_the_old_vm_serves_again() {
    // Two of the budget's two nodes tainted at once would trip the breaker (worker-1 keeps
    // its taint while it waits for its retry); this test is about the budget.
    let mut c = config();
    c.breaker.enabled = false;
    let h = Harness::with_config(&worker_pair("StopFirst", 31, 32), c).await;
    h.converge().await;
    assert_eq!(vmids_of(&h, "worker-1"), [4300]);

    agent_never_answers(&h);
    h.taint("worker-1", Severity::Warning);
    drive_until(&h, "the replacement is abandoned", |h| {
        has_event(h, "worker-1", "ReplacementAbandoned")
    })
    .await;
    // The old instance's agent works again; the failed new VM is never checked again.
    h.admin.clear_faults();
    drive_until(&h, "the old VM serves again", |h| {
        h.admin.vm(4301).is_none() && h.condition("worker-1", "Ready") == "True"
    })
    .await;

    assert_eq!(vmids_of(&h, "worker-1"), [4300], "only the old instance");
    assert!(
        h.admin.vm(4300).is_some_and(|v| v.status == "running"),
        "old VM runs"
    );
    let kinds = h.event_kinds("worker-1");
    assert_in_order(
        &kinds,
        &[
            "Ready",
            "Stopped",
            "Created",
            "NotReady",
            "NotReady",
            "ReplacementAbandoned",
            "DestroyStarted",
            "Destroyed",
            "Started",
            "Ready",
        ],
    );
    assert!(!kinds.contains(&"Promoted".to_owned()), "{kinds:?}");
    let abandoned = h.events_of("ReplacementAbandoned");
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].data["vmid"], 4301);
    assert_eq!(abandoned[0].data["attempts"], 2);
    assert!(
        abandoned[0].message.contains("guest agent"),
        "the last failure is reported: {}",
        abandoned[0].message
    );
    let destroyed = h.events_of("Destroyed");
    assert_eq!(destroyed.len(), 1, "only the failed VM");
    assert_eq!(destroyed[0].data["vmid"], 4301);
    // Reported on the node: the give-up condition, and the replacement held until the retry.
    assert_eq!(h.condition("worker-1", "ReadinessGaveUp"), "True");
    assert!(
        h.condition_message("worker-1", "ReadinessGaveUp")
            .contains("VM 4301"),
        "{}",
        h.status("worker-1")
    );
    let plan = h.ctl.last_plan().expect("planned");
    assert!(
        plan.holds.iter().any(|x| x.node.as_str() == "worker-1"
            && matches!(x.blocked_by, BlockedBy::RetryBackoff { count: 1, .. })),
        "{plan}"
    );

    // The budget is usable again: worker-2 is replaced while worker-1 waits for its retry.
    h.taint("worker-2", Severity::Warning);
    drive_until(&h, "worker-2 is replaced", |h| {
        has_event(h, "worker-2", "Promoted") && has_event(h, "worker-2", "Destroyed")
    })
    .await;
    assert_eq!(vmids_of(&h, "worker-2"), [4401]);
    assert_eq!(vmids_of(&h, "worker-1"), [4300], "worker-1 still waits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_first_replacement_never_ready_is_destroyed_while_the_old_vm_keeps_serving() {
    let h = Harness::with_config(&worker_pair("SurgeFirst", 0, 0), config()).await;
    h.converge().await;
    assert_eq!(vmids_of(&h, "worker-1"), [4300]);

    agent_never_answers(&h);
    h.taint("worker-1", Severity::Warning);
    drive_until(&h, "the failed VM is destroyed", |h| {
        has_event(h, "worker-1", "ReplacementAbandoned") && h.admin.vm(4301).is_none()
    })
    .await;

    assert_eq!(vmids_of(&h, "worker-1"), [4300]);
    assert!(
        h.admin.vm(4300).is_some_and(|v| v.status == "running"),
        "old VM never stopped"
    );
    let kinds = h.event_kinds("worker-1");
    assert_in_order(
        &kinds,
        &[
            "Ready",
            "Created",
            "NotReady",
            "NotReady",
            "ReplacementAbandoned",
            "Destroyed",
        ],
    );
    assert!(!kinds.contains(&"Stopped".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"Promoted".to_owned()), "{kinds:?}");
    assert_eq!(h.condition("worker-1", "Ready"), "True", "still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compromised_old_vm_is_never_restarted_after_its_replacement_is_abandoned() {
    let h = Harness::with_config(&worker_pair("StopFirst", 31, 32), config()).await;
    h.converge().await;

    agent_never_answers(&h);
    h.taint("worker-1", Severity::Critical);
    drive_until(&h, "the failed VM is destroyed", |h| {
        has_event(h, "worker-1", "ReplacementAbandoned") && h.admin.vm(4301).is_none()
    })
    .await;
    h.admin.clear_faults();
    // A few more passes: nothing may start the compromised VM.
    for _ in 0..10 {
        let _ = h.ctl.run_pass().await;
        h.ctl.settle().await;
    }

    let old = h.admin.vm(4300).expect("old VM kept");
    assert_eq!(old.status, "stopped", "stays stopped");
    let kinds = h.event_kinds("worker-1");
    assert_in_order(&kinds, &["Isolated", "ReplacementAbandoned", "Destroyed"]);
    let after = kinds
        .iter()
        .position(|k| k == "ReplacementAbandoned")
        .expect("abandoned");
    assert!(!kinds[after..].contains(&"Started".to_owned()), "{kinds:?}");
    assert_eq!(
        h.condition("worker-1", "Ready"),
        "False",
        "reported unavailable"
    );
    let plan = h.ctl.last_plan().expect("planned");
    assert!(
        plan.holds.iter().any(|x| x.node.as_str() == "worker-1"
            && matches!(x.blocked_by, BlockedBy::Compromised { .. })),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_node_that_never_becomes_ready_is_destroyed_and_does_not_hold_the_budget() {
    let h = Harness::with_config(&worker_pair("StopFirst", 31, 32), config()).await;
    h.converge().await;

    // worker-3 is new, and never ready.
    let never = never_ready_node();
    scenario_support::apply(h.store.as_ref(), &format!("{GOLD}{never}"));
    h.taint("worker-2", Severity::Warning);
    drive_until(&h, "worker-3 is given up on and worker-2 replaced", |h| {
        has_event(h, "worker-3", "Destroyed") && has_event(h, "worker-2", "Promoted")
    })
    .await;

    let abandoned = h.events_of("ReplacementAbandoned");
    assert_eq!(abandoned.len(), 1, "{}", h.golden());
    assert_eq!(abandoned[0].node.as_deref(), Some("worker-3"));
    assert_eq!(abandoned[0].data["neverAvailable"], true);
    // While worker-3's first attempts ran it counted against the budget (a normal rollout
    // waits for a new node); only its give-up let worker-2's StopFirst replacement stop.
    let stopped = h
        .events_of("Stopped")
        .into_iter()
        .find(|e| e.node.as_deref() == Some("worker-2"))
        .expect("worker-2 stopped");
    assert!(stopped.id > abandoned[0].id, "{}", h.golden());
    assert!(
        vmids_of(&h, "worker-3").is_empty(),
        "destroyed, not re-cloned yet"
    );
    assert_in_order(
        &h.event_kinds("worker-3"),
        &[
            "Created",
            "NotReady",
            "NotReady",
            "ReplacementAbandoned",
            "Destroyed",
        ],
    );
    let plan = h.ctl.last_plan().expect("planned");
    assert!(
        plan.holds.iter().any(|x| x.node.as_str() == "worker-3"
            && x.wanted == "create"
            && matches!(x.blocked_by, BlockedBy::RetryBackoff { .. })),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_node_is_cloned_again_after_its_backoff_and_given_up_on_again() {
    let mut c = config();
    c.readiness.max_attempts = 1;
    // Over a second: instance ids name the VMID and the second of their create, and the
    // VMID is free again (the second instance must be told from the first).
    c.readiness.give_up_backoff.initial_ms = 2_400;
    c.readiness.give_up_backoff.max_ms = 2_400;
    c.breaker.enabled = false;
    let never = never_ready_node();
    let h = Harness::with_config(&format!("{GOLD}{never}"), c).await;
    drive_until(&h, "two give-ups", |h| {
        h.events_of("ReplacementAbandoned").len() >= 2
    })
    .await;
    let abandoned = h.events_of("ReplacementAbandoned");
    assert_eq!(abandoned[0].data["count"], 1);
    assert_eq!(
        abandoned[1].data["count"], 2,
        "give-ups in a row are counted"
    );
    assert_ne!(
        abandoned[0].data["instance"], abandoned[1].data["instance"],
        "a fresh instance each time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_max_attempts_zero_a_never_ready_replacement_is_held_not_abandoned() {
    let mut c = config();
    c.readiness.max_attempts = 0;
    let h = Harness::with_config(&worker_pair("SurgeFirst", 0, 0), c).await;
    h.converge().await;
    agent_never_answers(&h);
    h.taint("worker-1", Severity::Warning);
    drive_until(&h, "three failed readiness waits", |h| {
        h.event_kinds("worker-1")
            .iter()
            .filter(|k| *k == "NotReady")
            .count()
            >= 3
    })
    .await;
    assert!(h.events_of("ReplacementAbandoned").is_empty());
    assert!(h.admin.vm(4301).is_some(), "kept for a person to look at");
    let plan = h.ctl.last_plan().expect("planned");
    assert!(
        plan.holds.iter().any(|x| x.node.as_str() == "worker-1"
            && matches!(x.blocked_by, BlockedBy::ReadinessFailed { .. })),
        "{plan}"
    );
    assert!(
        h.condition_message("worker-1", "Replacing")
            .contains("failed readiness waits"),
        "{}",
        h.status("worker-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_gives_up_whatever_the_attempts() {
    let mut c = config();
    c.readiness.max_attempts = 0;
    c.readiness.give_up_after_ms = Some(1);
    let h = Harness::with_config(&worker_pair("SurgeFirst", 0, 0), c).await;
    h.converge().await;
    agent_never_answers(&h);
    h.taint("worker-1", Severity::Warning);
    drive_until(&h, "the failed VM is destroyed", |h| {
        has_event(h, "worker-1", "ReplacementAbandoned") && h.admin.vm(4301).is_none()
    })
    .await;
    let abandoned = h.events_of("ReplacementAbandoned");
    assert_eq!(abandoned[0].data["attempts"], 1);
    assert!(
        abandoned[0]
            .message
            .contains("since its first readiness wait"),
        "{}",
        abandoned[0].message
    );
}
