//! The registry routes under `/npm/`: packuments (full or abbreviated), tarballs, and
//! `/-/ping`. Clients set `registry=http://HOST:PORT/npm/`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::header::{
    ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HOST, LAST_MODIFIED,
    VARY, WARNING,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;
use tiercache_core::{ContentHash, Decision, EntryMeta};
use tiercache_store::{Action, Body};

use super::error::NpmError;
use super::name::{NpmPath, PackageName, parse_path};
use super::packument::PackageIndex;
use super::stats::{Outcome, Route};
use super::{NpmFrontend, Realm, Tarball};
use crate::error::ApiError;
use crate::etag;
use crate::state::AppState;

/// The content type of abbreviated packuments, echoed because pnpm checks it.
const CORGI: &str = "application/vnd.npm.install-v1+json";
/// Header telling how the cache answered.
const X_CACHE: &str = "x-cache";
/// How much of a tarball being fetched is held back until its integrity is known.
const HOLD_BYTES: usize = 1024 * 1024;

/// The npm routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/npm/{*rest}", get(handle))
}

async fn handle(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(npm) = state.npm.clone() else {
        return NpmError::Unavailable(
            "the npm proxy is not configured: set --npm-upstream or install npm".into(),
        )
        .into_response();
    };
    // Public packages are global: any valid caller (or anonymous, if allowed) reads them;
    // a forged or expired token is refused like everywhere else.
    let who = match crate::auth::principal(&state, &headers) {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    // In single-user mode the client's Authorization is its credential for private scopes;
    // with auth on it is this server's own token and is never sent upstream.
    let mut headers = headers;
    let client_auth = headers.remove(AUTHORIZATION);
    let client_auth = client_auth.filter(|_| !state.auth.is_enabled());
    let raw = uri.path().strip_prefix("/npm/").unwrap_or("");
    let path = match parse_path(raw) {
        Ok(p) => p,
        Err(e) => return NpmError::BadRequest(e.to_string()).into_response(),
    };
    let base = match base_url(&npm, &headers) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let (name, tarball_name) = match path {
        NpmPath::Special(s) if s == "ping" || s.starts_with("ping?") => {
            return axum::Json(serde_json::json!({})).into_response();
        }
        NpmPath::Special(s) => {
            return NpmError::BadRequest(format!(
                "/-/{} is not served by this cache",
                s.chars().take(60).collect::<String>()
            ))
            .with_status(StatusCode::NOT_FOUND);
        }
        NpmPath::Packument(name) => (name, None),
        NpmPath::Tarball(name, basename) => (name, Some(basename)),
    };
    let realm = if npm.is_private(&name) {
        // A private scope's packages are cached for their requester only.
        let Some(scope) = who.own_scope() else {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "packages of a private scope need a token: they are cached per user",
            )
            .into_response();
        };
        let auth = if state.auth.is_enabled() {
            npm.config().scope_token(name.scope())
        } else {
            client_auth
        };
        let realm = Realm::private(scope, auth);
        if let Ok(key) = npm.audit_key(&realm, &name, tarball_name.as_deref()) {
            state
                .audit
                .access(&who, &key, Action::Read, &Decision::Allow)
                .await;
        }
        realm
    } else {
        Realm::public()
    };
    match tarball_name {
        None => packument(&npm, &realm, &name, &headers, &base).await,
        Some(basename) => tarball(&npm, &realm, &name, &basename, &headers).await,
    }
}

impl NpmError {
    fn with_status(self, status: StatusCode) -> Response {
        let mut r = self.into_response();
        *r.status_mut() = status;
        r
    }
}

/// The proxy's own base URL for rewritten tarball links: the configured public URL, else
/// the forwarded or direct host of this request.
fn base_url(npm: &NpmFrontend, headers: &HeaderMap) -> Result<String, NpmError> {
    if let Some(public) = &npm.config().public_url {
        return Ok(format!("{}/npm", public.trim_end_matches('/')));
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let proto = match text("x-forwarded-proto").map(|p| p.split(',').next().unwrap_or("").trim()) {
        Some("https") => "https",
        _ => "http",
    };
    let host = text("x-forwarded-host")
        .map(|h| h.split(',').next().unwrap_or("").trim())
        .or_else(|| text(HOST.as_str()))
        .unwrap_or("");
    let valid = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !valid {
        return Err(NpmError::BadRequest(
            "a Host (or X-Forwarded-Host) header naming this server is required".into(),
        ));
    }
    Ok(format!("{proto}://{host}/npm"))
}

fn wants_corgi(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(CORGI))
}

async fn packument(
    npm: &Arc<NpmFrontend>,
    realm: &Realm,
    name: &PackageName,
    headers: &HeaderMap,
    base: &str,
) -> Response {
    let corgi = wants_corgi(headers);
    let result = async {
        let (mut idx, mut outcome) = npm.packument(realm, name, false).await?;
        let mut doc = npm.view(realm, name, &idx, corgi, base).await?;
        if doc.is_none() {
            // The documents were evicted before the index: fetch again.
            (idx, outcome) = npm.packument(realm, name, true).await?;
            doc = npm.view(realm, name, &idx, corgi, base).await?;
        }
        let (bytes, hash) = doc.ok_or_else(|| {
            NpmError::Unavailable("the packument could not be stored; try again".into())
        })?;
        Ok::<_, NpmError>((idx, outcome, bytes, hash))
    }
    .await;
    let (idx, outcome, body, hash) = match result {
        Ok(v) => v,
        Err(e) => {
            npm.stats()
                .record(Route::Packument, error_outcome(&e), stat_name(realm, name));
            return e.into_response();
        }
    };
    let tag = format!(
        "\"{}-{}{}\"",
        &hash[..32],
        &blake3_short(base),
        if corgi { "c" } else { "f" }
    );
    let mut out = HeaderMap::new();
    set(&mut out, ETAG, &tag);
    if let Some(lm) = idx.last_modified() {
        set(&mut out, LAST_MODIFIED, &lm);
    }
    set(&mut out, CACHE_CONTROL, visibility(realm, "max-age=300"));
    set(&mut out, VARY, "Accept");
    if not_modified(headers, &tag, &idx) {
        npm.stats().record(
            Route::Packument,
            Outcome::NotModified,
            stat_name(realm, name),
        );
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    npm.stats()
        .record(Route::Packument, outcome, stat_name(realm, name));
    set(&mut out, X_CACHE, &outcome.as_str().to_ascii_uppercase());
    if outcome == Outcome::Stale {
        set(&mut out, WARNING, "110 tiercache \"Response is Stale\"");
    }
    set(
        &mut out,
        CONTENT_TYPE,
        if corgi { CORGI } else { "application/json" },
    );
    (StatusCode::OK, out, body).into_response()
}

fn blake3_short(s: &str) -> String {
    tiercache_core::ContentHash::of(s.as_bytes()).to_hex()[..8].to_owned()
}

/// RFC 9110: If-None-Match decides when present, else If-Modified-Since; an unconditional
/// request is never answered 304.
fn not_modified(headers: &HeaderMap, tag: &str, idx: &PackageIndex) -> bool {
    if let Some(inm) = headers.get("if-none-match").and_then(|v| v.to_str().ok()) {
        return inm
            .split(',')
            .map(str::trim)
            .any(|c| c == "*" || c.strip_prefix("W/").unwrap_or(c) == tag);
    }
    let since = headers
        .get("if-modified-since")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s).ok());
    match (since, super::packument::parse_time(&idx.modified)) {
        (Some(since), Some(modified)) => {
            // Compare at the one-second precision of HTTP dates.
            let secs = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            };
            secs(modified) <= secs(since)
        }
        _ => false,
    }
}

fn error_outcome(e: &NpmError) -> Outcome {
    match e {
        NpmError::NotFound => Outcome::NotFound,
        _ => Outcome::Error,
    }
}

fn set(headers: &mut HeaderMap, name: impl axum::http::header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

async fn tarball(
    npm: &Arc<NpmFrontend>,
    realm: &Realm,
    name: &PackageName,
    basename: &str,
    headers: &HeaderMap,
) -> Response {
    let (hit, outcome) = match npm.tarball(realm, name, basename).await {
        Ok(Tarball::Cached(hit, outcome)) => (hit, outcome),
        Ok(Tarball::Fetching(body, length)) => {
            return fetching(npm, realm, name, body, length).await;
        }
        Err(e) => {
            npm.stats()
                .record(Route::Tarball, error_outcome(&e), stat_name(realm, name));
            return e.into_response();
        }
    };
    let mut out = HeaderMap::new();
    tarball_headers(realm, &hit.meta, &mut out);
    if etag::not_modified(headers, &hit.meta) {
        npm.stats()
            .record(Route::Tarball, Outcome::NotModified, stat_name(realm, name));
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    npm.stats()
        .record(Route::Tarball, outcome, stat_name(realm, name));
    set(&mut out, X_CACHE, &outcome.as_str().to_ascii_uppercase());
    out.insert(CONTENT_LENGTH, HeaderValue::from(hit.meta.size));
    set(&mut out, "x-tiercache-tier", hit.tier.as_str());
    let body = match hit.body {
        Body::Bytes(b) => HttpBody::from(b),
        Body::Stream(s) => HttpBody::from_stream(s),
    };
    (StatusCode::OK, out, body).into_response()
}

/// Answers the caller whose request fetches a tarball from the origin. The first
/// [`HOLD_BYTES`] are held until the whole tarball has arrived and passed its integrity
/// check, so a small tarball that fails is a clear 502; a larger one streams on as it
/// arrives, and if it fails at the end the response is cut off rather than completed.
async fn fetching(
    npm: &Arc<NpmFrontend>,
    realm: &Realm,
    name: &PackageName,
    mut body: tiercache_store::BodyStream,
    length: Option<u64>,
) -> Response {
    let mut held: Vec<Bytes> = Vec::new();
    let mut held_len = 0usize;
    loop {
        match body.next().await {
            None => {
                let whole: Bytes = held.concat().into();
                let mut out = HeaderMap::new();
                set(&mut out, CONTENT_TYPE, "application/octet-stream");
                set(&mut out, CACHE_CONTROL, visibility(realm, IMMUTABLE));
                set(&mut out, ETAG, &format!("\"{}\"", ContentHash::of(&whole)));
                set(&mut out, X_CACHE, "MISS");
                set(&mut out, "x-tiercache-tier", "origin");
                npm.stats()
                    .record(Route::Tarball, Outcome::Miss, stat_name(realm, name));
                return (StatusCode::OK, out, whole).into_response();
            }
            Some(Ok(chunk)) => {
                held_len += chunk.len();
                held.push(chunk);
                if held_len > HOLD_BYTES {
                    break;
                }
            }
            Some(Err(e)) => {
                let err = NpmError::from(tiercache_store::StoreError::Body(e));
                npm.stats()
                    .record(Route::Tarball, error_outcome(&err), stat_name(realm, name));
                return err.into_response();
            }
        }
    }
    let mut out = HeaderMap::new();
    set(&mut out, CONTENT_TYPE, "application/octet-stream");
    set(&mut out, CACHE_CONTROL, visibility(realm, IMMUTABLE));
    set(&mut out, X_CACHE, "MISS");
    set(&mut out, "x-tiercache-tier", "origin");
    if let Some(len) = length {
        out.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    npm.stats()
        .record(Route::Tarball, Outcome::Miss, stat_name(realm, name));
    let rest = futures::stream::iter(held.into_iter().map(Ok)).chain(body);
    (StatusCode::OK, out, HttpBody::from_stream(rest)).into_response()
}

fn tarball_headers(realm: &Realm, meta: &EntryMeta, out: &mut HeaderMap) {
    set(out, CONTENT_TYPE, "application/octet-stream");
    set(out, ETAG, &etag::etag(meta));
    set(out, CACHE_CONTROL, visibility(realm, IMMUTABLE));
}

/// The name a request is counted under: a private package's name is not shared statistics.
fn stat_name<'a>(realm: &Realm, name: &'a PackageName) -> &'a str {
    if realm.is_private() {
        "(private)"
    } else {
        name.as_str()
    }
}

/// Cache-Control of a published tarball's bytes.
const IMMUTABLE: &str = "max-age=31536000, immutable";

/// `public` for shared packages, `private` (browsers and clients only, never a CDN) for a
/// private scope's.
fn visibility(realm: &Realm, rest: &str) -> &'static str {
    match (realm.is_private(), rest) {
        (false, IMMUTABLE) => "public, max-age=31536000, immutable",
        (true, IMMUTABLE) => "private, max-age=31536000, immutable",
        (false, _) => "public, max-age=300",
        (true, _) => "private, max-age=300",
    }
}
