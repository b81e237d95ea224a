//! The operator HTTP API (axum): apply, get/list, delete, taint/untaint, describe, events (with
//! a follow stream), plan, breaker, the taint webhook, Cerbos audit ingestion, `/metrics` and
//! `/healthz`.
//!
//! Start with [`ApiState`], [`router`] and [`serve`]. Every route except `/healthz` needs
//! `Authorization: Bearer <token>`; reads need role `viewer`, writes role `operator`. Every
//! error is JSON ([`wire::ErrorBody`]). Writes go to the store and then wake the controller.
//! See `docs/api.md`.

pub mod audit_ingest;
pub mod auth;
mod body;
mod controller;
mod describe;
pub mod error;
mod events;
mod manifests;
mod resources;
mod taints;
pub mod webhook;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use store::{Clock, Store, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::audit_ingest::AuditIngest;
use self::auth::{Caller, Role, TokenSet};
use self::error::ApiError;
use self::webhook::WebhookAuth;
use crate::ControllerHandle;
use crate::metrics::Metrics;

/// Settings of the API besides its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiOptions {
    /// Largest accepted request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Whether `/metrics` needs a viewer token.
    pub metrics_auth: bool,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
            metrics_auth: true,
        }
    }
}

struct Inner {
    store: Arc<dyn Store>,
    controller: Arc<dyn ControllerHandle>,
    tokens: TokenSet,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    options: ApiOptions,
    webhook: WebhookAuth,
    audit: AuditIngest,
    shutdown: watch::Sender<bool>,
}

/// What the handlers share: the store, the controller handle, tokens, metrics and a clock.
/// Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("tokens", &self.inner.tokens.len())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// State with the system clock and default options.
    pub fn new(
        store: Arc<dyn Store>,
        controller: Arc<dyn ControllerHandle>,
        tokens: TokenSet,
        metrics: Metrics,
    ) -> Self {
        Self::build(
            store,
            controller,
            tokens,
            metrics,
            Arc::new(SystemClock),
            ApiOptions::default(),
        )
    }

    fn build(
        store: Arc<dyn Store>,
        controller: Arc<dyn ControllerHandle>,
        tokens: TokenSet,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
        options: ApiOptions,
    ) -> Self {
        let (shutdown, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                store,
                controller,
                tokens,
                metrics,
                clock,
                options,
                webhook: WebhookAuth::default(),
                audit: AuditIngest::default(),
                shutdown,
            }),
        }
    }

    /// A copy of this state (with a fresh shutdown channel) changed by `f`.
    fn rebuild(&self, f: impl FnOnce(&mut Inner)) -> Self {
        let i = &self.inner;
        let (shutdown, _) = watch::channel(false);
        let mut inner = Inner {
            store: i.store.clone(),
            controller: i.controller.clone(),
            tokens: i.tokens.clone(),
            metrics: i.metrics.clone(),
            clock: i.clock.clone(),
            options: i.options,
            webhook: i.webhook.clone(),
            audit: i.audit.clone(),
            shutdown,
        };
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The same state with another clock (taint times, relative `since`); tests and the demo.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.rebuild(|i| i.clock = clock)
    }

    /// The same state with other options.
    #[must_use]
    pub fn with_options(self, options: ApiOptions) -> Self {
        self.rebuild(|i| i.options = options)
    }

    /// The same state with the taint webhook's credentials (`POST /v1/hooks/taint`). Without
    /// them every webhook call is refused.
    #[must_use]
    pub fn with_webhook(self, webhook: WebhookAuth) -> Self {
        self.rebuild(|i| i.webhook = webhook)
    }

    /// The same state with this audit ingestion (`POST /v1/audit/cerbos`): its dedicated
    /// tokens, size limit and learned addresses. By default only operator tokens may ingest,
    /// up to 8 MiB per batch.
    #[must_use]
    pub fn with_audit_ingest(self, audit: AuditIngest) -> Self {
        self.rebuild(|i| i.audit = audit)
    }

    pub(crate) fn webhook(&self) -> &WebhookAuth {
        &self.inner.webhook
    }

    pub(crate) fn audit(&self) -> &AuditIngest {
        &self.inner.audit
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn controller(&self) -> &Arc<dyn ControllerHandle> {
        &self.inner.controller
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    pub(crate) fn max_body(&self) -> usize {
        self.inner.options.max_body_bytes
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Ends open event-follow streams (called by [`serve`] when shutting down).
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Runs a store call on the blocking pool.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, ApiError> + Send + 'static,
    {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| ApiError::Internal(format!("store task failed: {e}")))?
    }
}

/// The API's routes, ready to serve.
pub fn router(state: ApiState) -> Router {
    let reads = Router::new()
        .route("/v1/taints", get(taints::list))
        .route("/v1/events", get(events::list))
        .route("/v1/plan", get(controller::plan))
        .route("/v1/breaker", get(controller::breaker))
        .route("/v1/nodes/{name}/describe", get(describe::node))
        .route("/v1/{kind}", get(resources::list))
        .route("/v1/{kind}/{name}", get(resources::get))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_viewer,
        ));
    let writes = Router::new()
        .route("/v1/apply", post(manifests::apply))
        .route("/v1/nodes/{name}/taint", post(taints::taint))
        .route("/v1/nodes/{name}/untaint", post(taints::untaint))
        .route("/v1/breaker/release", post(controller::release_breaker))
        .route(
            "/v1/{kind}/{name}",
            axum::routing::delete(resources::delete),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_operator,
        ));
    let metrics = if state.inner.options.metrics_auth {
        Router::new()
            .route("/metrics", get(metrics_text))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                require_viewer,
            ))
    } else {
        Router::new().route("/metrics", get(metrics_text))
    };
    // These two authenticate inside the handler: the webhook with its own credentials only,
    // the audit ingest with an ingest token or an operator token.
    let hooks = Router::new()
        .route("/v1/hooks/taint", post(webhook::taint))
        .route("/v1/audit/cerbos", post(audit_ingest::cerbos));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(hooks)
        .merge(reads)
        .merge(writes)
        .merge(metrics)
        .fallback(not_found)
        .layer(middleware::from_fn(json_errors))
        // Bodies are read with an explicit limit by the handlers (JSON 413); this is the same
        // limit as a backstop for any extractor.
        .layer(axum::extract::DefaultBodyLimit::max(
            state.inner.options.max_body_bytes,
        ))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting, ends follow
/// streams and waits for in-flight requests.
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, tokens = state.inner.tokens.len(), "operator API listening");
    }
    let app = router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            state.begin_shutdown();
        })
        .await
}

async fn healthz() -> Json<wire::Health> {
    Json(wire::Health {
        status: "ok".to_owned(),
    })
}

async fn metrics_text(State(state): State<ApiState>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    (headers, state.metrics().render()).into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound {
        what: "endpoint".to_owned(),
        name: format!("{} {}", req.method(), req.uri().path()),
    }
}

async fn require_viewer(state: State<ApiState>, req: Request, next: Next) -> Response {
    require(state, req, next, Role::Viewer).await
}

async fn require_operator(state: State<ApiState>, req: Request, next: Next) -> Response {
    require(state, req, next, Role::Operator).await
}

async fn require(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
    needed: Role,
) -> Response {
    let caller = match authenticate(&state, req.headers()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if !caller.role.allows(needed) {
        return ApiError::Forbidden {
            caller: caller.name,
        }
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthenticated)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthenticated)?;
    state
        .inner
        .tokens
        .authenticate(token.trim())
        .ok_or(ApiError::Unauthenticated)
}

/// Turns any non-JSON error response (axum's own rejections: bad path or query, wrong method,
/// body limit) into the API's JSON error shape.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_owned(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let error = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        text
    };
    let body = wire::ErrorBody {
        error,
        code: code.to_owned(),
        diagnostics: Vec::new(),
        rendered: None,
    };
    (status, Json(body)).into_response()
}
