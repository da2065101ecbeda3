//! The deploy API of a tiercache server (`/assets-api/{site}/…`), as `tiercache deploy`
//! uses it: refusals are explained in one line (401/403: which token is needed; 422: which
//! file the server's secret screening refused, and why).

use std::time::Duration;

use anyhow::{anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tiercache_core::ContentHash;
use tiercache_core::assets::SiteName;

use super::site_dir::{LocalSite, Source};
use crate::http;

/// Uploads in flight at once.
const PARALLEL: usize = 4;

/// One site on one server.
pub struct SiteRemote {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// The one-line reason of a refused request.
fn refusal(status: reqwest::StatusCode, body: &[u8]) -> String {
    let detail = http::explain_status(status, body);
    match status.as_u16() {
        401 => {
            format!("{detail} (send an admin or global warmer token: --token or TIERCACHE_TOKEN)")
        }
        403 => format!("{detail} (deploying needs an admin token or a global warmer token)"),
        _ => detail,
    }
}

impl SiteRemote {
    /// The deploy API of `site` on `server`.
    pub fn new(server: &str, token: Option<&str>, site: &SiteName) -> anyhow::Result<Self> {
        let base = format!("{}/assets-api/{site}", http::server_base(server)?);
        Ok(SiteRemote {
            base,
            token: token
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            client: crate::build::remote::client(Duration::from_secs(10))?,
        })
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends `req` and reads a JSON answer; a non-success status is an error.
    async fn json(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<serde_json::Value> {
        let fail = |why: String| anyhow!("{what} failed: {why}");
        let resp = self
            .auth(req)
            .send()
            .await
            .map_err(|e| fail(http::explain(&e)))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| fail(http::explain(&e)))?;
        if !status.is_success() {
            return Err(fail(refusal(status, &body)));
        }
        serde_json::from_slice(&body).map_err(|e| fail(format!("the answer is not JSON: {e}")))
    }

    /// Posts the manifest; the answer names the deploy and the blobs the server lacks.
    pub async fn create(&self, manifest: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/deploys", self.base);
        self.json(
            &format!("creating a deploy at {url}"),
            self.client.post(&url).json(manifest),
        )
        .await
    }

    /// Makes deploy `n` live.
    pub async fn activate(&self, n: u64) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/deploys/{n}/activate", self.base);
        self.json(&format!("activating deploy {n}"), self.client.post(&url))
            .await
    }

    /// Makes the previous deploy live again.
    pub async fn rollback(&self) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/rollback", self.base);
        self.json("rolling back", self.client.post(&url)).await
    }

    /// Uploads one blob, counting its bytes on `bar` as they are sent.
    async fn upload(
        &self,
        site: &LocalSite,
        hash: ContentHash,
        bar: &ProgressBar,
    ) -> anyhow::Result<u64> {
        let Some((source, size)) = site.sources.get(&hash) else {
            bail!("the server asked for {hash}, which is not part of this site");
        };
        let body = match source {
            Source::Bytes(b) => {
                bar.inc(b.len() as u64);
                reqwest::Body::from(b.clone())
            }
            Source::File(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
                let bar = bar.clone();
                let stream = tokio_util::io::ReaderStream::new(file)
                    .inspect_ok(move |c| bar.inc(c.len() as u64));
                reqwest::Body::wrap_stream(stream)
            }
        };
        let url = format!("{}/blobs/{hash}", self.base);
        let names = site.paths_of(&hash).join(", ");
        let fail = |why: String| anyhow!("uploading {names} failed: {why}");
        let resp = self
            .auth(self.client.put(&url))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, *size)
            .body(body)
            .send()
            .await
            .map_err(|e| fail(http::explain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            if status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
                bail!(
                    "the server refused {names}: {} — it looks like a secret, and a deployed site is public",
                    http::explain_status(status, &body)
                );
            }
            return Err(fail(refusal(status, &body)));
        }
        Ok(*size)
    }

    /// Uploads the blobs named in `missing` (hex), a few at a time; returns the bytes sent.
    pub async fn upload_all(
        &self,
        site: &LocalSite,
        missing: &[String],
        show: bool,
    ) -> anyhow::Result<u64> {
        let hashes: Vec<ContentHash> = missing
            .iter()
            .map(|h| {
                h.parse()
                    .map_err(|_| anyhow!("the server named an invalid blob {h:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let total: u64 = hashes
            .iter()
            .filter_map(|h| site.sources.get(h).map(|(_, s)| *s))
            .sum();
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        let style = ProgressStyle::with_template(
            "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix("uploading");
        let results: Vec<anyhow::Result<u64>> = futures::stream::iter(hashes)
            .map(|h| self.upload(site, h, &bar))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        bar.finish_and_clear();
        let mut sent = 0;
        for r in results {
            sent += r?;
        }
        Ok(sent)
    }
}
