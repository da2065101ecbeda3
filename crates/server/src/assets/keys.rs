//! Where a site's deploys live in the store, all in the global scope (a deployed site is
//! public): blobs per site, so one site's uploads tell nothing about another's.
//!
//! | key | holds |
//! | --- | --- |
//! | `global/asset-blob/<site>~<blake3 hex>` | one file's (or variant's) bytes |
//! | `global/asset-deploy/<site>~<n>` | deploy `n`'s [`Manifest`](super::manifest::Manifest) (JSON) |
//! | `global/asset-current/<site>` | the [`Pointer`](super::manifest::Pointer) (JSON), written last |

use tiercache_core::assets::SiteName;
use tiercache_core::{CacheKey, ContentHash, Kind, Name, Scope};

use crate::error::ApiError;

/// The kind of blob entries.
pub const BLOB_KIND: &str = "asset-blob";
/// The kind of manifests.
pub const DEPLOY_KIND: &str = "asset-deploy";
/// The kind of pointers.
pub const CURRENT_KIND: &str = "asset-current";

fn key(kind: &str, name: &str) -> Result<CacheKey, ApiError> {
    // Site names and hex hashes are within the name set, so this holds; still no panic.
    Ok(CacheKey::new(
        Scope::Global,
        Kind::new(kind)?,
        Name::new(name)?,
    ))
}

/// The blob of `hash` for `site`.
pub fn blob(site: &SiteName, hash: &ContentHash) -> Result<CacheKey, ApiError> {
    key(BLOB_KIND, &format!("{site}~{hash}"))
}

/// The manifest of deploy `n` of `site`.
pub fn deploy(site: &SiteName, n: u64) -> Result<CacheKey, ApiError> {
    key(DEPLOY_KIND, &format!("{site}~{n}"))
}

/// The site's pointer to its current deploy.
pub fn current(site: &SiteName) -> Result<CacheKey, ApiError> {
    key(CURRENT_KIND, site.as_str())
}

/// The deploy number of a manifest entry's name (`<site>~<n>`).
pub fn deploy_number(name: &str) -> Option<u64> {
    name.rsplit_once('~')?.1.parse().ok()
}
