//! What a purge asks for ([`PurgeRequest`]), the seam other parts of the server hand purges
//! through ([`PurgeSink`]), and the checks every request passes before it is recorded.
//!
//! The seam is shared with the assets front-end (which defines an identical copy): keep the
//! names and fields as they are.

use std::collections::HashSet;

/// Most URLs and tags (together) one request may carry.
pub const MAX_ITEMS: usize = 5_000;
/// Longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2_048;
/// Longest tag accepted, in bytes (Cloudflare's and Fastly's limit per tag).
pub const MAX_TAG_LEN: usize = 1_024;
/// Longest site name accepted.
pub const MAX_SITE_LEN: usize = 64;

/// One purge: URLs, tags, or everything of a site.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PurgeRequest {
    /// The site (as deployed) whose content is purged.
    pub site: String,
    /// Absolute URLs.
    pub urls: Vec<String>,
    /// Cache tags / surrogate keys.
    pub tags: Vec<String>,
    /// Purge everything of the site.
    pub everything: bool,
}

/// Where purges are handed over; the call returns once the purge is durably recorded (not
/// once it is delivered), or with the reason it was refused.
pub trait PurgeSink: Send + Sync {
    /// Records `request` for delivery to every configured provider.
    fn submit(&self, request: PurgeRequest) -> futures::future::BoxFuture<'_, Result<(), String>>;
}

/// Why a request cannot be recorded; each is a 4xx with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A malformed site name.
    #[error("site: {0}")]
    Site(String),
    /// A URL that is not an absolute http(s) URL a cache could hold.
    #[error("url {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// A tag no provider could carry.
    #[error("tag {tag:?}: {reason}")]
    Tag { tag: String, reason: String },
    /// More than [`MAX_ITEMS`] URLs and tags.
    #[error("too many items: {0} URLs and tags, at most {MAX_ITEMS} per request")]
    TooMany(usize),
    /// No URLs, no tags, not everything.
    #[error("nothing to purge: give URLs, tags, or everything")]
    Empty,
}

/// One URL of a request: a single URL, or a prefix (the URL ends with `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// Exactly this URL.
    Url(&'a str),
    /// Every URL starting with this (the `*` removed).
    Prefix(&'a str),
}

/// Whether `url` names one URL or, ending with `*`, a prefix.
pub fn target(url: &str) -> Target<'_> {
    match url.strip_suffix('*') {
        Some(prefix) => Target::Prefix(prefix),
        None => Target::Url(url),
    }
}

impl PurgeRequest {
    /// The request checked and cleaned: URLs and tags validated, duplicates dropped (first
    /// occurrence kept), and with `everything` the URLs and tags dropped (everything covers them).
    pub fn validated(mut self) -> Result<PurgeRequest, RequestError> {
        check_site(&self.site)?;
        let n = self.urls.len() + self.tags.len();
        if n > MAX_ITEMS {
            return Err(RequestError::TooMany(n));
        }
        for u in &self.urls {
            check_url(u)?;
        }
        for t in &self.tags {
            check_tag(t)?;
        }
        if self.everything {
            self.urls.clear();
            self.tags.clear();
        } else if n == 0 {
            return Err(RequestError::Empty);
        }
        dedup(&mut self.urls);
        dedup(&mut self.tags);
        Ok(self)
    }
}

fn dedup(items: &mut Vec<String>) {
    let mut seen = HashSet::new();
    items.retain(|i| seen.insert(i.clone()));
}

/// A site name: 1–64 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
pub fn check_site(site: &str) -> Result<(), RequestError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if site.is_empty() || site.len() > MAX_SITE_LEN {
        return Err(RequestError::Site(format!(
            "expected 1–{MAX_SITE_LEN} characters"
        )));
    }
    if site.starts_with('.') || !site.chars().all(ok_char) {
        return Err(RequestError::Site(format!(
            "{site:?} may hold only A-Z a-z 0-9 . _ - and may not start with ."
        )));
    }
    Ok(())
}

/// An absolute `http(s)` URL with a host, no credentials, no fragment, no whitespace or
/// control characters, at most [`MAX_URL_LEN`] bytes; a trailing `*` (a prefix) may not
/// follow a query string.
pub fn check_url(url: &str) -> Result<(), RequestError> {
    let bad = |reason: &str| RequestError::Url {
        url: url.chars().take(200).collect(),
        reason: reason.to_owned(),
    };
    if url.len() > MAX_URL_LEN {
        return Err(bad(&format!("longer than {MAX_URL_LEN} bytes")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters"));
    }
    let (whole, prefix) = match target(url) {
        Target::Url(u) => (u, false),
        Target::Prefix(p) => (p, true),
    };
    let parsed =
        reqwest::Url::parse(whole).map_err(|e| bad(&format!("not an absolute URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("may not carry credentials"));
    }
    if parsed.fragment().is_some() {
        return Err(bad("may not have a #fragment (it never reaches a cache)"));
    }
    if prefix && parsed.query().is_some() {
        return Err(bad("a prefix (ending with *) may not have a query string"));
    }
    Ok(())
}

/// A tag: 1–1024 bytes of printable ASCII without spaces or commas (the separators of
/// `Surrogate-Key` and `Cache-Tag` headers).
pub fn check_tag(tag: &str) -> Result<(), RequestError> {
    let bad = |reason: &str| RequestError::Tag {
        tag: tag.chars().take(100).collect(),
        reason: reason.to_owned(),
    };
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Err(bad(&format!("expected 1–{MAX_TAG_LEN} bytes")));
    }
    if !tag.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
        return Err(bad(
            "may hold only printable ASCII without spaces or commas",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(urls: &[&str], tags: &[&str]) -> PurgeRequest {
        PurgeRequest {
            site: "docs".into(),
            urls: urls.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            everything: false,
        }
    }

    #[test]
    fn good_requests_are_cleaned() {
        let r = req(
            &[
                "https://a.example/x",
                "https://a.example/x",
                "http://b.example/p/*",
            ],
            &["t1", "t1", "t2"],
        )
        .validated()
        .unwrap();
        assert_eq!(r.urls, ["https://a.example/x", "http://b.example/p/*"]);
        assert_eq!(r.tags, ["t1", "t2"]);
        let mut all = req(&["https://a.example/x"], &["t"]);
        all.everything = true;
        let all = all.validated().unwrap();
        assert!(all.urls.is_empty() && all.tags.is_empty() && all.everything);
    }

    #[test]
    fn bad_requests_say_why() {
        let e = |r: PurgeRequest| r.validated().unwrap_err().to_string();
        assert!(e(req(&[], &[])).contains("nothing to purge"));
        assert!(e(req(&["/relative"], &[])).contains("absolute"));
        assert!(e(req(&["ftp://a.example/x"], &[])).contains("http"));
        assert!(e(req(&["https://a.example/x y"], &[])).contains("whitespace"));
        assert!(e(req(&["https://u:p@a.example/x"], &[])).contains("credentials"));
        assert!(e(req(&["https://a.example/x#f"], &[])).contains("fragment"));
        assert!(e(req(&["https://a.example/x?q=1*"], &[])).contains("query"));
        assert!(e(req(&[], &["a b"])).contains("printable"));
        assert!(e(req(&[], &["a,b"])).contains("printable"));
        assert!(e(req(&[], &["é"])).contains("printable"));
        assert!(e(req(&[], &[&"x".repeat(1025)])).contains("1024"));
        let many: Vec<String> = (0..=MAX_ITEMS).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(e(req(&[], &refs)).contains("too many"));
        let mut r = req(&[], &["t"]);
        r.site = "../x".into();
        assert!(e(r).contains("site"));
    }
}
