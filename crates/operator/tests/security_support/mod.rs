//! Cerbos audit lines in the shape the real PDP 0.55 writes (see the reference samples), the
//! jsonRAG TaintPolicy, and request helpers for the webhook and audit-ingest routes.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use store::{ResourceKey, ResourceWrite, Store};
use tower::ServiceExt;

/// The rule whose output marks a cross-tenant read as suspicious.
pub const CROSS_TENANT_RULE: &str = "resource.tenant_document.vdefault#deny-cross-tenant";

/// The jsonRAG policy: 3 denials of `svc-worker` on another tenant's documents within 5 min,
/// attributed by peer address.
pub const WORKER_POLICY: &str = r#"
apiVersion: reborn.dev/v1alpha1
kind: TaintPolicy
metadata: {name: worker-cross-tenant}
spec:
  match:
    principalIds: [svc-worker]
    resourceKinds: [tenant_document]
    effect: Deny
    rules: ["resource.tenant_document.vdefault#deny-cross-tenant"]
  threshold: {count: 3, window: 5m}
  attribution: {by: PeerAddress}
  severity: Critical
  action: Replace
"#;

/// Stores the TaintPolicies in `yaml` the way the API's apply does.
pub fn apply_policies(store: &dyn Store, yaml: &str) {
    let set = model::load_str("policies.yaml", yaml).expect("valid policies");
    let writes = set
        .taint_policies
        .iter()
        .map(|p| {
            ResourceWrite::new(
                ResourceKey::new("TaintPolicy", p.metadata.name.as_str()),
                serde_json::to_value(&p.spec).expect("spec"),
            )
        })
        .collect();
    store.apply(writes).expect("apply policies");
}

static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// A fresh, time-sortable call id (26 characters, like Cerbos' ULIDs).
pub fn call_id() -> String {
    format!("01TEST{:020}", NEXT_CALL.fetch_add(1, Ordering::SeqCst))
}

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// The access half of a CheckResources call from `ip`.
pub fn access(call: &str, ip: &str, at: DateTime<Utc>) -> String {
    serde_json::json!({
        "log.logger": "cerbos.audit",
        "log.kind": "access",
        "callId": call,
        "peer": {"address": format!("{ip}:41000"), "userAgent": "worker/1.0", "forwardedFor": ip},
        "timestamp": ts(at),
        "method": "/cerbos.svc.v1.CerbosService/CheckResources",
        "policySource": {"disk": {"directory": "/etc/cerbos/policies"}}
    })
    .to_string()
}

/// The decision half: `principal` (role `workload`, tenant acme) denied `read` on a globex
/// document by the explicit cross-tenant rule, called from `ip`.
pub fn denial(call: &str, ip: &str, principal: &str, at: DateTime<Utc>) -> String {
    serde_json::json!({
        "log.logger": "cerbos.audit",
        "log.kind": "decision",
        "callId": call,
        "timestamp": ts(at),
        "peer": {"address": format!("{ip}:41000"), "userAgent": "worker/1.0", "forwardedFor": ip},
        "checkResources": {
            "inputs": [{
                "requestId": "r1",
                "principal": {"id": principal, "roles": ["workload"], "attr": {"tenant": "acme"}},
                "resource": {"kind": "tenant_document", "id": "doc-9",
                             "attr": {"tenant": "globex", "owner": "gina", "classification": "public"}},
                "actions": ["read"]
            }],
            "outputs": [{
                "requestId": "r1",
                "resourceId": "doc-9",
                "actions": {"read": {"effect": "EFFECT_DENY", "policy": "resource.tenant_document.vdefault"}},
                "outputs": [{"src": CROSS_TENANT_RULE, "action": "read",
                             "val": {"principal": principal, "resource": "doc-9", "taint": "cross_tenant_access"}}]
            }]
        },
        "auditTrail": {"effectivePolicies": {"resource.tenant_document.vdefault":
            {"attributes": {"driver": "disk", "source": "tenant_document.yaml"}}}},
        "policySource": {"disk": {"directory": "/etc/cerbos/policies"}}
    })
    .to_string()
}

/// `n` complete denied calls (access and decision lines) of `principal` from `ip` at `at`,
/// as NDJSON, with their call ids.
pub fn denials(n: usize, ip: &str, principal: &str, at: DateTime<Utc>) -> (String, Vec<String>) {
    let mut body = String::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = call_id();
        // Decision first: the PDP does not promise any order.
        body.push_str(&denial(&id, ip, principal, at));
        body.push('\n');
        body.push_str(&access(&id, ip, at));
        body.push('\n');
        ids.push(id);
    }
    (body, ids)
}

/// Sends one request to the router; returns the status and the body as JSON (or `null`).
pub async fn send(
    state: &operator::api::ApiState,
    path: &str,
    headers: &[(&str, String)],
    body: impl Into<Body>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(Method::POST).uri(path);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = operator::api::router(state.clone())
        .oneshot(req.body(body.into()).expect("request"))
        .await
        .expect("router answers");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// Posts an NDJSON batch to `/v1/audit/cerbos` with `token`.
pub async fn ingest(
    state: &operator::api::ApiState,
    token: &str,
    body: String,
) -> (StatusCode, serde_json::Value) {
    send(
        state,
        "/v1/audit/cerbos",
        &[("authorization", format!("Bearer {token}"))],
        body,
    )
    .await
}
