//! `GET /admin/audit?user=U&since=T&action=A&limit=N`: the audit log's records (admins only),
//! oldest first, as `{"records": [...]}`. `since` is milliseconds since the epoch, an RFC
//! 3339 time or a duration back from now (`1h`); `limit` (default 1000, at most 100000)
//! keeps the newest matching records.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tiercache_core::Principal;
use tiercache_store::audit::{AuditFilter, parse_since};
use tiercache_store::{Action, AuditError};

use crate::error::ApiError;
use crate::state::AppState;

/// Records a request may ask for at most.
pub const MAX_LIMIT: usize = 100_000;

/// The audit routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/audit", get(audit))
}

/// The query string, as given; validated into an [`AuditFilter`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub user: Option<String>,
    pub since: Option<String>,
    pub action: Option<String>,
    pub limit: Option<String>,
}

/// The caller, if it is an admin; the one place the admin check for this route lives.
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    crate::auth::admin(state, headers, "the audit log")
}

/// Validates the query string into a filter (a 400 with the reason otherwise).
pub fn filter(params: AuditParams, now_ms: u64) -> Result<AuditFilter, ApiError> {
    let bad = |e: AuditError| ApiError::bad_request(e.to_string());
    let mut f = AuditFilter::default();
    if let Some(u) = params.user {
        if u.is_empty() || u.len() > 128 {
            return Err(ApiError::bad_request(
                "user: expected a user id (or anonymous)",
            ));
        }
        f.user = Some(u);
    }
    if let Some(s) = params.since {
        f.since_ms = Some(parse_since(&s, now_ms).map_err(bad)?);
    }
    if let Some(a) = params.action {
        f.action = Some(a.parse::<Action>().map_err(bad)?);
    }
    if let Some(l) = params.limit {
        f.limit = match l.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit: expected a number from 1 to {MAX_LIMIT}"
                )));
            }
        };
    }
    Ok(f)
}

async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let Query(params) = params.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; the parameters are user, since, action and limit",
            e.body_text()
        ))
    })?;
    let filter = filter(params, tiercache_store::clock::now_ms())?;
    let records = state.audit.query(filter).await.map_err(|e| {
        tracing::error!(error = %e, "reading the audit log failed");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the audit log failed: {e}"),
        )
    })?;
    Ok(Json(json!({ "records": records })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(
        user: Option<&str>,
        since: Option<&str>,
        action: Option<&str>,
        limit: Option<&str>,
    ) -> AuditParams {
        AuditParams {
            user: user.map(String::from),
            since: since.map(String::from),
            action: action.map(String::from),
            limit: limit.map(String::from),
        }
    }

    #[test]
    fn the_query_string_is_validated_into_a_filter() {
        let now = 10_000_000;
        let f = filter(
            params(Some("alice"), Some("1h"), Some("READ"), Some("5")),
            now,
        )
        .unwrap();
        assert_eq!(f.user.as_deref(), Some("alice"));
        assert_eq!(f.since_ms, Some(now - 3_600_000));
        assert_eq!(f.action, Some(Action::Read));
        assert_eq!(f.limit, 5);
        assert_eq!(
            filter(AuditParams::default(), now).unwrap(),
            AuditFilter::default()
        );
        for (p, needle) in [
            (params(None, Some("soon"), None, None), "since"),
            (params(None, None, Some("steal"), None), "action"),
            (params(None, None, None, Some("0")), "limit"),
            (params(None, None, None, Some("x")), "limit"),
            (params(None, None, None, Some("100001")), "limit"),
            (params(Some(""), None, None, None), "user"),
        ] {
            let e = filter(p, now).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.message.contains(needle), "{}", e.message);
        }
    }
}
