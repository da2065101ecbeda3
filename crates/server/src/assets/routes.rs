//! The asset routes: `GET/HEAD /assets/{site}/{path}`, the deploy API under
//! `/assets-api/{site}`, and — when sites have hostnames — every request whose `Host` is
//! one of them, whatever its path, served from that site.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, HOST};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tiercache_core::assets::SiteName;

use super::{deploy, serve};
use crate::error::ApiError;
use crate::state::AppState;

/// The asset routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/assets/{*rest}", get(serve_route))
        .route("/assets-api/{site}", get(deploy::info))
        .route("/assets-api/{site}/deploys", post(deploy::create))
        .route(
            "/assets-api/{site}/deploys/{n}/activate",
            post(deploy::activate),
        )
        .route("/assets-api/{site}/blobs/{hash}", put(deploy::put_blob))
        .route("/assets-api/{site}/rollback", post(deploy::rollback))
}

/// `/assets/{site}/{path}`, read from the raw URI: axum's extractors would decode the
/// path first, and the site path must be checked in its encoded form.
async fn serve_route(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    let rest = uri.path().strip_prefix("/assets/").unwrap_or("");
    let (site, path) = match rest.split_once('/') {
        Some(parts) => parts,
        None => (rest, ""),
    };
    let site = match SiteName::new(site) {
        Ok(s) => s,
        Err(e) => return ApiError::bad_request(format!("invalid site: {e}")).into_response(),
    };
    if !rest.contains('/') {
        // `/assets/docs` → `/assets/docs/`, so the pages' relative links resolve.
        return serve::to_directory(site.as_str(), uri.query());
    }
    serve::serve(&state, &site, path, uri.query(), &method, &headers).await
}

/// Middleware: a request for one of the sites' hostnames is that site's, whatever the path.
pub async fn by_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host());
    let Some(site) = host.and_then(|h| state.assets.site_for_host(h)).cloned() else {
        return next.run(req).await;
    };
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(ALLOW, HeaderValue::from_static("GET, HEAD"))],
        )
            .into_response();
    }
    let uri = req.uri().clone();
    let path = uri.path().strip_prefix('/').unwrap_or(uri.path());
    let mut response = serve::serve(&state, &site, path, uri.query(), &method, req.headers()).await;
    if method == Method::HEAD {
        // A HEAD answer has no body, whatever the handler built.
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}
