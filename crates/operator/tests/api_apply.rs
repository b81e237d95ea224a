//! `apply`, `get`, `delete`: validation, all-or-nothing writes, generations and conflicts.

mod api_support;

use api_support::{Harness, example_doc, jsonrag};
use axum::body::Body;
use axum::http::{Method, StatusCode};

fn actions(body: &serde_json::Value) -> Vec<(String, String, u64)> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or_default().to_owned(),
                i["action"].as_str().unwrap_or_default().to_owned(),
                i["generation"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn apply_reports_created_then_unchanged_then_configured_with_generation() {
    let h = Harness::new();
    let (status, body) = h.apply(&jsonrag()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = actions(&body);
    assert_eq!(first.len(), 8, "{body}");
    assert!(
        first.iter().all(|(_, a, g)| a == "created" && *g == 1),
        "{first:?}"
    );
    assert_eq!(h.wakes(), 1);

    let (_, body) = h.apply(&jsonrag()).await;
    assert!(actions(&body).iter().all(|(_, a, _)| a == "unchanged"));
    assert_eq!(
        h.wakes(),
        1,
        "an apply that changes nothing does not wake the controller"
    );

    let changed = example_doc("worker-1").replace("memory: 4GiB", "memory: 8GiB");
    let (status, body) = h.apply(&changed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        actions(&body),
        vec![("worker-1".to_owned(), "configured".to_owned(), 2)]
    );
    let (_, node) = h.get("/v1/nodes/worker-1").await;
    assert_eq!(node["generation"], 2);
    assert_eq!(node["spec"]["resources"]["memory"], "8GiB");
    assert_eq!(node["labels"]["role"], "worker");
}

#[tokio::test]
async fn invalid_manifest_is_400_with_diagnostics_and_stores_nothing() {
    let h = Harness::new();
    let broken = format!(
        "{}\n---\n{}",
        example_doc("jsonrag-worker"),
        example_doc("worker-1").replace("memory: 4GiB", "memroy: 4GiB")
    );
    let (status, body) = h.apply(&broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_manifest");
    let diags = body["diagnostics"].as_array().expect("diagnostics");
    assert!(
        diags
            .iter()
            .any(|d| d["message"].as_str().unwrap_or("").contains("memroy")
                && d["file"] == "request.yaml"
                && d["line"].as_u64().unwrap_or(0) > 0),
        "{body}"
    );
    assert!(
        body["rendered"]
            .as_str()
            .unwrap_or("")
            .contains("--> request.yaml:")
    );
    // The valid GoldImage in the same request was not stored either.
    let (_, images) = h.get("/v1/goldimages").await;
    assert_eq!(images["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(h.wakes(), 0);
}

#[tokio::test]
async fn node_may_refer_to_a_gold_image_applied_earlier() {
    let h = Harness::new();
    let (status, body) = h.apply(&example_doc("worker-1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].is_string());
    let (status, _) = h.apply(&example_doc("jsonrag-worker")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h.apply(&example_doc("worker-1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        actions(&body),
        vec![("worker-1".to_owned(), "created".to_owned(), 1)]
    );
}

#[tokio::test]
async fn vmid_range_overlapping_a_stored_node_is_rejected() {
    let h = Harness::new();
    h.apply_jsonrag().await;
    let clash = example_doc("worker-2")
        .replace("name: worker-2", "name: worker-3")
        .replace("10.0.10.22", "10.0.10.23");
    let (status, body) = h.apply(&clash).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let rendered = body["rendered"].as_str().unwrap_or_default();
    assert!(rendered.contains("4130"), "{rendered}");
    let (status, _) = h.get("/v1/nodes/worker-3").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn apply_with_a_stale_resource_version_is_409_and_changes_nothing() {
    let h = Harness::new();
    h.apply_jsonrag().await;
    let (_, node) = h.get("/v1/nodes/worker-1").await;
    let rv = node["resourceVersion"].as_u64().expect("resourceVersion");
    let changed = example_doc("worker-1").replace("cores: 2", "cores: 4");
    let (status, body) = h
        .post(
            &format!("/v1/apply?resourceVersion={}", rv + 100),
            changed.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "conflict");
    let (status, body) = h
        .post(&format!("/v1/apply?resourceVersion={rv}"), changed)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, node) = h.get("/v1/nodes/worker-1").await;
    assert_eq!(node["spec"]["resources"]["cores"], 4);
}

#[tokio::test]
async fn list_shows_every_kind_ordered_by_name() {
    let h = Harness::new();
    h.apply_jsonrag().await;
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (_, nodes) = h.get("/v1/nodes").await;
    assert_eq!(
        names(&nodes),
        ["ingress-1", "ingress-2", "worker-1", "worker-2"]
    );
    assert_eq!(nodes["items"][0]["activeTaints"], 0);
    let (_, budgets) = h.get("/v1/budgets").await;
    assert_eq!(names(&budgets), ["ingress"]);
    let (_, policies) = h.get("/v1/taintpolicies").await;
    assert_eq!(names(&policies), ["worker-cross-tenant"]);
}

#[tokio::test]
async fn delete_removes_the_resource_checks_versions_and_404s_unknown_names() {
    let h = Harness::new();
    h.apply_jsonrag().await;
    let wakes = h.wakes();
    let (status, body) = h
        .call(
            Method::DELETE,
            "/v1/nodes/worker-2?resourceVersion=999",
            Some(api_support::OPERATOR_TOKEN),
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = h
        .call(
            Method::DELETE,
            "/v1/nodes/worker-2",
            Some(api_support::OPERATOR_TOKEN),
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.wakes(), wakes + 1);
    let (status, _) = h.get("/v1/nodes/worker-2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = h
        .call(
            Method::DELETE,
            "/v1/nodes/worker-2",
            Some(api_support::OPERATOR_TOKEN),
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(api_support::json(&body)["code"], "not_found");
}
