//! Readiness give-up (decision 0014): the operator gave up waiting for a new instance. The
//! planner destroys it, lets the old instance serve again where that is safe, holds the next
//! attempt until the retry time, and does not let a never-ready new node hold a budget.

mod support;

use chrono::Duration;
use model::{Severity, TaintAction};
use planner::{ActionKind, BlockedBy, GaveUp, Reason, TaintSource};
use support::{Scenario, instance_id, vmid};

fn verbs(p: &planner::Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| format!("{} {} {}", a.node, a.kind.verb(), touched(&a.kind)))
        .collect()
}

fn touched(k: &ActionKind) -> String {
    match k {
        ActionKind::Create(c) => c.vmid.to_string(),
        other => other
            .touched_vmid()
            .map_or_else(|| "-".to_owned(), |v| v.to_string()),
    }
}

/// The operator gave up on instance `n` of `node`; the next attempt is due in `retry_in_min`
/// minutes (negative: already due).
fn gave_up(
    mut s: Scenario,
    node: &str,
    n: u32,
    retry_in_min: i64,
    never_available: bool,
) -> Scenario {
    s.records.gave_up.push(GaveUp {
        node: node.parse().expect("valid"),
        instance_id: instance_id(n),
        vmid: vmid(n),
        count: 1,
        retry_at: s.now + Duration::minutes(retry_in_min),
        never_available,
        detail: "guest agent: QEMU guest agent is not running".to_owned(),
    });
    s
}

fn replace_taint(s: Scenario) -> Scenario {
    s.tainted(
        TaintSource::Cli,
        Severity::Medium,
        TaintAction::Replace,
        "rotate",
    )
}

#[test]
fn abandoned_incoming_is_destroyed_with_its_identity_and_never_promoted() {
    let s = replace_taint(Scenario::new().node("worker-1").surge_first().running(4100))
        .incoming(4101, Some(false));
    let s = gave_up(s, "worker-1", 4101, 10, false);
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 destroy 4101"], "{p}");
    let ActionKind::Destroy(id) = &p.actions[0].kind else {
        panic!("expected destroy: {p}");
    };
    assert_eq!(id.instance_id, instance_id(4101));
    assert_eq!(id.smbios_uuid, "uuid-4101");
    assert!(id.recorded);
    assert!(
        matches!(&p.actions[0].reason, Reason::ReadinessAbandoned { instance_id: i, count: 1, .. } if *i == instance_id(4101)),
        "{p}"
    );
    assert!(
        p.actions[0]
            .reason
            .to_string()
            .contains("guest agent is not running"),
        "the reason carries the last failure: {p}"
    );
}

#[test]
fn abandoned_incoming_not_checked_yet_is_destroyed_too() {
    let s = replace_taint(Scenario::new().node("worker-1").surge_first().running(4100))
        .incoming(4101, None);
    let p = gave_up(s, "worker-1", 4101, 10, false).plan();
    assert_eq!(verbs(&p), ["worker-1 destroy 4101"], "{p}");
}

#[test]
fn stop_first_old_instance_is_started_again_only_after_the_abandoned_one_is_destroyed() {
    let s =
        replace_taint(Scenario::new().node("worker-1").stopped(4100)).incoming(4101, Some(false));
    let p = gave_up(s, "worker-1", 4101, 10, false).plan();
    // In this order: the pair shares a fixed address, and the executor stops a node's
    // sequence at the first failure (a refused destroy never starts the old one beside it).
    assert_eq!(
        verbs(&p),
        ["worker-1 destroy 4101", "worker-1 start 4100"],
        "{p}"
    );
    assert!(
        matches!(p.actions[1].reason, Reason::ReadinessAbandoned { .. }),
        "{p}"
    );
}

#[test]
fn compromised_old_instance_is_never_started_again() {
    let s = Scenario::new()
        .node("worker-1")
        .stopped(4100)
        .isolated(4100)
        .tainted(
            TaintSource::Cerbos,
            Severity::Critical,
            TaintAction::Replace,
            "identity denied on tenant data",
        )
        .incoming(4101, Some(false));
    let p = gave_up(s, "worker-1", 4101, 10, false).plan();
    assert_eq!(verbs(&p), ["worker-1 destroy 4101"], "{p}");
    assert!(
        p.holds
            .iter()
            .any(|h| h.wanted == "start"
                && h.blocked_by == BlockedBy::Compromised { vmid: vmid(4100) }),
        "reported as not restarted: {p}"
    );
    // The node stays unavailable: it keeps counting against its budget.
    let s2 = Scenario::new()
        .node("worker-1")
        .stopped(4100)
        .isolated(4100)
        .tainted(
            TaintSource::Cerbos,
            Severity::Critical,
            TaintAction::Replace,
            "identity denied on tenant data",
        )
        .budget("worker", "worker", 1);
    let p2 = gave_up(s2, "worker-1", 4101, 10, false).plan();
    assert!(
        p2.actions.is_empty(),
        "nothing started, nothing re-cloned yet: {p2}"
    );
    assert_eq!(p2.budgets[0].unavailable, 1, "{p2}");
}

#[test]
fn old_instance_with_an_isolating_taint_is_never_started_again_even_if_not_isolated_yet() {
    // The isolation was held (say a lock), so the VM is only stopped: it still is compromised.
    let s = Scenario::new()
        .node("worker-1")
        .stopped(4100)
        .tainted(
            TaintSource::Webhook,
            Severity::High,
            TaintAction::Isolate,
            "keep for forensics",
        )
        .incoming(4101, Some(false));
    let p = gave_up(s, "worker-1", 4101, 10, false).plan();
    assert!(
        !verbs(&p).iter().any(|v| v.contains("start")),
        "never restarted: {p}"
    );
}

#[test]
fn while_the_retry_waits_a_stopped_old_instance_serves_and_the_replacement_is_held() {
    let s = replace_taint(Scenario::new().node("worker-1").stopped(4100));
    let p = gave_up(s, "worker-1", 4101, 10, false).plan();
    assert_eq!(verbs(&p), ["worker-1 start 4100"], "{p}");
    let hold = p
        .holds
        .iter()
        .find(|h| h.wanted == "replace")
        .expect("replacement held");
    assert!(
        matches!(hold.blocked_by, BlockedBy::RetryBackoff { count: 1, .. }),
        "{p}"
    );
    assert!(matches!(hold.reason, Reason::Tainted { .. }), "{p}");
    // What `reborn plan` prints: why the old one starts, and until when the replacement waits.
    let text = p.to_string();
    assert!(text.contains("gave up on instance"), "{text}");
    assert!(
        text.contains("next try after 2026-11-21T10:10:00Z"),
        "{text}"
    );
}

#[test]
fn when_the_retry_is_due_the_replacement_starts_again() {
    let s = replace_taint(Scenario::new().node("worker-1").running(4100));
    let p = gave_up(s, "worker-1", 4101, -1, false).plan();
    assert_eq!(
        verbs(&p),
        ["worker-1 stop 4100", "worker-1 create 4101"],
        "{p}"
    );
}

#[test]
fn surge_first_old_instance_keeps_serving_while_the_retry_waits() {
    let s = replace_taint(Scenario::new().node("worker-1").surge_first().running(4100));
    let p = gave_up(s, "worker-1", 4101, 10, false).plan();
    assert!(p.actions.is_empty(), "{p}");
    assert!(
        p.holds
            .iter()
            .any(|h| matches!(h.blocked_by, BlockedBy::RetryBackoff { .. })),
        "{p}"
    );
}

#[test]
fn budget_is_usable_by_another_node_once_the_old_instance_serves_again() {
    // ingress-1 gave up its replacement; its old instance runs and is ready again. It sorts
    // first: without the retry hold it would take the budget again at once.
    let s = Scenario::new().node("ingress-1").running(4100);
    let s = replace_taint(s).node("ingress-2").running(4200);
    let s = replace_taint(s).budget("ingress", "ingress", 1);
    let mut s = gave_up(s, "ingress-1", 4101, 10, false);
    s.policy.breaker.enabled = false;
    let p = s.plan();
    assert_eq!(
        verbs(&p),
        ["ingress-2 stop 4200", "ingress-2 create 4201"],
        "{p}"
    );
}

#[test]
fn brand_new_node_never_ready_is_destroyed_and_does_not_hold_the_budget() {
    // ingress-0 is new: its first instance never became ready and was given up on.
    let s = Scenario::new().node("ingress-0").running(4100);
    let s = s.node("ingress-2").running(4200);
    let s = replace_taint(s).budget("ingress", "ingress", 1);
    let mut s = gave_up(s, "ingress-0", 4100, 10, true);
    // Running, never ready.
    s.observed
        .vms
        .iter_mut()
        .filter(|v| v.vmid.get() == 4100)
        .for_each(|v| v.config.as_mut().expect("owned").ready = Some(false));
    let p = s.plan();
    assert_eq!(
        verbs(&p),
        [
            "ingress-0 destroy 4100",
            "ingress-2 stop 4200",
            "ingress-2 create 4201"
        ],
        "{p}"
    );
    assert_eq!(p.budgets[0].unavailable, 1, "only ingress-2 counts: {p}");
}

#[test]
fn brand_new_node_is_cloned_again_only_when_the_retry_is_due() {
    let s = Scenario::new().node("worker-1");
    let p = gave_up(s.clone(), "worker-1", 4100, 10, true).plan();
    assert!(p.actions.is_empty(), "{p}");
    assert!(
        matches!(
            p.holds[0].blocked_by,
            BlockedBy::RetryBackoff { count: 1, .. }
        ),
        "{p}"
    );
    assert_eq!(p.holds[0].wanted, "create");
    let p = gave_up(s, "worker-1", 4100, -1, true).plan();
    assert_eq!(verbs(&p), ["worker-1 create 4100"], "{p}");
}

#[test]
fn node_that_was_available_before_counts_against_its_budget_while_it_has_no_instance() {
    // worker-1's VM vanished and its new first instance was given up on: it was part of the
    // serving capacity, so it still counts (never_available is false).
    let s = Scenario::new().node("worker-1");
    let s = s.node("worker-2").running(4200);
    let s = replace_taint(s).budget("worker", "worker", 1);
    let mut s = gave_up(s, "worker-1", 4100, 10, false);
    s.policy.breaker.enabled = false;
    let p = s.plan();
    assert!(
        p.holds
            .iter()
            .any(|h| h.node.as_str() == "worker-2"
                && matches!(h.blocked_by, BlockedBy::Budget { .. })),
        "{p}"
    );
}

#[test]
fn abandoned_incoming_that_became_ready_after_all_is_promoted() {
    let s =
        replace_taint(Scenario::new().node("worker-1").running(4100)).incoming(4101, Some(true));
    let p = gave_up(s, "worker-1", 4101, 10, false).plan();
    assert_eq!(
        verbs(&p),
        ["worker-1 promote -", "worker-1 destroy 4100"],
        "{p}"
    );
}

#[test]
fn breaker_holds_the_destroy_and_the_old_instance_stays_stopped() {
    let s = replace_taint(Scenario::new().node("worker-1").stopped(4100))
        .incoming(4101, Some(false))
        .breaker_tripped("too many destroys");
    let p = gave_up(s, "worker-1", 4101, 10, false).plan();
    assert!(p.actions.is_empty(), "{p}");
    assert!(
        p.holds
            .iter()
            .any(|h| h.wanted == "destroy" && matches!(h.blocked_by, BlockedBy::Breaker { .. })),
        "{p}"
    );
}

mod properties {
    //! Random single-node cases around a give-up, checked against the rules that must never
    //! break: a compromised instance is never started, the given-up instance is never promoted
    //! unless ready, its destroy comes before any start, nothing new starts before the retry.

    use super::*;
    use planner::{InstanceRole, VmStatus};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Case {
        surge: bool,
        /// 0: no current, 1: running ready, 2: stopped, 3: stopped + isolated, 4: running never ready.
        current: u8,
        /// 0: none, 1: not checked, 2: failed, 3: ready, 4: stopped.
        incoming: u8,
        /// (severity 0..4, action 0..3: replace, isolate, report).
        taint: Option<(u8, u8)>,
        /// Whom the give-up names: 0 incoming, 1 current, 2 an instance already gone.
        target: u8,
        retry_due: bool,
        never_available: bool,
        tripped: bool,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            any::<bool>(),
            0u8..5,
            0u8..5,
            proptest::option::of((0u8..4, 0u8..3)),
            0u8..3,
            any::<bool>(),
            any::<bool>(),
            proptest::bool::weighted(0.2),
        )
            .prop_map(
                |(surge, current, incoming, taint, target, retry_due, never_available, tripped)| {
                    Case {
                        surge,
                        current,
                        incoming,
                        taint,
                        target,
                        retry_due,
                        never_available,
                        tripped,
                    }
                },
            )
    }

    fn scenario(c: &Case) -> Scenario {
        let mut s = Scenario::new().node("worker-1");
        if c.surge {
            s = s.surge_first();
        }
        s = match c.current {
            1 => s.running(4100),
            2 => s.stopped(4100),
            3 => s.stopped(4100).isolated(4100),
            4 => s.instance_of(
                "worker-1",
                4100,
                InstanceRole::Current,
                VmStatus::Running,
                Some(false),
            ),
            _ => s,
        };
        if let (Some((sev, act)), true) = (c.taint, c.current > 0) {
            let severity = [
                Severity::Low,
                Severity::Medium,
                Severity::High,
                Severity::Critical,
            ][sev as usize];
            let action = [
                TaintAction::Replace,
                TaintAction::Isolate,
                TaintAction::Report,
            ][act as usize];
            s = s.tainted(TaintSource::Cli, severity, action, "t");
        }
        s = match c.incoming {
            1 => s.incoming(4101, None),
            2 => s.incoming(4101, Some(false)),
            3 => s.incoming(4101, Some(true)),
            4 => s.instance_of(
                "worker-1",
                4101,
                InstanceRole::Incoming,
                VmStatus::Stopped,
                None,
            ),
            _ => s,
        };
        if c.tripped {
            s = s.breaker_tripped("test");
        }
        let n = [4101, 4100, 4102][c.target as usize];
        gave_up(
            s,
            "worker-1",
            n,
            if c.retry_due { -1 } else { 10 },
            c.never_available,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn give_up_rules_hold(c in case()) {
            let s = scenario(&c);
            let p = s.plan();
            let given_up = [4101u32, 4100, 4102][c.target as usize];
            let compromised_current = c.current == 3
                || c.taint.is_some_and(|(sev, act)| sev == 3 || act == 1);
            let mut destroyed_given_up_at = None;
            for (i, a) in p.actions.iter().enumerate() {
                match &a.kind {
                    // (The give-up's starts: a stopped current one with a `Report` taint is
                    // started by the ordinary rules, which this does not test.)
                    ActionKind::Start(r)
                        if r.vmid.get() == 4100
                            && matches!(a.reason, Reason::ReadinessAbandoned { .. }) =>
                    {
                        prop_assert!(!compromised_current, "compromised started: {p}");
                    }
                    // A given-up instance is never started again (a compromised current one
                    // is left to the ordinary rules, as above).
                    ActionKind::Start(r)
                        if r.vmid.get() == given_up
                            && (given_up != 4100 || !compromised_current) =>
                    {
                        prop_assert!(false, "given-up instance started: {p}");
                    }
                    ActionKind::PromoteIncoming { vmid, .. } if vmid.get() == given_up => {
                        prop_assert_eq!(c.incoming, 3, "promoted while not ready: {}", p);
                    }
                    ActionKind::Destroy(id) if id.vmid.get() == given_up => {
                        destroyed_given_up_at = Some(i);
                    }
                    ActionKind::Create(_) => {
                        prop_assert!(c.retry_due, "created before the retry: {p}");
                    }
                    _ => {}
                }
            }
            // A start of the old instance caused by the give-up follows its destroy.
            if let Some(d) = destroyed_given_up_at {
                prop_assert!(!c.tripped, "destroy with the breaker tripped: {p}");
                for a in &p.actions[..d] {
                    prop_assert!(!matches!(a.kind, ActionKind::Start(_)), "start before destroy: {p}");
                }
            }
            // A running ready incoming of a node is the only way to promote.
            for a in &p.actions {
                if let ActionKind::PromoteIncoming { .. } = a.kind {
                    prop_assert_eq!(c.incoming, 3);
                }
            }
        }
    }
}
