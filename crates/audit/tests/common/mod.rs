//! Helpers shared by the audit tests: policies from YAML, hand-made Cerbos lines.
#![allow(dead_code)]

use audit::CompiledPolicy;
use serde_json::{Value, json};

/// The sample log recorded from the real Cerbos 0.55.0 PDP (`reference/cerbos/samples`).
pub const SAMPLE: &str = include_str!("../data/audit.log");

/// A TaintPolicy manifest named `name` with the given YAML `spec` body (indented by 2).
pub fn policy(name: &str, spec: &str) -> CompiledPolicy {
    let yaml = format!(
        "apiVersion: reborn.dev/v1alpha1\nkind: TaintPolicy\nmetadata: {{name: {name}}}\nspec:\n{spec}"
    );
    let set = model::load_str("policy.yaml", &yaml)
        .unwrap_or_else(|d| panic!("test policy does not load: {d:?}"));
    CompiledPolicy::new(&set.taint_policies[0])
}

/// The jsonRAG worker policy: the worker's service identity denied by the explicit
/// cross-tenant DENY rule, `count` times within `window`.
pub fn worker_policy(count: u32, window: &str) -> CompiledPolicy {
    policy(
        "worker-cross-tenant",
        &format!(
            "  match:
    principalIds: [svc-worker]
    resourceKinds: [tenant_document]
    effect: Deny
    rules: [\"resource.tenant_document.vdefault#deny-cross-tenant\"]
  threshold: {{count: {count}, window: {window}}}
  attribution: {{by: PeerAddress}}
  severity: Critical
  action: Replace
  taintTtl: 24h
"
        ),
    )
}

/// One CheckResources input/output pair.
pub struct Check<'a> {
    pub principal: &'a str,
    pub roles: &'a [&'a str],
    pub kind: &'a str,
    pub resource: &'a str,
    pub action: &'a str,
    pub effect: &'a str,
    /// The rule whose output fired (`None`: no output, e.g. the default deny).
    pub rule: Option<&'a str>,
}

impl<'a> Check<'a> {
    /// The worker denied reading another tenant's document by the explicit rule.
    pub fn cross_tenant(principal: &'a str) -> Self {
        Check {
            principal,
            roles: &["workload"],
            kind: "tenant_document",
            resource: "doc-9",
            action: "read",
            effect: "EFFECT_DENY",
            rule: Some("deny-cross-tenant"),
        }
    }
}

/// A decision line (CheckResources) as Cerbos 0.55 writes it.
pub fn decision(call_id: &str, ts: &str, peer: &str, checks: &[Check<'_>]) -> String {
    let inputs: Vec<Value> = checks
        .iter()
        .map(|c| {
            json!({"requestId": "r1",
                "principal": {"id": c.principal, "roles": c.roles, "attr": {"tenant": "acme"}},
                "resource": {"kind": c.kind, "id": c.resource, "attr": {"tenant": "globex"}},
                "actions": [c.action]})
        })
        .collect();
    let outputs: Vec<Value> = checks
        .iter()
        .map(|c| {
            let policy = format!("resource.{}.vdefault", c.kind);
            let mut o = json!({"requestId": "r1", "resourceId": c.resource,
                "actions": {c.action: {"effect": c.effect, "policy": policy}}});
            if let Some(rule) = c.rule {
                o["outputs"] = json!([{"src": format!("{policy}#{rule}"), "action": c.action,
                    "val": {"taint": "cross_tenant_access", "principal": c.principal}}]);
            }
            o
        })
        .collect();
    json!({"log.logger": "cerbos.audit", "log.kind": "decision", "callId": call_id,
        "timestamp": ts,
        "peer": {"address": peer, "userAgent": "test", "forwardedFor": "127.0.0.1"},
        "checkResources": {"inputs": inputs, "outputs": outputs},
        "auditTrail": {"effectivePolicies": {}},
        "policySource": {"disk": {"directory": "/p"}}})
    .to_string()
}

/// The access line of the same call.
pub fn access(call_id: &str, ts: &str, peer: &str) -> String {
    json!({"log.logger": "cerbos.audit", "log.kind": "access", "callId": call_id,
        "peer": {"address": peer, "userAgent": "test", "forwardedFor": "127.0.0.1"},
        "timestamp": ts, "method": "/cerbos.svc.v1.CerbosService/CheckResources"})
    .to_string()
}

/// `2026-11-21T19:00:SSZ` for `s` seconds (< 3600).
pub fn ts(s: u32) -> String {
    format!("2026-11-21T19:{:02}:{:02}Z", s / 60, s % 60)
}

/// A ULID-looking call id that sorts by `n`.
pub fn call(n: u32) -> String {
    format!("01M7ZT1K{n:018}")
}
