//! `GET /v1/nodes/{name}/describe`: spec, instance, conditions, taints with evidence, events.

use axum::Json;
use axum::extract::{Path, State};
use store::{EventQuery, ResourceKey};

use super::ApiState;
use super::error::ApiError;
use super::resources::node_view;
use super::wire::NodeDescription;

/// How many recent events `describe` shows.
pub const DESCRIBE_EVENTS: usize = 20;

/// `GET /v1/nodes/{name}/describe`.
pub(crate) async fn node(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<NodeDescription>, ApiError> {
    let now = state.now();
    let description = state
        .blocking(move |store| {
            let key = ResourceKey::new(model::Kind::Node.as_str(), &name);
            let r = store.get(&key)?.ok_or_else(|| ApiError::NotFound {
                what: "node".to_owned(),
                name: name.clone(),
            })?;
            let node = node_view(store, r, now)?;
            let mut taints = store.taint_history(Some(&name))?;
            // Active taints first, each group by id.
            taints.sort_by_key(|t| (!t.is_active(now), t.id));
            let events = store.events(&EventQuery {
                node: Some(name.clone()),
                limit: Some(DESCRIBE_EVENTS),
                ..EventQuery::default()
            })?;
            Ok(NodeDescription {
                instance: node.instance.clone(),
                conditions: node.conditions(),
                node,
                taints,
                events,
            })
        })
        .await?;
    Ok(Json(description))
}
