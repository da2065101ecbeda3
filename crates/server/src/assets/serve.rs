//! `GET`/`HEAD` of a site's file: the current deploy's bytes (or a precompressed variant)
//! with Cache-Control by the rules, strong ETags, Last-Modified, 304s, single ranges and tags.
//! Serving is anonymous (browsers and CDNs): a deployed site is public by nature, so no
//! token is asked for, whatever `[auth] anonymous_reads` says.

use std::sync::Arc;

use axum::body::Body as HttpBody;
use axum::http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, LAST_MODIFIED, LOCATION, RANGE, VARY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tiercache_core::assets::{SiteName, SitePath};
use tiercache_store::{Body, BodyStream};

use super::live::{self, LiveDeploy, ServedFile};
use super::manifest::Encoding;
use super::range::{self, RangeAsk};
use super::{headers, keys, negotiate};
use crate::error::ApiError;
use crate::state::AppState;

/// `CDN-Cache-Control` (RFC 9213).
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// Fastly's tag header: space-separated keys.
pub static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
/// Cloudflare's tag header: comma-separated tags.
pub static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

fn count(result: &'static str) {
    metrics::counter!("tiercache_requests_total", "kind" => "assets", "route" => "serve", "result" => result)
        .increment(1);
}

/// The deploy `site` serves now, from the cached view while the pointer is unchanged.
pub async fn current(
    state: &AppState,
    site: &SiteName,
) -> Result<Option<Arc<LiveDeploy>>, ApiError> {
    let Some(hit) = state.store.get(&keys::current(site)?).await? else {
        return Ok(None);
    };
    let pointer_hash = hit.meta.hash;
    if let Some(view) = state.assets.cached(site, &pointer_hash) {
        return Ok(Some(view));
    }
    let bytes = hit.body.collect().await.map_err(|e| {
        tracing::error!(%site, error = %e, "reading a site's pointer failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the site could not be read; try again",
        )
    })?;
    let pointer: super::manifest::Pointer = serde_json::from_slice(&bytes).map_err(|e| {
        tracing::error!(%site, error = %e, "a site's pointer does not parse");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the site's records are damaged",
        )
    })?;
    let Some(n) = pointer.current else {
        return Ok(None);
    };
    if let Some(view) = state.assets.cached_deploy(site, n) {
        // The pointer changed (a new deploy was created) but still names this deploy.
        state.assets.remember(site, pointer_hash, view.clone());
        return Ok(Some(view));
    }
    let Some(manifest) = live::manifest(&state.store, site, n).await? else {
        tracing::warn!(%site, deploy = n, "the current deploy's manifest is gone from the cache (evicted or expired)");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("deploy {n} of this site is no longer in the cache; deploy it again"),
        ));
    };
    let view = Arc::new(LiveDeploy::build(site, manifest, state.assets.rules())?);
    state.assets.remember(site, pointer_hash, view.clone());
    Ok(Some(view))
}

/// `body` limited to bytes `start .. start + len`, reading no further than needed.
fn slice_stream(body: BodyStream, start: u64, len: u64) -> BodyStream {
    let end = start + len;
    Box::pin(futures::stream::unfold(
        (body, 0u64),
        move |(mut body, mut pos)| async move {
            loop {
                if pos >= end {
                    return None;
                }
                match body.next().await {
                    None => return None,
                    Some(Err(e)) => return Some((Err(e), (body, end))),
                    Some(Ok(chunk)) => {
                        let chunk_start = pos;
                        let chunk_end = pos + chunk.len() as u64;
                        pos = chunk_end;
                        if chunk_end <= start {
                            continue;
                        }
                        let a = usize::try_from(start.saturating_sub(chunk_start)).unwrap_or(0);
                        let b = usize::try_from(end.min(chunk_end) - chunk_start)
                            .unwrap_or(chunk.len());
                        return Some((Ok(chunk.slice(a..b)), (body, pos)));
                    }
                }
            }
        },
    ))
}

/// The headers every answer about `file` carries (also 304s).
fn common(view: &LiveDeploy, file: &ServedFile, etag: &HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(12);
    h.insert(CACHE_CONTROL, file.cache_control.clone());
    if let Some(v) = &file.cdn_cache_control {
        h.insert(CDN_CACHE_CONTROL.clone(), v.clone());
    }
    h.insert(SURROGATE_KEY.clone(), view.surrogate_key.clone());
    h.insert(CACHE_TAG.clone(), view.cache_tag.clone());
    if !file.encodings.is_empty() {
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    h.insert(ETAG, etag.clone());
    h.insert(LAST_MODIFIED, file.last_modified.clone());
    h
}

/// A 301 to the directory form of a path (`guide` → `guide/`), relative so it works under
/// `/assets/{site}/` and on the site's own hostname alike.
pub fn to_directory(last_segment: &str, query: Option<&str>) -> Response {
    let location = match query {
        Some(q) => format!("./{last_segment}/?{q}"),
        None => format!("./{last_segment}/"),
    };
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::MOVED_PERMANENTLY, [(LOCATION, v)]).into_response(),
        Err(_) => ApiError::bad_request("invalid path").into_response(),
    }
}

/// Answers `method` on the raw (still percent-encoded) `raw_path` below `site`'s root.
pub async fn serve(
    state: &AppState,
    site: &SiteName,
    raw_path: &str,
    query: Option<&str>,
    method: &Method,
    req: &HeaderMap,
) -> Response {
    match serve_inner(state, site, raw_path, query, method, req).await {
        Ok(r) => r,
        Err(e) => {
            count(if e.status == StatusCode::NOT_FOUND {
                "not_found"
            } else {
                "error"
            });
            let mut r = e.into_response();
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
    }
}

async fn serve_inner(
    state: &AppState,
    site: &SiteName,
    raw_path: &str,
    query: Option<&str>,
    method: &Method,
    req: &HeaderMap,
) -> Result<Response, ApiError> {
    let (path, dir) = SitePath::from_request(raw_path)
        .map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
    let Some(view) = current(state, site).await? else {
        return Err(ApiError::not_found());
    };
    let target = match (&path, dir) {
        (None, _) => SitePath::root_index(),
        (Some(p), true) => p.index(),
        (Some(p), false) => {
            if !view.files.contains_key(p.as_str()) && view.files.contains_key(p.index().as_str()) {
                let last = raw_path.rsplit('/').next().unwrap_or(raw_path);
                count("redirect");
                return Ok(to_directory(last, query));
            }
            p.clone()
        }
    };
    let Some(file) = view.files.get(target.as_str()) else {
        return Err(ApiError::not_found());
    };
    let text = |name| req.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let range_header = if *method == Method::GET {
        text(RANGE)
    } else {
        None
    };
    // A range is served from the identity bytes; otherwise the best stored variant.
    let encoding = if range_header.is_some() {
        None
    } else {
        negotiate::choose(text(ACCEPT_ENCODING), &file.encodings)
    };
    let (blob, size, etag) = match encoding.and_then(|e| file.variants.iter().find(|v| v.0 == e)) {
        Some((_, b, key, tag)) => (key, b.size, tag),
        None => (&file.key, file.entry.size, &file.etag),
    };
    let mut h = common(&view, file, etag);
    let etag_text = etag.to_str().unwrap_or("");
    if headers::not_modified(req, etag_text, file.entry.modified_ms) {
        count("not_modified");
        return Ok((StatusCode::NOT_MODIFIED, h).into_response());
    }
    h.insert(CONTENT_TYPE, file.content_type.clone());
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(e) = encoding {
        h.insert(
            CONTENT_ENCODING,
            HeaderValue::from_static(Encoding::as_str(e)),
        );
    }
    let last_modified = file.last_modified.to_str().unwrap_or("");
    let ask = match range_header {
        Some(r) if headers::if_range_holds(req, etag_text, last_modified) => {
            range::parse(Some(r), size)
        }
        _ => RangeAsk::Full,
    };
    let (status, start, len) = match ask {
        RangeAsk::Full => (StatusCode::OK, 0, size),
        RangeAsk::Part { start, end } => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
                h.insert(CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAsk::Unsatisfiable => {
            count("unsatisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                h.insert(CONTENT_RANGE, v);
            }
            h.remove(CONTENT_TYPE);
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, h).into_response());
        }
    };
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if *method == Method::HEAD {
        count("head");
        return Ok((status, h).into_response());
    }
    let Some(hit) = state.store.get(blob).await? else {
        tracing::warn!(%site, path = %target, key = %blob, "a file of the current deploy is gone from the cache (evicted or expired)");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this file is no longer in the cache; deploy the site again",
        ));
    };
    count(if status == StatusCode::OK {
        "ok"
    } else {
        "partial"
    });
    let body = match hit.body {
        Body::Bytes(b) if status == StatusCode::OK => HttpBody::from(b),
        Body::Bytes(b) => {
            let a = usize::try_from(start).unwrap_or(usize::MAX).min(b.len());
            let z = usize::try_from(start + len)
                .unwrap_or(usize::MAX)
                .min(b.len());
            HttpBody::from(b.slice(a..z))
        }
        Body::Stream(s) if status == StatusCode::OK => HttpBody::from_stream(s),
        Body::Stream(s) => HttpBody::from_stream(slice_stream(s, start, len)),
    };
    Ok((status, h, body).into_response())
}
