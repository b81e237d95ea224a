//! Behaviour of the planner on hand-built scenarios, with golden `reborn plan` renderings.

mod support;

use model::{Severity, TaintAction};
use planner::{ActionKind, BlockedBy, BreakerState, InstanceRole, Reason, TaintSource, VmStatus};
use support::{Scenario, instance_id};

fn verbs(p: &planner::Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| format!("{} {}", a.node, a.kind.verb()))
        .collect()
}

#[test]
fn a_tagged_vm_whose_config_was_not_read_is_neither_forgotten_nor_cloned_beside() {
    let s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .config_unread(4100);
    let p = s.plan();
    assert!(p.actions.is_empty(), "no Forget, no Create: {p}");
    assert_eq!(p.holds.len(), 1, "{p}");
    assert!(
        matches!(p.holds[0].blocked_by, BlockedBy::StatusUnknown { .. }),
        "{p}"
    );
}

#[test]
fn converged_fleet_plans_nothing() {
    let s = Scenario::new()
        .node("ingress-1")
        .running(4100)
        .node("ingress-2")
        .running(4200)
        .budget("ingress", "ingress", 1);
    let p = s.plan();
    assert!(p.is_empty(), "{p}");
    assert!(p.holds.is_empty(), "{p}");
    insta::assert_snapshot!("converged", p.to_string());
}

#[test]
fn missing_node_is_cloned_from_verified_template_with_ownership_marks() {
    let s = Scenario::new().node("worker-1");
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 create"]);
    let ActionKind::Create(c) = &p.actions[0].kind else {
        panic!("expected create");
    };
    assert_eq!(c.vmid.get(), 4100);
    assert_eq!(c.role, InstanceRole::Current);
    assert_eq!(c.template.vmid.get(), 9000);
    assert!(c.start);
    assert_eq!(c.config.tags[0], "reborn-test");
    let marker = planner::parse_marker(&c.config.description)
        .expect("valid")
        .expect("present");
    assert_eq!(marker.node.as_str(), "worker-1");
    assert_eq!(marker.instance_id, c.instance_id);
    assert_eq!(marker.spec_hash, c.spec_hash);
    assert_eq!(p.actions[0].reason, Reason::Missing);
    insta::assert_snapshot!("missing_node", p.to_string());
}

#[test]
fn vmid_taken_by_a_foreign_vm_is_skipped() {
    let s = Scenario::new()
        .node("worker-1")
        .foreign(4100, "someone-else", &[]);
    let p = s.plan();
    let ActionKind::Create(c) = &p.actions[0].kind else {
        panic!("expected create");
    };
    assert_eq!(c.vmid.get(), 4101);
}

#[test]
fn nodes_sharing_a_role_are_spread_over_pve_nodes() {
    let s = Scenario::new().node("worker-1").node("worker-2");
    let p = s.plan();
    let nodes: Vec<String> = p
        .actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Create(c) => Some(c.pve_node.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(nodes, ["pve1", "pve2"]);
}

#[test]
fn node_that_fits_no_pve_node_is_held() {
    let s = Scenario::new().node("worker-1").memory("128GiB");
    let p = s.plan();
    assert!(p.is_empty());
    assert!(matches!(
        p.holds[0].blocked_by,
        BlockedBy::NoPveNodeCapacity { .. }
    ));
}

#[test]
fn unverified_template_blocks_cloning() {
    let s = Scenario::new()
        .node("worker-1")
        .template_unverified("signature does not match");
    let p = s.plan();
    assert!(p.is_empty());
    assert_eq!(
        p.holds[0].blocked_by.to_string(),
        "template of base not verified: signature does not match"
    );
}

#[test]
fn stopped_instance_is_started() {
    let s = Scenario::new().node("worker-1").stopped(4100);
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 start"]);
}

#[test]
fn stopped_compromised_instance_whose_taint_only_reports_is_isolated_never_started() {
    let s = Scenario::new().node("worker-1").stopped(4100).tainted(
        TaintSource::Cerbos,
        Severity::Critical,
        TaintAction::Report,
        "cross-tenant reads",
    );
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 isolate"]);
    let start = p
        .holds
        .iter()
        .find(|h| h.wanted == "start")
        .expect("the start is held");
    assert!(
        start.blocked_by.to_string().contains("4100"),
        "{}",
        start.blocked_by
    );
    // Once isolated it stays stopped too, and the plan says why.
    let p = s.isolated(4100).plan();
    assert!(p.is_empty(), "{:?}", verbs(&p));
    assert_eq!(
        p.holds[0].blocked_by.to_string(),
        "VM 4100 is compromised: never restarted"
    );
}

#[test]
fn locked_stopped_instance_is_held_not_started() {
    let s = Scenario::new()
        .node("worker-1")
        .stopped(4100)
        .locked(4100, "backup");
    let p = s.plan();
    assert!(p.is_empty());
    assert_eq!(
        p.holds[0].blocked_by.to_string(),
        "VM 4100 is locked (backup)"
    );
}

#[test]
fn stop_first_replacement_stops_old_then_creates_incoming() {
    let s = Scenario::new().node("worker-1").running(4100).tainted(
        TaintSource::Cli,
        Severity::Medium,
        TaintAction::Replace,
        "flaky disk",
    );
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 stop", "worker-1 create"]);
    let ActionKind::Create(c) = &p.actions[1].kind else {
        panic!("expected create");
    };
    assert_eq!(c.role, InstanceRole::Incoming);
    assert_eq!(
        p.actions[0].reason.to_string(),
        "taint 1 from cli: flaky disk"
    );
}

#[test]
fn surge_first_creates_incoming_while_old_keeps_running() {
    let s = Scenario::new()
        .node("worker-1")
        .surge_first()
        .running(4100)
        .tainted(
            TaintSource::Webhook,
            Severity::High,
            TaintAction::Replace,
            "zabbix: disk errors",
        );
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 create"]);
}

#[test]
fn ready_incoming_is_promoted_and_old_destroyed_with_full_identity() {
    let s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .incoming(4101, Some(true));
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 promote", "worker-1 destroy"]);
    let ActionKind::Destroy(id) = &p.actions[1].kind else {
        panic!("expected destroy");
    };
    assert_eq!(id.vmid.get(), 4100);
    assert_eq!(id.name, "worker-1");
    assert_eq!(id.smbios_uuid, "uuid-4100");
    assert_eq!(id.instance_id, instance_id(4100));
    insta::assert_snapshot!("promote_and_destroy", p.to_string());
}

#[test]
fn incoming_not_ready_waits() {
    let s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .incoming(4101, None);
    let p = s.plan();
    assert!(p.is_empty());
    assert!(matches!(
        p.holds[0].blocked_by,
        BlockedBy::AwaitingReadiness { .. }
    ));
}

#[test]
fn compromised_instance_is_isolated_even_when_budget_is_used_up() {
    let s = Scenario::new()
        .node("ingress-1")
        .stopped(4100)
        .node("ingress-2")
        .running(4200)
        .tainted(
            TaintSource::Cerbos,
            Severity::Critical,
            TaintAction::Replace,
            "worker identity denied on tenant data (callIds 01J..)",
        )
        .budget("ingress", "ingress", 1);
    let p = s.plan();
    let v = verbs(&p);
    assert!(v.contains(&"ingress-2 isolate".to_string()), "{p}");
    // The replacement of ingress-2 itself needs no budget any more: it is already unavailable.
    assert!(v.contains(&"ingress-2 stop".to_string()), "{p}");
    insta::assert_snapshot!("compromised_ingress", p.to_string());
}

#[test]
fn budget_blocks_second_stop_first_replacement() {
    let s = Scenario::new()
        .node("ingress-1")
        .running(4100)
        .tainted(
            TaintSource::Cli,
            Severity::Low,
            TaintAction::Replace,
            "rotate",
        )
        .node("ingress-2")
        .running(4200)
        .tainted(
            TaintSource::Cli,
            Severity::Low,
            TaintAction::Replace,
            "rotate",
        )
        .budget("ingress", "ingress", 1);
    let mut s = s;
    s.policy.breaker.enabled = false;
    let p = s.plan();
    assert_eq!(verbs(&p), ["ingress-1 stop", "ingress-1 create"]);
    assert_eq!(p.holds[0].blocked_by.to_string(), "budget ingress 1/1 used");
    insta::assert_snapshot!("budget_hold", p.to_string());
}

#[test]
fn isolate_taint_keeps_instance_for_forensics() {
    let s = Scenario::new().node("worker-1").running(4100).tainted(
        TaintSource::Cerbos,
        Severity::High,
        TaintAction::Isolate,
        "exfiltration",
    );
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 isolate"]);
    assert!(matches!(
        p.holds[0].blocked_by,
        BlockedBy::KeptForForensics { .. }
    ));
}

#[test]
fn report_taint_does_nothing() {
    let s = Scenario::new().node("worker-1").running(4100).tainted(
        TaintSource::Health,
        Severity::Low,
        TaintAction::Report,
        "slow",
    );
    assert!(s.plan().is_empty());
}

#[test]
fn changed_spec_is_drift_and_replaces() {
    let s = Scenario::new()
        .node("worker-1")
        .surge_first()
        .running(4100)
        .built_from_old_spec(4100);
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 create"]);
    assert!(matches!(p.actions[0].reason, Reason::SpecChanged { .. }));
}

#[test]
fn edited_config_is_drift_naming_the_keys() {
    let s = Scenario::new()
        .node("worker-1")
        .surge_first()
        .running(4100)
        .cores_edited(4100, 8);
    let p = s.plan();
    assert_eq!(
        p.actions[0].reason.to_string(),
        "drift: edited outside reborn: cores"
    );
}

#[test]
fn drift_with_report_policy_is_held_not_replaced() {
    let s = Scenario::new()
        .node("worker-1")
        .drift_report()
        .running(4100)
        .cores_edited(4100, 8);
    let p = s.plan();
    assert!(p.is_empty());
    assert_eq!(p.holds[0].blocked_by, BlockedBy::DriftReportOnly);
}

#[test]
fn deleted_node_instance_is_destroyed() {
    let s = Scenario::new().instance_of(
        "old-1",
        4900,
        InstanceRole::Current,
        VmStatus::Running,
        Some(true),
    );
    let p = s.plan();
    assert_eq!(verbs(&p), ["old-1 destroy"]);
    assert_eq!(p.actions[0].reason, Reason::NodeDeleted);
}

#[test]
fn vm_with_our_tag_but_foreign_marker_is_never_touched() {
    let s =
        Scenario::new()
            .node("worker-1")
            .running(4100)
            .foreign(4150, "impostor", &["reborn-test"]);
    let p = s.plan();
    assert!(p.is_empty(), "{p}");
}

#[test]
fn recorded_vmid_reused_by_a_foreign_vm_is_forgotten_not_destroyed() {
    let mut s = Scenario::new().node("worker-1").running(4100);
    // Someone destroyed our VM and created their own with the same VMID.
    s.observed.vms.retain(|v| v.vmid.get() != 4100);
    let s = s.foreign(4100, "worker-1", &[]);
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 forget", "worker-1 create"]);
    assert!(p.actions.iter().all(|a| a.kind.touched_vmid().is_none()));
}

#[test]
fn too_many_tainted_nodes_trip_the_breaker_but_still_isolate() {
    let s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .tainted(
            TaintSource::Cerbos,
            Severity::Critical,
            TaintAction::Replace,
            "denied",
        )
        .node("worker-2")
        .running(4200)
        .tainted(
            TaintSource::Cerbos,
            Severity::Critical,
            TaintAction::Replace,
            "denied",
        )
        .node("worker-3")
        .running(4300)
        .tainted(
            TaintSource::Cerbos,
            Severity::Medium,
            TaintAction::Replace,
            "denied",
        )
        .node("worker-4")
        .running(4400);
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 isolate", "worker-2 isolate"]);
    assert_eq!(
        p.breaker.state,
        BreakerState::Tripped {
            detail: "3 of 4 nodes tainted (all nodes)".into(),
            newly: true
        }
    );
    assert_eq!(
        p.holds[0].blocked_by.to_string(),
        "breaker tripped: 3 of 4 nodes tainted (all nodes)"
    );
    insta::assert_snapshot!("breaker_tripped", p.to_string());
}

#[test]
fn recent_destroys_trip_the_breaker_before_the_fourth() {
    let s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .incoming(4101, Some(true))
        .destroyed_minutes_ago(&[1, 2, 3]);
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 promote"]);
    assert!(p.breaker.is_tripped());
    assert!(matches!(p.holds[0].blocked_by, BlockedBy::Breaker { .. }));
}

#[test]
fn destroys_outside_the_window_do_not_count() {
    let s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .incoming(4101, Some(true))
        .destroyed_minutes_ago(&[11, 12, 13]);
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 promote", "worker-1 destroy"]);
}

#[test]
fn recorded_trip_holds_until_released() {
    let mut s = Scenario::new()
        .node("worker-1")
        .running(4100)
        .incoming(4101, Some(true))
        .breaker_tripped("3 of 4 nodes tainted");
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 promote"]);
    s.records.breaker = planner::BreakerRecord::Released {
        by: "alice".into(),
        at: s.now,
    };
    assert_eq!(verbs(&s.plan()), ["worker-1 promote", "worker-1 destroy"]);
}

#[test]
fn stop_first_replacement_converges_in_three_passes() {
    let mut s = Scenario::new().node("worker-1").running(4100).tainted(
        TaintSource::Cli,
        Severity::Medium,
        TaintAction::Replace,
        "rotate",
    );
    let plans = s.converge(10);
    let rounds: Vec<Vec<String>> = plans.iter().map(verbs).collect();
    assert_eq!(
        rounds,
        vec![
            vec!["worker-1 stop".to_string(), "worker-1 create".to_string()],
            vec![
                "worker-1 promote".to_string(),
                "worker-1 destroy".to_string()
            ],
            vec![],
        ]
    );
}

#[test]
fn interrupted_create_is_adopted_not_duplicated() {
    let mut s = Scenario::new().node("worker-1").running(4100);
    // The VM exists and its lease too, but the record was never written.
    s.records.instances.clear();
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 adopt"]);
    s.apply(&p);
    assert!(s.plan().is_empty());
}

#[test]
fn replacement_cap_limits_replacements_in_flight() {
    let mut s = Scenario::new();
    for i in 1..=3 {
        s = s
            .node(&format!("worker-{i}"))
            .surge_first()
            .running(4000 + 100 * i)
            .tainted(
                TaintSource::Cli,
                Severity::Low,
                TaintAction::Replace,
                "rotate",
            );
    }
    s.policy.breaker.enabled = false;
    let p = s.plan();
    assert_eq!(verbs(&p), ["worker-1 create", "worker-2 create"]);
    assert_eq!(
        p.holds[0].blocked_by.to_string(),
        "replacements in flight 2/2"
    );
}
