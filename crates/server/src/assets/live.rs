//! The deploy a site serves now, as the serving path wants it: parsed once, with every
//! file's response headers and blob keys made once (Cache-Control by the rules, ETags,
//! dates, tags). The front-end keeps it with the content hash of the site's pointer entry,
//! so it can never outlive an activation or rollback: every request reads the (small,
//! in-memory) pointer entry and reuses the view while its hash is unchanged (or, after
//! the pointer changed, while it still names the same deploy: manifests never change).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderValue;
use tiercache_core::assets::{Directives, RuleSet, SiteName};
use tiercache_core::{CacheKey, ContentHash};
use tiercache_store::TieredStore;

use super::headers;
use super::keys;
use super::manifest::{BlobRef, Encoding, FileEntry, Manifest, Pointer};
use super::purge_hook::{deploy_tag, site_tag};
use crate::error::ApiError;

/// One file of the live deploy, with its headers ready.
pub struct ServedFile {
    /// Where its identity bytes are.
    pub key: CacheKey,
    /// The file as the manifest has it.
    pub entry: FileEntry,
    /// What the rules decided for it.
    pub directives: Directives,
    /// `Cache-Control`.
    pub cache_control: HeaderValue,
    /// `CDN-Cache-Control`, where the edge's lifetime differs.
    pub cdn_cache_control: Option<HeaderValue>,
    /// `Content-Type`.
    pub content_type: HeaderValue,
    /// `Last-Modified`.
    pub last_modified: HeaderValue,
    /// The identity bytes' strong ETag.
    pub etag: HeaderValue,
    /// Stored variants, each with its blob's key and its own ETag.
    pub variants: Vec<(Encoding, BlobRef, CacheKey, HeaderValue)>,
    /// The encodings of `variants`.
    pub encodings: Vec<Encoding>,
}

/// A site's current deploy, ready to serve.
pub struct LiveDeploy {
    /// The deploy's number.
    pub deploy: u64,
    /// The manifest.
    pub manifest: Arc<Manifest>,
    /// Path → file.
    pub files: HashMap<String, ServedFile>,
    /// `Surrogate-Key`: `site:<s> deploy:<s>:<n>` (space-separated, Fastly).
    pub surrogate_key: HeaderValue,
    /// `Cache-Tag`: the same, comma-separated (Cloudflare).
    pub cache_tag: HeaderValue,
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

impl LiveDeploy {
    /// Renders deploy `manifest` of `site` for serving under `rules`.
    pub fn build(site: &SiteName, manifest: Manifest, rules: &RuleSet) -> Result<Self, ApiError> {
        let tags = [
            site_tag(site.as_str()),
            deploy_tag(site.as_str(), manifest.deploy),
        ];
        let files = manifest
            .files
            .iter()
            .map(|(path, entry)| {
                let directives = rules.decide(path);
                let variants = entry
                    .variants
                    .iter()
                    .map(|(e, b)| {
                        Ok((
                            *e,
                            *b,
                            keys::blob(site, &b.hash)?,
                            value(&headers::etag(&b.hash)),
                        ))
                    })
                    .collect::<Result<Vec<_>, ApiError>>()?;
                let served = ServedFile {
                    key: keys::blob(site, &entry.hash)?,
                    entry: entry.clone(),
                    cache_control: value(&directives.cache_control()),
                    cdn_cache_control: directives.cdn_cache_control().map(|s| value(&s)),
                    content_type: value(&entry.content_type),
                    last_modified: value(&headers::http_date(entry.modified_ms)),
                    etag: value(&headers::etag(&entry.hash)),
                    encodings: variants.iter().map(|v| v.0).collect(),
                    variants,
                    directives,
                };
                Ok((path.clone(), served))
            })
            .collect::<Result<HashMap<_, _>, ApiError>>()?;
        Ok(LiveDeploy {
            deploy: manifest.deploy,
            surrogate_key: value(&tags.join(" ")),
            cache_tag: value(&tags.join(",")),
            manifest: Arc::new(manifest),
            files,
        })
    }
}

/// Reads and parses a JSON entry; `None` if absent.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    store: &TieredStore,
    key: &tiercache_core::CacheKey,
) -> Result<Option<(ContentHash, T)>, ApiError> {
    let Some(hit) = store.get(key).await? else {
        return Ok(None);
    };
    let hash = hit.meta.hash;
    let bytes = hit.body.collect().await.map_err(|e| {
        tracing::error!(%key, error = %e, "reading a deploy record failed");
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the site's records could not be read; try again",
        )
    })?;
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        tracing::error!(%key, error = %e, "a deploy record does not parse");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the site's records are damaged",
        )
    })?;
    Ok(Some((hash, value)))
}

/// The site's pointer, and its entry's hash.
pub async fn pointer(
    store: &TieredStore,
    site: &SiteName,
) -> Result<Option<(ContentHash, Pointer)>, ApiError> {
    read_json(store, &keys::current(site)?).await
}

/// Deploy `n`'s manifest.
pub async fn manifest(
    store: &TieredStore,
    site: &SiteName,
    n: u64,
) -> Result<Option<Manifest>, ApiError> {
    Ok(read_json(store, &keys::deploy(site, n)?)
        .await?
        .map(|(_, m)| m))
}
