//! `POST /v1/hooks/taint`: webhook auth (bearer, HMAC, timestamps, replays), limits and the
//! taint it records.

mod api_support;
mod security_support;

use std::time::Duration;

use api_support::{Harness, OPERATOR_TOKEN, start_time};
use axum::http::StatusCode;
use operator::api::ApiState;
use operator::api::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookAuth, sign};
use pve_client::Secret;
use security_support::send;
use store::{EventQuery, Severity, TaintSource};

const TOKEN: &str = "zabbix-bearer-token-1";
const KEY: &str = "zabbix-hmac-key-0123456789";
const PATH: &str = "/v1/hooks/taint";

fn auth() -> WebhookAuth {
    WebhookAuth::new(
        vec![("zabbix-bearer".to_owned(), Secret::new(TOKEN))],
        vec![("zabbix".to_owned(), Secret::new(KEY))],
    )
}

async fn harness_with(auth: WebhookAuth) -> (Harness, ApiState) {
    let h = Harness::new();
    h.apply_jsonrag().await;
    let state = h.state.clone().with_webhook(auth);
    (h, state)
}

async fn harness() -> (Harness, ApiState) {
    harness_with(auth()).await
}

const BODY: &str = r#"{"node":"worker-1","reason":"Zabbix: nginx 5xx rate above 20%","severity":"critical","source":"zabbix","details":{"eventId":"4711"}}"#;

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

fn signed(body: &str, key: &str, ts: i64) -> Vec<(&'static str, String)> {
    vec![
        (
            SIGNATURE_HEADER,
            sign(key.as_bytes(), Some(ts), body.as_bytes()),
        ),
        (TIMESTAMP_HEADER, ts.to_string()),
    ]
}

fn now() -> i64 {
    start_time().timestamp()
}

#[tokio::test]
async fn bearer_token_taints_the_node_with_source_webhook() {
    let (h, state) = harness().await;
    let wakes = h.wakes();
    let (status, resp) = send(&state, PATH, &bearer(TOKEN), BODY).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["created"], true);
    let taints = h
        .store
        .active_taints(Some("worker-1"), start_time())
        .expect("taints");
    assert_eq!(taints.len(), 1);
    let t = &taints[0];
    assert_eq!(t.source, TaintSource::Webhook);
    assert_eq!(t.severity, Severity::Critical);
    assert_eq!(t.key, "webhook/zabbix");
    assert_eq!(t.created_by, "webhook:zabbix-bearer");
    assert_eq!(t.evidence["details"]["eventId"], "4711");
    assert_eq!(h.wakes(), wakes + 1);
    let events = h
        .store
        .events(&EventQuery {
            node: Some("worker-1".to_owned()),
            ..EventQuery::default()
        })
        .expect("events");
    assert!(events.iter().any(|e| e.kind == "TaintAdded"
        && e.data["source"] == "webhook"
        && e.data["by"] == "webhook:zabbix-bearer"));
    assert!(
        h.metrics
            .render()
            .contains(r#"reborn_taints_total{source="webhook"} 1"#)
    );
}

#[tokio::test]
async fn hmac_signature_with_timestamp_is_accepted() {
    let (h, state) = harness().await;
    let (status, resp) = send(&state, PATH, &signed(BODY, KEY, now()), BODY).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["taint"]["created_by"], "webhook:zabbix");
    assert_eq!(
        h.store
            .active_taints(Some("worker-1"), start_time())
            .expect("t")
            .len(),
        1
    );
}

#[tokio::test]
async fn repeated_alert_does_not_add_a_second_taint() {
    let (h, state) = harness().await;
    let (_, first) = send(&state, PATH, &bearer(TOKEN), BODY).await;
    let (status, again) = send(&state, PATH, &bearer(TOKEN), BODY).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["created"], false);
    assert_eq!(again["taint"]["id"], first["taint"]["id"]);
    assert_eq!(h.store.taint_history(Some("worker-1")).expect("h").len(), 1);
}

async fn assert_refused(state: &ApiState, headers: &[(&str, String)], body: &str) {
    let (status, resp) = send(state, PATH, headers, body.to_owned()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{resp}");
    // The same bare answer whatever was wrong.
    assert_eq!(
        resp,
        serde_json::json!({"error": "missing or invalid webhook credentials", "code": "unauthenticated"})
    );
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_401_without_detail() {
    let (h, state) = harness().await;
    assert_refused(&state, &[], BODY).await;
    assert_refused(&state, &bearer("zabbix-bearer-token-2"), BODY).await;
    assert_refused(&state, &signed(BODY, "another-key-0123456789", now()), BODY).await;
    // A signature over another body (tampered in transit).
    let other = BODY.replace("worker-1", "worker-2");
    assert_refused(&state, &signed(&other, KEY, now()), BODY).await;
    // A malformed signature header.
    assert_refused(
        &state,
        &[
            (SIGNATURE_HEADER, "sha256=xyz".to_owned()),
            (TIMESTAMP_HEADER, now().to_string()),
        ],
        BODY,
    )
    .await;
    // A wrong bearer token does not fall back to a (valid) signature.
    let mut both = signed(BODY, KEY, now());
    both.push(("authorization", "Bearer wrong".to_owned()));
    assert_refused(&state, &both, BODY).await;
    assert!(h.store.taint_history(None).expect("history").is_empty());
}

#[tokio::test]
async fn api_tokens_are_not_webhook_credentials_and_webhook_tokens_open_nothing_else() {
    let (_h, state) = harness().await;
    assert_refused(&state, &bearer(OPERATOR_TOKEN), BODY).await;
    let (status, _) = send(
        &state,
        "/v1/nodes/worker-1/taint",
        &bearer(TOKEN),
        r#"{"reason":"x"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&state, "/v1/breaker/release", &bearer(TOKEN), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn webhook_without_configured_credentials_refuses_everything() {
    let (_h, state) = harness_with(WebhookAuth::default()).await;
    assert_refused(&state, &bearer(TOKEN), BODY).await;
    assert_refused(&state, &signed(BODY, KEY, now()), BODY).await;
}

#[tokio::test]
async fn unknown_node_is_404_but_only_once_authenticated() {
    let (_h, state) = harness().await;
    let body = BODY.replace("worker-1", "worker-9");
    let (status, resp) = send(&state, PATH, &bearer(TOKEN), body.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{resp}");
    assert_eq!(resp["code"], "not_found");
    assert_refused(&state, &[], &body).await;
}

#[tokio::test]
async fn oversize_body_is_413() {
    let (h, state) = harness_with(auth().max_body_bytes(1024)).await;
    let body = format!(
        r#"{{"node":"worker-1","reason":"{}","severity":"warning","source":"zabbix"}}"#,
        "x".repeat(2000)
    );
    let (status, resp) = send(&state, PATH, &bearer(TOKEN), body.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{resp}");
    assert_eq!(resp["code"], "payload_too_large");
    let (status, _) = send(&state, PATH, &signed(&body, KEY, now()), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(h.store.taint_history(None).expect("h").is_empty());
}

#[tokio::test]
async fn malformed_or_invalid_json_is_a_400_json_error() {
    let (_h, state) = harness().await;
    for body in [
        "{not json",
        r#"{"node":"worker-1","reason":"x","severity":"disaster","source":"zabbix"}"#,
        r#"{"node":"worker-1","reason":"  ","severity":"info","source":"zabbix"}"#,
        r#"{"node":"worker-1","reason":"x","severity":"info","source":"zab bix"}"#,
        r#"{"node":"worker-1","reason":"x","severity":"info"}"#,
        r#"{"node":"worker-1","reason":"x","severity":"info","source":"z","extra":1}"#,
    ] {
        let (status, resp) = send(&state, PATH, &bearer(TOKEN), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert_eq!(resp["code"], "bad_request", "{body}");
    }
}

#[tokio::test]
async fn replayed_signed_request_is_401() {
    let (h, state) = harness().await;
    let headers = signed(BODY, KEY, now());
    let (status, _) = send(&state, PATH, &headers, BODY).await;
    assert_eq!(status, StatusCode::OK);
    // The taint is cleared (e.g. the node was replaced); the captured request is sent again.
    let (status, _) = send(
        &h.state,
        "/v1/nodes/worker-1/untaint",
        &bearer(OPERATOR_TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_refused(&state, &headers, BODY).await;
    assert!(
        h.store
            .active_taints(Some("worker-1"), start_time())
            .expect("t")
            .is_empty()
    );
}

#[tokio::test]
async fn timestamps_outside_the_skew_or_missing_are_refused() {
    let (_h, state) = harness().await;
    assert_refused(&state, &signed(BODY, KEY, now() - 301), BODY).await;
    assert_refused(&state, &signed(BODY, KEY, now() + 301), BODY).await;
    let no_ts = vec![(
        SIGNATURE_HEADER,
        sign(KEY.as_bytes(), None, BODY.as_bytes()),
    )];
    assert_refused(&state, &no_ts, BODY).await;
    // The timestamp is covered by the MAC: changing it breaks the signature.
    let mut moved = signed(BODY, KEY, now());
    moved[1].1 = (now() + 1).to_string();
    assert_refused(&state, &moved, BODY).await;
    let (status, _) = send(&state, PATH, &signed(BODY, KEY, now() - 299), BODY).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn body_only_signature_works_when_timestamps_are_not_required() {
    let (_h, state) = harness_with(
        auth()
            .require_timestamp(false)
            .max_skew(Duration::from_secs(60)),
    )
    .await;
    let headers = vec![(
        SIGNATURE_HEADER,
        sign(KEY.as_bytes(), None, BODY.as_bytes()),
    )];
    let (status, resp) = send(&state, PATH, &headers, BODY).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
}

#[tokio::test]
async fn ttl_and_default_ttl_set_the_expiry() {
    let (h, state) = harness_with(auth().default_ttl(Some(Duration::from_secs(3600)))).await;
    let (_, resp) = send(&state, PATH, &bearer(TOKEN), BODY).await;
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(resp["taint"]["expires_at"].clone()).expect("expiry");
    assert_eq!(expires, start_time() + chrono::Duration::hours(1));
    let body =
        r#"{"node":"worker-2","reason":"r","severity":"info","source":"zabbix","ttl":"10m"}"#;
    let (_, resp) = send(&state, PATH, &bearer(TOKEN), body).await;
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(resp["taint"]["expires_at"].clone()).expect("expiry");
    assert_eq!(expires, start_time() + chrono::Duration::minutes(10));
    drop(h);
}
