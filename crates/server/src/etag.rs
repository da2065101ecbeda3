//! Validators: strong ETags from content hashes, and the conditional-request rules of RFC 9110.

use axum::http::HeaderMap;
use axum::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
use std::time::{Duration, UNIX_EPOCH};
use tiercache_core::EntryMeta;

/// The strong ETag of an entry: its content hash, quoted.
pub fn etag(meta: &EntryMeta) -> String {
    format!("\"{}\"", meta.hash)
}

/// The Last-Modified date of an entry (its creation), in HTTP date form.
pub fn last_modified(meta: &EntryMeta) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(meta.created_ms))
}

/// Whether the client's cached copy is current, so a 304 may answer. `If-None-Match` wins
/// over `If-Modified-Since` when both are sent; an unconditional request is never "not modified".
pub fn not_modified(headers: &HeaderMap, meta: &EntryMeta) -> bool {
    if let Some(inm) = headers.get(IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        let tag = etag(meta);
        return inm.split(',').map(str::trim).any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
        });
    }
    if let Some(ims) = headers.get(IF_MODIFIED_SINCE) {
        let Some(since) = ims
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok())
        else {
            return false;
        };
        let modified = UNIX_EPOCH + Duration::from_secs(meta.created_ms / 1000);
        return modified <= since;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use tiercache_core::{ContentHash, PutOptions};

    fn meta() -> EntryMeta {
        PutOptions::default().into_meta(1, ContentHash::of(b"x"), 1_700_000_000_123)
    }

    #[test]
    fn if_none_match() {
        let m = meta();
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, &m));
        h.insert(IF_NONE_MATCH, HeaderValue::from_str(&etag(&m)).unwrap());
        assert!(not_modified(&h, &m));
        let list = format!("\"abc\", W/{}", etag(&m));
        h.insert(IF_NONE_MATCH, HeaderValue::from_str(&list).unwrap());
        assert!(not_modified(&h, &m));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!not_modified(&h, &m));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&h, &m));
    }

    #[test]
    fn if_modified_since() {
        let m = meta();
        let mut h = HeaderMap::new();
        h.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_str(&last_modified(&m)).unwrap(),
        );
        assert!(not_modified(&h, &m));
        h.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_static("Mon, 01 Jan 2001 00:00:00 GMT"),
        );
        assert!(!not_modified(&h, &m));
        h.insert(IF_MODIFIED_SINCE, HeaderValue::from_static("garbage"));
        assert!(!not_modified(&h, &m));
    }
}
