//! Security of the loop itself, with the real controller against the simulator: whoever can
//! make a service log denials cannot make reborn destroy the fleet, nor keep one node in a
//! replace loop. Denials go in through `POST /v1/audit/cerbos`, as a remote PDP ships them.

mod scenario_support;
mod security_support;

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::Utc;
use operator::api::ApiState;
use operator::api::audit_ingest::EVIDENCE_IGNORED_EVENT;
use operator::api::auth::{ApiToken, Role, TokenSet};
use operator::api::webhook::WebhookAuth;
use operator::metrics::Metrics;
use pve_client::Secret;
use scenario_support::{GOLD, Harness, node};
use security_support::{WORKER_POLICY, apply_policies, denials, ingest, send};
use store::{EventQuery, Store};

const OPS: &str = "ops-token";

fn workers(n: u8) -> String {
    let mut out = GOLD.to_owned();
    for i in 1..=n {
        out.push_str(&node(
            &format!("worker-{i}"),
            "worker",
            4100 + 10 * u32::from(i),
            "StopFirst",
            20 + i,
        ));
    }
    out
}

fn ip(i: u8) -> String {
    format!("10.0.10.{}", 20 + i)
}

/// The operator API over the harness's store and real controller.
fn api(h: &Harness) -> ApiState {
    let store: Arc<dyn Store> = h.store.clone();
    ApiState::new(
        store,
        h.handle.clone(),
        TokenSet::new(vec![ApiToken::new("ops", Role::Operator, Secret::new(OPS))]),
        Metrics::new(),
    )
}

fn count(h: &Harness, kind: &str) -> usize {
    h.store
        .events(&EventQuery::default())
        .expect("events")
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

fn vm_of(h: &Harness, node: &str) -> Vec<u32> {
    h.owned_vms()
        .into_iter()
        .filter(|(_, n)| n == node)
        .map(|(v, _)| v)
        .collect()
}

async fn setup(n: u8, config: operator::ControllerConfig) -> (Harness, ApiState) {
    let h = Harness::with_config(&workers(n), config).await;
    apply_policies(h.store.as_ref(), WORKER_POLICY);
    h.converge().await;
    assert_eq!(h.owned_vms().len(), usize::from(n));
    let api = api(&h);
    (h, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_flood_attributed_to_every_node_trips_the_breaker_and_destroys_at_most_the_budget()
{
    let config = operator::ControllerConfig::fast(scenario_support::OPERATOR);
    let limit = config.breaker.max_destroys as usize;
    let (h, api) = setup(4, config).await;
    let before = h.owned_vms();

    for round in 0..2 {
        let mut body = String::new();
        for i in 1..=4 {
            body.push_str(&denials(5, &ip(i), "svc-worker", Utc::now()).0);
        }
        let (status, resp) = ingest(&api, OPS, body).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        if round == 0 {
            assert_eq!(resp["taintsRaised"], 4, "{resp}");
        }
        h.converge().await;
    }

    assert!(h.handle.breaker().tripped, "{}", h.golden());
    let destroyed = count(&h, "Destroyed");
    assert!(destroyed <= limit, "{destroyed} destroys:\n{}", h.golden());
    let after = h.owned_vms();
    let untouched = before.iter().filter(|vm| after.contains(vm)).count();
    assert!(untouched >= 4 - limit.min(3), "{after:?}");
    // Nothing was destroyed without a replacement: every node still has exactly one VM.
    for i in 1..=4 {
        assert_eq!(vm_of(&h, &format!("worker-{i}")).len(), 1, "{after:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_spread_over_time_stops_at_the_breakers_destroy_limit() {
    let mut config = operator::ControllerConfig::fast(scenario_support::OPERATOR);
    config.breaker.max_destroys = 2;
    let (h, api) = setup(5, config).await;
    let originals: Vec<Vec<u32>> = (1..=5).map(|i| vm_of(&h, &format!("worker-{i}"))).collect();

    // One node at a time, so the tainted-percentage rule never fires first.
    for i in 1..=5 {
        let (body, _) = denials(3, &ip(i), "svc-worker", Utc::now());
        let (status, resp) = ingest(&api, OPS, body).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        assert_eq!(resp["taintsRaised"], 1, "{resp}");
        h.converge().await;
    }

    let destroyed = count(&h, "Destroyed");
    // The first nodes really were replaced; then the limit held.
    assert!(
        (1..=2).contains(&destroyed),
        "{destroyed} destroys:\n{}",
        h.golden()
    );
    assert!(h.handle.breaker().tripped, "{}", h.golden());
    // Held nodes may have a new instance next to the old one; the old ones still exist.
    let kept = (1..=5usize)
        .filter(|i| vm_of(&h, &format!("worker-{i}")).contains(&originals[*i - 1][0]))
        .count();
    assert!(kept >= 3, "{:?}", h.owned_vms());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_evidence_does_not_retaint_the_replacement_and_fresh_denials_stop_at_the_limit() {
    let config = operator::ControllerConfig::fast(scenario_support::OPERATOR);
    let limit = config.breaker.max_destroys as usize;
    let (h, api) = setup(3, config).await;
    let first_vm = vm_of(&h, "worker-1");

    let (body, ids) = denials(3, &ip(1), "svc-worker", Utc::now());
    let (_, resp) = ingest(&api, OPS, body.clone()).await;
    assert_eq!(resp["taintsRaised"], 1, "{resp}");
    h.converge().await;
    let second_vm = vm_of(&h, "worker-1");
    assert_ne!(second_vm, first_vm, "worker-1 was replaced");
    assert_eq!(count(&h, "Destroyed"), 1);
    let history = h.store.taint_history(Some("worker-1")).expect("history");
    assert_eq!(history[0].evidence["callIds"], serde_json::json!(ids));

    // The same lines again (a shipper retrying, or an attacker replaying them).
    let (status, resp) = ingest(&api, OPS, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["taintsRaised"], 0, "{resp}");
    assert!(
        count(&h, EVIDENCE_IGNORED_EVENT) >= 1 || resp["duplicates"] != 0,
        "{resp}"
    );
    h.converge().await;
    assert_eq!(
        vm_of(&h, "worker-1"),
        second_vm,
        "the new instance is not tainted by old evidence"
    );
    assert_eq!(count(&h, "Destroyed"), 1);

    // Fresh denials, again and again: each is real evidence, but the destroy limit holds.
    for _ in 0..limit + 2 {
        let (body, _) = denials(3, &ip(1), "svc-worker", Utc::now());
        let (status, resp) = ingest(&api, OPS, body).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        h.converge().await;
    }
    let destroyed = count(&h, "Destroyed");
    assert!(
        (2..=limit).contains(&destroyed),
        "{destroyed} destroys:\n{}",
        h.golden()
    );
    assert!(h.handle.breaker().tripped, "{}", h.golden());
    // The held replacement may keep the old (stopped) instance for a human next to the new
    // one, but worker-1 is never left without a VM.
    let vms = vm_of(&h, "worker-1");
    assert!((1..=2).contains(&vms.len()), "{vms:?}\n{}", h.golden());
    // The other workers were never touched.
    assert_eq!(vm_of(&h, "worker-2"), vec![4120]);
    assert_eq!(vm_of(&h, "worker-3"), vec![4130]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_webhook_secret_alerting_on_every_node_cannot_replace_the_fleet() {
    let config = operator::ControllerConfig::fast(scenario_support::OPERATOR);
    let limit = config.breaker.max_destroys as usize;
    let (h, api) = setup(4, config).await;
    let api = api.with_webhook(WebhookAuth::new(
        vec![("zabbix".to_owned(), Secret::new("leaked-webhook-token"))],
        Vec::new(),
    ));
    let before = h.owned_vms();
    for i in 1..=4 {
        let body = format!(
            r#"{{"node":"worker-{i}","reason":"fake alert","severity":"critical","source":"zabbix"}}"#
        );
        let headers = [("authorization", "Bearer leaked-webhook-token".to_owned())];
        let (status, resp) = send(&api, "/v1/hooks/taint", &headers, body).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
    }
    h.converge().await;
    assert!(h.handle.breaker().tripped, "{}", h.golden());
    assert!(count(&h, "Destroyed") <= limit, "{}", h.golden());
    let after = h.owned_vms();
    assert!(before.iter().filter(|vm| after.contains(vm)).count() >= 1);
    // The secret opens nothing else: it cannot release the breaker.
    let (status, _) = send(
        &api,
        "/v1/breaker/release",
        &[("authorization", "Bearer leaked-webhook-token".to_owned())],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(h.handle.breaker().tripped);
}
