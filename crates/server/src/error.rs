//! Errors as HTTP answers: a status and a JSON body `{"error": "..."}` a person can act on.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tiercache_core::KeyError;
use tiercache_store::StoreError;

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The uniform answer for an absent entry.
    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not found")
    }

    /// A 400 for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        ApiError::bad_request(format!("invalid key: {e}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            StoreError::HashMismatch { .. } | StoreError::Options(_) => {
                ApiError::bad_request(e.to_string())
            }
            StoreError::Body(_) => ApiError::bad_request(e.to_string()),
            StoreError::Load(_) => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
            StoreError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            StoreError::Sensitive(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            StoreError::Io(_)
            | StoreError::Index(_)
            | StoreError::Task(_)
            | StoreError::Config(_) => {
                tracing::error!(error = %e, "storage failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the cache could not complete the request; try again",
                )
            }
        }
    }
}
