//! What L3 needs to know: where the bucket is, how long entries live, and how patient to be.

use std::fmt;
use std::time::Duration;

use super::error::L3Error;

/// S3 refuses multipart parts smaller than this (except the last one).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Settings of the L3 tier; `L3Config::new(bucket)` gives the defaults.
#[derive(Debug, Clone)]
pub struct L3Config {
    /// S3 endpoint URL (`http://127.0.0.1:9000`); `None` = AWS (or `AWS_ENDPOINT` from the env).
    pub endpoint: Option<String>,
    /// The bucket; it must exist already.
    pub bucket: String,
    /// The region requests are signed for.
    pub region: String,
    /// Every object lives under this path, so one bucket can host several caches.
    pub prefix: String,
    /// Path-style URLs (`endpoint/bucket/key`); with `false` and an endpoint, the endpoint
    /// must already name the bucket (virtual-hosted style).
    pub path_style: bool,
    /// Static credentials; `None` = `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
    /// `AWS_SESSION_TOKEN` from the environment, then the instance's metadata service.
    pub credentials: Option<L3Credentials>,
    /// How long an entry is served after it was written (on top of its own expiry).
    pub ttl: Duration,
    /// Kinds served a different time (site assets: a year).
    pub kind_ttl: std::collections::BTreeMap<String, Duration>,
    /// Bodies up to this size are read whole and verified before the first byte is served.
    pub inline_read_bytes: u64,
    /// Bodies larger than this are uploaded in multipart parts of this size.
    pub part_size: usize,
    /// Unreferenced blobs younger than this are kept: a put writes its blob before its entry.
    pub sweep_grace: Duration,
    /// Longest wait for the first response of a read; a slower S3 is a miss.
    pub first_byte_timeout: Duration,
    /// Longest wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response body once it started.
    pub idle_timeout: Duration,
    /// Longest whole request (a large blob streams within it).
    pub request_timeout: Duration,
    /// Retries of a failed request inside object_store (kept small: the circuit takes over).
    pub max_retries: usize,
    /// Total time object_store may spend retrying one request.
    pub retry_timeout: Duration,
    /// First wait after S3 fails before it is probed again; doubles up to `circuit_max_backoff`.
    pub circuit_initial_backoff: Duration,
    /// Longest wait between probes of a failing S3.
    pub circuit_max_backoff: Duration,
}

/// Credentials given in configuration rather than taken from the environment.
#[derive(Clone)]
pub struct L3Credentials {
    /// The access key id (not secret; shown in logs).
    pub access_key_id: String,
    /// The secret access key (never shown).
    pub secret_access_key: String,
    /// A session token for temporary credentials (never shown).
    pub session_token: Option<String>,
}

impl fmt::Debug for L3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("L3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl L3Config {
    /// The defaults for `bucket` on AWS; see [`L3Config::with_endpoint`] for other servers.
    pub fn new(bucket: impl Into<String>) -> Self {
        L3Config {
            endpoint: None,
            bucket: bucket.into(),
            region: "us-east-1".into(),
            prefix: "tiercache".into(),
            path_style: false,
            credentials: None,
            ttl: Duration::from_secs(30 * 24 * 3600),
            kind_ttl: tiercache_core::policy::asset_kind_ttls(),
            inline_read_bytes: 4 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            sweep_grace: Duration::from_secs(3600),
            first_byte_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(600),
            max_retries: 2,
            retry_timeout: Duration::from_secs(2),
            circuit_initial_backoff: Duration::from_secs(1),
            circuit_max_backoff: Duration::from_secs(30),
        }
    }

    /// Points at an S3-compatible server, with path-style URLs (what such servers expect).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self.path_style = true;
        self
    }

    /// Refuses settings S3 or the tier cannot work with, before any request is made.
    pub fn validate(&self) -> Result<(), L3Error> {
        let bad = |m: String| Err(L3Error::Config(m));
        if self.bucket.is_empty() {
            return bad("the bucket name is empty".into());
        }
        if self.part_size < MIN_PART_SIZE {
            return bad(format!(
                "part_size {} is below S3's minimum of {MIN_PART_SIZE} bytes",
                self.part_size
            ));
        }
        if let Some(ep) = &self.endpoint
            && !(ep.starts_with("http://") || ep.starts_with("https://"))
        {
            return bad(format!("endpoint {ep:?} is not an http:// or https:// URL"));
        }
        if self.ttl.is_zero() || self.kind_ttl.values().any(Duration::is_zero) {
            return bad("ttl must be positive".into());
        }
        if self.circuit_initial_backoff.is_zero()
            || self.circuit_max_backoff < self.circuit_initial_backoff
        {
            return bad("circuit backoffs must be positive and initial <= max".into());
        }
        Ok(())
    }
}
