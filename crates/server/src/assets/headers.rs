//! Header values of served assets: strong ETags from content hashes, HTTP dates, and the
//! conditional-request checks (RFC 9110 §13) against one representation.

use std::time::{Duration, UNIX_EPOCH};

use axum::http::HeaderMap;
use axum::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE};
use tiercache_core::ContentHash;

/// The strong ETag of bytes with this hash.
pub fn etag(hash: &ContentHash) -> String {
    format!("\"{hash}\"")
}

/// An HTTP date for milliseconds since the epoch.
pub fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the client's copy (`If-None-Match`, else `If-Modified-Since`) is the
/// representation with `tag` modified at `modified_ms`, so a 304 answers.
pub fn not_modified(headers: &HeaderMap, tag: &str, modified_ms: u64) -> bool {
    if let Some(inm) = headers.get(IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        return inm
            .split(',')
            .map(str::trim)
            .any(|c| c == "*" || c.strip_prefix("W/").unwrap_or(c) == tag);
    }
    let Some(since) =
        header(headers, IF_MODIFIED_SINCE).and_then(|s| httpdate::parse_http_date(s).ok())
    else {
        return false;
    };
    UNIX_EPOCH + Duration::from_secs(modified_ms / 1000) <= since
}

/// Whether a `Range` may be honoured under `If-Range` (absent, or naming this
/// representation by its strong ETag or exact date).
pub fn if_range_holds(headers: &HeaderMap, tag: &str, last_modified: &str) -> bool {
    match header(headers, IF_RANGE) {
        None => true,
        Some(v) => {
            let v = v.trim();
            if v.starts_with('"') {
                v == tag
            } else {
                v == last_modified
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn conditionals() {
        let h = ContentHash::of(b"x");
        let tag = etag(&h);
        let mut m = HeaderMap::new();
        assert!(!not_modified(&m, &tag, 1_700_000_000_000));
        m.insert(IF_NONE_MATCH, HeaderValue::from_str(&tag).unwrap());
        assert!(not_modified(&m, &tag, 0));
        m.insert(IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!not_modified(&m, &tag, 0));
        let mut m = HeaderMap::new();
        m.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_str(&http_date(1_700_000_000_999)).unwrap(),
        );
        assert!(not_modified(&m, &tag, 1_700_000_000_999));
        assert!(!not_modified(&m, &tag, 1_700_000_999_000));
        let mut m = HeaderMap::new();
        assert!(if_range_holds(&m, &tag, "d"));
        m.insert(IF_RANGE, HeaderValue::from_str(&tag).unwrap());
        assert!(if_range_holds(&m, &tag, "d"));
        m.insert(IF_RANGE, HeaderValue::from_static("\"old\""));
        assert!(!if_range_holds(&m, &tag, "d"));
    }
}
