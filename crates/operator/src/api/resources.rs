//! `GET /v1/{kind}`, `GET /v1/{kind}/{name}` and `DELETE /v1/{kind}/{name}`.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use serde::Deserialize;
use store::{Expect, NewEvent, Op, OpResult, ResourceKey, Store, Txn};

use super::ApiState;
use super::auth::Caller;
use super::error::ApiError;
use super::wire::{Deleted, ResourceList, ResourceView};

/// The URL names of the kinds and the store's kind names.
pub(crate) const KINDS: [(&str, model::Kind); 4] = [
    ("nodes", model::Kind::Node),
    ("goldimages", model::Kind::GoldImage),
    ("budgets", model::Kind::DisruptionBudget),
    ("taintpolicies", model::Kind::TaintPolicy),
];

/// The store kind for a URL kind (`nodes` → `Node`); singular and store spellings are accepted
/// too (`node`, `Node`, `disruptionbudgets`).
pub(crate) fn kind_of(url_kind: &str) -> Result<model::Kind, ApiError> {
    let lower = url_kind.to_ascii_lowercase();
    KINDS
        .iter()
        .find(|(plural, kind)| {
            *plural == lower
                || plural.trim_end_matches('s') == lower
                || kind.as_str().eq_ignore_ascii_case(&lower)
                || format!("{}s", kind.as_str()).eq_ignore_ascii_case(&lower)
        })
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown kind {url_kind:?}; expected one of nodes, goldimages, budgets, taintpolicies"
            ))
        })
}

/// A node resource with its current instance and active taint count.
pub(crate) fn node_view(
    store: &dyn Store,
    r: store::Resource,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ResourceView, ApiError> {
    let instance = store.current_instance(&r.key.name)?;
    let taints = store.active_taints(Some(&r.key.name), now)?.len();
    let mut view = ResourceView::from_resource(r);
    view.instance = instance;
    view.active_taints = Some(taints);
    Ok(view)
}

/// `GET /v1/{kind}`.
pub(crate) async fn list(
    State(state): State<ApiState>,
    Path(kind): Path<String>,
) -> Result<Json<ResourceList>, ApiError> {
    let kind = kind_of(&kind)?;
    let now = state.now();
    let list = state
        .blocking(move |store| {
            let listing = store.list(kind.as_str())?;
            let items = listing
                .items
                .into_iter()
                .map(|r| match kind {
                    model::Kind::Node => node_view(store, r, now),
                    _ => Ok(ResourceView::from_resource(r)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ResourceList {
                revision: listing.revision,
                items,
            })
        })
        .await?;
    Ok(Json(list))
}

/// `GET /v1/{kind}/{name}`.
pub(crate) async fn get(
    State(state): State<ApiState>,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Json<ResourceView>, ApiError> {
    let kind = kind_of(&kind)?;
    let now = state.now();
    let view = state
        .blocking(move |store| {
            let key = ResourceKey::new(kind.as_str(), &name);
            let r = store.get(&key)?.ok_or_else(|| ApiError::NotFound {
                what: kind.as_str().to_owned(),
                name: name.clone(),
            })?;
            match kind {
                model::Kind::Node => node_view(store, r, now),
                _ => Ok(ResourceView::from_resource(r)),
            }
        })
        .await?;
    Ok(Json(view))
}

/// Query of `DELETE /v1/{kind}/{name}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteQuery {
    /// Delete only if the stored resourceVersion is exactly this (else 409).
    #[serde(default)]
    resource_version: Option<u64>,
}

/// `DELETE /v1/{kind}/{name}`: the resource goes; its taints, events and instances stay
/// (the controller destroys the VMs of a deleted node).
pub(crate) async fn delete(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((kind, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Deleted>, ApiError> {
    let kind = kind_of(&kind)?;
    let now = state.now();
    let expect = q.resource_version.map_or(Expect::Any, Expect::Version);
    let deleted = state
        .blocking(move |store| {
            let key = ResourceKey::new(kind.as_str(), &name);
            if store.get(&key)?.is_none() {
                return Err(ApiError::NotFound {
                    what: kind.as_str().to_owned(),
                    name,
                });
            }
            let event = NewEvent {
                at: now,
                node: (kind == model::Kind::Node).then(|| name.clone()),
                kind: "ResourceDeleted".to_owned(),
                message: format!("{key} deleted by {}", caller.name),
                data: serde_json::json!({"kind": kind.as_str(), "name": name, "by": caller.name}),
            };
            let txn = Txn::new()
                .with(Op::DeleteResource {
                    key: key.clone(),
                    expect,
                })
                .with(Op::AppendEvent(event));
            let outcome = store.commit(txn)?;
            match outcome.results.into_iter().next() {
                Some(OpResult::Deleted(r)) => Ok(ResourceView::from_resource(r)),
                _ => Err(ApiError::Internal("delete returned no resource".to_owned())),
            }
        })
        .await?;
    state.controller().wake();
    Ok(Json(Deleted { deleted }))
}
