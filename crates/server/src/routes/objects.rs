//! The generic object API: `PUT/GET/HEAD/DELETE /objects/{scope}/{kind}/{name}`, where
//! `{scope}` is `global`, `template/<id>` or `user/<id>`.
//!
//! PUT takes `Content-Type`, and optionally `X-Tiercache-Ttl` (seconds) and
//! `X-Tiercache-Tags` (comma-separated); it answers 201 with the entry's metadata.
//! GET answers with a strong ETag and Last-Modified, and 304 to a matching conditional.
//! Every request acts as its caller (see `auth`) through the store's sharing rules: a key
//! in a scope the caller may not read answers exactly as a missing key does.

use std::time::Duration;

use axum::Router;
use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LAST_MODIFIED};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tiercache_core::{CacheKey, EntryMeta, PutOptions, Scope};
use tiercache_store::{Body, Hit};

use crate::auth;
use crate::error::ApiError;
use crate::etag;
use crate::state::AppState;
use crate::upload;

const PREFIX: &str = "/objects/";
/// Header naming the tier that answered (`l1`, `l2`).
pub const TIER_HEADER: &str = "x-tiercache-tier";

/// The object routes.
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/objects/{*path}",
        get(get_object)
            .head(head_object)
            .put(put_object)
            .delete(delete_object),
    )
}

/// The key a request names. Percent-encoding is refused outright rather than decoded, so
/// no encoded `/`, `..` or NUL can reach key validation in disguise.
fn key_of(uri: &Uri) -> Result<CacheKey, ApiError> {
    let path = uri.path();
    if path.contains('%') {
        return Err(ApiError::bad_request(
            "invalid key: percent-encoded characters are not allowed in object keys",
        ));
    }
    let rest = path.strip_prefix(PREFIX).unwrap_or(path);
    Ok(CacheKey::parse_path(rest)?)
}

/// The headers describing an entry of `scope`. A user's or a template's entry is never for
/// a shared cache (`Cache-Control: private, max-age=0`); the global scope's carries none.
fn meta_headers(scope: &Scope, meta: &EntryMeta, headers: &mut HeaderMap) {
    if !matches!(scope, Scope::Global) {
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=0"),
        );
    }
    let ct = meta
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    if let Ok(v) = HeaderValue::from_str(ct) {
        headers.insert(CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag::etag(meta)) {
        headers.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag::last_modified(meta)) {
        headers.insert(LAST_MODIFIED, v);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(meta.size));
}

fn not_modified(scope: &Scope, meta: &EntryMeta) -> Response {
    let mut headers = HeaderMap::new();
    meta_headers(scope, meta, &mut headers);
    headers.remove(CONTENT_LENGTH);
    headers.remove(CONTENT_TYPE);
    (StatusCode::NOT_MODIFIED, headers).into_response()
}

async fn get_object(
    State(state): State<AppState>,
    uri: Uri,
    req_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = auth::principal(&state, &req_headers)?;
    let key = key_of(&uri)?;
    let store = state.store.scoped(&who).audited(&state.audit);
    let conditional = req_headers.contains_key(axum::http::header::IF_NONE_MATCH)
        || req_headers.contains_key(axum::http::header::IF_MODIFIED_SINCE);
    if conditional
        && let Some(meta) = store.head(&key).await?
        && etag::not_modified(&req_headers, &meta)
    {
        return Ok(not_modified(key.scope(), &meta));
    }
    let Some(Hit { meta, body, tier }) = store.get(&key).await? else {
        return Err(ApiError::not_found());
    };
    let mut headers = HeaderMap::new();
    meta_headers(key.scope(), &meta, &mut headers);
    headers.insert(TIER_HEADER, HeaderValue::from_static(tier.as_str()));
    let body = match body {
        Body::Bytes(b) => HttpBody::from(b),
        Body::Stream(s) => HttpBody::from_stream(s),
    };
    Ok((StatusCode::OK, headers, body).into_response())
}

async fn head_object(
    State(state): State<AppState>,
    uri: Uri,
    req_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = auth::principal(&state, &req_headers)?;
    let key = key_of(&uri)?;
    let store = state.store.scoped(&who).audited(&state.audit);
    let Some(meta) = store.head(&key).await? else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    if etag::not_modified(&req_headers, &meta) {
        return Ok(not_modified(key.scope(), &meta));
    }
    let mut headers = HeaderMap::new();
    meta_headers(key.scope(), &meta, &mut headers);
    Ok((StatusCode::OK, headers).into_response())
}

/// Reads the writer's options from the request headers.
fn put_options(headers: &HeaderMap) -> Result<PutOptions, ApiError> {
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| ApiError::bad_request(format!("{name} must be ASCII")))
            })
            .transpose()
    };
    let ttl = match text("x-tiercache-ttl")? {
        Some(s) => Some(Duration::from_secs(s.trim().parse().map_err(|_| {
            ApiError::bad_request("x-tiercache-ttl must be a whole number of seconds")
        })?)),
        None => None,
    };
    let tags = text("x-tiercache-tags")?
        .map(|s| s.split(',').map(|t| t.trim().to_owned()).collect())
        .unwrap_or_default();
    let opts = PutOptions {
        content_type: text(CONTENT_TYPE.as_str())?,
        ttl,
        tags,
        ..Default::default()
    };
    opts.validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(opts)
}

async fn put_object(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: HttpBody,
) -> Result<Response, ApiError> {
    let who = auth::principal(&state, &headers)?;
    let key = key_of(&uri)?;
    let opts = put_options(&headers)?;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body is larger than the limit of {} bytes",
                state.max_body_bytes
            ),
        )
    };
    let declared = match headers.get(CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("content-length is not a number"))?,
        ),
        None => None,
    };
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        upload::drain(body).await;
        return Err(too_large());
    }
    let store = state.store.scoped(&who).audited(&state.audit);
    let body = if store.refuses_write(&key) {
        // Refused below (and audited); read the body first so the client sees the 403.
        upload::drain(body).await;
        Body::Bytes(bytes::Bytes::new())
    } else {
        Body::Stream(upload::limited(body, state.max_body_bytes))
    };
    let meta = match store.put(&key, opts, body).await {
        Ok(meta) => meta,
        Err(e) if upload::over_limit(&e) => return Err(too_large()),
        Err(e) => return Err(e.into()),
    };
    let mut out = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag::etag(&meta)) {
        out.insert(ETAG, v);
    }
    let body = json!({
        "key": key.to_string(),
        "size": meta.size,
        "hash": meta.hash,
        "created_ms": meta.created_ms,
        "expires_ms": meta.expires_ms,
    });
    Ok((StatusCode::CREATED, out, axum::Json(body)).into_response())
}

async fn delete_object(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = auth::principal(&state, &headers)?;
    let key = key_of(&uri)?;
    if state
        .store
        .scoped(&who)
        .audited(&state.audit)
        .delete(&key)
        .await?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found())
    }
}
