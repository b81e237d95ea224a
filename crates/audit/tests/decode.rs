//! The decoder on the real Cerbos 0.55.0 sample log and on hand-made edge cases.

mod common;

use audit::decode::{Effect, Entry, decode_line};
use audit::{IngestReport, Ingestor, Joiner, NodeAddresses};
use common::{Check, SAMPLE, access, call, decision, ts};

fn entries() -> Vec<Entry> {
    SAMPLE
        .lines()
        .map(|l| decode_line(l.as_bytes()).expect("sample line decodes"))
        .collect()
}

fn decision_of(request_id: &str) -> audit::decode::DecisionEntry {
    entries()
        .into_iter()
        .find_map(|e| match e {
            Entry::Decision(d)
                if d.check_resources.as_ref().is_some_and(|c| {
                    c.inputs.first().is_some_and(|i| i.request_id == request_id)
                }) =>
            {
                Some(*d)
            }
            _ => None,
        })
        .expect("request in sample")
}

#[test]
fn every_sample_line_decodes_into_the_kinds_the_reference_counts() {
    let all = entries();
    let access = all.iter().filter(|e| matches!(e, Entry::Access(_))).count();
    let decisions: Vec<_> = all
        .iter()
        .filter_map(|e| match e {
            Entry::Decision(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(access, 16);
    assert_eq!(decisions.len(), 14);
    assert_eq!(
        decisions
            .iter()
            .filter(|d| d.check_resources.is_some())
            .count(),
        12
    );
    assert_eq!(
        decisions
            .iter()
            .filter(|d| d.plan_resources.is_some())
            .count(),
        2
    );
    let effects: Vec<Effect> = decisions
        .iter()
        .filter_map(|d| d.check_resources.as_ref())
        .flat_map(|c| {
            c.outputs
                .iter()
                .flat_map(|o| o.actions.values().map(|a| a.effect))
        })
        .collect();
    assert_eq!(effects.iter().filter(|e| **e == Effect::Allow).count(), 13);
    assert_eq!(effects.iter().filter(|e| **e == Effect::Deny).count(), 13);
}

#[test]
fn quarantined_principal_decision_carries_inputs_outputs_rule_outputs_and_metadata() {
    let d = decision_of("c06");
    assert_eq!(d.call_id, "01M7ZT1KDQP2A9KCF1TRW5HA7W");
    assert_eq!(d.peer.address, "127.0.0.1:42580");
    assert_eq!(d.peer.user_agent, "curl/7.88.1");
    assert_eq!(d.metadata["x-node-id"].values, vec!["worker-3"]);
    assert_eq!(
        d.timestamp.map(|t| t.timestamp_nanos_opt()),
        Some(
            chrono::DateTime::parse_from_rfc3339("2026-11-21T19:41:30.935830063Z")
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
        )
    );
    let c = d.check_resources.expect("check");
    assert_eq!(c.inputs[0].principal.id, "svc-quarantined");
    assert_eq!(c.inputs[0].principal.roles, vec!["workload"]);
    assert_eq!(c.inputs[0].principal.attr["vm"], "worker-3");
    assert_eq!(c.inputs[0].resource.kind, "tenant_document");
    assert_eq!(c.inputs[0].actions, vec!["read", "write"]);
    let out = &c.outputs[0];
    assert_eq!(out.resource_id, "doc-1");
    assert_eq!(out.actions["read"].effect, Effect::Deny);
    assert_eq!(
        out.actions["read"].policy,
        "principal.svc_quarantined.vdefault"
    );
    assert_eq!(out.outputs.len(), 2);
    assert_eq!(
        out.outputs[0].src,
        "principal.svc_quarantined.vdefault#quarantine-all"
    );
    assert_eq!(out.outputs[0].val["taint"], "quarantined_principal");
    let trail = d.audit_trail.expect("audit trail");
    assert!(
        trail
            .effective_policies
            .contains_key("principal.svc_quarantined.vdefault")
    );
    assert!(d.policy_source.is_some());
}

#[test]
fn batch_call_zips_three_inputs_with_three_outputs() {
    let c = decision_of("c07").check_resources.expect("check");
    assert_eq!(c.inputs.len(), 3);
    assert_eq!(c.outputs.len(), 3);
    let ids: Vec<_> = c.inputs.iter().map(|i| i.resource.id.as_str()).collect();
    let out_ids: Vec<_> = c.outputs.iter().map(|o| o.resource_id.as_str()).collect();
    assert_eq!(ids, out_ids);
    assert_eq!(c.outputs[0].effective_derived_roles, vec!["same_tenant"]);
    assert_eq!(
        c.outputs[2].outputs[0].src,
        "resource.tenant_document.vdefault#deny-workload-delete-restricted"
    );
}

#[test]
fn request_context_forwarded_for_cel_errors_and_no_match_are_decoded() {
    let c09 = decision_of("c09");
    assert_eq!(c09.peer.forwarded_for, "192.0.2.10, 127.0.0.1");
    assert_eq!(c09.peer.user_agent, "taint-demo/1.0");
    let ann = &c09.request_context.expect("request context").annotations;
    assert_eq!(ann["attempt"], 2);
    assert_eq!(ann["node"], "worker-1");

    let c11 = decision_of("c11").check_resources.expect("check");
    assert_eq!(c11.outputs[0].evaluation_errors.len(), 1);
    assert_eq!(
        c11.outputs[0].evaluation_errors[0]["celError"]["message"],
        "no such key: owner"
    );

    let c12 = decision_of("c12");
    let c = c12.check_resources.expect("check");
    assert_eq!(c.outputs[0].actions["read"].policy, "NO_MATCH");
    assert_eq!(c.outputs[0].actions["read"].effect, Effect::Deny);
    assert!(
        c12.audit_trail
            .expect("trail")
            .effective_policies
            .is_empty()
    );
}

#[test]
fn rejected_call_has_status_code_and_server_info_has_only_an_access_entry() {
    let access: Vec<_> = entries()
        .into_iter()
        .filter_map(|e| match e {
            Entry::Access(a) => Some(a),
            _ => None,
        })
        .collect();
    let failed: Vec<_> = access.iter().filter(|a| a.status_code != 0).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status_code, 3);
    assert!(
        access
            .iter()
            .any(|a| a.method == "/cerbos.svc.v1.CerbosService/ServerInfo")
    );
}

#[test]
fn plan_resources_decisions_are_decoded_but_separate() {
    let plans: Vec<_> = entries()
        .into_iter()
        .filter_map(|e| match e {
            Entry::Decision(d) => d.plan_resources,
            _ => None,
        })
        .collect();
    let p02 = plans
        .iter()
        .find(|p| p.input.request_id == "p02")
        .expect("p02");
    assert_eq!(p02.input.principal.id, "svc-quarantined");
    assert_eq!(p02.output.filter["kind"], "KIND_CONDITIONAL");
    assert_eq!(p02.output.kind, "tenant_document");
}

#[test]
fn joining_the_sample_pairs_every_decision_with_its_access_entry() {
    let mut joiner = Joiner::default();
    let mut out = Vec::new();
    for e in entries() {
        match e {
            Entry::Access(a) => joiner.push_access(&a, &mut out),
            Entry::Decision(d) => joiner.push_decision(&d, &mut out),
            Entry::Other => {}
        }
    }
    joiner.flush(&mut out);
    assert_eq!(out.iter().filter(|c| c.is_complete()).count(), 14);
    let alone: Vec<_> = out.iter().filter(|c| !c.is_complete()).collect();
    assert_eq!(
        alone.len(),
        2,
        "ServerInfo and the over-limit call have no decision"
    );
    assert!(alone.iter().all(|c| c.decision.is_none()));
}

#[test]
fn decision_before_its_access_line_still_joins() {
    let mut joiner = Joiner::default();
    let mut out = Vec::new();
    let d = decision(
        &call(1),
        &ts(1),
        "127.0.0.1:1",
        &[Check::cross_tenant("svc-worker")],
    );
    let a2 = access(&call(2), &ts(1), "127.0.0.1:2");
    let a1 = access(&call(1), &ts(0), "127.0.0.1:1");
    for line in [d, a2, a1] {
        match decode_line(line.as_bytes()).expect("decodes") {
            Entry::Access(a) => joiner.push_access(&a, &mut out),
            Entry::Decision(d) => joiner.push_decision(&d, &mut out),
            Entry::Other => {}
        }
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].call_id, call(1));
    assert!(out[0].is_complete());
    assert_eq!(joiner.pending(), 1);
}

#[test]
fn pending_halves_expire_by_log_time_and_by_count() {
    let mut joiner = Joiner::new(chrono::Duration::seconds(10), 2);
    let mut out = Vec::new();
    let push = |j: &mut Joiner, line: String, out: &mut Vec<_>| {
        if let Entry::Access(a) = decode_line(line.as_bytes()).expect("decodes") {
            j.push_access(&a, out);
        }
    };
    push(&mut joiner, access(&call(1), &ts(0), "p"), &mut out);
    push(&mut joiner, access(&call(2), &ts(30), "p"), &mut out);
    assert_eq!(out.len(), 1, "call 1 is 30 s older than the newest line");
    assert_eq!(out[0].call_id, call(1));
    push(&mut joiner, access(&call(3), &ts(31), "p"), &mut out);
    push(&mut joiner, access(&call(4), &ts(32), "p"), &mut out);
    assert_eq!(joiner.pending(), 2, "never more than max_pending");
}

#[test]
fn unknown_fields_are_ignored() {
    let line = r#"{"log.logger":"cerbos.audit","log.kind":"decision","callId":"X","futureField":{"a":[1,2]},"peer":{"address":"10.0.0.1:5","newPeerThing":true},"checkResources":{"inputs":[{"principal":{"id":"p","roles":["r"],"extra":1},"resource":{"kind":"k","id":"i"},"actions":["a"]}],"outputs":[{"resourceId":"i","actions":{"a":{"effect":"EFFECT_DENY","policy":"resource.k.vdefault","brandNew":"x"}}}],"more":null}}"#;
    let Entry::Decision(d) = decode_line(line.as_bytes()).expect("decodes") else {
        panic!("not a decision");
    };
    assert_eq!(d.peer.address, "10.0.0.1:5");
    let c = d.check_resources.expect("check");
    assert_eq!(c.outputs[0].actions["a"].effect, Effect::Deny);
}

#[test]
fn enum_numbers_and_bad_timestamps_do_not_fail_the_line() {
    let line = r#"{"log.logger":"cerbos.audit","log.kind":"decision","callId":"X","timestamp":12,"checkResources":{"inputs":[{}],"outputs":[{"actions":{"a":{"effect":2},"b":{"effect":"EFFECT_SOMETHING_NEW"}}}]}}"#;
    let Entry::Decision(d) = decode_line(line.as_bytes()).expect("decodes") else {
        panic!("not a decision");
    };
    assert_eq!(d.timestamp, None);
    let c = d.check_resources.expect("check");
    assert_eq!(c.outputs[0].actions["a"].effect, Effect::Deny);
    assert_eq!(c.outputs[0].actions["b"].effect, Effect::Unspecified);
}

#[test]
fn garbage_truncated_and_foreign_lines_are_counted_and_skipped() {
    let good = decision(
        &call(1),
        &ts(1),
        "127.0.0.1:1",
        &[Check::cross_tenant("svc-worker")],
    );
    let truncated = &good[..good.len() / 2];
    let body = format!(
        "garbage\n{truncated}\n[1,2]\n{{\"log.logger\":\"cerbos.server\",\"message\":\"hi\"}}\n\n{{\"log.logger\":\"cerbos.audit\",\"log.kind\":\"access\"}}\n\u{0}\u{ff}\n{good}\n"
    );
    let mut ingestor = Ingestor::new(vec![], audit::AddressBook::new(NodeAddresses::new()));
    let mut report = IngestReport::default();
    ingestor.process(body.as_bytes(), &mut report);
    assert_eq!(
        report.malformed, 5,
        "garbage, truncated, array, no callId, binary"
    );
    assert_eq!(report.other, 1);
    assert_eq!(report.check_decisions, 1);
}
