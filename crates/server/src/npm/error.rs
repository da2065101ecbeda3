//! npm front-end errors, answered the way npm clients handle best: upstream trouble is a
//! 503 (clients retry), never a 404 (clients give up); a failed integrity check is a 502.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tiercache_store::{LoadError, StoreError};

use super::integrity::mismatch_in;
use super::upstream::UpstreamError;

/// Why an npm request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NpmError {
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Unavailable(String),
    #[error("the origin registry answered {0}")]
    Rejected(StatusCode),
    #[error("{0}")]
    Integrity(String),
    #[error("{0}")]
    Internal(String),
}

impl NpmError {
    /// The error behind a shared load failure.
    pub fn from_load(e: &LoadError) -> NpmError {
        if let Some(m) = mismatch_in(e.as_ref()) {
            return NpmError::Integrity(m.to_string());
        }
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(err) = cur {
            if let Some(n) = err.downcast_ref::<NpmError>() {
                return n.clone();
            }
            cur = err.source();
        }
        NpmError::Unavailable(e.to_string())
    }
}

impl From<UpstreamError> for NpmError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Unavailable(m) => NpmError::Unavailable(m),
            UpstreamError::Rejected(s) => NpmError::Rejected(s),
        }
    }
}

impl From<StoreError> for NpmError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Load(l) => NpmError::from_load(&l),
            StoreError::Body(io) => match mismatch_in(&io) {
                Some(m) => NpmError::Integrity(m.to_string()),
                None => NpmError::Unavailable(format!("reading from the origin failed: {io}")),
            },
            other => {
                tracing::error!(error = %other, "npm: storage failure");
                NpmError::Internal("the cache could not complete the request; try again".into())
            }
        }
    }
}

impl IntoResponse for NpmError {
    fn into_response(self) -> Response {
        let status = match &self {
            NpmError::BadRequest(_) => StatusCode::BAD_REQUEST,
            NpmError::NotFound => StatusCode::NOT_FOUND,
            NpmError::Unavailable(_) | NpmError::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
            NpmError::Rejected(s) if s.is_client_error() => *s,
            NpmError::Rejected(_) => StatusCode::BAD_GATEWAY,
            NpmError::Integrity(_) => StatusCode::BAD_GATEWAY,
        };
        let mut resp = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        }
        resp
    }
}
