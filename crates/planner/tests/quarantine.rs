//! Quarantine (taint action `Quarantine`): the tainted instance is isolated at once and
//! replaced; the old one is kept stopped and isolated until the retention has passed since the
//! taint, then destroyed with identity proof like any retiring instance.

mod support;

use planner::{ActionKind, BlockedBy, InstanceRole, Plan, VmStatus};
use proptest::prelude::*;
use support::{Scenario, instance_id};

fn verbs(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| format!("{} {}", a.node, a.kind.verb()))
        .collect()
}

fn destroys(p: &Plan, vmid: u32) -> bool {
    p.actions
        .iter()
        .any(|a| matches!(&a.kind, ActionKind::Destroy(id) if id.vmid.get() == vmid))
}

fn vm(s: &Scenario, vmid: u32) -> Option<&planner::ObservedVm> {
    s.observed.vms.iter().find(|v| v.vmid.get() == vmid)
}

fn role_of(s: &Scenario, vmid: u32) -> Option<InstanceRole> {
    s.records
        .instances
        .iter()
        .find(|r| r.vmid.get() == vmid)
        .map(|r| r.role)
}

/// Plans and applies passes `step` apart until the old VM 4100 is retiring (the replacement
/// was promoted); returns the plans.
fn until_promoted(s: &mut Scenario, step: chrono::Duration) -> Vec<Plan> {
    let mut plans = Vec::new();
    for _ in 0..10 {
        let p = s.plan();
        s.apply(&p);
        plans.push(p);
        if role_of(s, 4100) == Some(InstanceRole::Retiring) {
            return plans;
        }
        s.now += step;
    }
    panic!(
        "no promotion in 10 passes:\n{}",
        plans.last().expect("plans")
    );
}

#[test]
fn quarantined_instance_is_isolated_at_once_and_replaced() {
    let s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .quarantined("24h");
    let p = s.plan();
    assert_eq!(
        verbs(&p),
        ["worker-1 isolate", "worker-1 stop", "worker-1 create"],
        "{p}"
    );
    let ActionKind::Create(c) = &p.actions[2].kind else {
        panic!("expected create: {p}");
    };
    assert_eq!(c.role, InstanceRole::Incoming);
}

#[test]
fn quarantined_instance_never_counts_as_available() {
    // maxUnavailable 0: a replacement that needs budget would be held; a quarantined instance
    // is out of service already, so its stop needs none.
    let s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .quarantined("24h")
        .budget("workers", "worker", 0);
    let p = s.plan();
    assert!(p.holds.is_empty(), "{p}");
    assert_eq!(p.budgets[0].unavailable, 1, "{p}");
    assert!(verbs(&p).contains(&"worker-1 stop".to_string()), "{p}");
}

#[test]
fn quarantined_old_instance_is_kept_stopped_and_isolated_until_the_retention_has_passed() {
    let mut s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .quarantined("2h");
    let raised = s.now;
    let plans = until_promoted(&mut s, chrono::Duration::minutes(1));
    let promoted = plans.last().expect("plans");
    assert!(!destroys(promoted, 4100), "{promoted}");
    // Every later pass before the end keeps it, and says why and until when.
    while s.now < raised + chrono::Duration::hours(2) {
        let p = s.plan();
        assert!(!destroys(&p, 4100), "destroyed before the retention:\n{p}");
        let hold = p
            .holds
            .iter()
            .find(|h| matches!(h.blocked_by, BlockedBy::Quarantined { vmid, .. } if vmid.get() == 4100))
            .unwrap_or_else(|| panic!("no quarantine hold:\n{p}"));
        assert_eq!(hold.wanted, "destroy");
        let BlockedBy::Quarantined { until, .. } = hold.blocked_by else {
            unreachable!()
        };
        assert_eq!(until, raised + chrono::Duration::hours(2));
        s.apply(&p);
        let old = vm(&s, 4100).expect("the quarantined VM is kept");
        assert_eq!(old.status, VmStatus::Stopped);
        assert!(old.config.as_ref().is_some_and(|c| c.isolated));
        s.now += chrono::Duration::minutes(17);
    }
    let p = s.plan();
    assert!(
        destroys(&p, 4100),
        "not destroyed after the retention:\n{p}"
    );
    let Some(ActionKind::Destroy(id)) = p
        .actions
        .iter()
        .map(|a| &a.kind)
        .find(|k| matches!(k, ActionKind::Destroy(_)))
    else {
        unreachable!()
    };
    assert!(id.recorded);
    assert_eq!(id.instance_id, instance_id(4100));
    assert_eq!(id.smbios_uuid, "uuid-4100");
}

#[test]
fn plan_output_says_until_when_the_instance_is_quarantined() {
    let mut s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .quarantined("24h");
    until_promoted(&mut s, chrono::Duration::minutes(1));
    let text = s.plan().to_string();
    assert!(
        text.contains("VM 4100 quarantined until 2026-"),
        "plan output:\n{text}"
    );
    insta::assert_snapshot!("quarantine_hold", text);
}

#[test]
fn surge_first_quarantined_instance_is_stopped_after_promotion() {
    let mut s = Scenario::new()
        .node("worker-1")
        .surge_first()
        .running(4100)
        .quarantined("1h");
    let plans = until_promoted(&mut s, chrono::Duration::minutes(1));
    let promoted = plans.last().expect("plans");
    assert!(
        verbs(promoted).ends_with(&["worker-1 promote".into(), "worker-1 stop".into()]),
        "{promoted}"
    );
    let old = vm(&s, 4100).expect("kept");
    assert_eq!(old.status, VmStatus::Stopped);
}

#[test]
fn quarantined_instance_started_by_someone_is_stopped_again() {
    let mut s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .quarantined("24h");
    until_promoted(&mut s, chrono::Duration::minutes(1));
    let vm = s
        .observed
        .vms
        .iter_mut()
        .find(|v| v.vmid.get() == 4100)
        .expect("kept");
    vm.status = VmStatus::Running;
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 stop"], "{p}");
}

#[test]
fn quarantine_past_its_retention_is_not_destroyed_while_the_breaker_is_tripped() {
    let mut s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .quarantined("1h");
    until_promoted(&mut s, chrono::Duration::minutes(1));
    s.now += chrono::Duration::hours(2);
    let mut s = s.breaker_tripped("3 of 4 nodes tainted");
    let p = s.plan();
    assert!(!destroys(&p, 4100), "{p}");
    assert!(
        p.holds
            .iter()
            .any(|h| h.wanted == "destroy" && matches!(h.blocked_by, BlockedBy::Breaker { .. })),
        "{p}"
    );
    s.apply(&p);
    assert!(vm(&s, 4100).is_some());
}

#[test]
fn untainted_quarantined_instance_is_destroyed() {
    let mut s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .quarantined("24h");
    until_promoted(&mut s, chrono::Duration::minutes(1));
    s.taints.active.clear();
    assert!(destroys(&s.plan(), 4100));
}

#[test]
fn quarantined_instance_of_a_deleted_node_is_kept_until_the_retention_has_passed() {
    let mut s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .quarantined("1h");
    until_promoted(&mut s, chrono::Duration::minutes(1));
    s.desired.nodes.clear();
    let p = s.plan();
    assert!(!destroys(&p, 4100), "{p}");
    assert!(destroys(&p, 4101), "the new instance goes: {p}");
    s.now += chrono::Duration::hours(1);
    assert!(destroys(&s.plan(), 4100));
}

#[test]
fn a_quarantine_kept_instance_does_not_count_as_a_tainted_node_for_the_breaker() {
    // Two of two workers: a quarantine kept on worker-1's old instance and a new taint on
    // worker-2 must not trip the breaker (2 of 2 tainted) for the whole retention.
    let mut s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .quarantined("24h")
        .node("worker-2")
        .running(4200);
    for _ in 0..10 {
        let p = s.plan();
        s.apply(&p);
        if role_of(&s, 4100) == Some(InstanceRole::Retiring) {
            break;
        }
        s.now += chrono::Duration::minutes(1);
    }
    let s = s.quarantined("24h");
    let p = s.plan();
    assert!(!p.breaker.is_tripped(), "{p}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the strategy, retention, budget and pass spacing: the quarantined VM is never
    /// destroyed before the retention has passed, is stopped and isolated once replaced, and
    /// is destroyed (with its recorded identity) once the retention has passed.
    #[test]
    fn quarantine_holds_exactly_for_the_retention(
        surge in any::<bool>(),
        retention_min in 1u32..240,
        budget in proptest::option::of(0u32..2),
        step_min in 1i64..45,
        with_peer in any::<bool>(),
    ) {
        let mut s = Scenario::new().node("worker-1");
        if surge {
            s = s.surge_first();
        }
        s = s.running(4100).quarantined(&format!("{retention_min}m"));
        if with_peer {
            s = s.node("worker-2").running(4200);
        }
        if let Some(max) = budget {
            s = s.budget("workers", "worker", max);
        }
        let end = s.now + chrono::Duration::minutes(i64::from(retention_min));
        let mut destroyed_at = None;
        for _ in 0..400 {
            let p = s.plan();
            if destroys(&p, 4100) {
                prop_assert!(s.now >= end, "destroyed at {} before {end}:\n{p}", s.now);
                destroyed_at = Some(s.now);
            }
            for a in &p.actions {
                if matches!(a.kind, ActionKind::Start(ref r) if r.vmid.get() == 4100) {
                    prop_assert!(false, "quarantined VM started:\n{p}");
                }
            }
            s.apply(&p);
            if destroyed_at.is_some() {
                break;
            }
            if role_of(&s, 4100) == Some(InstanceRole::Retiring) {
                let old = vm(&s, 4100).expect("kept until destroyed");
                prop_assert_eq!(old.status, VmStatus::Stopped);
                prop_assert!(old.config.as_ref().is_some_and(|c| c.isolated));
            }
            s.now += chrono::Duration::minutes(step_min);
        }
        prop_assert!(destroyed_at.is_some(), "never destroyed");
    }
}
