//! The origin registry client: bounded retries with exponential backoff on the failures
//! npm itself retries (5xx, 408, 429, connection errors, timeouts), behind a circuit breaker.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, ETAG, HeaderValue, IF_NONE_MATCH, LAST_MODIFIED};
use tracing::{debug, warn};

use super::breaker::Breaker;
use super::config::NpmConfig;

/// Largest packument accepted from the origin.
const MAX_PACKUMENT: usize = 128 * 1024 * 1024;

/// Why the origin could not give an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// Down, slow, failing or paused by the breaker: serve stale or 503.
    #[error("the origin registry is unavailable: {0}")]
    Unavailable(String),
    /// The origin refused the request (401, 403, other 4xx): passed on to the client.
    #[error("the origin registry answered {0}")]
    Rejected(StatusCode),
}

/// An upstream answer.
pub enum Fetched<T> {
    Found(T),
    NotModified,
    NotFound,
}

/// A packument body with its validators.
pub struct PackumentBody {
    pub bytes: Bytes,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The origin of every public package.
pub struct Upstream {
    client: reqwest::Client,
    breaker: Breaker,
    retries: u32,
    factor: u32,
    min_delay: Duration,
    max_delay: Duration,
}

impl Upstream {
    /// A client with the retry and breaker settings of `config`.
    pub fn new(config: &NpmConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .user_agent(concat!("tiercache/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Upstream {
            client,
            breaker: Breaker::new(config.breaker_threshold, config.breaker_open_for),
            retries: config.retries,
            factor: config.retry_factor.max(1),
            min_delay: config.retry_min,
            max_delay: config.retry_max,
        })
    }

    /// Whether the breaker is refusing requests now.
    pub fn is_open(&self) -> bool {
        self.breaker.is_open()
    }

    fn delay(&self, attempt: u32) -> Duration {
        let factor = self.factor.saturating_pow(attempt);
        self.min_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// GET `url` with retries; 2xx and 304 and 404 are answers, anything retryable is retried.
    async fn send(
        &self,
        url: &str,
        accept: Option<&'static str>,
        etag: Option<&str>,
        auth: Option<&HeaderValue>,
    ) -> Result<Fetched<reqwest::Response>, UpstreamError> {
        // One permit per request, not per attempt: a package the origin keeps failing costs
        // the breaker one failure, so it cannot pause every other package on its own.
        let permit = self
            .breaker
            .allow()
            .map_err(|e| UpstreamError::Unavailable(e.to_string()))?;
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(self.delay(attempt - 1)).await;
            }
            let mut req = self.client.get(url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(e) = etag {
                req = req.header(IF_NONE_MATCH, e);
            }
            if let Some(a) = auth {
                req = req.header(AUTHORIZATION, a.clone());
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_server_error()
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status == StatusCode::TOO_MANY_REQUESTS
                    {
                        last = format!("{url} answered {status}");
                        debug!(attempt, %status, url, "origin failure, retrying");
                        continue;
                    }
                    permit.success();
                    return match status {
                        StatusCode::NOT_MODIFIED => Ok(Fetched::NotModified),
                        StatusCode::NOT_FOUND => Ok(Fetched::NotFound),
                        s if s.is_success() => Ok(Fetched::Found(resp)),
                        s => Err(UpstreamError::Rejected(s)),
                    };
                }
                Err(e) => {
                    last = format!("{url}: {e}");
                    debug!(attempt, error = %e, url, "origin unreachable, retrying");
                }
            }
        }
        permit.failure();
        warn!(error = %last, "origin failed after {} attempts", self.retries + 1);
        Err(UpstreamError::Unavailable(last))
    }

    /// The full packument at `url`, conditional on `etag`.
    pub async fn packument(
        &self,
        url: &str,
        etag: Option<&str>,
        auth: Option<&HeaderValue>,
    ) -> Result<Fetched<PackumentBody>, UpstreamError> {
        let resp = match self.send(url, Some("application/json"), etag, auth).await? {
            Fetched::Found(r) => r,
            Fetched::NotModified => return Ok(Fetched::NotModified),
            Fetched::NotFound => return Ok(Fetched::NotFound),
        };
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| UpstreamError::Unavailable(format!("reading {url}: {e}")))?;
            if body.len() + chunk.len() > MAX_PACKUMENT {
                return Err(UpstreamError::Unavailable(format!(
                    "{url} is larger than {MAX_PACKUMENT} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Found(PackumentBody {
            bytes: Bytes::from(body),
            etag,
            last_modified,
        }))
    }

    /// The tarball at `url`, as a response to stream.
    pub async fn tarball(
        &self,
        url: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Fetched<reqwest::Response>, UpstreamError> {
        self.send(url, None, None, auth).await
    }
}
