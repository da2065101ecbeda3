//! The deploy API, which `tiercache deploy` drives:
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /assets-api/{site}/deploys` (manifest JSON) | `201 {"deploy": n, "missing": [hash, ...], ...}` |
//! | `PUT /assets-api/{site}/blobs/{hash}` (the bytes) | `201`; `400` if they do not hash to `{hash}` |
//! | `POST /assets-api/{site}/deploys/{n}/activate` | `200`; `409` while blobs are missing |
//! | `POST /assets-api/{site}/rollback` | `200`; `409` without an earlier deploy |
//! | `GET /assets-api/{site}` | the current deploy, rollback history, stored deploys |
//!
//! Writing needs what any global write needs (an admin, or a global warmer whose uploads
//! are screened for secrets: `422`); reading the status is a global read. Blobs are the
//! client's bytes and go through the caller's scoped store; manifests and pointers are
//! written by the server itself (after that check) from what it validated.

use axum::Json;
use axum::body::Body as HttpBody;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use tiercache_core::assets::SiteName;
use tiercache_core::{ContentHash, Principal, PutOptions, Scope};
use tiercache_store::Body;

use super::keys;
use super::live;
use super::manifest::{DeployRequest, MAX_HISTORY, MAX_MANIFEST_BYTES, Manifest, Pointer};
use super::purge_hook;
use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;
use crate::upload;

fn site_of(raw: &str) -> Result<SiteName, ApiError> {
    SiteName::new(raw).map_err(|e| ApiError::bad_request(format!("invalid site: {e}")))
}

/// The caller, if it may deploy (write the global scope): 401 for an anonymous caller,
/// 403 for any other that may not.
fn deployer(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let who = auth::principal(state, headers)?;
    if let tiercache_core::Decision::Deny(why) = who.may_write(&Scope::Global) {
        let status = if who.user.is_none() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        return Err(ApiError::new(
            status,
            format!("deploying a site needs an admin token or a global warmer token ({why})"),
        ));
    }
    Ok(who)
}

fn now_ms() -> u64 {
    tiercache_store::clock::now_ms()
}

/// Stores a record the server wrote (a manifest or pointer) as JSON.
async fn put_json<T: serde::Serialize>(
    state: &AppState,
    key: &tiercache_core::CacheKey,
    value: &T,
) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let opts = PutOptions {
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    state
        .store
        .put(key, opts, Body::Bytes(Bytes::from(bytes)))
        .await?;
    Ok(())
}

/// `POST /assets-api/{site}/deploys`: checks the manifest, stores it as the next deploy
/// (not yet live) and answers which blobs the server lacks.
pub async fn create(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
    body: HttpBody,
) -> Result<Response, ApiError> {
    let site = site_of(&site)?;
    if let Err(e) = deployer(&state, &headers) {
        // Read the body first, so the client sees the refusal instead of a reset.
        upload::drain(body).await;
        return Err(e);
    }
    let bytes = axum::body::to_bytes(body, MAX_MANIFEST_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a manifest is at most {MAX_MANIFEST_BYTES} bytes"),
            )
        })?;
    let request: DeployRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid manifest: {e}")))?;
    let lock = state.assets.lock_for(&site);
    let _guard = lock.lock().await;
    let mut pointer = live::pointer(&state.store, &site)
        .await?
        .map(|(_, p)| p)
        .unwrap_or_default();
    let n = pointer.next.max(1);
    let current = match pointer.current {
        Some(c) => live::manifest(&state.store, &site, c).await?,
        None => None,
    };
    let manifest = request
        .into_manifest(
            site.as_str(),
            n,
            now_ms(),
            state.max_body_bytes,
            current.as_ref(),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    put_json(&state, &keys::deploy(&site, n)?, &manifest).await?;
    pointer.next = n + 1;
    put_json(&state, &keys::current(&site)?, &pointer).await?;
    let blobs = manifest.blobs();
    let mut missing = Vec::new();
    for hash in blobs.keys() {
        if state.store.head(&keys::blob(&site, hash)?).await?.is_none() {
            missing.push(hash.to_hex());
        }
    }
    tracing::info!(%site, deploy = n, files = manifest.files.len(), missing = missing.len(), "deploy created");
    let answer = json!({
        "site": site.as_str(),
        "deploy": n,
        "files": manifest.files.len(),
        "blobs": blobs.len(),
        "missing": missing,
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `PUT /assets-api/{site}/blobs/{hash}`: stores bytes that must hash to `{hash}`.
pub async fn put_blob(
    State(state): State<AppState>,
    Path((site, hash)): Path<(String, String)>,
    headers: HeaderMap,
    body: HttpBody,
) -> Result<Response, ApiError> {
    let site = site_of(&site)?;
    let who = match deployer(&state, &headers) {
        Ok(who) => who,
        Err(e) => {
            // Read the body first, so the client sees the refusal instead of a reset.
            upload::drain(body).await;
            return Err(e);
        }
    };
    let hash: ContentHash = hash.parse().map_err(|_| {
        ApiError::bad_request("a blob is named by its BLAKE3 hash: 64 lowercase hex digits")
    })?;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a file is at most {} bytes", state.max_body_bytes),
        )
    };
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        upload::drain(body).await;
        return Err(too_large());
    }
    let key = keys::blob(&site, &hash)?;
    let opts = PutOptions {
        expected_hash: Some(hash),
        immutable: true,
        ..Default::default()
    };
    let store = state.store.scoped(&who).audited(&state.audit);
    let body = Body::Stream(upload::limited(body, state.max_body_bytes));
    let meta = match store.put(&key, opts, body).await {
        Ok(meta) => meta,
        Err(e) if upload::over_limit(&e) => return Err(too_large()),
        Err(e) => return Err(e.into()),
    };
    let answer = json!({ "hash": meta.hash, "size": meta.size });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Blobs of `manifest` the store lacks (or holds with another size), as hex.
async fn absent_blobs(
    state: &AppState,
    site: &SiteName,
    manifest: &Manifest,
) -> Result<Vec<String>, ApiError> {
    let mut absent = Vec::new();
    for (hash, size) in manifest.blobs() {
        match state.store.head(&keys::blob(site, &hash)?).await? {
            Some(meta) if meta.size == size => {}
            _ => absent.push(hash.to_hex()),
        }
    }
    Ok(absent)
}

fn incomplete(n: u64, absent: Vec<String>) -> Response {
    let message = format!(
        "deploy {n} is incomplete: {} of its blobs are not stored (upload them, or deploy again)",
        absent.len()
    );
    (
        StatusCode::CONFLICT,
        Json(json!({ "error": message, "missing": absent })),
    )
        .into_response()
}

/// Makes deploy `to` current (pointer written last), then asks for the purge the switch
/// needs. `from` is the deploy being replaced.
async fn switch(
    state: &AppState,
    site: &SiteName,
    mut pointer: Pointer,
    to: &Manifest,
) -> Result<serde_json::Value, ApiError> {
    let from = pointer.current;
    pointer.current = Some(to.deploy);
    pointer.activated_ms = now_ms();
    put_json(state, &keys::current(site)?, &pointer).await?;
    state.assets.forget(site);
    let old = match from {
        Some(n) if n != to.deploy => live::manifest(&state.store, site, n).await?,
        _ => None,
    };
    let purge = if from == Some(to.deploy) {
        None
    } else {
        purge_hook::purge_for(
            old.as_ref(),
            to,
            state.assets.rules(),
            &state.assets.public_bases(site),
        )
    };
    let purge_urls = purge.as_ref().map_or(0, |p| p.urls.len());
    let submitted = match (purge, &state.purge) {
        (Some(request), Some(sink)) => match sink.submit(request).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(%site, error = %e, "submitting the purge of a deploy failed");
                false
            }
        },
        (Some(request), None) => {
            tracing::debug!(%site, urls = request.urls.len(), tags = ?request.tags, "no purge sink configured: purge not sent");
            false
        }
        (None, _) => false,
    };
    tracing::info!(%site, deploy = to.deploy, previous = ?from, "deploy is live");
    Ok(json!({
        "site": site.as_str(),
        "deploy": to.deploy,
        "previous": from,
        "files": to.files.len(),
        "purge": { "urls": purge_urls, "submitted": submitted },
    }))
}

/// `POST /assets-api/{site}/deploys/{n}/activate`: makes deploy `n` current once every blob is stored.
pub async fn activate(
    State(state): State<AppState>,
    Path((site, n)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let site = site_of(&site)?;
    deployer(&state, &headers)?;
    let n: u64 = n
        .parse()
        .map_err(|_| ApiError::bad_request("a deploy number is a positive integer"))?;
    let lock = state.assets.lock_for(&site);
    let _guard = lock.lock().await;
    let Some(manifest) = live::manifest(&state.store, &site, n).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("site {site} has no deploy {n}"),
        ));
    };
    let absent = absent_blobs(&state, &site, &manifest).await?;
    if !absent.is_empty() {
        return Ok(incomplete(n, absent));
    }
    let mut pointer = live::pointer(&state.store, &site)
        .await?
        .map(|(_, p)| p)
        .unwrap_or_default();
    pointer.next = pointer.next.max(n + 1);
    if let Some(c) = pointer.current
        && c != n
    {
        pointer.previous.push(c);
        if pointer.previous.len() > MAX_HISTORY {
            pointer.previous.remove(0);
        }
    }
    let answer = switch(&state, &site, pointer, &manifest).await?;
    Ok(Json(answer).into_response())
}

/// `POST /assets-api/{site}/rollback`: makes the previous current deploy current again.
pub async fn rollback(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let site = site_of(&site)?;
    deployer(&state, &headers)?;
    let lock = state.assets.lock_for(&site);
    let _guard = lock.lock().await;
    let Some((_, mut pointer)) = live::pointer(&state.store, &site).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("site {site} has no deploys"),
        ));
    };
    let Some(&target) = pointer.previous.last() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("site {site} has no earlier deploy to roll back to"),
        ));
    };
    let Some(manifest) = live::manifest(&state.store, &site, target).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("deploy {target} of site {site} is no longer in the cache; deploy it again"),
        ));
    };
    let absent = absent_blobs(&state, &site, &manifest).await?;
    if !absent.is_empty() {
        return Ok(incomplete(target, absent));
    }
    pointer.previous.pop();
    let answer = switch(&state, &site, pointer, &manifest).await?;
    Ok(Json(answer).into_response())
}

/// `GET /assets-api/{site}`: the current deploy, the rollback history and stored deploys.
pub async fn info(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let site = site_of(&site)?;
    let who = auth::principal(&state, &headers)?;
    if !who.may_read(&Scope::Global).allowed() {
        return Err(ApiError::not_found());
    }
    let Some((_, pointer)) = live::pointer(&state.store, &site).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("site {site} has no deploys"),
        ));
    };
    let kind = tiercache_core::Kind::new(keys::DEPLOY_KIND)?;
    let stored = state
        .store
        .list(&Scope::Global, &kind, &format!("{site}~"), 1000)
        .await?;
    let mut deploys: Vec<serde_json::Value> = stored
        .iter()
        .filter_map(|(k, m)| {
            let n = keys::deploy_number(k.name().as_str())?;
            Some(json!({ "deploy": n, "created_ms": m.created_ms }))
        })
        .collect();
    deploys.sort_by_key(|d| d["deploy"].as_u64());
    let current = match pointer.current {
        Some(n) => live::manifest(&state.store, &site, n).await?,
        None => None,
    };
    Ok(Json(json!({
        "site": site.as_str(),
        "current": pointer.current,
        "previous": pointer.previous,
        "rollback_to": pointer.previous.last(),
        "activated_ms": pointer.activated_ms,
        "files": current.as_ref().map(|m| m.files.len()),
        "bytes": current.as_ref().map(Manifest::bytes),
        "deploys": deploys,
    }))
    .into_response())
}
