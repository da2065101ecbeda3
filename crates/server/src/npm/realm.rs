//! Where a package's cache entries live and what credential fetches them: public packages in
//! the global scope, fetched anonymously; a private scope's packages in the requester's own
//! user scope, fetched with that scope's credential — so they are never shared.

use axum::http::HeaderValue;
use tiercache_core::Scope;

/// The scope a package is cached in and the credential its origin requests carry.
#[derive(Debug, Clone)]
pub struct Realm {
    /// The cache scope of every entry of the package.
    pub scope: Scope,
    /// The `Authorization` sent to the package's own upstream (and nowhere else).
    pub auth: Option<HeaderValue>,
}

impl Realm {
    /// Public packages: global, no credential.
    pub fn public() -> Self {
        Realm {
            scope: Scope::Global,
            auth: None,
        }
    }

    /// A private package cached for the owner of `scope`.
    pub fn private(scope: Scope, auth: Option<HeaderValue>) -> Self {
        Realm { scope, auth }
    }

    /// Whether entries are private to one user (never counted under their names in shared
    /// statistics, never `Cache-Control: public`).
    pub fn is_private(&self) -> bool {
        !matches!(self.scope, Scope::Global)
    }
}
