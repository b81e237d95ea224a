//! Taints, untaint history, describe, plan and breaker.

mod api_support;

use api_support::{Harness, VIEWER_TOKEN, start_time};
use axum::http::StatusCode;
use store::{InstanceRecord, NewEvent, Op, Txn};

#[tokio::test]
async fn taint_on_an_unknown_node_is_404() {
    let h = Harness::new();
    let (status, body) = h
        .post("/v1/nodes/ghost/taint", r#"{"reason": "suspicious"}"#)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "not_found");
    assert!(body["error"].as_str().unwrap_or("").contains("ghost"));
}

#[tokio::test]
async fn taint_needs_a_reason_and_a_valid_ttl() {
    let h = Harness::new();
    h.apply_jsonrag().await;
    for bad in [
        r#"{"reason": "  "}"#,
        r#"{"reason": "x", "ttl": "soon"}"#,
        r#"{"reason": "x", "severity": "apocalyptic"}"#,
        r#"not json"#,
    ] {
        let (status, body) = h.post("/v1/nodes/worker-1/taint", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn taint_is_recorded_as_cli_by_the_token_name_and_untaint_keeps_history() {
    let h = Harness::new();
    h.apply_jsonrag().await;
    let wakes = h.wakes();
    let (status, taint) = h
        .post(
            "/v1/nodes/worker-1/taint",
            r#"{"reason": "ssh brute force seen", "severity": "critical", "ttl": "1h"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{taint}");
    assert_eq!(taint["source"], "cli");
    assert_eq!(
        taint["createdBy"].as_str().or(taint["created_by"].as_str()),
        Some("alice")
    );
    assert_eq!(taint["severity"], "critical");
    assert_eq!(taint["key"], "manual");
    assert_eq!(
        taint["expires_at"].as_str().or(taint["expiresAt"].as_str()),
        Some("2026-03-01T13:00:00Z")
    );
    assert_eq!(h.wakes(), wakes + 1);

    let (_, active) = h.get("/v1/taints").await;
    assert_eq!(active["items"].as_array().map(Vec::len), Some(1));
    let (_, node) = h.get("/v1/nodes/worker-1").await;
    assert_eq!(node["activeTaints"], 1);

    let (status, cleared) = h.post("/v1/nodes/worker-1/untaint", "").await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["cleared"].as_array().map(Vec::len), Some(1));
    assert_eq!(cleared["cleared"][0]["cleared_by"], "alice");

    let (_, active) = h.get("/v1/taints").await;
    assert_eq!(active["items"].as_array().map(Vec::len), Some(0));
    let (_, history) = h.get("/v1/taints?all=true").await;
    assert_eq!(history["items"].as_array().map(Vec::len), Some(1));
    assert!(history["items"][0]["cleared_at"].is_string());

    let text = h.metrics.render();
    assert!(
        text.contains(r#"reborn_taints_total{source="cli"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn describe_shows_instance_conditions_taints_with_evidence_and_events() {
    let h = Harness::new();
    h.apply_jsonrag().await;
    let store = h.store.clone();
    let record = InstanceRecord {
        instance_id: "inst-7".to_owned(),
        node: "worker-1".to_owned(),
        vmid: 4121,
        pve_node: "pve2".to_owned(),
        name: "worker-1".to_owned(),
        smbios_uuid: "0f6c6a2e-0000-4000-8000-000000000001".to_owned(),
        spec_hash: "h1".to_owned(),
        gold_digest: "sha256:9e8d".to_owned(),
        created_at: start_time(),
        current: true,
    };
    store
        .commit(
            Txn::new()
                .with(Op::PutInstance(record))
                .with(Op::AppendEvent(NewEvent {
                    at: start_time(),
                    node: Some("worker-1".to_owned()),
                    kind: "Ready".to_owned(),
                    message: "VM 4121 is Ready".to_owned(),
                    data: serde_json::json!({}),
                })),
        )
        .expect("seed");
    let key = store::ResourceKey::new("Node", "worker-1");
    store
        .put_status(
            &key,
            serde_json::json!({"conditions": [
                {"type": "Ready", "status": "True", "reason": "ProbeSucceeded", "observedGeneration": 1}
            ]}),
            store::Expect::Any,
        )
        .expect("status");
    let (status, _) = h
        .post(
            "/v1/nodes/worker-1/taint",
            r#"{"reason": "cerbos denials"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, d) = h.get("/v1/nodes/worker-1/describe").await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["instance"]["vmid"], 4121);
    assert_eq!(d["conditions"][0]["type"], "Ready");
    assert_eq!(d["taints"][0]["evidence"]["requestedBy"], "alice");
    assert_eq!(d["taints"][0]["instance_id"], "inst-7");
    let kinds: Vec<&str> = d["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["ResourceApplied", "Ready", "TaintAdded"]);
    let (status, _) = h.get("/v1/nodes/nobody/describe").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn plan_comes_from_the_controller_and_breaker_release_records_who() {
    let h = Harness::new();
    let (status, plan) = h.get("/v1/plan").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        plan["text"]
            .as_str()
            .unwrap_or("")
            .contains("clone worker-1")
    );

    h.controller.breaker.lock().expect("lock").tripped = true;
    let (_, breaker) = h.get("/v1/breaker").await;
    assert_eq!(breaker["tripped"], true);
    assert!(h.metrics.render().contains("reborn_breaker_tripped 1"));
    let (status, _) = h
        .call(
            axum::http::Method::POST,
            "/v1/breaker/release",
            Some(VIEWER_TOKEN),
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, released) = h.post("/v1/breaker/release", "").await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["tripped"], false);
    assert_eq!(released["released_by"], "alice");
    assert!(h.metrics.render().contains("reborn_breaker_tripped 0"));
}
