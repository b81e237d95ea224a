//! Reading request bodies with the configured size limit (413 as JSON above it).

use axum::body::Body;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The whole body as bytes, refusing more than `limit`.
pub(crate) async fn read(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })
}

/// The body as UTF-8 text.
pub(crate) async fn text(body: Body, limit: usize) -> Result<String, ApiError> {
    let bytes = read(body, limit).await?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::BadRequest("request body is not valid UTF-8".to_owned()))
}

/// The body as JSON of type `T`.
pub(crate) async fn json<T: DeserializeOwned>(body: Body, limit: usize) -> Result<T, ApiError> {
    let bytes = read(body, limit).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}
