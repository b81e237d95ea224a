//! HTTP(S) serving: connections, the request pipeline (auth, faults, params), PVE-style replies.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::auth;
use crate::dispatch;
use crate::fault::{Fault, endpoint_matches};
use crate::model::Shared;
use crate::params::{ApiError, RawParams, validate};
use crate::routes;

/// Maximum accepted body (libpve-http-server-perl >= 5.2.1).
const MAX_BODY: usize = 512 * 1024;

/// A successful handler result.
pub(crate) struct Reply {
    pub data: Value,
    pub total: Option<u64>,
}

impl Reply {
    pub fn data(data: Value) -> Self {
        Self { data, total: None }
    }
}

/// Accept connections until `stop` flips.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
            let builder = hyper::server::conn::http1::Builder::new();
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => {
                        let conn = builder.serve_connection(TokioIo::new(s), svc);
                        tokio::select! { r = conn => r, _ = stop.wait_for(|s| *s) => Ok(()) }
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    tokio::select! { r = conn => r, _ = stop.wait_for(|s| *s) => Ok(()) }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection error");
            }
        });
    }
}

fn http_date() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// Build a response with PVE's headers. `json` adds the JSON content type.
pub(crate) fn response(code: u16, reason: &str, body: Option<(bool, String)>) -> Response<Body> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (is_json, text) = body.unwrap_or((false, String::new()));
    let mut resp = Response::new(Body::from(Bytes::from(text.clone())));
    *resp.status_mut() = status;
    let reason_line: String = reason
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| *c == ' ' || c.is_ascii_graphic())
        .collect();
    if let Ok(rp) = hyper::ext::ReasonPhrase::try_from(reason_line) {
        resp.extensions_mut().insert(rp);
    }
    let h = resp.headers_mut();
    let date = http_date();
    h.insert("Server", HeaderValue::from_static("pve-api-daemon/3.0"));
    if let Ok(v) = HeaderValue::from_str(&date) {
        h.insert("Expires", v);
    }
    h.insert("Cache-Control", HeaderValue::from_static("max-age=0"));
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    if is_json {
        h.insert(
            "Content-Type",
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
    }
    h.insert("Content-Length", HeaderValue::from(text.len()));
    if code >= 400 {
        h.insert("Connection", HeaderValue::from_static("close"));
    } else {
        h.insert("Connection", HeaderValue::from_static("Keep-Alive"));
    }
    resp
}

fn with_newline(msg: &str) -> String {
    if msg.ends_with('\n') {
        msg.to_string()
    } else {
        format!("{msg}\n")
    }
}

/// Render a handler result the way pve-http-server does.
pub(crate) fn render(result: Result<Reply, ApiError>) -> Response<Body> {
    match result {
        Ok(reply) => {
            let mut body = json!({ "data": reply.data });
            if let Some(total) = reply.total {
                body["total"] = json!(total);
            }
            response(200, "OK", Some((true, body.to_string())))
        }
        Err(ApiError::Params(errors)) => {
            let body = json!({
                "data": null,
                "errors": errors,
                "message": "Parameter verification failed.\n",
            });
            response(
                400,
                "Parameter verification failed.",
                Some((true, body.to_string())),
            )
        }
        Err(ApiError::Status { code, message }) => {
            let body = json!({ "data": null, "message": with_newline(&message) });
            response(code, &message, Some((true, body.to_string())))
        }
        Err(ApiError::AuthStage(reason)) => response(401, reason, None),
        Err(ApiError::Plain { code, reason, body }) => {
            let body = (!body.is_empty()).then_some((false, body));
            response(code, &reason, body)
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/_sim") {
        return Ok(crate::admin::handle_http(&shared, req, rest.to_string()).await);
    }
    Ok(handle_api(shared, req, path).await)
}

fn count(shared: &Shared, key: String) {
    let mut cl = shared.lock();
    *cl.counts.entry(key).or_default() += 1;
}

enum FaultAction {
    None,
    Error(u16, String),
    Timeout { after: Duration, apply: bool },
}

fn pick_faults(shared: &Shared, endpoint: &str) -> (Duration, FaultAction) {
    let mut cl = shared.lock();
    let mut latency = Duration::ZERO;
    let mut action = FaultAction::None;
    let crate::model::Cluster { faults, rng, .. } = &mut *cl;
    for f in faults.iter_mut() {
        if f.exhausted() {
            continue;
        }
        match f.fault.clone() {
            Fault::Latency {
                endpoint: e,
                millis,
            } if endpoint_matches(&e, endpoint) => {
                latency += Duration::from_millis(millis);
            }
            Fault::ErrorRate {
                endpoint: e,
                rate,
                status,
                message,
                ..
            } if matches!(action, FaultAction::None)
                && endpoint_matches(&e, endpoint)
                && rng.random_bool(rate.clamp(0.0, 1.0)) =>
            {
                f.consume();
                action = FaultAction::Error(status, message);
            }
            Fault::Timeout {
                endpoint: e,
                rate,
                after_ms,
                apply,
                ..
            } if matches!(action, FaultAction::None)
                && endpoint_matches(&e, endpoint)
                && rng.random_bool(rate.clamp(0.0, 1.0)) =>
            {
                f.consume();
                action = FaultAction::Timeout {
                    after: Duration::from_millis(after_ms),
                    apply,
                };
            }
            _ => {}
        }
    }
    (latency, action)
}

async fn handle_api(shared: Arc<Shared>, req: Request<Incoming>, path: String) -> Response<Body> {
    let method = req.method().clone();
    let mstr = method.as_str().to_string();
    let rel = path
        .strip_prefix("/api2/json")
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .map(str::to_string);
    let matched = rel.as_deref().and_then(|r| routes::find(&mstr, r));
    let key = match &matched {
        Some(m) => format!("{mstr} {}", m.def.template),
        None => format!("{mstr} {path}"),
    };
    count(&shared, key.clone());

    if !matches!(
        method,
        Method::GET | Method::POST | Method::PUT | Method::DELETE
    ) {
        return render(Err(ApiError::Plain {
            code: 501,
            reason: format!("method '{mstr}' not available"),
            body: String::new(),
        }));
    }
    let Some(rel) = rel else {
        let (reason, body) = match path.strip_prefix("/api2/") {
            Some(r) if r.contains('/') => (
                "no formatter for uri",
                format!("no formatter for uri {path}"),
            ),
            _ => ("no such uri", "no such uri".to_string()),
        };
        return render(Err(ApiError::Plain {
            code: 501,
            reason: reason.to_string(),
            body,
        }));
    };
    let content_length = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if matches!(method, Method::GET | Method::DELETE) && content_length > 0 {
        let m = format!("Unexpected content for method '{mstr}'");
        return render(Err(ApiError::Plain {
            code: 501,
            reason: m.clone(),
            body: m,
        }));
    }
    if content_length > MAX_BODY {
        return render(Err(ApiError::Plain {
            code: 501,
            reason: "for data too large".into(),
            body: "for data too large".into(),
        }));
    }

    let public = matched.as_ref().is_some_and(|m| m.def.public);
    let ident = if public {
        None
    } else {
        match auth::authenticate(&shared, req.headers(), &method) {
            Ok(id) => Some(id),
            Err(reason) => {
                tokio::time::sleep(shared.config.auth_failure_delay()).await;
                return render(Err(ApiError::AuthStage(reason)));
            }
        }
    };
    let Some(matched) = matched else {
        return render(Err(ApiError::Status {
            code: 501,
            message: format!("Method '{mstr} {rel}' not implemented"),
        }));
    };

    let (latency, action) = pick_faults(&shared, &key);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (timeout, apply) = match action {
        FaultAction::Error(status, message) => {
            return render(Err(ApiError::Status {
                code: status,
                message,
            }));
        }
        FaultAction::Timeout { after, apply } => (Some(after), apply),
        FaultAction::None => (None, true),
    };
    let result = if apply {
        run(&shared, req, &matched, ident.as_ref()).await
    } else {
        Err(ApiError::internal("not applied"))
    };
    if let Some(after) = timeout {
        tokio::time::sleep(after).await;
        return render(Err(ApiError::Plain {
            code: 596,
            reason: "Connection timed out".into(),
            body: String::new(),
        }));
    }
    let delay_401 = matches!(&result, Err(ApiError::Status { code: 401, .. }));
    if delay_401 {
        tokio::time::sleep(shared.config.auth_failure_delay()).await;
    }
    render(result)
}

async fn run(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    matched: &routes::Matched,
    ident: Option<&auth::Identity>,
) -> Result<Reply, ApiError> {
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = axum::body::to_bytes(Body::new(req.into_body()), MAX_BODY)
        .await
        .map_err(|_| ApiError::Plain {
            code: 501,
            reason: "for data too large".into(),
            body: "for data too large".into(),
        })?;
    let mut raw = RawParams::default();
    if !body.is_empty() {
        if content_type.starts_with("application/json") {
            raw.parse_json(&body)?;
        } else if content_type.is_empty()
            || content_type.starts_with("application/x-www-form-urlencoded")
        {
            raw.parse_form(&body);
        } else {
            return Err(ApiError::Plain {
                code: 506,
                reason: "Unsupported content type".into(),
                body: format!("unsupported content type '{content_type}'"),
            });
        }
    }
    let mut q = RawParams::default();
    q.parse_form(query.as_bytes());
    raw.merge_over(q);
    raw.values.remove("_dc");
    for (name, value) in &matched.path_params {
        if let Some(existing) = raw.values.get(name) {
            if existing.len() != 1 || existing[0] != *value {
                return Err(ApiError::param(
                    name,
                    "duplicate parameter (already defined in URI) with conflicting values!",
                ));
            }
        }
        raw.values.insert(name.clone(), vec![value.clone()]);
    }
    // pveproxy resolves the target node before the handler validates anything.
    let mut node = None;
    if let Some(n) = raw.values.get("node").and_then(|v| v.first()).cloned() {
        if matched.def.template.starts_with("/nodes/{node}") && crate::vmconf::is_node_name(&n) {
            let resolved = dispatch::resolve_node(shared, &n)?;
            raw.values.insert("node".into(), vec![resolved.clone()]);
            node = Some(resolved);
        }
    }
    let params = validate(&raw, matched.def.params, matched.def.config_keys)?;
    let anonymous = auth::Identity {
        user: String::new(),
        tokenid: None,
        role: crate::config::Role::NoAccess,
    };
    let ident = ident.unwrap_or(&anonymous);
    dispatch::dispatch(
        shared,
        ident,
        matched.def.route,
        params,
        node.unwrap_or_default(),
    )
    .await
}
