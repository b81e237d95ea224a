//! The event log: filters and the follow stream.

mod api_support;

use std::time::Duration;

use api_support::{Harness, VIEWER_TOKEN, start_time};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use store::NewEvent;

fn event(node: &str, kind: &str, minutes: i64) -> NewEvent {
    NewEvent {
        at: start_time() + chrono::Duration::minutes(minutes),
        node: Some(node.to_owned()),
        kind: kind.to_owned(),
        message: format!("{kind} on {node}"),
        data: serde_json::json!({}),
    }
}

#[tokio::test]
async fn events_filter_by_node_kind_since_and_limit() {
    let h = Harness::new();
    for (node, kind, m) in [
        ("worker-1", "CloneStarted", 1),
        ("worker-2", "CloneStarted", 2),
        ("worker-1", "Ready", 3),
        ("worker-1", "TaintAdded", 4),
    ] {
        h.store.append_event(event(node, kind, m)).expect("append");
    }
    let kinds = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (_, v) = h.get("/v1/events?node=worker-1").await;
    assert_eq!(kinds(&v), ["CloneStarted", "Ready", "TaintAdded"]);
    let (_, v) = h.get("/v1/events?kind=CloneStarted").await;
    assert_eq!(kinds(&v), ["CloneStarted", "CloneStarted"]);
    let (_, v) = h.get("/v1/events?since=2026-03-01T12:03:00Z").await;
    assert_eq!(kinds(&v), ["Ready", "TaintAdded"]);
    let (_, v) = h.get("/v1/events?node=worker-1&limit=1").await;
    assert_eq!(kinds(&v), ["TaintAdded"]);
    // Relative `since` is measured from the API's clock.
    h.clock.set(start_time() + chrono::Duration::minutes(5));
    let (_, v) = h.get("/v1/events?since=2m").await;
    assert_eq!(kinds(&v), ["Ready", "TaintAdded"]);
    let (status, _) = h.get("/v1/events?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn follow_stream_sends_the_backlog_then_events_committed_later() {
    let h = Harness::new();
    h.store
        .append_event(event("worker-1", "CloneStarted", 1))
        .expect("append");
    let req = Request::builder()
        .uri("/v1/events?node=worker-1&follow=1")
        .header("authorization", format!("Bearer {VIEWER_TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let resp = tower::ServiceExt::oneshot(operator::api::router(h.state.clone()), req)
        .await
        .expect("answer");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let mut frames = resp.into_body().into_data_stream();
    let mut lines = Vec::new();
    let mut next_line = async || -> serde_json::Value {
        let frame = tokio::time::timeout(Duration::from_secs(10), frames.next())
            .await
            .expect("an event arrives")
            .expect("stream open")
            .expect("frame");
        serde_json::from_slice(&frame).expect("one JSON line")
    };
    lines.push(next_line().await);
    // Written after the stream opened; one for another node that must not appear.
    h.store
        .append_event(event("worker-2", "CloneStarted", 2))
        .expect("append");
    h.store
        .append_event(event("worker-1", "Ready", 3))
        .expect("append");
    lines.push(next_line().await);
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(kinds, ["CloneStarted", "Ready"]);
    assert!(lines.iter().all(|l| l["node"] == "worker-1"));
}

#[tokio::test]
async fn follow_stream_ends_when_the_server_shuts_down() {
    let h = Harness::new();
    let req = Request::builder()
        .uri("/v1/events?follow=true")
        .header("authorization", format!("Bearer {VIEWER_TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let resp = tower::ServiceExt::oneshot(operator::api::router(h.state.clone()), req)
        .await
        .expect("answer");
    let mut frames = resp.into_body().into_data_stream();
    h.state.begin_shutdown();
    let end = tokio::time::timeout(Duration::from_secs(10), frames.next())
        .await
        .expect("the stream ends");
    assert!(end.is_none());
}
