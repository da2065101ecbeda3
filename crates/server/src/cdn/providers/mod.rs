//! The purge providers: each turns a [`PurgeRequest`] into the HTTP calls its API wants
//! ([`Call`]s, batched to its limits) and judges the answers ([`Ack`]).
//!
//! A plan is a pure function of the request and the provider's settings, so a job that
//! stopped half-way (some calls acknowledged) resumes at the first unacknowledged call.

pub mod cloudflare;
pub mod fastly;
pub mod http_purge;
pub mod webhook;

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use super::request::PurgeRequest;
use super::secret::Secret;

pub use cloudflare::Cloudflare;
pub use fastly::Fastly;
pub use http_purge::HttpPurge;
pub use webhook::Webhook;

/// One HTTP request of a plan. `Debug` hides credentials (sensitive header values).
#[derive(Debug, Clone)]
pub struct Call {
    /// `POST`, `PURGE`, `BAN`, ...
    pub method: Method,
    /// The absolute URL.
    pub url: String,
    /// Headers, credentials marked sensitive.
    pub headers: HeaderMap,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
}

impl Call {
    /// A call without headers or body.
    pub fn new(method: Method, url: String) -> Call {
        Call {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Call {
        self.headers.append(name, value);
        self
    }

    /// Sets a JSON body (and its content type).
    pub fn json(mut self, body: &serde_json::Value) -> Call {
        self.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.body = Some(body.to_string().into_bytes());
        self
    }

    /// `METHOD scheme://host/path` (no query), for errors and logs.
    pub fn describe(&self) -> String {
        let target = self.url.split(['?', '#']).next().unwrap_or("");
        format!("{} {target}", self.method)
    }
}

/// How a provider answered one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Acknowledged: this call is done.
    Done,
    /// Worth trying again later (after `after`, if the provider said).
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Will never succeed as it is: the job is marked failed.
    Permanent(String),
}

/// A configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Cloudflare's zone purge API.
    Cloudflare(Cloudflare),
    /// Fastly's purge API.
    Fastly(Fastly),
    /// `PURGE`/`BAN` to cache nodes (Varnish, nginx).
    Http(HttpPurge),
    /// A JSON webhook.
    Webhook(Webhook),
}

impl Provider {
    /// The `kind` as written in the config file.
    pub fn kind(&self) -> &'static str {
        match self {
            Provider::Cloudflare(_) => "cloudflare",
            Provider::Fastly(_) => "fastly",
            Provider::Http(_) => "http",
            Provider::Webhook(_) => "webhook",
        }
    }

    /// Why this provider could never carry out `request` (checked before it is recorded).
    pub fn unsupported(&self, request: &PurgeRequest) -> Option<String> {
        match self {
            Provider::Fastly(f) => f.unsupported(request),
            _ => None,
        }
    }

    /// The calls that carry out `request` (`purge_id` names it to webhooks); an error if
    /// this provider cannot.
    pub fn plan(&self, purge_id: &str, request: &PurgeRequest) -> Result<Vec<Call>, String> {
        match self {
            Provider::Cloudflare(c) => Ok(c.plan(request)),
            Provider::Fastly(f) => f.plan(request),
            Provider::Http(h) => Ok(h.plan(request)),
            Provider::Webhook(w) => w.plan(purge_id, request),
        }
    }

    /// Judges one answer.
    pub fn judge(&self, status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Ack {
        match self {
            Provider::Cloudflare(_) => cloudflare::judge(status, retry_after, body),
            Provider::Http(_) if status == StatusCode::NOT_FOUND => Ack::Done,
            _ => judge(status, retry_after, body),
        }
    }

    /// The credential errors must never show.
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Provider::Cloudflare(c) => Some(&c.token),
            Provider::Fastly(f) => Some(&f.token),
            Provider::Http(_) => None,
            Provider::Webhook(w) => w.secret.as_ref(),
        }
    }
}

/// The usual reading of a status: 2xx done; 408, 429 and 5xx retried; any other answer
/// (4xx, a redirect) permanent.
pub fn judge(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Ack {
    if status.is_success() {
        return Ack::Done;
    }
    let error = status_error(status, body);
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Ack::Retry {
            error,
            after: retry_after,
        }
    } else {
        Ack::Permanent(error)
    }
}

/// `HTTP 403 Forbidden: <first 300 bytes of the body, whitespace collapsed>`.
pub fn status_error(status: StatusCode, body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(&body[..body.len().min(300)])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}

/// A method from its name (`PURGE`, `BAN`, ...).
pub fn method(name: &str) -> Result<Method, String> {
    Method::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{name:?} is not an HTTP method"))
}

/// `base` without trailing slashes, checked to be an http(s) URL.
pub fn base_url(what: &str, base: &str) -> Result<String, String> {
    let b = base.trim().trim_end_matches('/');
    match reqwest::Url::parse(b) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(b.to_owned())
        }
        _ => Err(format!(
            "{what} {base:?} must be an http:// or https:// URL"
        )),
    }
}

/// An id that goes into a URL path (zone, service): 1–64 ASCII letters, digits, `-`, `_`.
pub fn path_id(what: &str, id: &str) -> Result<String, String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id.to_owned())
    } else {
        Err(format!(
            "{what} {id:?} must be 1–64 letters, digits, - or _"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_judged() {
        let s = |c: u16| judge(StatusCode::from_u16(c).unwrap(), None, b"nope\n  really");
        assert_eq!(s(200), Ack::Done);
        assert_eq!(s(204), Ack::Done);
        for c in [408, 429, 500, 502, 503] {
            assert!(matches!(s(c), Ack::Retry { .. }), "{c}");
        }
        for c in [301, 400, 401, 403, 404, 422] {
            assert!(matches!(s(c), Ack::Permanent(_)), "{c}");
        }
        assert_eq!(
            s(400),
            Ack::Permanent("HTTP 400 Bad Request: nope really".into())
        );
    }
}
