//! `GET /v1/plan`, `GET /v1/breaker` and `POST /v1/breaker/release`: what needs the controller.

use axum::Json;
use axum::extract::{Extension, State};

use super::ApiState;
use super::auth::Caller;
use super::error::ApiError;
use crate::{BreakerView, PlanReport};

/// `GET /v1/plan`: the plan the next pass would execute, computed from a fresh PVE read.
pub(crate) async fn plan(State(state): State<ApiState>) -> Result<Json<PlanReport>, ApiError> {
    state
        .controller()
        .plan()
        .await
        .map(Json)
        .map_err(ApiError::Unavailable)
}

/// `GET /v1/breaker`.
pub(crate) async fn breaker(State(state): State<ApiState>) -> Json<BreakerView> {
    let view = state.controller().breaker();
    state.metrics().breaker(view.tripped);
    Json(view)
}

/// `POST /v1/breaker/release`: a person releases the breaker; recorded with the token's name.
pub(crate) async fn release_breaker(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<BreakerView>, ApiError> {
    tracing::info!(by = %caller.name, "circuit breaker released through the API");
    let view = state
        .controller()
        .release_breaker(&caller.name)
        .map_err(ApiError::Unavailable)?;
    state.metrics().breaker(view.tripped);
    state.controller().wake();
    Ok(Json(view))
}
