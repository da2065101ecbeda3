//! The leakage scan and its quarantine, admins only (403 for anyone else, as every admin
//! endpoint):
//!
//! - `POST /admin/scan-shared?dry_run=true|false` scans the template and global scopes now
//!   and answers the run's report (`LeakageReport` as JSON); without `dry_run` findings are
//!   quarantined;
//! - `GET /admin/quarantine` lists the quarantined entries (`{"items": [...]}`);
//! - `GET /admin/quarantine/{id}` answers one entry's body (as `application/octet-stream`,
//!   never rendered), its key in `X-Tiercache-Key`.

use axum::Json;
use axum::Router;
use axum::body::Body as HttpBody;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tiercache_core::Principal;
use tiercache_store::Body;
use tiercache_store::audit::principal_name;
use tiercache_store::leakage::RunOptions;

use crate::error::ApiError;
use crate::state::AppState;

/// Header naming a quarantined body's former key.
pub const KEY_HEADER: &str = "x-tiercache-key";

/// The leakage routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/scan-shared", post(scan_shared))
        .route("/admin/quarantine", get(list))
        .route("/admin/quarantine/{id}", get(item))
}

/// The caller, if it is an admin.
fn admin(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    crate::auth::admin(state, headers, "the leakage scan and its quarantine")
}

/// `POST /admin/scan-shared`'s query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanParams {
    /// Report only.
    pub dry_run: Option<bool>,
}

async fn scan_shared(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ScanParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let who = admin(&state, &headers)?;
    let Query(params) = params.map_err(|e| {
        ApiError::bad_request(format!("{}; the parameter is dry_run", e.body_text()))
    })?;
    let opts = RunOptions {
        dry_run: params.dry_run.unwrap_or(false),
        by: principal_name(&who).to_owned(),
        role: who.role,
    };
    let report = state.leakage.run(opts).await;
    Ok(Json(json!(report)))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    admin(&state, &headers)?;
    let items = state.leakage.list().await?;
    Ok(Json(json!({ "items": items })))
}

async fn item(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&state, &headers)?;
    let Some((item, body)) = state.leakage.get(&id).await? else {
        return Err(ApiError::not_found());
    };
    let mut out = HeaderMap::new();
    out.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    out.insert(CONTENT_LENGTH, HeaderValue::from(item.size));
    if let Ok(v) = HeaderValue::from_str(&item.key) {
        out.insert(KEY_HEADER, v);
    }
    let body = match body {
        Body::Bytes(b) => HttpBody::from(b),
        Body::Stream(s) => HttpBody::from_stream(s),
    };
    Ok((out, body).into_response())
}
