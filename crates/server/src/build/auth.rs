//! Bearer tokens of the build cache, from configuration (`[build] tokens`,
//! `read_only_tokens`). Tokens are compared by hash, so lookups take the same time
//! whichever token (or prefix of one) is presented.

use std::collections::HashSet;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use tiercache_core::ContentHash;

use super::error::TurboError;

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// The configured tokens.
pub struct Tokens {
    read_write: HashSet<ContentHash>,
    read_only: HashSet<ContentHash>,
}

impl Tokens {
    /// Tokens from the two lists (blank entries ignored).
    pub fn new(read_write: &[String], read_only: &[String]) -> Self {
        let set = |v: &[String]| {
            v.iter()
                .map(|t| t.trim())
                .filter(|t| !t.is_empty())
                .map(|t| ContentHash::of(t.as_bytes()))
                .collect()
        };
        Tokens {
            read_write: set(read_write),
            read_only: set(read_only),
        }
    }

    /// Whether no token is configured (the cache is open to whoever can reach it).
    pub fn is_empty(&self) -> bool {
        self.read_write.is_empty() && self.read_only.is_empty()
    }

    /// What the request's `Authorization: Bearer` token allows: 401 without one, 403 for
    /// an unknown one.
    pub fn check(&self, headers: &HeaderMap) -> Result<Access, TurboError> {
        if self.is_empty() {
            return Ok(Access::ReadWrite);
        }
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                TurboError::unauthorized("an Authorization: Bearer token is required")
            })?;
        self.lookup(token)
            .ok_or_else(|| TurboError::forbidden("the token is not valid for this cache"))
    }

    /// What a presented token allows, if it is one of the configured tokens.
    pub fn lookup(&self, token: &str) -> Option<Access> {
        let h = ContentHash::of(token.trim().as_bytes());
        if self.read_write.contains(&h) {
            Some(Access::ReadWrite)
        } else if self.read_only.contains(&h) {
            Some(Access::ReadOnly)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(token).unwrap());
        h
    }

    #[test]
    fn tokens_decide_access() {
        let t = Tokens::new(&["rw".into()], &["ro".into(), " ".into()]);
        assert_eq!(t.check(&with("Bearer rw")).unwrap(), Access::ReadWrite);
        assert_eq!(t.check(&with("Bearer ro")).unwrap(), Access::ReadOnly);
        assert_eq!(t.check(&with("Bearer r")).unwrap_err().status.as_u16(), 403);
        assert_eq!(t.check(&with("Basic rw")).unwrap_err().status.as_u16(), 401);
        assert_eq!(t.check(&HeaderMap::new()).unwrap_err().status.as_u16(), 401);
        assert_eq!(t.check(&with("Bearer ")).unwrap_err().status.as_u16(), 401);
        let open = Tokens::new(&[], &[]);
        assert_eq!(open.check(&HeaderMap::new()).unwrap(), Access::ReadWrite);
    }
}
