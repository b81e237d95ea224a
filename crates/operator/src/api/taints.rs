//! `POST /v1/nodes/{name}/taint`, `POST /v1/nodes/{name}/untaint` and `GET /v1/taints`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use serde::Deserialize;
use serde_json::json;
use store::{
    NewEvent, NewTaint, Op, OpResult, ResourceKey, Severity, Store, Taint, TaintSource, Txn,
};

use super::ApiState;
use super::auth::Caller;
use super::error::ApiError;
use super::wire::{TaintList, TaintRequest, UntaintResponse};

/// The key of a taint added through the API when none is given.
pub const DEFAULT_TAINT_KEY: &str = "manual";

fn require_node(store: &dyn Store, name: &str) -> Result<(), ApiError> {
    match store.get(&ResourceKey::new(model::Kind::Node.as_str(), name))? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound {
            what: "node".to_owned(),
            name: name.to_owned(),
        }),
    }
}

/// `POST /v1/nodes/{name}/taint` with a [`TaintRequest`] JSON body. The taint's source is
/// `cli` and its author the token's name. Adding an identical active taint (same node,
/// instance and key) returns the existing one.
pub(crate) async fn taint(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(node): Path<String>,
    body: Body,
) -> Result<Json<Taint>, ApiError> {
    let req: TaintRequest = super::body::json(body, state.max_body()).await?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::BadRequest("reason must not be empty".to_owned()));
    }
    let key = req
        .key
        .clone()
        .unwrap_or_else(|| DEFAULT_TAINT_KEY.to_owned());
    if key.trim().is_empty() {
        return Err(ApiError::BadRequest("key must not be empty".to_owned()));
    }
    let now = state.now();
    let duration = |what: &str, text: &str| -> Result<model::Duration, ApiError> {
        text.parse()
            .map_err(|e: model::ValueError| ApiError::BadRequest(format!("{what}: {e}")))
    };
    let ttl = req.ttl.as_deref().map(|t| duration("ttl", t)).transpose()?;
    let quarantine = req
        .quarantine
        .as_deref()
        .map(|q| duration("quarantine", q))
        .transpose()?;
    if let (Some(ttl), Some(q)) = (ttl, quarantine)
        && ttl < q
    {
        return Err(ApiError::BadRequest(format!(
            "ttl ({ttl}) is shorter than the quarantine ({q}): an expired taint ends the quarantine early"
        )));
    }
    let expires_at = match ttl {
        None => None,
        Some(ttl) => {
            let secs = i64::try_from(ttl.as_secs())
                .map_err(|_| ApiError::BadRequest("ttl is too long".to_owned()))?;
            Some(now + chrono::Duration::seconds(secs))
        }
    };
    let default_severity = if quarantine.is_some() {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let severity = req.severity.unwrap_or(default_severity);
    let mut evidence = json!({"requestedBy": caller.name, "via": "api"});
    if let Some(q) = quarantine {
        evidence["action"] = json!({"kind": "Quarantine", "retentionSecs": q.as_secs()});
    }
    let (taint, changed) = state
        .blocking(move |store| {
            require_node(store, &node)?;
            let new = NewTaint {
                node: node.clone(),
                instance_id: None,
                key,
                source: TaintSource::Cli,
                severity,
                reason: req.reason.clone(),
                evidence,
                created_at: now,
                created_by: caller.name.clone(),
                expires_at,
            };
            let outcome = store.commit(Txn::new().with(Op::AddTaint(new)))?;
            let Some(OpResult::Taint { taint, changed }) = outcome.results.into_iter().next()
            else {
                return Err(ApiError::Internal("taint returned no taint".to_owned()));
            };
            if changed {
                store.append_event(NewEvent {
                    at: now,
                    node: Some(node.clone()),
                    kind: "TaintAdded".to_owned(),
                    message: format!(
                        "taint {} ({}, {severity}) added by {}: {}",
                        taint.id, taint.key, caller.name, taint.reason
                    ),
                    data: json!({"taint": taint.id, "source": "cli", "by": caller.name}),
                })?;
            }
            Ok((taint, changed))
        })
        .await?;
    if changed {
        state.metrics().taint(TaintSource::Cli);
        state.controller().wake();
    }
    Ok(Json(taint))
}

/// `POST /v1/nodes/{name}/untaint`: clears every active taint of the node (they stay in the
/// history with who cleared them).
pub(crate) async fn untaint(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(node): Path<String>,
) -> Result<Json<UntaintResponse>, ApiError> {
    let now = state.now();
    let cleared = state
        .blocking(move |store| {
            require_node(store, &node)?;
            let active = store.active_taints(Some(&node), now)?;
            if active.is_empty() {
                return Ok(Vec::new());
            }
            let mut txn: Txn = active
                .iter()
                .map(|t| Op::ClearTaint {
                    id: t.id,
                    by: caller.name.clone(),
                })
                .collect();
            let ids: Vec<i64> = active.iter().map(|t| t.id).collect();
            txn.push(Op::AppendEvent(NewEvent {
                at: now,
                node: Some(node.clone()),
                kind: "TaintCleared".to_owned(),
                message: format!("{} taint(s) cleared by {}", ids.len(), caller.name),
                data: json!({"taints": ids, "by": caller.name}),
            }));
            let outcome = store.commit(txn)?;
            Ok(outcome
                .results
                .into_iter()
                .filter_map(|r| match r {
                    OpResult::Taint { taint, .. } => Some(taint),
                    _ => None,
                })
                .collect())
        })
        .await?;
    if !cleared.is_empty() {
        state.controller().wake();
    }
    Ok(Json(UntaintResponse { cleared }))
}

/// Query of `GET /v1/taints`.
#[derive(Debug, Deserialize)]
pub(crate) struct TaintsQuery {
    /// Only this node.
    #[serde(default)]
    node: Option<String>,
    /// Include cleared and expired taints (the whole history).
    #[serde(default)]
    all: Option<bool>,
}

/// `GET /v1/taints`: active taints (or the history with `?all=true`).
pub(crate) async fn list(
    State(state): State<ApiState>,
    Query(q): Query<TaintsQuery>,
) -> Result<Json<TaintList>, ApiError> {
    let now = state.now();
    let items = state
        .blocking(move |store| {
            Ok(if q.all.unwrap_or(false) {
                store.taint_history(q.node.as_deref())?
            } else {
                store.active_taints(q.node.as_deref(), now)?
            })
        })
        .await?;
    Ok(Json(TaintList { items }))
}
