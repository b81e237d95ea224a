//! Shared fixtures for the API tests: a real SQLite store in a tempdir, a fake controller
//! handle, two tokens, and request helpers over the in-process router.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use operator::api::auth::{ApiToken, Role, TokenSet};
use operator::api::{ApiOptions, ApiState};
use operator::handle::BoxFuture;
use operator::metrics::Metrics;
use operator::{BreakerView, ControllerHandle, HandleError, PlanReport};
use pve_client::Secret;
use store::{ManualClock, SqliteOptions, SqliteStore, Store};
use tower::ServiceExt;

pub const OPERATOR_TOKEN: &str = "op-secret-token";
pub const VIEWER_TOKEN: &str = "viewer-secret-token";

/// A stand-in for the controller: counts wakes, returns a fixed plan, keeps a breaker.
pub struct FakeController {
    pub wakes: AtomicUsize,
    pub breaker: Mutex<BreakerView>,
}

impl Default for FakeController {
    fn default() -> Self {
        Self {
            wakes: AtomicUsize::new(0),
            breaker: Mutex::new(BreakerView {
                tripped: false,
                reason: None,
                released_by: None,
            }),
        }
    }
}

impl ControllerHandle for FakeController {
    fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }

    fn plan(&self) -> BoxFuture<'_, Result<PlanReport, HandleError>> {
        Box::pin(async {
            Ok(PlanReport {
                text: "clone worker-1 from jsonrag-worker: node has no instance\n".to_owned(),
                plan: serde_json::json!({"actions": [{"kind": "clone", "node": "worker-1"}]}),
            })
        })
    }

    fn breaker(&self) -> BreakerView {
        self.breaker.lock().expect("breaker lock").clone()
    }

    fn release_breaker(&self, by: &str) -> Result<BreakerView, HandleError> {
        let mut b = self.breaker.lock().expect("breaker lock");
        b.tripped = false;
        b.released_by = Some(by.to_owned());
        Ok(b.clone())
    }
}

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub struct Harness {
    pub _dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub controller: Arc<FakeController>,
    pub clock: Arc<ManualClock>,
    pub metrics: Metrics,
    pub state: ApiState,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_options(ApiOptions::default())
    }

    pub fn with_options(options: ApiOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(start_time()));
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open_with(
                dir.path().join("reborn.db"),
                SqliteOptions {
                    clock: clock.clone(),
                    ..SqliteOptions::default()
                },
            )
            .expect("open store"),
        );
        let controller = Arc::new(FakeController::default());
        let tokens = TokenSet::new(vec![
            ApiToken::new("alice", Role::Operator, Secret::new(OPERATOR_TOKEN)),
            ApiToken::new("grafana", Role::Viewer, Secret::new(VIEWER_TOKEN)),
        ]);
        let metrics = Metrics::new();
        let state = ApiState::new(store.clone(), controller.clone(), tokens, metrics.clone())
            .with_clock(clock.clone())
            .with_options(options);
        Self {
            _dir: dir,
            store,
            controller,
            clock,
            metrics,
            state,
        }
    }

    pub fn wakes(&self) -> usize {
        self.controller.wakes.load(Ordering::SeqCst)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(body).expect("request");
        let resp = operator::api::router(self.state.clone())
            .oneshot(req)
            .await
            .expect("router answers");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    pub async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let (s, b) = self
            .call(Method::GET, path, Some(VIEWER_TOKEN), Body::empty())
            .await;
        (s, json(&b))
    }

    pub async fn post(&self, path: &str, body: impl Into<Body>) -> (StatusCode, serde_json::Value) {
        let (s, b) = self
            .call(Method::POST, path, Some(OPERATOR_TOKEN), body.into())
            .await;
        (s, json(&b))
    }

    pub async fn apply(&self, yaml: &str) -> (StatusCode, serde_json::Value) {
        self.post("/v1/apply", yaml.to_owned()).await
    }

    pub async fn apply_jsonrag(&self) {
        let (s, b) = self.apply(&jsonrag()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/jsonrag")
}

/// Every jsonRAG manifest, concatenated into one multi-document text.
pub fn jsonrag() -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/jsonrag")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read manifest"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// One jsonRAG document (by kind and name) from the examples.
pub fn example_doc(name: &str) -> String {
    jsonrag()
        .split("\n---\n")
        .find(|d| d.contains(&format!("name: {name},")) || d.contains(&format!("name: {name}}}")))
        .unwrap_or_else(|| panic!("no example document named {name}"))
        .to_owned()
}
