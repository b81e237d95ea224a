//! TaintPolicy evaluation: matching, sliding windows per node, attribution, evidence.

mod common;

use audit::decode::{Entry, decode_line};
use audit::{AddressBook, EvalStats, Evaluator, IngestReport, Ingestor, NodeAddresses};
use common::{Check, SAMPLE, call, decision, policy, ts, worker_policy};
use serde_json::json;
use store::NewTaint;

const WORKER1: &str = "10.0.10.21";
const WORKER2: &str = "10.0.10.22";

fn addresses() -> NodeAddresses {
    let mut m = NodeAddresses::new();
    m.insert("worker-1", WORKER1.parse().expect("ip"));
    m.insert("worker-2", WORKER2.parse().expect("ip"));
    m
}

fn run(eval: &mut Evaluator, lines: &[String]) -> (Vec<NewTaint>, EvalStats) {
    let map = addresses();
    let mut stats = EvalStats::default();
    let mut taints = Vec::new();
    for l in lines {
        if let Entry::Decision(d) = decode_line(l.as_bytes()).expect("decodes") {
            taints.extend(eval.evaluate(&d, &map, &mut stats));
        }
    }
    (taints, stats)
}

fn from(ip: &str, n: u32) -> String {
    format!("{ip}:{}", 40000 + n)
}

#[test]
fn threshold_within_window_raises_one_taint_with_call_ids_timestamps_and_rule() {
    let mut eval = Evaluator::new(vec![worker_policy(3, "5m")]);
    let lines: Vec<String> = (1..=3)
        .map(|n| {
            decision(
                &call(n),
                &ts(n * 10),
                &from(WORKER1, n),
                &[Check::cross_tenant("svc-worker")],
            )
        })
        .collect();
    let (taints, stats) = run(&mut eval, &lines);
    assert_eq!(taints.len(), 1);
    assert_eq!(stats.counted, 3);
    let t = &taints[0];
    assert_eq!(t.node, "worker-1");
    assert_eq!(t.key, "cerbos/worker-cross-tenant");
    assert_eq!(t.source, store::TaintSource::Cerbos);
    assert_eq!(t.severity, store::Severity::Critical);
    assert_eq!(t.evidence["callIds"], json!([call(1), call(2), call(3)]));
    assert_eq!(t.evidence["calls"][0]["timestamp"], "2026-11-21T19:00:10Z");
    assert_eq!(
        t.evidence["rules"],
        json!(["resource.tenant_document.vdefault#deny-cross-tenant"])
    );
    assert_eq!(
        t.evidence["calls"][2]["hits"][0]["output"]["taint"],
        "cross_tenant_access"
    );
    assert_eq!(t.evidence["attribution"]["via"], format!("peer:{WORKER1}"));
    assert_eq!(t.evidence["action"]["kind"], "Replace");
    assert_eq!(t.created_at.to_rfc3339(), "2026-11-21T19:00:30+00:00");
    assert_eq!(
        t.expires_at.map(|e| e - t.created_at),
        Some(chrono::Duration::hours(24)),
        "taintTtl 24h"
    );
    assert_eq!(
        eval.window_len("worker-cross-tenant", "worker-1"),
        0,
        "window starts over"
    );
}

#[test]
fn matches_spread_wider_than_the_window_do_not_taint() {
    let mut eval = Evaluator::new(vec![worker_policy(3, "1m")]);
    let lines: Vec<String> = [0, 50, 100, 150]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            decision(
                &call(i as u32),
                &ts(*s),
                &from(WORKER1, 1),
                &[Check::cross_tenant("svc-worker")],
            )
        })
        .collect();
    let (taints, stats) = run(&mut eval, &lines);
    assert!(taints.is_empty());
    assert_eq!(stats.counted, 4);
    assert_eq!(eval.window_len("worker-cross-tenant", "worker-1"), 2);
}

#[test]
fn out_of_order_timestamps_still_slide_correctly() {
    let mut eval = Evaluator::new(vec![worker_policy(3, "1m")]);
    let lines: Vec<String> = [30, 10, 20]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            decision(
                &call(i as u32),
                &ts(*s),
                &from(WORKER1, 1),
                &[Check::cross_tenant("svc-worker")],
            )
        })
        .collect();
    let (taints, _) = run(&mut eval, &lines);
    assert_eq!(taints.len(), 1);
    assert_eq!(
        taints[0].evidence["callIds"],
        json!([call(1), call(2), call(0)]),
        "ordered by time"
    );
}

#[test]
fn windows_are_per_node() {
    let mut eval = Evaluator::new(vec![worker_policy(2, "5m")]);
    let lines = vec![
        decision(
            &call(1),
            &ts(1),
            &from(WORKER1, 1),
            &[Check::cross_tenant("svc-worker")],
        ),
        decision(
            &call(2),
            &ts(2),
            &from(WORKER2, 1),
            &[Check::cross_tenant("svc-worker")],
        ),
        decision(
            &call(3),
            &ts(3),
            &from(WORKER2, 2),
            &[Check::cross_tenant("svc-worker")],
        ),
    ];
    let (taints, _) = run(&mut eval, &lines);
    assert_eq!(taints.len(), 1);
    assert_eq!(taints[0].node, "worker-2");
    assert_eq!(eval.window_len("worker-cross-tenant", "worker-1"), 1);
}

#[test]
fn the_same_call_id_is_never_counted_twice() {
    let mut eval = Evaluator::new(vec![worker_policy(2, "5m")]);
    let line = decision(
        &call(1),
        &ts(1),
        &from(WORKER1, 1),
        &[Check::cross_tenant("svc-worker")],
    );
    let (taints, stats) = run(&mut eval, &[line.clone(), line]);
    assert!(taints.is_empty());
    assert_eq!(stats.duplicates, 1);
}

#[test]
fn default_deny_without_the_rule_output_is_not_the_explicit_deny_rule() {
    let mut eval = Evaluator::new(vec![worker_policy(1, "5m")]);
    let no_rule = Check {
        rule: None,
        ..Check::cross_tenant("svc-worker")
    };
    let other_rule = Check {
        rule: Some("deny-workload-delete-restricted"),
        ..Check::cross_tenant("svc-worker")
    };
    let lines = vec![
        decision(&call(1), &ts(1), &from(WORKER1, 1), &[no_rule]),
        decision(&call(2), &ts(2), &from(WORKER1, 1), &[other_rule]),
    ];
    let (taints, stats) = run(&mut eval, &lines);
    assert!(taints.is_empty());
    assert_eq!(stats.counted, 0);
}

#[test]
fn a_tenant_users_own_denials_do_not_taint_the_worker_serving_them() {
    // The worker calls Cerbos on behalf of its users, so their denials come from the
    // worker's address too. The policy matches only the worker's own service identity.
    let mut eval = Evaluator::new(vec![worker_policy(1, "5m")]);
    let lines: Vec<String> = (1..=20)
        .map(|n| {
            decision(
                &call(n),
                &ts(n),
                &from(WORKER1, n),
                &[Check {
                    roles: &["user"],
                    ..Check::cross_tenant("alice")
                }],
            )
        })
        .collect();
    let (taints, stats) = run(&mut eval, &lines);
    assert!(
        taints.is_empty(),
        "alice's denials are hers, not the worker's"
    );
    assert_eq!(stats.counted, 0);
    let own = decision(
        &call(99),
        &ts(99),
        &from(WORKER1, 1),
        &[Check::cross_tenant("svc-worker")],
    );
    assert_eq!(
        run(&mut eval, &[own]).0.len(),
        1,
        "the worker's own denial does"
    );
}

#[test]
fn principal_roles_actions_kinds_and_policies_all_have_to_match() {
    let p = policy(
        "narrow",
        "  match:
    principalRoles: [workload]
    actions: [delete]
    resourceKinds: [tenant_document]
    policies: [resource.tenant_document.vdefault]
  threshold: {count: 1, window: 1m}
  severity: Medium
  action: Report
",
    );
    let mut eval = Evaluator::new(vec![p]);
    let base = Check {
        action: "delete",
        rule: None,
        ..Check::cross_tenant("svc-worker")
    };
    let cases = [
        (
            Check {
                action: "read",
                ..base
            },
            false,
        ),
        (
            Check {
                roles: &["user"],
                ..base
            },
            false,
        ),
        (
            Check {
                kind: "vm_secret",
                ..base
            },
            false,
        ),
        (
            Check {
                effect: "EFFECT_ALLOW",
                ..base
            },
            false,
        ),
        (base, true),
    ];
    for (i, (check, expected)) in cases.into_iter().enumerate() {
        let line = decision(&call(i as u32), &ts(i as u32), &from(WORKER1, 1), &[check]);
        let (taints, _) = run(&mut eval, &[line]);
        assert_eq!(taints.len() == 1, expected, "case {i}");
        if expected {
            assert_eq!(taints[0].severity, store::Severity::Warning);
            assert_eq!(
                taints[0].expires_at, None,
                "no taintTtl: lives until cleared"
            );
            assert_eq!(taints[0].evidence["action"]["kind"], "Report");
        }
    }
}

#[test]
fn rule_output_values_narrow_the_match() {
    let p = worker_policy(1, "5m").with_output_value("taint", json!("something_else"));
    let mut eval = Evaluator::new(vec![p]);
    let line = decision(
        &call(1),
        &ts(1),
        &from(WORKER1, 1),
        &[Check::cross_tenant("svc-worker")],
    );
    assert!(run(&mut eval, std::slice::from_ref(&line)).0.is_empty());
    let p = worker_policy(1, "5m").with_output_value("taint", json!("cross_tenant_access"));
    let mut eval = Evaluator::new(vec![p]);
    assert_eq!(run(&mut eval, &[line]).0.len(), 1);
}

#[test]
fn quarantine_policy_records_its_action_and_retention_in_the_evidence() {
    let p = policy(
        "quarantine",
        "  match: {principalIds: [svc-worker]}
  threshold: {count: 1, window: 1m}
  severity: High
  action: Quarantine
  quarantineRetention: 1h
",
    );
    let mut eval = Evaluator::new(vec![p]);
    let line = decision(
        &call(1),
        &ts(1),
        &from(WORKER1, 1),
        &[Check::cross_tenant("svc-worker")],
    );
    let (taints, _) = run(&mut eval, &[line]);
    assert_eq!(
        taints[0].evidence["action"],
        json!({"kind": "Quarantine", "retentionSecs": 3600})
    );
    assert_eq!(taints[0].evidence["severity"], "High");
}

#[test]
fn unknown_and_shared_addresses_are_not_attributed() {
    let mut eval = Evaluator::new(vec![worker_policy(1, "5m")]);
    let unknown = decision(
        &call(1),
        &ts(1),
        "10.9.9.9:4000",
        &[Check::cross_tenant("svc-worker")],
    );
    let garbage = decision(
        &call(2),
        &ts(2),
        "not-an-address",
        &[Check::cross_tenant("svc-worker")],
    );
    let (taints, stats) = run(&mut eval, &[unknown, garbage]);
    assert!(taints.is_empty());
    assert_eq!(stats.unattributed, 2);

    let mut shared = addresses();
    shared.insert("worker-2", WORKER1.parse().expect("ip"));
    let line = decision(
        &call(3),
        &ts(3),
        &from(WORKER1, 1),
        &[Check::cross_tenant("svc-worker")],
    );
    let Entry::Decision(d) = decode_line(line.as_bytes()).expect("decodes") else {
        panic!()
    };
    let mut stats = EvalStats::default();
    assert!(
        eval.evaluate(&d, &shared, &mut stats).is_empty(),
        "two nodes claim the address"
    );
    assert_eq!(stats.unattributed, 1);
}

#[test]
fn ipv4_mapped_ipv6_peers_are_attributed() {
    let mut eval = Evaluator::new(vec![worker_policy(1, "5m")]);
    let line = decision(
        &call(1),
        &ts(1),
        &format!("[::ffff:{WORKER1}]:4000"),
        &[Check::cross_tenant("svc-worker")],
    );
    assert_eq!(run(&mut eval, &[line]).0[0].node, "worker-1");
}

#[test]
fn metadata_key_attribution_accepts_only_known_nodes_and_is_marked_spoofable() {
    let p = policy(
        "by-header",
        "  match: {principalIds: [svc-worker]}
  threshold: {count: 1, window: 1m}
  attribution: {by: MetadataKey, metadataKey: X-Node-Id}
  severity: Low
  action: Report
",
    );
    let mut eval = Evaluator::new(vec![p]);
    let with_header = |n: u32, node: &str| {
        let mut v: serde_json::Value = serde_json::from_str(&decision(
            &call(n),
            &ts(n),
            "127.0.0.1:1",
            &[Check::cross_tenant("svc-worker")],
        ))
        .expect("json");
        v["metadata"] = json!({"x-node-id": {"values": [node]}});
        v.to_string()
    };
    let (taints, stats) = run(
        &mut eval,
        &[with_header(1, "worker-2"), with_header(2, "worker-77")],
    );
    assert_eq!(taints.len(), 1);
    assert_eq!(taints[0].node, "worker-2");
    assert_eq!(taints[0].evidence["attribution"]["spoofable"], true);
    assert_eq!(stats.unattributed, 1, "unknown node name refused");
}

#[test]
fn plan_resources_never_feed_taints() {
    // p02 in the sample: the quarantined principal's plan is KIND_CONDITIONAL (Cerbos bug).
    let p = policy(
        "anything-denied",
        "  match: {}
  threshold: {count: 1, window: 1m}
  attribution: {by: MetadataKey, metadataKey: x-node-id}
  severity: Low
  action: Report
",
    );
    let mut map = NodeAddresses::new();
    for n in ["worker-1", "worker-2", "worker-3", "app-1"] {
        map.add_node(n);
    }
    let mut ingestor = Ingestor::new(vec![p], AddressBook::new(map));
    let plans: String = SAMPLE
        .lines()
        .filter(|l| l.contains("planResources"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut report = IngestReport::default();
    assert!(ingestor.process(plans.as_bytes(), &mut report).is_empty());
    assert_eq!(report.plan_decisions, 2);

    // The same policy over the whole sample: one draft per CheckResources call with a denial
    // (c01, c02, c04, c05, c06, c07, c09, c11, c12), on the node its header names.
    let mut report = IngestReport::default();
    let taints = ingestor.process(SAMPLE.as_bytes(), &mut report);
    assert_eq!(taints.len(), 9);
    let mut nodes: Vec<_> = taints.iter().map(|t| t.node.as_str()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes, vec!["app-1", "worker-1", "worker-2", "worker-3"]);
}

#[test]
fn changing_policies_keeps_windows_of_unchanged_ones_only() {
    let mut eval = Evaluator::new(vec![worker_policy(3, "5m")]);
    let line = decision(
        &call(1),
        &ts(1),
        &from(WORKER1, 1),
        &[Check::cross_tenant("svc-worker")],
    );
    run(&mut eval, &[line]);
    eval.set_policies(vec![worker_policy(3, "5m")]);
    assert_eq!(eval.window_len("worker-cross-tenant", "worker-1"), 1);
    eval.set_policies(vec![worker_policy(2, "5m")]);
    assert_eq!(eval.window_len("worker-cross-tenant", "worker-1"), 0);
}
