//! Errors in the shape turbo reads: `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tiercache_store::StoreError;

/// An error answered to a turbo client.
#[derive(Debug)]
pub struct TurboError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl TurboError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        TurboError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: credentials that do not allow this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such artifact.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "artifact not found")
    }

    /// 413: over the size limit.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("artifacts are limited to {limit} bytes"),
        )
    }
}

impl From<StoreError> for TurboError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge { limit } => TurboError::too_large(limit),
            StoreError::Forbidden(why) => TurboError::forbidden(why),
            StoreError::Sensitive(reason) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "sensitive_content",
                format!("refused for a shared scope: sensitive content ({reason})"),
            ),
            StoreError::Options(o) => TurboError::bad_request(o.to_string()),
            StoreError::Body(io) => {
                TurboError::bad_request(format!("reading the artifact body failed: {io}"))
            }
            other => {
                tracing::error!(error = %other, "build cache: storage failure");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the cache could not complete the request; try again",
                )
            }
        }
    }
}

impl IntoResponse for TurboError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
