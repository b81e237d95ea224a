//! `POST /v1/audit/cerbos`: NDJSON batches from remote PDPs become Cerbos taints through the
//! stored TaintPolicies, with counts, limits and auth.

mod api_support;
mod security_support;

use api_support::{Harness, OPERATOR_TOKEN, VIEWER_TOKEN, start_time};
use axum::http::StatusCode;
use operator::api::audit_ingest::{AuditIngest, AuditIngestAuth, EVIDENCE_IGNORED_EVENT};
use pve_client::Secret;
use security_support::{denials, ingest};
use store::{EventQuery, InstanceRecord, Op, TaintSource, Txn};

const WORKER_1: &str = "10.0.10.21";

async fn harness() -> Harness {
    let h = Harness::new();
    h.apply_jsonrag().await;
    h
}

#[tokio::test]
async fn three_cross_tenant_denials_from_a_worker_address_taint_that_worker() {
    let h = harness().await;
    let wakes = h.wakes();
    let (body, ids) = denials(3, WORKER_1, "svc-worker", start_time());
    let (status, resp) = ingest(&h.state, OPERATOR_TOKEN, body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["lines"], 6);
    assert_eq!(resp["rejected"], 0);
    assert_eq!(resp["checkDecisions"], 3);
    assert_eq!(resp["taintsRaised"], 1);
    assert_eq!(resp["source"], "http/alice");

    let taints = h
        .store
        .active_taints(Some("worker-1"), start_time())
        .expect("taints");
    assert_eq!(taints.len(), 1);
    let t = &taints[0];
    assert_eq!(t.source, TaintSource::Cerbos);
    assert_eq!(t.key, "cerbos/worker-cross-tenant");
    assert_eq!(t.evidence["callIds"], serde_json::json!(ids));
    assert!(
        h.store
            .active_taints(Some("worker-2"), start_time())
            .expect("taints")
            .is_empty()
    );
    assert_eq!(h.wakes(), wakes + 1);
    let metrics = h.metrics.render();
    assert!(
        metrics.contains("reborn_audit_lines_read_total 6"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"reborn_taints_total{source="cerbos"} 1"#));
}

#[tokio::test]
async fn the_threshold_counts_across_batches() {
    let h = harness().await;
    let (first, _) = denials(2, WORKER_1, "svc-worker", start_time());
    let (_, resp) = ingest(&h.state, OPERATOR_TOKEN, first).await;
    assert_eq!(resp["taintsRaised"], 0);
    assert_eq!(resp["counted"], 2);
    let (second, _) = denials(1, WORKER_1, "svc-worker", start_time());
    let (_, resp) = ingest(&h.state, OPERATOR_TOKEN, second).await;
    assert_eq!(resp["taintsRaised"], 1, "{resp}");
}

#[tokio::test]
async fn malformed_lines_are_counted_and_skipped_never_a_server_error() {
    let h = harness().await;
    let (good, _) = denials(3, WORKER_1, "svc-worker", start_time());
    let body = format!(
        "{{\"log.kind\":\"decision\",\"callId\":\n\
         not json at all\n\
         \u{0}\u{1}binary\n\
         {good}\
         {{\"log.logger\":\"cerbos.audit\",\"log.kind\":\"decision\",\"callId\":\"x\",\"checkResources\":{{\"inputs\":7}}}}\n"
    );
    let (status, resp) = ingest(&h.state, OPERATOR_TOKEN, body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["rejected"], 4, "{resp}");
    assert_eq!(resp["lines"], 10);
    assert_eq!(resp["taintsRaised"], 1);
    assert!(
        h.metrics
            .render()
            .contains("reborn_audit_lines_rejected_total 4")
    );
}

#[tokio::test]
async fn a_tenant_users_own_denials_do_not_taint_the_worker_serving_them() {
    let h = harness().await;
    // Same worker address, same rule, but the principal is a user, not the worker's identity.
    let (body, _) = denials(10, WORKER_1, "bob", start_time());
    let (status, resp) = ingest(&h.state, OPERATOR_TOKEN, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["checkDecisions"], 10);
    assert_eq!(resp["counted"], 0);
    assert_eq!(resp["taintsRaised"], 0);
    assert!(
        h.store
            .active_taints(None, start_time())
            .expect("taints")
            .is_empty()
    );
}

#[tokio::test]
async fn denials_from_an_unknown_address_are_unattributed() {
    let h = harness().await;
    let (body, _) = denials(5, "192.0.2.99", "svc-worker", start_time());
    let (_, resp) = ingest(&h.state, OPERATOR_TOKEN, body).await;
    assert_eq!(resp["unattributed"], 5);
    assert_eq!(resp["taintsRaised"], 0);
}

#[tokio::test]
async fn resending_a_batch_adds_no_second_taint() {
    let h = harness().await;
    let (body, _) = denials(3, WORKER_1, "svc-worker", start_time());
    let (_, first) = ingest(&h.state, OPERATOR_TOKEN, body.clone()).await;
    assert_eq!(first["taintsRaised"], 1);
    let (status, again) = ingest(&h.state, OPERATOR_TOKEN, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["taintsRaised"], 0, "{again}");
    assert_eq!(h.store.taint_history(Some("worker-1")).expect("h").len(), 1);
}

#[tokio::test]
async fn evidence_older_than_the_current_instance_does_not_taint_it() {
    let h = harness().await;
    // worker-1's current instance was created after the denials were logged.
    h.store
        .commit(Txn::new().with(Op::PutInstance(InstanceRecord {
            instance_id: "i-new".to_owned(),
            node: "worker-1".to_owned(),
            vmid: 4121,
            pve_node: "pve1".to_owned(),
            name: "worker-1".to_owned(),
            smbios_uuid: "00000000-0000-4000-8000-000000000001".to_owned(),
            spec_hash: "h".to_owned(),
            gold_digest: "d".to_owned(),
            created_at: start_time(),
            current: true,
        })))
        .expect("instance");
    let old = start_time() - chrono::Duration::minutes(2);
    let (body, _) = denials(3, WORKER_1, "svc-worker", old);
    let (status, resp) = ingest(&h.state, OPERATOR_TOKEN, body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["taintsRaised"], 0, "{resp}");
    assert_eq!(resp["ignored"][0]["node"], "worker-1");
    assert!(
        h.store
            .taint_history(Some("worker-1"))
            .expect("h")
            .is_empty()
    );
    let events = h
        .store
        .events(&EventQuery {
            node: Some("worker-1".to_owned()),
            ..EventQuery::default()
        })
        .expect("events");
    assert!(
        events.iter().any(|e| e.kind == EVIDENCE_IGNORED_EVENT),
        "{events:?}"
    );
}

#[tokio::test]
async fn ingest_needs_an_operator_or_ingest_token() {
    let h = harness().await;
    let (body, _) = denials(1, WORKER_1, "svc-worker", start_time());
    let (status, resp) = ingest(&h.state, VIEWER_TOKEN, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{resp}");
    let (status, _) = ingest(&h.state, "nope", body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = security_support::send(&h.state, "/v1/audit/cerbos", &[], body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_dedicated_ingest_token_ships_batches_and_nothing_else() {
    let h = harness().await;
    let state = h
        .state
        .clone()
        .with_audit_ingest(AuditIngest::new(AuditIngestAuth::new(
            vec![("pdp-eu".to_owned(), Secret::new("ingest-secret-1"))],
            1024 * 1024,
        )));
    let (body, _) = denials(3, WORKER_1, "svc-worker", start_time());
    let (status, resp) = ingest(&state, "ingest-secret-1", body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["source"], "http/pdp-eu");
    assert_eq!(resp["taintsRaised"], 1);
    let cursor = h.store.audit_cursor("http/pdp-eu").expect("cursor");
    assert!(cursor.is_some());
    // The ingest token is not an API token.
    let (status, _) = security_support::send(
        &state,
        "/v1/nodes/worker-2/taint",
        &[("authorization", "Bearer ingest-secret-1".to_owned())],
        r#"{"reason":"x"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_batch_over_the_limit_is_413() {
    let h = harness().await;
    let state = h
        .state
        .clone()
        .with_audit_ingest(AuditIngest::new(AuditIngestAuth::new(Vec::new(), 4096)));
    let (body, _) = denials(20, WORKER_1, "svc-worker", start_time());
    assert!(body.len() > 4096);
    let (status, resp) = ingest(&state, OPERATOR_TOKEN, body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp["code"], "payload_too_large");
    assert!(
        h.store
            .active_taints(None, start_time())
            .expect("taints")
            .is_empty()
    );
}

/// The HTTP ingest's windows are committed with each batch: after a restart (a new
/// `AuditIngest` on the same store), two denials sent before it and one after make the taint.
#[tokio::test]
async fn two_denials_before_a_restart_and_one_after_make_the_taint() {
    let h = harness().await;
    let (first, mut ids) = denials(2, WORKER_1, "svc-worker", start_time());
    let (_, resp) = ingest(&h.state, OPERATOR_TOKEN, first).await;
    assert_eq!(
        (resp["counted"].as_u64(), resp["taintsRaised"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(
        h.store
            .audit_windows(operator::api::audit_ingest::HTTP_WINDOW_SCOPE)
            .expect("windows")
            .len(),
        1
    );

    let restarted = AuditIngest::new(AuditIngestAuth::default());
    let (second, more) = denials(1, WORKER_1, "svc-worker", start_time());
    ids.extend(more);
    let resp = restarted
        .ingest(&*h.store, "http/alice", second.as_bytes())
        .expect("ingest");
    assert_eq!(resp.taints_raised, 1, "{resp:?}");
    let taints = h
        .store
        .active_taints(Some("worker-1"), start_time())
        .expect("taints");
    assert_eq!(taints[0].evidence["callIds"], serde_json::json!(ids));
    // The window that raised the taint starts over, in the store too.
    assert!(
        h.store
            .audit_windows(operator::api::audit_ingest::HTTP_WINDOW_SCOPE)
            .expect("windows")
            .is_empty()
    );
}
