//! How the npm front-end talks to its origin and how long it trusts what it fetched.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::HeaderValue;

/// Settings of the npm registry proxy.
#[derive(Debug, Clone)]
pub struct NpmConfig {
    /// The origin registry's URL (ends with `/`). Its default comes from the npm client's
    /// own configuration, read at start-up; it is never written in this repository.
    pub upstream: String,
    /// The proxy's public base (`https://cache.example/npm`), used in rewritten tarball URLs;
    /// without it they are built from `X-Forwarded-Proto`/`X-Forwarded-Host` or `Host`.
    pub public_url: Option<String>,
    /// How long a packument is served without asking the origin again.
    pub fresh_for: Duration,
    /// Retries after the first attempt, for failures npm itself would retry.
    pub retries: u32,
    /// Backoff: `min(retry_min * retry_factor^n, retry_max)`.
    pub retry_factor: u32,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Consecutive failures that open the circuit breaker, and how long it stays open.
    pub breaker_threshold: u32,
    pub breaker_open_for: Duration,
    pub connect_timeout: Duration,
    /// Longest silence while reading an origin response.
    pub read_timeout: Duration,
    /// Private scopes (`@acme`) and, optionally, their own upstream. Their packages are never
    /// stored in a shared scope; the client's Authorization is forwarded.
    pub private_scopes: BTreeMap<String, Option<String>>,
    /// With auth on, the credential tiercache itself sends to a private scope's upstream
    /// (clients send tiercache tokens, which never leave the server).
    pub scope_tokens: BTreeMap<String, UpstreamToken>,
    /// The shared secret of the registry's change hooks (`POST /hooks/npm`); none = off.
    pub hook_secret: Option<HookSecret>,
}

/// The npm hooks' shared secret: never printed.
#[derive(Clone)]
pub struct HookSecret(Vec<u8>);

impl HookSecret {
    /// A secret, if it is long enough to be one (16 bytes or more).
    pub fn new(secret: &str) -> Option<Self> {
        (secret.len() >= 16).then(|| HookSecret(secret.as_bytes().to_vec()))
    }

    /// The bytes, for the HMAC.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A registry credential: sent as `Authorization: Bearer`, never printed.
#[derive(Clone)]
pub struct UpstreamToken(HeaderValue);

impl UpstreamToken {
    /// A bearer credential, if `token` can be a header value.
    pub fn bearer(token: &str) -> Option<Self> {
        let mut v = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
        v.set_sensitive(true);
        Some(UpstreamToken(v))
    }
}

impl std::fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl NpmConfig {
    /// Defaults in the spirit of the seed's `.npmrc` (3 retries, factor 2), with delays short
    /// enough that a client waiting on us never times out.
    pub fn new(upstream: impl Into<String>) -> Self {
        let mut upstream = upstream.into();
        if !upstream.ends_with('/') {
            upstream.push('/');
        }
        NpmConfig {
            upstream,
            public_url: None,
            fresh_for: Duration::from_secs(300),
            retries: 3,
            retry_factor: 2,
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(4),
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            private_scopes: BTreeMap::new(),
            scope_tokens: BTreeMap::new(),
            hook_secret: None,
        }
    }

    /// The credential configured for private scope `scope`, if any.
    pub fn scope_token(&self, scope: Option<&str>) -> Option<HeaderValue> {
        scope
            .and_then(|s| self.scope_tokens.get(s))
            .map(|t| t.0.clone())
    }

    /// The upstream for packages of `scope`, and whether that scope is private.
    pub fn upstream_for(&self, scope: Option<&str>) -> (String, bool) {
        match scope.and_then(|s| self.private_scopes.get(s)) {
            Some(Some(url)) => (with_slash(url), true),
            Some(None) => (self.upstream.clone(), true),
            None => (self.upstream.clone(), false),
        }
    }
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}
