//! Plain HTTP purges to one or more cache nodes (Varnish, nginx): per node, `PURGE <path>`
//! with the URL's `Host` for each URL; a `BAN` carrying the tags in a header (e.g.
//! `X-Ban-Tags: t1,t2`, or `xkey-purge: t1 t2` with `tag_separator = " "`) per batch of
//! tags; a `BAN` with the URL's `Host` and the path in `prefix_header` for a prefix; and a
//! `BAN` with the site in `site_header` for everything. The node's VCL (or config)
//! decides what each means; a node answering 404 (nginx's cache_purge for a URL it does not
//! hold) counts as done.

use reqwest::Method;
use reqwest::header::{HOST, HeaderName, HeaderValue};

use super::Call;
use crate::cdn::request::{PurgeRequest, Target, target};

/// Tags per `BAN` unless configured.
pub const DEFAULT_MAX_TAGS_PER_CALL: usize = 100;

/// Cache nodes and how they take purges.
#[derive(Debug, Clone)]
pub struct HttpPurge {
    /// Base URLs of the nodes, e.g. `http://127.0.0.1:6081`.
    pub nodes: Vec<String>,
    /// The method for one URL (default `PURGE`).
    pub url_method: Method,
    /// The method for tags, prefixes and everything (default `BAN`).
    pub ban_method: Method,
    /// The header carrying tags (default `X-Ban-Tags`).
    pub tag_header: HeaderName,
    /// Between tags in that header (default `,`).
    pub tag_separator: String,
    /// Tags per request.
    pub max_tags_per_call: usize,
    /// The header carrying a prefix's path (default `X-Ban-Prefix`).
    pub prefix_header: HeaderName,
    /// The header carrying the site for everything (default `X-Ban-Site`).
    pub site_header: HeaderName,
}

impl HttpPurge {
    /// The calls, node by node.
    pub fn plan(&self, request: &PurgeRequest) -> Vec<Call> {
        let mut calls = Vec::new();
        for node in &self.nodes {
            if request.everything {
                if let Ok(site) = HeaderValue::from_str(&request.site) {
                    calls.push(
                        Call::new(self.ban_method.clone(), format!("{node}/"))
                            .header(self.site_header.clone(), site),
                    );
                }
                continue;
            }
            for u in &request.urls {
                let (whole, prefix) = match target(u) {
                    Target::Url(u) => (u, false),
                    Target::Prefix(p) => (p, true),
                };
                let Some((host, path)) = host_and_path(whole) else {
                    continue; // validated before it was recorded
                };
                let call = if prefix {
                    Call::new(self.ban_method.clone(), format!("{node}/"))
                        .header(self.prefix_header.clone(), path)
                } else {
                    Call::new(
                        self.url_method.clone(),
                        format!("{node}{}", path.to_str().unwrap_or("/")),
                    )
                };
                calls.push(call.header(HOST, host));
            }
            for chunk in request.tags.chunks(self.max_tags_per_call.max(1)) {
                if let Ok(tags) = HeaderValue::from_str(&chunk.join(&self.tag_separator)) {
                    calls.push(
                        Call::new(self.ban_method.clone(), format!("{node}/"))
                            .header(self.tag_header.clone(), tags),
                    );
                }
            }
        }
        calls
    }
}

/// The `Host` (with an explicit port) and the path with its query, as header values.
fn host_and_path(url: &str) -> Option<(HeaderValue, HeaderValue)> {
    let u = reqwest::Url::parse(url).ok()?;
    let mut host = u.host_str()?.to_owned();
    if let Some(p) = u.port() {
        host.push_str(&format!(":{p}"));
    }
    let mut path = u.path().to_owned();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    Some((
        HeaderValue::from_str(&host).ok()?,
        HeaderValue::from_str(&path).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varnish(nodes: &[&str]) -> HttpPurge {
        HttpPurge {
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            url_method: Method::from_bytes(b"PURGE").unwrap(),
            ban_method: Method::from_bytes(b"BAN").unwrap(),
            tag_header: HeaderName::from_static("x-ban-tags"),
            tag_separator: ",".into(),
            max_tags_per_call: 2,
            prefix_header: HeaderName::from_static("x-ban-prefix"),
            site_header: HeaderName::from_static("x-ban-site"),
        }
    }

    #[test]
    fn urls_go_to_every_node_with_their_host() {
        let request = PurgeRequest {
            site: "s".into(),
            urls: vec![
                "https://www.example.com:8443/a/b?v=1".into(),
                "http://www.example.com/docs/*".into(),
            ],
            tags: vec!["t1".into(), "t2".into(), "t3".into()],
            everything: false,
        };
        let calls = varnish(&["http://n1:6081", "http://n2:6081"]).plan(&request);
        assert_eq!(calls.len(), 8);
        let c = &calls[0];
        assert_eq!(
            (c.method.as_str(), c.url.as_str()),
            ("PURGE", "http://n1:6081/a/b?v=1")
        );
        assert_eq!(c.headers[HOST], "www.example.com:8443");
        assert_eq!(calls[1].method.as_str(), "BAN");
        assert_eq!(calls[1].headers["x-ban-prefix"], "/docs/");
        assert_eq!(calls[1].headers[HOST], "www.example.com");
        assert_eq!(calls[2].headers["x-ban-tags"], "t1,t2");
        assert_eq!(calls[3].headers["x-ban-tags"], "t3");
        assert_eq!(calls[4].url, "http://n2:6081/a/b?v=1");
        let all = varnish(&["http://n1:6081"]).plan(&PurgeRequest {
            site: "docs".into(),
            urls: vec![],
            tags: vec![],
            everything: true,
        });
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].headers["x-ban-site"], "docs");
    }
}
