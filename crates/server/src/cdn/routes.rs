//! `GET /admin/purges`: the providers and every kept job, pending and failed (admins only).
//! `POST /admin/purges` with `{"site", "urls"?, "tags"?, "everything"?}`: records a purge
//! in the outbox and answers `202` with its id and jobs once it is durable (admins only).
//! `POST /admin/purges/{job}/retry` sends a failed job back to pending; `DELETE
//! /admin/purges/{job}` forgets a failed one (admins only).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::job::JobState;
use super::outbox::{ChangeError, RecordError};
use super::request::PurgeRequest;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest `POST /admin/purges` body.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// The purge routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/purges", get(list).post(create))
        .route("/admin/purges/{job}", axum::routing::delete(forget))
        .route("/admin/purges/{job}/retry", axum::routing::post(retry))
}

/// The body of `POST /admin/purges`: a [`PurgeRequest`] whose lists may be left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// The site.
    pub site: String,
    /// Absolute URLs (a trailing `*`: a prefix).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Cache tags / surrogate keys.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Everything of the site.
    #[serde(default)]
    pub everything: bool,
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "purges are not configured on this server (no [[purge.providers]] in its config file)",
    )
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    crate::auth::admin(&state, &headers, "the purge outbox")?;
    let Some(outbox) = &state.purge_outbox else {
        return Ok(Json(
            json!({ "configured": false, "providers": [], "pending": [], "failed": [] }),
        ));
    };
    let providers: Vec<Value> = outbox
        .config()
        .providers
        .iter()
        .map(|p| json!({ "name": p.name, "kind": p.provider.kind(), "sites": p.sites }))
        .collect();
    let (mut pending, mut failed) = (Vec::new(), Vec::new());
    for job in outbox.jobs() {
        match job.state {
            JobState::Pending => pending.push(job.view()),
            JobState::Failed => failed.push(job.view()),
        }
    }
    Ok(Json(json!({
        "configured": true,
        "providers": providers,
        "pending": pending,
        "failed": failed,
    })))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    crate::auth::admin(&state, &headers, "purging")?;
    let outbox = state.purge_outbox.as_ref().ok_or_else(not_configured)?;
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a purge request may be at most {MAX_BODY} bytes"),
        )
    })?;
    let b: PurgeBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"site\", \"urls\", \"tags\", \"everything\"}}: {e}"
        ))
    })?;
    let request = PurgeRequest {
        site: b.site,
        urls: b.urls,
        tags: b.tags,
        everything: b.everything,
    };
    let recorded = outbox.record(request).await.map_err(|e| {
        let status = match &e {
            RecordError::Invalid(_) | RecordError::Unsupported { .. } => StatusCode::BAD_REQUEST,
            RecordError::UnknownSite(_) => StatusCode::NOT_FOUND,
            RecordError::Io(_) => {
                tracing::error!(error = %e, "purge outbox write failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        ApiError::new(status, e.to_string())
    })?;
    let jobs: Vec<Value> = recorded
        .jobs
        .iter()
        .map(|(id, provider)| json!({ "id": id, "provider": provider }))
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": recorded.id, "jobs": jobs })),
    ))
}

fn change_error(e: ChangeError) -> ApiError {
    let status = match &e {
        ChangeError::NotFound(_) => StatusCode::NOT_FOUND,
        ChangeError::Pending(_) => StatusCode::CONFLICT,
        ChangeError::Io(_) => {
            tracing::error!(error = %e, "purge outbox write failed");
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    ApiError::new(status, e.to_string())
}

async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<String>,
) -> Result<Json<Value>, ApiError> {
    crate::auth::admin(&state, &headers, "retrying purges")?;
    let outbox = state.purge_outbox.as_ref().ok_or_else(not_configured)?;
    let job = outbox.retry(&job).await.map_err(change_error)?;
    Ok(Json(job.view()))
}

async fn forget(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<String>,
) -> Result<StatusCode, ApiError> {
    crate::auth::admin(&state, &headers, "forgetting purges")?;
    let outbox = state.purge_outbox.as_ref().ok_or_else(not_configured)?;
    outbox.forget(&job).await.map_err(change_error)?;
    Ok(StatusCode::NO_CONTENT)
}
