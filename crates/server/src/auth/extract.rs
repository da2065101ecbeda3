//! From a request's headers to who is calling.
//!
//! | mode | `Authorization` | result |
//! | --- | --- | --- |
//! | single-user (no secret) | anything or nothing | the local admin |
//! | auth on | none | anonymous (global reads only) if anonymous reads are on, else 401 |
//! | auth on | `Bearer <valid jwt>` | the token's principal and teams |
//! | auth on | `Bearer <bad, forged, expired jwt>`, another scheme | 401 with the reason |
//!
//! The build cache ([`Auth::build_caller`]) also accepts its static tokens: with
//! `[build] tokens`/`read_only_tokens` configured, a bearer string that is not JWT-shaped
//! (or any bearer string when no secret is configured) is looked up there: known → an
//! admin-like caller for the build cache (read-only for a read-only token), unknown → 403;
//! no credentials without a secret → 401, exactly as before JWTs.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tiercache_core::{Decision, Principal, Role};

use super::Auth;
use super::claims::Claims;
use super::token::TokenError;
use crate::build::{Access, Tokens, TurboError};
use crate::error::ApiError;
use crate::state::AppState;

/// Which Turborepo teams a caller may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Teams {
    /// Every team: single-user mode, an admin token, a static build token.
    Any,
    /// Only these (a user's own team by default; none for an anonymous caller).
    Only(Vec<String>),
}

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// No secret is configured: every request is the local admin.
    SingleUser,
    /// No credentials, and anonymous reads are allowed.
    Anonymous,
    /// A signed token (JWT).
    Token,
    /// One of the build cache's static tokens (`[build] tokens`, `read_only_tokens`).
    BuildToken,
}

/// Who is calling: the principal the sharing rules decide on, plus its turbo teams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub teams: Teams,
    pub credential: Credential,
}

impl Caller {
    /// The single user of a server without a secret.
    pub fn single_user() -> Self {
        Caller {
            principal: Principal::local_admin(),
            teams: Teams::Any,
            credential: Credential::SingleUser,
        }
    }

    /// A caller without credentials: global reads, no team.
    pub fn anonymous() -> Self {
        Caller {
            principal: Principal::anonymous(),
            teams: Teams::Only(Vec::new()),
            credential: Credential::Anonymous,
        }
    }

    /// The caller a verified token describes.
    pub fn from_claims(claims: &Claims) -> Self {
        let principal = claims.principal();
        let teams = if principal.is_admin() {
            Teams::Any
        } else {
            Teams::Only(claims.allowed_teams())
        };
        Caller {
            principal,
            teams,
            credential: Credential::Token,
        }
    }

    /// A static build token: admin-like, for the build cache only.
    pub fn build_token(access: Access) -> Self {
        Caller {
            principal: Principal {
                user: None,
                templates: Vec::new(),
                role: Role::Admin,
                read_only: access == Access::ReadOnly,
            },
            teams: Teams::Any,
            credential: Credential::BuildToken,
        }
    }

    /// Whether the caller may use the turbo team `team` (reads; writes also need
    /// `!principal.read_only`).
    pub fn may_use_team(&self, team: &str) -> Decision {
        match &self.teams {
            Teams::Any => Decision::Allow,
            Teams::Only(list) if list.iter().any(|t| t == team) => Decision::Allow,
            Teams::Only(_) => Decision::Deny("the token does not allow this team"),
        }
    }
}

/// Why a request's credentials were refused. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: no credentials where they are required.
    #[error("credentials required: send Authorization: Bearer <token>")]
    Missing,
    /// 401: an `Authorization` header that is not `Bearer <token>`.
    #[error("only Authorization: Bearer <token> is accepted")]
    BadScheme,
    /// 401: a token that is not valid here.
    #[error("invalid token: {0}")]
    Invalid(TokenError),
    /// 403: a static build token that is not configured.
    #[error("the token is not valid for this cache")]
    UnknownBuildToken,
}

impl AuthError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::UnknownBuildToken => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl IntoResponse for AuthError {
    /// `{"error": "..."}` with the status, and `WWW-Authenticate: Bearer` on a 401.
    fn into_response(self) -> Response {
        let status = self.status();
        let mut res = ApiError::new(status, self.to_string()).into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tiercache\""),
            );
        }
        res
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

impl From<AuthError> for TurboError {
    fn from(e: AuthError) -> Self {
        if e.status() == StatusCode::FORBIDDEN {
            TurboError::forbidden(e.to_string())
        } else {
            TurboError::unauthorized(e.to_string())
        }
    }
}

/// The request's bearer token: `Ok(None)` without an `Authorization` header.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::BadScheme)?.trim();
    let (scheme, rest) = value
        .split_once(' ')
        .ok_or(if value.eq_ignore_ascii_case("bearer") {
            AuthError::Missing
        } else {
            AuthError::BadScheme
        })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::BadScheme);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(Some(token))
}

/// Whether a bearer string has a JWT's shape (three base64url segments, a signature),
/// as opposed to an opaque static token.
fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64url = |x: &str| {
        !x.is_empty()
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    b64url(h) && b64url(p) && b64url(s)
}

impl Auth {
    /// Who is calling, per the request's `Authorization` header (see the module's table).
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let Some(keys) = &self.keys else {
            return Ok(Caller::single_user());
        };
        match bearer(headers)? {
            None if self.anonymous_reads => Ok(Caller::anonymous()),
            None => Err(AuthError::Missing),
            Some(token) => match keys.verify(token) {
                Ok(claims) => Ok(Caller::from_claims(&claims)),
                Err(e) => {
                    tracing::debug!(reason = %e, "token refused");
                    Err(AuthError::Invalid(e))
                }
            },
        }
    }

    /// Who is calling the build cache: like [`Auth::caller`], plus its static tokens when
    /// any are configured (see the module's documentation).
    pub fn build_caller(&self, tokens: &Tokens, headers: &HeaderMap) -> Result<Caller, AuthError> {
        if !tokens.is_empty() {
            match bearer(headers) {
                Ok(Some(t)) if !(self.is_enabled() && looks_like_jwt(t)) => {
                    return tokens
                        .lookup(t)
                        .map(Caller::build_token)
                        .ok_or(AuthError::UnknownBuildToken);
                }
                Ok(None) | Err(_) if !self.is_enabled() => {
                    return Err(AuthError::Missing);
                }
                _ => {}
            }
        }
        self.caller(headers)
    }
}

/// Who is calling, for the object API and npm routes.
pub fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, AuthError> {
    state.auth.caller(headers)
}

/// The principal of a request, or the refusal as the object API's JSON error.
pub fn principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    Ok(state.auth.caller(headers)?.principal)
}

/// The principal of a request to an operator's endpoint (`what` names it): 401 without
/// valid credentials, 403 for anyone but an admin.
pub fn admin(state: &AppState, headers: &HeaderMap, what: &str) -> Result<Principal, ApiError> {
    let who = principal(state, headers)?;
    if who.is_admin() {
        Ok(who)
    } else if who.user.is_none() {
        Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            format!("{what} needs an admin token"),
        ))
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!("{what} is for admins only"),
        ))
    }
}

/// Who is calling the build cache (JWTs and the static build tokens), or the refusal in
/// turbo's error shape.
pub fn build_caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, TurboError> {
    Ok(state.auth.build_caller(&state.build.tokens, headers)?)
}

/// `caller: Caller` in a handler's arguments: refused requests answer 401 (JSON error,
/// `WWW-Authenticate: Bearer`) before the handler runs.
impl FromRequestParts<AppState> for Caller {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AuthError> {
        state.auth.caller(&parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{AuthConfig, AuthSecret};
    use super::*;

    const SECRET: &str = "a-secret-of-at-least-32-bytes-long!";

    fn auth(anonymous_reads: bool) -> Auth {
        Auth::new(&AuthConfig {
            secret: Some(AuthSecret::new(SECRET).unwrap()),
            anonymous_reads,
            leeway: Duration::ZERO,
        })
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn token(a: &Auth, f: impl FnOnce(&mut Claims)) -> String {
        let mut c = Claims::new("alice", Role::User, Duration::from_secs(600));
        f(&mut c);
        a.issue(&c).unwrap()
    }

    #[test]
    fn a_valid_token_is_its_principal_and_teams() {
        let a = auth(true);
        let t = token(&a, |c| c.templates = vec!["react-vite".into()]);
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let c = a.caller(&with(&format!("{scheme} {t}"))).unwrap();
            assert_eq!(c.credential, Credential::Token);
            assert_eq!(c.principal.user.as_deref(), Some("alice"));
            assert_eq!(c.principal.templates, vec!["react-vite".to_string()]);
            assert!(!c.principal.read_only);
            assert!(c.may_use_team("alice").allowed());
            assert!(!c.may_use_team("web").allowed());
        }
        let t = token(&a, |c| {
            c.teams = vec!["web".into()];
            c.ro = true;
        });
        let c = a.caller(&with(&format!("Bearer {t}"))).unwrap();
        assert!(c.principal.read_only);
        assert!(c.may_use_team("web").allowed() && !c.may_use_team("alice").allowed());
        let t = token(&a, |c| c.role = Role::Admin);
        let c = a.caller(&with(&format!("Bearer {t}"))).unwrap();
        assert!(c.principal.is_admin() && c.may_use_team("anything").allowed());
    }

    #[test]
    fn no_header_is_anonymous_or_401_per_config() {
        let c = auth(true).caller(&HeaderMap::new()).unwrap();
        assert_eq!(c, Caller::anonymous());
        assert!(
            !c.principal
                .may_write(&tiercache_core::Scope::Global)
                .allowed()
        );
        assert!(!c.may_use_team("web").allowed());
        let e = auth(false).caller(&HeaderMap::new()).unwrap_err();
        assert_eq!(e, AuthError::Missing);
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn bad_tokens_are_401_and_never_echoed() {
        let a = auth(true);
        let forged = Auth::new(&AuthConfig {
            secret: Some(AuthSecret::new("another-secret-of-at-least-32-bytes").unwrap()),
            ..AuthConfig::default()
        });
        let forged = token(&forged, |_| {});
        let cases = [
            format!("Bearer {forged}"),
            "Bearer not-a-jwt".to_string(),
            "Bearer a.b.c".to_string(),
            "Bearer ".to_string(),
            "Bearer".to_string(),
            "Basic YWxpY2U6cHc=".to_string(),
            "Token abc".to_string(),
        ];
        for h in &cases {
            let e = a.caller(&with(h)).unwrap_err();
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED, "{h}");
            let res = e.clone().into_response();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            assert!(res.headers().contains_key(WWW_AUTHENTICATE));
            let msg = e.to_string();
            let secret_part = h.split_whitespace().nth(1).unwrap_or("\u{0}");
            assert!(!msg.contains(secret_part), "{msg} echoes {h}");
        }
        assert_eq!(
            a.caller(&with(&format!("Bearer {forged}"))).unwrap_err(),
            AuthError::Invalid(TokenError::BadSignature)
        );
        // Anonymous reads do not turn a bad token into an anonymous caller.
        assert!(a.caller(&with("Bearer junk")).is_err());
    }

    #[test]
    fn single_user_mode_is_admin_whatever_is_sent() {
        let a = Auth::single_user();
        assert!(!a.is_enabled());
        for h in [HeaderMap::new(), with("Bearer junk"), with("Basic x")] {
            let c = a.caller(&h).unwrap();
            assert_eq!(c, Caller::single_user());
            assert!(c.principal.is_admin() && c.may_use_team("any").allowed());
        }
        assert_eq!(
            a.issue(&Claims::new("a", Role::User, Duration::from_secs(9)))
                .unwrap_err(),
            TokenError::NoSecret
        );
    }

    #[test]
    fn static_build_tokens_work_beside_jwts() {
        let tokens = Tokens::new(&["rw-token".into()], &["ro-token".into()]);
        // Without a secret: exactly the old behaviour.
        let single = Auth::single_user();
        let c = single
            .build_caller(&tokens, &with("Bearer rw-token"))
            .unwrap();
        assert_eq!(c.credential, Credential::BuildToken);
        assert!(c.principal.is_admin() && !c.principal.read_only);
        let c = single
            .build_caller(&tokens, &with("Bearer ro-token"))
            .unwrap();
        assert!(c.principal.read_only);
        let status = |r: Result<Caller, AuthError>| r.unwrap_err().status().as_u16();
        assert_eq!(status(single.build_caller(&tokens, &with("Bearer r"))), 403);
        assert_eq!(
            status(single.build_caller(&tokens, &with("Basic rw-token"))),
            401
        );
        assert_eq!(status(single.build_caller(&tokens, &HeaderMap::new())), 401);
        assert_eq!(status(single.build_caller(&tokens, &with("Bearer "))), 401);
        let open = Tokens::new(&[], &[]);
        assert_eq!(
            single.build_caller(&open, &HeaderMap::new()).unwrap(),
            Caller::single_user()
        );
        // With a secret: JWTs are verified, static tokens still looked up.
        let a = auth(true);
        let t = token(&a, |c| c.teams = vec!["web".into()]);
        let c = a
            .build_caller(&tokens, &with(&format!("Bearer {t}")))
            .unwrap();
        assert_eq!(c.credential, Credential::Token);
        assert!(c.may_use_team("web").allowed());
        let c = a.build_caller(&tokens, &with("Bearer rw-token")).unwrap();
        assert_eq!(c.credential, Credential::BuildToken);
        assert_eq!(status(a.build_caller(&tokens, &with("Bearer other"))), 403);
        assert_eq!(status(a.build_caller(&tokens, &with("Bearer x.y.z"))), 401);
        assert_eq!(
            a.build_caller(&tokens, &HeaderMap::new()).unwrap(),
            Caller::anonymous()
        );
        // No static tokens: a non-JWT bearer is an invalid token.
        assert_eq!(status(a.build_caller(&open, &with("Bearer rw-token"))), 401);
        // Errors convert to turbo's shape with the same status.
        let e: TurboError = AuthError::UnknownBuildToken.into();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let e: TurboError = AuthError::Missing.into();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(!looks_like_jwt("rw-token"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c="));
    }
}
