//! API errors: each maps to one HTTP status and a JSON body with a stable `code`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use store::StoreError;

use super::wire::{ErrorBody, WireDiagnostic};
use crate::HandleError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or an unknown one. The message never says which.
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    /// The token's role does not allow this request.
    #[error("token {caller:?} has role viewer; this request needs role operator")]
    Forbidden {
        /// The token's name.
        caller: String,
    },
    /// The manifests did not validate; nothing was stored.
    #[error("manifests are invalid: {} problem(s)", diagnostics.len())]
    InvalidManifest {
        /// Every problem found.
        diagnostics: model::Diagnostics,
    },
    /// A malformed request (bad query value, bad JSON, unknown kind).
    #[error("{0}")]
    BadRequest(String),
    /// The named thing does not exist.
    #[error("{what} {name:?} not found")]
    NotFound {
        /// `node`, `Node`, `GoldImage`, ...
        what: String,
        /// Its name.
        name: String,
    },
    /// An optimistic-concurrency precondition failed; nothing was changed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The body is larger than the configured limit.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The controller could not answer (PVE unreachable, shutting down).
    #[error("controller unavailable")]
    Unavailable(#[source] HandleError),
    /// The store failed.
    #[error("store failure")]
    Store(#[source] StoreError),
    /// A background task failed (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::InvalidManifest { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::InvalidManifest { .. } => "invalid_manifest",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Store(_) | ApiError::Internal(_) => "internal",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        let mut error = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            error.push_str(": ");
            error.push_str(&cause.to_string());
            source = cause.source();
        }
        let (diagnostics, rendered) = match self {
            ApiError::InvalidManifest { diagnostics } => (
                diagnostics.iter().map(WireDiagnostic::from).collect(),
                Some(diagnostics.to_string()),
            ),
            _ => (Vec::new(), None),
        };
        ErrorBody {
            error,
            code: self.code().to_owned(),
            diagnostics,
            rendered,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ApiError::Conflict(e.to_string()),
            StoreError::NotFound { entity, id } => ApiError::NotFound {
                what: entity.to_owned(),
                name: id,
            },
            StoreError::InvalidInput { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Store(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self.body().error, code = self.code(), "API request failed");
        } else {
            tracing::debug!(error = %self, code = self.code(), "API request refused");
        }
        (status, Json(self.body())).into_response()
    }
}
