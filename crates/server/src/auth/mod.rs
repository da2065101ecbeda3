//! Who is asking: signed tokens (JWT, HS256, the server's secret) turned into a
//! [`Principal`](tiercache_core::Principal) the sharing rules decide on.
//!
//! Two modes, chosen by whether a secret is configured:
//! - **auth on**: a request's `Authorization: Bearer <jwt>` (npm/pnpm send `_authToken`
//!   this way, turbo its `--token`, curl `-H`) is verified; no header means anonymous
//!   (global reads only) if anonymous reads are enabled, else 401; a malformed, forged or
//!   expired token is 401 with the reason (never the token);
//! - **single-user** (no secret): every request is [`Principal::local_admin`]
//!   (`tiercache serve` refuses non-loopback addresses in this mode unless told otherwise).
//!
//! The build cache's static tokens (`[build] tokens`, `read_only_tokens`) keep working
//! beside JWTs: see [`Auth::build_caller`].
//!
//! [`Principal::local_admin`]: tiercache_core::Principal::local_admin

pub mod claims;
pub mod extract;
pub mod token;

use std::time::Duration;

pub use claims::Claims;
pub use extract::{AuthError, Caller, Credential, Teams, admin, build_caller, caller, principal};
pub use token::{AuthSecret, MIN_SECRET_BYTES, SecretError, TokenError, TokenKeys};

/// Default allowance for clocks that disagree when checking `exp`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Settings of authentication.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The signing secret; `None` runs the server single-user (every request is admin).
    pub secret: Option<AuthSecret>,
    /// Whether requests without credentials may read the global scope (default true).
    pub anonymous_reads: bool,
    /// Allowance for clock skew when checking expiry.
    pub leeway: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secret: None,
            anonymous_reads: true,
            leeway: DEFAULT_LEEWAY,
        }
    }
}

/// Authentication as the server runs it; one per server, in `AppState`.
#[derive(Debug)]
pub struct Auth {
    keys: Option<TokenKeys>,
    anonymous_reads: bool,
}

impl Auth {
    /// Authentication per `config`.
    pub fn new(config: &AuthConfig) -> Self {
        Auth {
            keys: config
                .secret
                .as_ref()
                .map(|s| TokenKeys::new(s, config.leeway)),
            anonymous_reads: config.anonymous_reads,
        }
    }

    /// No secret: every request is the local admin.
    pub fn single_user() -> Self {
        Auth::new(&AuthConfig::default())
    }

    /// Whether tokens are checked (a secret is configured).
    pub fn is_enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// Whether requests without credentials may read global (meaningful with auth on).
    pub fn anonymous_reads(&self) -> bool {
        self.anonymous_reads
    }

    /// The keys, with auth on.
    pub fn keys(&self) -> Option<&TokenKeys> {
        self.keys.as_ref()
    }

    /// Signs `claims`; fails without a secret.
    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        match &self.keys {
            Some(k) => k.issue(claims),
            None => Err(TokenError::NoSecret),
        }
    }

    /// The claims of a valid token; fails without a secret.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match &self.keys {
            Some(k) => k.verify(token),
            None => Err(TokenError::NoSecret),
        }
    }
}
