//! The Turborepo remote cache API (v8), as the `turbo` client uses it:
//! `HEAD/GET/PUT /v8/artifacts/{hash}`, `POST /v8/artifacts` (batch query),
//! `POST /v8/artifacts/events`, `GET /v8/artifacts/status`; and the operator's listing
//! `GET /admin/build/artifacts?team=T`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body as HttpBody;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tiercache_core::{CacheKey, Decision, EntryMeta, Headers, Kind, Principal, PutOptions};
use tiercache_store::Body;

use super::error::TurboError;
use super::{BuildFrontend, KIND, MAX_TAG, artifact_name, check_hash, check_team, write_scope};
use crate::auth;
use crate::state::AppState;
use crate::upload;

const DURATION: &str = "x-artifact-duration";
const TAG: &str = "x-artifact-tag";
const SHA: &str = "x-artifact-sha";
const DIRTY: &str = "x-artifact-dirty-hash";
/// Largest JSON body of the batch and events calls.
const MAX_JSON: usize = 1024 * 1024;
/// Most hashes one batch query may ask about.
const MAX_BATCH: usize = 1000;

/// The build-cache routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v8/artifacts/status", get(status))
        .route("/v8/artifacts/events", post(events))
        .route("/v8/artifacts", post(batch))
        .route(
            "/v8/artifacts/{hash}",
            get(get_artifact).head(head_artifact).put(put_artifact),
        )
        .route("/admin/build/artifacts", get(list))
}

type Params = Query<HashMap<String, String>>;

/// The team a request is for: `teamId`, else `slug`.
fn team_of(params: &HashMap<String, String>) -> Result<String, TurboError> {
    let team = params
        .get("teamId")
        .or_else(|| params.get("slug"))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TurboError::bad_request("a team is required: ?teamId= or ?slug="))?;
    check_team(team)?;
    Ok(team.clone())
}

/// The caller and its team, if the caller may use that team.
fn checked(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(Arc<BuildFrontend>, Principal, String), TurboError> {
    let build = state.build.clone();
    let caller = auth::build_caller(state, headers)?;
    let team = team_of(params)?;
    if let Decision::Deny(why) = caller.may_use_team(&team) {
        return Err(TurboError::forbidden(why));
    }
    Ok((build, caller.principal, team))
}

async fn status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match auth::build_caller(&state, &headers) {
        Ok(_) => Json(json!({ "status": "enabled" })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The artifact headers an entry carries back to turbo.
fn artifact_headers(meta: &EntryMeta, out: &mut HeaderMap) {
    out.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // A team's (often a user's own) build output: never for a shared cache.
    out.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0"),
    );
    out.insert(CONTENT_LENGTH, HeaderValue::from(meta.size));
    let duration = meta
        .headers
        .get(DURATION)
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(0);
    out.insert(DURATION, HeaderValue::from(duration));
    for name in [TAG, SHA, DIRTY] {
        if let Some(v) = meta
            .headers
            .get(name)
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            out.insert(name, v);
        }
    }
}

fn duration_of(meta: &EntryMeta) -> u64 {
    meta.headers
        .get(DURATION)
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

async fn head_artifact(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, TurboError> {
    let (_, who, team) = checked(&state, &headers, &params)?;
    check_hash(&hash)?;
    let (kind, name) = artifact_name(&team, &hash)?;
    let store = state.store.scoped(&who).audited(&state.audit);
    let Some(meta) = store.resolve_head(&kind, &name).await? else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    let mut out = HeaderMap::new();
    artifact_headers(&meta, &mut out);
    Ok((StatusCode::OK, out).into_response())
}

async fn get_artifact(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, TurboError> {
    let (build, who, team) = checked(&state, &headers, &params)?;
    check_hash(&hash)?;
    let (kind, name) = artifact_name(&team, &hash)?;
    let store = state.store.scoped(&who).audited(&state.audit);
    let Some(hit) = store.resolve(&kind, &name).await? else {
        build.stats.miss();
        return Err(TurboError::not_found());
    };
    build.stats.hit(name.as_str(), duration_of(&hit.meta));
    let mut out = HeaderMap::new();
    artifact_headers(&hit.meta, &mut out);
    let body = match hit.body {
        Body::Bytes(b) => HttpBody::from(b),
        Body::Stream(s) => HttpBody::from_stream(s),
    };
    Ok((StatusCode::OK, out, body).into_response())
}

/// The metadata turbo sends with an upload, checked.
fn upload_headers(headers: &HeaderMap) -> Result<Headers, TurboError> {
    let text = |name: &str, max: usize| -> Result<Option<String>, TurboError> {
        let Some(v) = headers.get(name) else {
            return Ok(None);
        };
        let s = v
            .to_str()
            .map_err(|_| TurboError::bad_request(format!("{name} must be printable ASCII")))?;
        if s.len() > max {
            return Err(TurboError::bad_request(format!(
                "{name} is longer than {max} characters"
            )));
        }
        Ok(Some(s.to_owned()))
    };
    let mut out = Headers::new();
    let duration = match text(DURATION, 20)? {
        Some(d) => d.trim().parse::<u64>().map_err(|_| {
            TurboError::bad_request(format!("{DURATION} must be a whole number of milliseconds"))
        })?,
        None => 0,
    };
    out.insert(DURATION.into(), duration.to_string());
    for (name, max) in [(TAG, MAX_TAG), (SHA, 128), (DIRTY, 128)] {
        if let Some(v) = text(name, max)? {
            out.insert(name.into(), v);
        }
    }
    Ok(out)
}

async fn put_artifact(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    body: HttpBody,
) -> Result<Response, TurboError> {
    let (build, who, team) = checked(&state, &headers, &params)?;
    if who.read_only {
        upload::drain(body).await;
        return Err(TurboError::forbidden(
            "this token may only read from the cache",
        ));
    }
    let Some(scope) = write_scope(&who) else {
        return Err(TurboError::forbidden("anonymous callers cannot upload"));
    };
    check_hash(&hash)?;
    let limit = build.config.max_artifact_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        upload::drain(body).await;
        return Err(TurboError::too_large(limit));
    }
    let meta_headers = upload_headers(&headers)?;
    let (kind, name) = artifact_name(&team, &hash)?;
    let key = CacheKey::new(scope, kind, name);
    let url = format!("/v8/artifacts/{hash}");
    let store = state.store.scoped(&who).audited(&state.audit);
    // Immutable: the first upload of a hash stays; later ones are acknowledged unread.
    if store.head(&key).await?.is_some() {
        return Ok((StatusCode::OK, Json(json!({ "urls": [url] }))).into_response());
    }
    let opts = PutOptions {
        content_type: Some("application/octet-stream".into()),
        headers: meta_headers,
        // Across a fleet too: nodes racing on one hash all end up serving the first write.
        immutable: true,
        // Deterministic outputs: identical uploads by `k` users of a template are shared.
        shareable: true,
        ..Default::default()
    };
    let body = Body::Stream(upload::limited(body, limit));
    match store.put(&key, opts, body).await {
        Ok(_) => {}
        Err(e) if upload::over_limit(&e) => return Err(TurboError::too_large(limit)),
        Err(e) => return Err(e.into()),
    }
    build.stats.upload();
    Ok((StatusCode::ACCEPTED, Json(json!({ "urls": [url] }))).into_response())
}

async fn read_json(body: HttpBody) -> Result<Value, TurboError> {
    let bytes = axum::body::to_bytes(body, MAX_JSON).await.map_err(|_| {
        TurboError::bad_request(format!("the JSON body is larger than {MAX_JSON} bytes"))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| TurboError::bad_request(format!("the body is not valid JSON: {e}")))
}

async fn batch(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: HttpBody,
) -> Result<Json<Value>, TurboError> {
    let (_, who, team) = checked(&state, &headers, &params)?;
    let store = state.store.scoped(&who).audited(&state.audit);
    let body = read_json(body).await?;
    let hashes = body
        .get("hashes")
        .and_then(Value::as_array)
        .ok_or_else(|| TurboError::bad_request("expected {\"hashes\": [...]}"))?;
    if hashes.len() > MAX_BATCH {
        return Err(TurboError::bad_request(format!(
            "at most {MAX_BATCH} hashes per query"
        )));
    }
    let mut out = serde_json::Map::new();
    for h in hashes {
        let hash = h
            .as_str()
            .ok_or_else(|| TurboError::bad_request("hashes must be strings"))?;
        check_hash(hash)?;
        let (kind, name) = artifact_name(&team, hash)?;
        let found = store.resolve_head(&kind, &name).await?;
        let answer = match found {
            Some(meta) => {
                let mut v = json!({ "size": meta.size, "taskDurationMs": duration_of(&meta) });
                if let Some(tag) = meta.headers.get(TAG) {
                    v["tag"] = Value::String(tag.clone());
                }
                v
            }
            None => Value::Null,
        };
        out.insert(hash.to_owned(), answer);
    }
    Ok(Json(Value::Object(out)))
}

async fn events(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: HttpBody,
) -> Result<Json<Value>, TurboError> {
    let build = state.build.clone();
    let caller = auth::build_caller(&state, &headers)?;
    if params.contains_key("teamId") || params.contains_key("slug") {
        let team = team_of(&params)?;
        if let Decision::Deny(why) = caller.may_use_team(&team) {
            return Err(TurboError::forbidden(why));
        }
    }
    let body = read_json(body).await?;
    let list = body
        .as_array()
        .ok_or_else(|| TurboError::bad_request("expected a JSON array of events"))?;
    for e in list {
        let source = e.get("source").and_then(Value::as_str).unwrap_or("");
        let event = e.get("event").and_then(Value::as_str).unwrap_or("");
        let known = matches!(source, "LOCAL" | "REMOTE") && matches!(event, "HIT" | "MISS");
        if !known {
            return Err(TurboError::bad_request(
                "each event needs source LOCAL|REMOTE and event HIT|MISS",
            ));
        }
        build.stats.event(source, event);
    }
    Ok(Json(json!({})))
}

/// `GET /admin/build/artifacts?team=T&limit=N`: the seed's `BuildCacheEntry` per artifact,
/// in every scope (global, templates, users), each with its scope.
async fn list(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<Value>, TurboError> {
    let build = state.build.clone();
    // Every team's artifacts: for the operator only (a static build token, or an admin).
    if !auth::build_caller(&state, &headers)?.principal.is_admin() {
        return Err(TurboError::forbidden(
            "listing artifacts is for admins only",
        ));
    }
    let prefix = match params.get("team") {
        Some(t) => {
            check_team(t)?;
            format!("{t}~")
        }
        None => String::new(),
    };
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(1000)
        .min(100_000);
    let kind = Kind::new(KIND).map_err(|e| TurboError::bad_request(e.to_string()))?;
    let rows = state.store.list_all_scopes(&kind, &prefix, limit).await?;
    let artifacts: Vec<Value> = rows
        .into_iter()
        .filter_map(|(key, meta)| {
            let name = key.name().as_str();
            let (team, hash) = name.split_once('~')?;
            Some(json!({
                "scope": key.scope().to_string(),
                "team": team,
                "hash": hash,
                "size": meta.size,
                "created_ms": meta.created_ms,
                "duration_ms": duration_of(&meta),
                "hits": build.stats.hits_of(name),
                "signed": meta.headers.contains_key(TAG),
            }))
        })
        .collect();
    Ok(Json(json!({ "artifacts": artifacts })))
}
