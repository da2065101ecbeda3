//! What is known about a stored entry besides its bytes, and what a writer may say about it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::hash::ContentHash;

/// A small map of opaque headers a front-end keeps with an entry (e.g. an artifact's signature tag).
pub type Headers = BTreeMap<String, String>;

/// Most headers one entry may carry.
pub const MAX_HEADERS: usize = 16;
/// Longest header name.
pub const MAX_HEADER_NAME: usize = 64;
/// Longest header value (a Turborepo signature tag is up to 600 characters).
pub const MAX_HEADER_VALUE: usize = 1024;
/// Most tags one entry may carry.
pub const MAX_TAGS: usize = 16;
/// Longest tag.
pub const MAX_TAG_LEN: usize = 128;
/// Longest content type.
pub const MAX_CONTENT_TYPE: usize = 256;

/// Metadata stored with every entry in every tier; the bytes themselves are named by `hash`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryMeta {
    /// Length of the body in bytes.
    pub size: u64,
    /// BLAKE3 of the body: verified on every read from disk.
    pub hash: ContentHash,
    /// When the entry was written, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When the writer wants the entry gone, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// The version epoch it was written under; entries of an older epoch are never served.
    #[serde(default)]
    pub epoch: u64,
    /// Labels for targeted invalidation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The media type to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Opaque headers a front-end keeps with the entry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: Headers,
    /// Written once: where nodes race to store the key, the first write is the one kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immutable: bool,
}

impl EntryMeta {
    /// Whether the writer's own expiry has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }
}

/// Why a writer's options were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("at most {MAX_TAGS} tags are allowed")]
    TooManyTags,
    #[error("a tag must be 1 to {MAX_TAG_LEN} characters of A-Z a-z 0-9 . _ - : / @")]
    BadTag,
    #[error("at most {MAX_HEADERS} headers are allowed")]
    TooManyHeaders,
    #[error("header names are 1 to {MAX_HEADER_NAME} characters of a-z 0-9 -")]
    BadHeaderName,
    #[error("header values are at most {MAX_HEADER_VALUE} printable ASCII characters")]
    BadHeaderValue,
    #[error("a content type is at most {MAX_CONTENT_TYPE} printable ASCII characters")]
    BadContentType,
}

/// What a writer says about an entry it stores.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// The media type to answer with.
    pub content_type: Option<String>,
    /// How long the entry may be served (on top of each tier's own TTL).
    pub ttl: Option<Duration>,
    /// Labels for targeted invalidation.
    pub tags: Vec<String>,
    /// Opaque headers kept with the entry.
    pub headers: Headers,
    /// The version epoch the entry belongs to.
    pub epoch: u64,
    /// If set, the body must hash to this or nothing is stored.
    pub expected_hash: Option<ContentHash>,
    /// The key is written once (a build artifact): the fleet keeps the first write.
    pub immutable: bool,
    /// Identical copies uploaded by `k` users of a template may be promoted to it (build
    /// artifacts: deterministic outputs, the same for everyone who builds the same inputs).
    pub shareable: bool,
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl PutOptions {
    /// Checks every bound, so nothing oversized or unprintable reaches an index or a header.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.tags.len() > MAX_TAGS {
            return Err(OptionsError::TooManyTags);
        }
        let tag_ok = |t: &String| {
            !t.is_empty()
                && t.len() <= MAX_TAG_LEN
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-:/@".contains(c))
        };
        if !self.tags.iter().all(tag_ok) {
            return Err(OptionsError::BadTag);
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(OptionsError::TooManyHeaders);
        }
        for (name, value) in &self.headers {
            let name_ok = !name.is_empty()
                && name.len() <= MAX_HEADER_NAME
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok {
                return Err(OptionsError::BadHeaderName);
            }
            if value.len() > MAX_HEADER_VALUE || !printable(value) {
                return Err(OptionsError::BadHeaderValue);
            }
        }
        if let Some(ct) = &self.content_type
            && (ct.is_empty() || ct.len() > MAX_CONTENT_TYPE || !printable(ct))
        {
            return Err(OptionsError::BadContentType);
        }
        Ok(())
    }

    /// The metadata of a body with this `size` and `hash`, written at `now_ms`.
    pub fn into_meta(self, size: u64, hash: ContentHash, now_ms: u64) -> EntryMeta {
        EntryMeta {
            size,
            hash,
            created_ms: now_ms,
            expires_ms: self
                .ttl
                .map(|t| now_ms.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))),
            epoch: self.epoch,
            tags: self.tags,
            content_type: self.content_type,
            headers: self.headers,
            immutable: self.immutable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_bounds() {
        assert!(PutOptions::default().validate().is_ok());
        let mut o = PutOptions {
            tags: vec!["site:docs".into(), "deploy/7".into()],
            ..Default::default()
        };
        o.headers.insert("x-artifact-tag".into(), "a".repeat(600));
        assert!(o.validate().is_ok());
        o.headers.insert("Bad Name".into(), "v".into());
        assert_eq!(o.validate(), Err(OptionsError::BadHeaderName));
        let o = PutOptions {
            tags: vec!["a\nb".into()],
            ..Default::default()
        };
        assert_eq!(o.validate(), Err(OptionsError::BadTag));
        let o = PutOptions {
            content_type: Some("text/html\r\nx: y".into()),
            ..Default::default()
        };
        assert_eq!(o.validate(), Err(OptionsError::BadContentType));
    }

    #[test]
    fn ttl_sets_expiry() {
        let o = PutOptions {
            ttl: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let m = o.into_meta(3, ContentHash::of(b"abc"), 1_000);
        assert_eq!(m.expires_ms, Some(11_000));
        assert!(!m.is_expired(10_999));
        assert!(m.is_expired(11_000));
    }
}
