//! The invalidation endpoints, for operators (admin only):
//! - `POST /admin/events[?dry_run=true]`: one event (`package-update`, `template-update`,
//!   `deploy`, `build-invalidate`, `epoch`), applied here and on every node of the fleet;
//! - `POST /admin/invalidate[?dry_run=true]`: `{"selectors": [...]}` (key, prefix, tag,
//!   scope, kind, kind + names), the manual purge, answering how many entries each tier had;
//! - `GET /admin/epochs`: the version epochs in force, and the configured floor.

use axum::Json;
use axum::Router;
use axum::body::Body as HttpBody;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tiercache_core::Selector;
use tiercache_core::assets::{SiteName, SitePath};
use tiercache_store::{Invalidation, PublishError};

use super::event::{Event, MAX_ITEMS, Plan};
use crate::assets::purge_hook::purge_of_paths;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest JSON body of an event or a purge.
const MAX_JSON: usize = 1024 * 1024;

/// The invalidation routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/events", post(event))
        .route("/admin/invalidate", post(invalidate))
        .route("/admin/epochs", get(epochs))
}

/// `?dry_run=true`: count, remove nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRun {
    #[serde(default)]
    pub dry_run: bool,
}

/// The body of `POST /admin/invalidate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selectors {
    pub selectors: Vec<Selector>,
}

async fn json_body<T: serde::de::DeserializeOwned>(body: HttpBody) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_JSON)
        .await
        .map_err(|_| ApiError::bad_request(format!("the body is larger than {MAX_JSON} bytes")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not a valid request: {e}")))
}

fn published(e: PublishError) -> ApiError {
    match e {
        PublishError::TooLarge => ApiError::bad_request(e.to_string()),
        PublishError::Epoch(tiercache_store::EpochError::Lower { .. }) => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        PublishError::Epoch(_) | PublishError::Fleet(_) => {
            tracing::warn!(error = %e, "an invalidation did not fully complete");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

/// Applies a cache invalidation (or counts it); the answer names what each tier had.
async fn apply(state: &AppState, inv: Invalidation, dry_run: bool) -> Result<Value, ApiError> {
    let reason = inv.reason.clone();
    let out = state.store.publish(inv, dry_run).await.map_err(published)?;
    tracing::info!(%reason, dry_run, removed = ?out.removed, "invalidation");
    Ok(json!({
        "dry_run": dry_run,
        "removed": out.removed,
        "stream_id": out.stream_id,
    }))
}

async fn event(
    State(state): State<AppState>,
    Query(q): Query<DryRun>,
    headers: HeaderMap,
    body: HttpBody,
) -> Result<Json<Value>, ApiError> {
    crate::auth::admin(&state, &headers, "/admin/events")?;
    let event: Event = json_body(body).await?;
    let plan = event.plan().map_err(ApiError::bad_request)?;
    let mut answer = match plan {
        Plan::Cache(inv) => apply(&state, inv, q.dry_run).await?,
        Plan::Site { site, paths } => purge_site(&state, &site, &paths, q.dry_run).await?,
    };
    answer["event"] = Value::String(event.name().to_owned());
    Ok(Json(answer))
}

/// A `deploy` event: the site's paths go to the CDN purge outbox.
async fn purge_site(
    state: &AppState,
    site: &str,
    paths: &[String],
    dry_run: bool,
) -> Result<Value, ApiError> {
    let name = SiteName::new(site).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let paths = paths
        .iter()
        .map(|p| SitePath::parse(p).map_err(|e| ApiError::bad_request(format!("{p:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let request = purge_of_paths(site, &state.assets.public_bases(&name), &paths);
    let summary = json!({ "urls": request.urls.len(), "tags": request.tags });
    if dry_run {
        return Ok(json!({ "dry_run": true, "purge": summary }));
    }
    let Some(sink) = &state.purge else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no CDN purge provider is configured ([[purge.providers]])",
        ));
    };
    sink.submit(request)
        .await
        .map_err(|e| ApiError::bad_request(format!("the purge was refused: {e}")))?;
    Ok(json!({ "dry_run": false, "purge": summary, "recorded": true }))
}

async fn invalidate(
    State(state): State<AppState>,
    Query(q): Query<DryRun>,
    headers: HeaderMap,
    body: HttpBody,
) -> Result<Json<Value>, ApiError> {
    crate::auth::admin(&state, &headers, "/admin/invalidate")?;
    let Selectors { selectors } = json_body(body).await?;
    if selectors.is_empty() || selectors.len() > MAX_ITEMS {
        return Err(ApiError::bad_request(format!(
            "1 to {MAX_ITEMS} selectors, each one of key, prefix, tag, scope, kind (+ names)"
        )));
    }
    let reason = format!("manual purge of {} selector(s)", selectors.len());
    let inv = Invalidation {
        selectors,
        epochs: Vec::new(),
        reason,
    };
    Ok(Json(apply(&state, inv, q.dry_run).await?))
}

async fn epochs(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    crate::auth::admin(&state, &headers, "/admin/epochs")?;
    let e = state.store.epochs();
    Ok(Json(
        json!({ "current": e.snapshot(), "configured": e.floor() }),
    ))
}
