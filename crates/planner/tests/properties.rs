//! Property tests: ownership, budgets, breaker, convergence and determinism over random fleets.

mod support;

use model::{Severity, TaintAction};
use planner::{ActionKind, InstanceRole, Plan, TaintSource, VmStatus};
use proptest::prelude::*;
use std::collections::BTreeSet;
use support::Scenario;

#[derive(Debug, Clone)]
struct NodeCase {
    ingress: bool,
    surge: bool,
    state: u8,
    incoming: u8,
    taint: Option<(u8, u8)>,
    locked: bool,
}

#[derive(Debug, Clone)]
struct FleetCase {
    nodes: Vec<NodeCase>,
    budgets: (Option<u32>, Option<u32>),
    foreign: Vec<(usize, u32, u8)>,
    deleted: u8,
    recent_destroys: u8,
    tripped: bool,
}

fn node_case() -> impl Strategy<Value = NodeCase> {
    (
        any::<bool>(),
        any::<bool>(),
        0u8..7,
        0u8..4,
        proptest::option::of((0u8..4, 0u8..4)),
        proptest::bool::weighted(0.1),
    )
        .prop_map(
            |(ingress, surge, state, incoming, taint, locked)| NodeCase {
                ingress,
                surge,
                state,
                incoming,
                taint,
                locked,
            },
        )
}

fn fleet_case() -> impl Strategy<Value = FleetCase> {
    (
        proptest::collection::vec(node_case(), 1..6),
        (proptest::option::of(0u32..3), proptest::option::of(0u32..3)),
        proptest::collection::vec((0usize..6, 0u32..4, 0u8..3), 0..4),
        0u8..3,
        0u8..4,
        proptest::bool::weighted(0.15),
    )
        .prop_map(
            |(nodes, budgets, foreign, deleted, recent_destroys, tripped)| FleetCase {
                nodes,
                budgets,
                foreign,
                deleted,
                recent_destroys,
                tripped,
            },
        )
}

fn build(case: &FleetCase) -> Scenario {
    let mut s = Scenario::new();
    for (i, n) in case.nodes.iter().enumerate() {
        let name = format!("{}-{}", if n.ingress { "ingress" } else { "worker" }, i + 1);
        let base = 4100 + 100 * u32::try_from(i).expect("few nodes");
        s = s.node(&name);
        if n.surge {
            s = s.surge_first();
        }
        let has_current = n.state != 0;
        s = match n.state {
            0 => s,
            1 | 4 | 5 => s.running(base),
            2 => s.instance_of(&name, base, InstanceRole::Current, VmStatus::Running, None),
            3 => s.stopped(base),
            _ => s.instance_of(
                &name,
                base,
                InstanceRole::Current,
                VmStatus::Running,
                Some(false),
            ),
        };
        if n.state == 4 {
            s = s.built_from_old_spec(base);
        }
        if n.state == 5 {
            s = s.cores_edited(base, 16);
        }
        s = match n.incoming {
            1 => s.incoming(base + 1, Some(true)),
            2 => s.incoming(base + 1, None),
            _ => s,
        };
        if let (Some((action, severity)), true) = (n.taint, has_current) {
            let action = [
                TaintAction::Replace,
                TaintAction::Isolate,
                TaintAction::Report,
                TaintAction::Quarantine,
            ][usize::from(action)];
            let severity = [
                Severity::Low,
                Severity::Medium,
                Severity::High,
                Severity::Critical,
            ][usize::from(severity)];
            s = s.tainted(TaintSource::Cerbos, severity, action, "denied");
            if action == TaintAction::Quarantine
                && let Some(t) = s.taints.active.last_mut()
            {
                t.quarantine_retention = Some("10m".parse().expect("valid"));
            }
        }
        if n.locked && has_current {
            s = s.locked(base, "backup");
        }
    }
    for (i, (node, offset, kind)) in case.foreign.iter().enumerate() {
        let node = node % case.nodes.len();
        let vmid = 4100
            + 100 * u32::try_from(node).expect("few")
            + 50
            + offset * 4
            + u32::try_from(i).expect("few");
        if s.observed.vms.iter().any(|v| v.vmid.get() == vmid) {
            continue;
        }
        let tags: &[&str] = match kind {
            0 => &[],
            1 => &["reborn-test"],
            _ => &["reborn-other"],
        };
        s = s.foreign(vmid, "foreign", tags);
    }
    for d in 0..case.deleted {
        s = s.instance_of(
            &format!("gone-{d}"),
            4900 + u32::from(d),
            InstanceRole::Current,
            VmStatus::Running,
            Some(true),
        );
    }
    let mins: Vec<i64> = (0..i64::from(case.recent_destroys))
        .map(|m| m + 1)
        .collect();
    s = s.destroyed_minutes_ago(&mins);
    if case.tripped {
        s = s.breaker_tripped("earlier trip");
    }
    if let Some(max) = case.budgets.0 {
        s = s.budget("ingress", "ingress", max);
    }
    if let Some(max) = case.budgets.1 {
        s = s.budget("workers", "worker", max);
    }
    s
}

/// Nodes with a running, ready, non-isolated instance (current or incoming) recorded for them.
fn available(s: &Scenario) -> BTreeSet<String> {
    let tag = s.policy.operator_id.ownership_tag();
    s.records
        .instances
        .iter()
        .filter(|r| matches!(r.role, InstanceRole::Current | InstanceRole::Incoming))
        .filter(|r| {
            s.observed.vms.iter().any(|v| {
                v.vmid == r.vmid
                    && v.tags.contains(&tag)
                    && v.status == VmStatus::Running
                    && v.config.as_ref().is_some_and(|c| {
                        c.ready == Some(true)
                            && !c.isolated
                            && c.marker
                                .as_ref()
                                .is_some_and(|m| m.instance_id == r.instance_id)
                    })
            })
        })
        .map(|r| r.node.to_string())
        .collect()
}

fn check_ownership(s: &Scenario, p: &Plan) -> Result<(), TestCaseError> {
    let tag = s.policy.operator_id.ownership_tag();
    for a in &p.actions {
        if let Some(vmid) = a.kind.touched_vmid() {
            let vm = s.observed.vms.iter().find(|v| v.vmid == vmid);
            let ours = vm.is_some_and(|v| {
                !v.template
                    && v.tags.contains(&tag)
                    && v.config
                        .as_ref()
                        .and_then(|c| c.marker.as_ref())
                        .is_some_and(|m| m.operator == s.policy.operator_id)
            });
            prop_assert!(ours, "action on unmanaged VM {vmid}: {a:?}");
        }
        if let ActionKind::Create(c) = &a.kind {
            prop_assert!(
                !s.observed.vms.iter().any(|v| v.vmid == c.vmid),
                "create over existing VM"
            );
            prop_assert!(
                !s.records.leases.iter().any(|l| l.vmid == c.vmid),
                "create over leased VMID"
            );
        }
        if let ActionKind::Destroy(id) = &a.kind {
            let vm = s.observed.vms.iter().find(|v| v.vmid == id.vmid);
            let cfg = vm.and_then(|v| v.config.as_ref());
            prop_assert_eq!(vm.and_then(|v| v.name.clone()), Some(id.name.clone()));
            prop_assert_eq!(
                cfg.and_then(|c| c.smbios_uuid.clone()),
                Some(id.smbios_uuid.clone())
            );
            prop_assert_eq!(
                cfg.and_then(|c| c.marker.as_ref())
                    .map(|m| m.instance_id.clone()),
                Some(id.instance_id.clone())
            );
            if id.recorded {
                prop_assert!(s.records.instances.iter().any(|r| r.vmid == id.vmid
                    && r.instance_id == id.instance_id
                    && r.name == id.name
                    && r.smbios_uuid == id.smbios_uuid));
            }
        }
    }
    Ok(())
}

fn check_budgets(s: &Scenario, p: &Plan) -> Result<(), TestCaseError> {
    let before = available(s);
    let mut after_world = s.clone();
    after_world.apply(p);
    let after = available(&after_world);
    let isolated: BTreeSet<String> = p
        .actions
        .iter()
        .filter(|a| matches!(a.kind, ActionKind::Isolate(_)))
        .map(|a| a.node.to_string())
        .collect();
    for b in &s.desired.budgets {
        let covered: Vec<String> = s
            .desired
            .nodes
            .iter()
            .filter(|n| b.spec.selector.matches(&n.node.metadata.labels))
            .map(|n| n.node.name().to_string())
            .collect();
        let newly = covered
            .iter()
            .filter(|n| before.contains(*n) && !after.contains(*n) && !isolated.contains(*n))
            .count();
        let unavailable_after = covered.iter().filter(|n| !after.contains(*n)).count();
        if newly > 0 {
            prop_assert!(
                unavailable_after <= usize::try_from(b.spec.max_unavailable).expect("small"),
                "budget {} exceeded: {unavailable_after} unavailable\n{p}",
                b.name()
            );
        }
    }
    Ok(())
}

fn check_breaker(p: &Plan) -> Result<(), TestCaseError> {
    if p.breaker.is_tripped() {
        for a in &p.actions {
            let replacing =
                matches!(&a.kind, ActionKind::Create(c) if c.role == InstanceRole::Incoming);
            prop_assert!(
                !matches!(a.kind, ActionKind::Destroy(_) | ActionKind::Stop(_)) && !replacing,
                "breaker tripped but planned {a:?}"
            );
        }
    } else {
        let destroys = p
            .actions
            .iter()
            .filter(|a| matches!(a.kind, ActionKind::Destroy(_)))
            .count();
        prop_assert!(
            p.breaker.destroys_in_window as usize + destroys <= p.breaker.max_destroys as usize
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_plan_touches_an_unmanaged_vm(case in fleet_case()) {
        let s = build(&case);
        let p = s.plan();
        check_ownership(&s, &p)?;
    }

    #[test]
    fn no_plan_makes_a_budget_exceed_its_limit(case in fleet_case()) {
        let s = build(&case);
        let p = s.plan();
        check_budgets(&s, &p)?;
    }

    #[test]
    fn tripped_breaker_plans_no_destruction(case in fleet_case()) {
        let s = build(&case);
        check_breaker(&s.plan())?;
    }

    #[test]
    fn plans_converge_to_an_empty_plan_that_stays_empty(case in fleet_case()) {
        let mut s = build(&case);
        let mut converged = false;
        for _ in 0..30 {
            let p = s.plan();
            check_ownership(&s, &p)?;
            check_budgets(&s, &p)?;
            check_breaker(&p)?;
            if p.is_empty() {
                converged = true;
                break;
            }
            s.apply(&p);
            // Let destroys age out of the breaker window between passes.
            s.now += chrono::Duration::minutes(15);
        }
        prop_assert!(converged, "no empty plan after 30 passes");
        let again = s.plan();
        prop_assert!(again.is_empty(), "re-plan of a converged state is not empty:\n{again}");
        // Without holds, every declared node ended with a running current instance built from
        // its declared spec (readiness of an old instance is the operator's health taint's job).
        if again.holds.is_empty() && !again.breaker.is_tripped() {
            for n in &s.desired.nodes {
                let hash = planner::spec_hash(&n.node.spec, &support::digest());
                let ok = s.records.instances.iter().any(|r| {
                    r.node == *n.node.name()
                        && r.role == InstanceRole::Current
                        && s.observed.vms.iter().any(|v| {
                            v.vmid == r.vmid
                                && v.status == VmStatus::Running
                                && v.config.as_ref().and_then(|c| c.marker.as_ref()).is_some_and(|m| m.spec_hash == hash)
                        })
                });
                prop_assert!(ok, "{} has no running current instance of its spec", n.node.name());
            }
        }
    }

    #[test]
    fn same_input_gives_same_plan_whatever_the_input_order(case in fleet_case()) {
        let s = build(&case);
        let p = s.plan();
        prop_assert_eq!(&p, &s.plan());
        let mut shuffled = s.clone();
        shuffled.observed.vms.reverse();
        shuffled.records.instances.reverse();
        shuffled.records.leases.reverse();
        shuffled.taints.active.reverse();
        prop_assert_eq!(&p, &shuffled.plan());
    }
}
