//! The HTTP face of tiercache: the generic object API, `/healthz` and `/metrics`, over
//! the tiered store. Front-ends (npm, build cache, assets) mount their routes here too.

pub mod assets;
pub mod auth;
pub mod build;
pub mod cdn;
pub mod error;
pub mod etag;
pub mod invalidation;
pub mod metrics_export;
pub mod npm;
pub mod request_error;
pub mod routes;
pub mod state;
pub mod upload;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use state::AppState;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .merge(routes::health::routes())
        .merge(routes::admin::routes())
        .merge(routes::audit::routes())
        .merge(routes::leakage::routes())
        .merge(routes::objects::routes())
        .merge(npm::routes::routes())
        .merge(build::routes::routes())
        .merge(cdn::routes::routes())
        .merge(assets::routes::routes())
        .merge(invalidation::routes::routes())
        .merge(invalidation::npm_hook::routes())
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND });
    // Requests for a site's own hostname are that site's, whatever their path.
    let router = if state.assets.has_hostnames() {
        router.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            assets::routes::by_host,
        ))
    } else {
        router
    };
    router
        // Bodies stream to disk and are limited by the store's own entry limit.
        .layer(DefaultBodyLimit::disable())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish, flushes the
/// store's lazily written state and gives queued L3 uploads a few seconds.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = state.store.clone();
    let audit = state.audit.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    if let Err(e) = store.flush(std::time::Duration::from_secs(5)).await {
        tracing::warn!(error = %e, "flushing the store at shutdown failed");
    }
    // Last: anything above may still have recorded accesses.
    if let Err(e) = audit.close().await {
        tracing::warn!(error = %e, "closing the audit log at shutdown failed");
    }
    Ok(())
}
