//! `/healthz` (each tier's state) and `/metrics` (Prometheus text).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::metrics_export;
use crate::state::AppState;

/// The health and metrics routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    let (l1_entries, l1_bytes) = state.store.l1().usage().await;
    let l2 = state.store.l2().usage();
    let npm = state.npm.as_ref().map(|n| {
        json!({
            "state": if n.origin_down() { "degraded" } else { "ok" },
            "upstream": n.config().upstream,
        })
    });
    let l3 = state.store.l3().map(|l3| {
        let health = l3.health();
        json!({
            "state": health.status,
            "last_error": health.last_error,
            "since_ms": health.since_ms,
            "queue": state.store.l3_queue(),
            "stats": l3.stats().snapshot(),
        })
    });
    let redis = state.store.fleet().map(|f| f.health());
    let degraded = l3.as_ref().is_some_and(|l| l["state"] != "ok")
        || redis
            .as_ref()
            .is_some_and(|r| r.status != tiercache_store::FleetStatus::Ok);
    Json(json!({
        // The node serves either way; "degraded" says a shared part is missing.
        "status": if degraded { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "tiers": {
            "l1": {
                "state": "ok",
                "entries": l1_entries,
                "bytes": l1_bytes,
                "budget_bytes": state.store.l1().budget_bytes(),
                "stats": state.store.l1().stats().snapshot(),
            },
            "l2": {
                "state": "ok",
                "entries": l2.entries,
                "bytes": l2.bytes,
                "budget_bytes": l2.budget_bytes,
                "stats": state.store.l2().stats().snapshot(),
            },
            "l3": l3,
        },
        "redis": redis,
        "npm": npm,
    }))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are not enabled").into_response();
    };
    metrics_export::publish(&state.store).await;
    if let Some(npm) = &state.npm {
        metrics_export::publish_npm(npm);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
