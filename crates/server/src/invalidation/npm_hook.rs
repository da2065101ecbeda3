//! `POST /hooks/npm`: the npm registry's change notifications (npm hooks). A package event
//! becomes a `package-update`: the packument leaves every tier on every node, so the next
//! install sees the new version at once. The body must carry the registry's signature,
//! `x-npm-signature: sha256=<hex HMAC-SHA256 of the body>` with the shared secret
//! (`[npm] hook_secret_env`); anything else is refused before it is read as JSON.

use axum::Json;
use axum::Router;
use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use super::event::{Event, Plan};
use crate::error::ApiError;
use crate::state::AppState;

/// The signature header npm sends.
pub const SIGNATURE: &str = "x-npm-signature";
/// Largest hook body accepted.
const MAX_BODY: usize = 256 * 1024;

/// The hook route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/hooks/npm", post(hook))
}

/// The part of a hook payload we use.
#[derive(Debug, Deserialize)]
struct Payload {
    event: String,
    name: String,
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`; compared
/// in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &sig).is_ok()
}

async fn hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: HttpBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(secret) = state
        .npm
        .as_ref()
        .and_then(|n| n.config().hook_secret.clone())
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "npm hooks are not configured ([npm] hook_secret_env)",
        ));
    };
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::bad_request(format!("a hook body is at most {MAX_BODY} bytes")))?;
    let signature = headers
        .get(SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !verify(secret.expose(), &bytes, signature) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("{SIGNATURE} is missing or does not match the body"),
        ));
    }
    let payload: Payload = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("not an npm hook payload: {e}")))?;
    if !payload.event.starts_with("package:") {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "ignored": payload.event })),
        ));
    }
    let event = Event::PackageUpdate { name: payload.name };
    let Plan::Cache(inv) = event.plan().map_err(ApiError::bad_request)? else {
        return Err(ApiError::bad_request("not a package event"));
    };
    let out = state
        .store
        .publish(inv, false)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok((
        StatusCode::OK,
        Json(
            json!({ "event": "package-update", "removed": out.removed, "stream_id": out.stream_id }),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
        let body = br#"{"event":"package:publish","name":"left-pad"}"#;
        let good = format!(
            "sha256={}",
            hex::encode(ring::hmac::sign(&key, body).as_ref())
        );
        assert!(verify(b"s3cret", body, &good));
        assert!(!verify(b"other", body, &good));
        assert!(!verify(b"s3cret", b"{}", &good));
        for bad in ["", "sha256=", "sha256=zz", "md5=00", &good[7..]] {
            assert!(!verify(b"s3cret", body, bad), "{bad}");
        }
    }
}
