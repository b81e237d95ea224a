//! Authentication, roles, body limits and the JSON error shape.

mod api_support;

use api_support::{Harness, OPERATOR_TOKEN, VIEWER_TOKEN, json};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use operator::api::ApiOptions;

#[tokio::test]
async fn healthz_answers_without_a_token() {
    let h = Harness::new();
    let (status, body) = h.call(Method::GET, "/healthz", None, Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["status"], "ok");
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_json_without_detail() {
    let h = Harness::new();
    for token in [None, Some("wrong"), Some(""), Some("op-secret-toke")] {
        let (status, body) = h.call(Method::GET, "/v1/nodes", token, Body::empty()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        let body = json(&body);
        assert_eq!(body["code"], "unauthenticated");
        assert_eq!(body["error"], "missing or invalid bearer token");
    }
    // A non-Bearer scheme is refused the same way.
    let req = axum::http::Request::builder()
        .uri("/v1/nodes")
        .header("authorization", format!("Basic {OPERATOR_TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let resp = tower::ServiceExt::oneshot(operator::api::router(h.state.clone()), req)
        .await
        .expect("answer");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn viewer_can_read_but_every_write_is_403() {
    let h = Harness::new();
    let (status, _) = h.get("/v1/nodes").await;
    assert_eq!(status, StatusCode::OK);
    let writes = [
        (Method::POST, "/v1/apply"),
        (Method::POST, "/v1/nodes/worker-1/taint"),
        (Method::POST, "/v1/nodes/worker-1/untaint"),
        (Method::POST, "/v1/breaker/release"),
        (Method::DELETE, "/v1/nodes/worker-1"),
    ];
    for (method, path) in writes {
        let (status, body) = h
            .call(method.clone(), path, Some(VIEWER_TOKEN), Body::from("{}"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(json(&body)["code"], "forbidden");
    }
    assert_eq!(h.wakes(), 0, "a refused write must not wake the controller");
}

#[tokio::test]
async fn operator_token_may_read_too() {
    let h = Harness::new();
    let (status, _) = h
        .call(
            Method::GET,
            "/v1/taints",
            Some(OPERATOR_TOKEN),
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn body_over_the_limit_is_413_json_and_stores_nothing() {
    let h = Harness::with_options(ApiOptions {
        max_body_bytes: 4096,
        metrics_auth: true,
    });
    let big = format!("# {}\n{}", "x".repeat(8192), api_support::jsonrag());
    let (status, body) = h.apply(&big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "payload_too_large");
    let (_, nodes) = h.get("/v1/nodes").await;
    assert_eq!(nodes["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn metrics_need_a_token_unless_configured_open() {
    let h = Harness::new();
    let (status, _) = h.call(Method::GET, "/metrics", None, Body::empty()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, text) = h
        .call(Method::GET, "/metrics", Some(VIEWER_TOKEN), Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("reborn_breaker_tripped"), "{text}");

    let open = Harness::with_options(ApiOptions {
        metrics_auth: false,
        ..ApiOptions::default()
    });
    let (status, _) = open
        .call(Method::GET, "/metrics", None, Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK);
    // Opening /metrics opens nothing else.
    let (status, _) = open
        .call(Method::GET, "/v1/nodes", None, Body::empty())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_endpoint_kind_and_bad_query_are_json_4xx() {
    let h = Harness::new();
    let (status, body) = h.get("/v2/everything").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    let (status, body) = h.get("/v1/widgets").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("unknown kind")
    );
    let (status, body) = h.get("/v1/events?limit=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "bad_request");
}
