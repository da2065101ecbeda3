//! The build cache on a tiercache server, through its Turborepo v8 API:
//! `PUT`/`GET /v8/artifacts/{key}?slug=TEAM` with an optional Bearer token, and the
//! operator's listing `GET /admin/build/artifacts`. Bodies stream from and to files.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::AsyncWriteExt;

use super::args::RemoteArgs;
use crate::http;

/// Transfers at least this large get a progress bar (on a terminal).
const BAR_FROM: u64 = 8 * 1024 * 1024;

/// Checks an artifact key as the server will: 1 to 128 hex digits.
pub fn check_key(key: &str) -> anyhow::Result<()> {
    if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "the key {key:?} is not 1 to 128 hexadecimal digits (e.g. the output of `tiercache hash`)"
        );
    }
    Ok(())
}

/// Checks a team as the server will: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
pub fn check_team(team: &str) -> anyhow::Result<()> {
    let ok = !team.is_empty()
        && team.len() <= 64
        && !team.starts_with('.')
        && team
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!(
            "the team {team:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ - (not starting with .)"
        );
    }
    Ok(())
}

/// A server, a team and a token: what every artifact request needs.
pub struct Remote {
    base: String,
    team: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// The answer to a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The artifact, with its size.
    Hit(u64),
    /// The server has no artifact under that key (404).
    Miss,
}

/// An HTTP client that gives up on a silent server but not on a long transfer.
pub fn client(connect: Duration) -> anyhow::Result<reqwest::Client> {
    // One TLS provider per process; a second install (already done) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .user_agent(concat!("tiercache/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect)
        .read_timeout(Duration::from_secs(120))
        .build()?)
}

/// A byte progress bar, drawn only on a terminal and for large transfers.
fn bar(len: Option<u64>, verb: &str) -> ProgressBar {
    let show = std::io::stderr().is_terminal() && len.is_none_or(|l| l >= BAR_FROM);
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let b = ProgressBar::with_draw_target(len, target);
    let style = ProgressStyle::with_template(
        "{prefix:>11} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    b.set_style(style);
    b.set_prefix(verb.to_owned());
    b
}

impl Remote {
    /// Checks the flags and builds the client.
    pub fn new(args: &RemoteArgs) -> anyhow::Result<Self> {
        Self::with_connect_timeout(args, Duration::from_secs(10))
    }

    /// As [`Remote::new`], giving up connecting after `connect` (a build must not wait long
    /// for a cache that is down).
    pub fn with_connect_timeout(args: &RemoteArgs, connect: Duration) -> anyhow::Result<Self> {
        check_team(&args.team)?;
        Ok(Remote {
            base: http::server_base(&args.server)?,
            team: args.team.clone(),
            token: args
                .token
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            client: client(connect)?,
        })
    }

    /// The team artifacts go to.
    pub fn team(&self) -> &str {
        &self.team
    }

    fn url(&self, key: &str) -> String {
        format!("{}/v8/artifacts/{key}?slug={}", self.base, self.team)
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Whether the server already holds `key` (`HEAD`): asked before packing, so a stored
    /// artifact is not packed again and a refused token is reported as such (a server that
    /// refuses a `PUT` closes the connection mid-upload, which reads as a broken pipe).
    pub async fn exists(&self, key: &str) -> anyhow::Result<bool> {
        let url = self.url(key);
        let fail = |why: String| anyhow!("cannot use the build cache at {url}: {why}");
        let resp = self
            .auth(self.client.head(&url))
            .send()
            .await
            .map_err(|e| fail(http::explain(&e)))?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            reqwest::StatusCode::NOT_FOUND => Ok(false),
            reqwest::StatusCode::UNAUTHORIZED => Err(fail(
                "HTTP 401: the server requires a token (--token or TIERCACHE_TOKEN)".into(),
            )),
            reqwest::StatusCode::FORBIDDEN => Err(fail(
                "HTTP 403: the server does not accept this token".into(),
            )),
            s => Err(fail(http::explain_status(s, b""))),
        }
    }

    /// Uploads the file at `path` as the artifact `key`, streamed.
    pub async fn put(&self, key: &str, path: &Path, duration_ms: u64) -> anyhow::Result<()> {
        let url = self.url(key);
        let req = self
            .auth(self.client.put(&url))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header("x-artifact-duration", duration_ms);
        upload(
            req,
            path,
            &format!("cannot upload to {url}"),
            "is the artifact over its size limit, or the token read-only?",
            http::explain_status,
        )
        .await?;
        Ok(())
    }

    /// Downloads the artifact `key` into `dest` (streamed), or reports a miss.
    pub async fn get(&self, key: &str, dest: &Path) -> anyhow::Result<Fetched> {
        let url = self.url(key);
        download(
            self.auth(self.client.get(&url)),
            &url,
            dest,
            http::explain_status,
        )
        .await
    }
}

/// Sends `req` with the file at `path` as its body (streamed, with a progress bar); answers
/// the bytes sent. A connection the server cut mid-body is explained with `refused_hint`
/// (what usually makes a server stop reading); `explain` words a non-success status.
pub async fn upload(
    req: reqwest::RequestBuilder,
    path: &Path,
    what: &str,
    refused_hint: &str,
    explain: impl Fn(reqwest::StatusCode, &[u8]) -> String,
) -> anyhow::Result<u64> {
    let fail = |why: String| anyhow!("{what}: {why}");
    let (body, len, progress) = file_body(path).await?;
    let result = req
        .header(reqwest::header::CONTENT_LENGTH, len)
        .body(body)
        .send()
        .await;
    progress.finish_and_clear();
    let resp = result.map_err(|e| {
        let why = http::explain(&e);
        if why.contains("Broken pipe") || why.contains("reset") {
            fail(format!(
                "{why} (the server stopped reading: {refused_hint})"
            ))
        } else {
            fail(why)
        }
    })?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.bytes().await.unwrap_or_default();
        return Err(fail(explain(status, &body)));
    }
    Ok(len)
}

/// Sends `req` (a GET of `url`) and streams a success into `dest`; a 404 is a miss, any
/// other failure an error (`explain` words a non-success status and its body).
pub async fn download(
    req: reqwest::RequestBuilder,
    url: &str,
    dest: &Path,
    explain: impl Fn(reqwest::StatusCode, &[u8]) -> String,
) -> anyhow::Result<Fetched> {
    let fail = |why: String| anyhow!("cannot download {url}: {why}");
    let resp = req.send().await.map_err(|e| fail(http::explain(&e)))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(Fetched::Miss);
    }
    if !status.is_success() {
        let body = resp.bytes().await.unwrap_or_default();
        return Err(fail(explain(status, &body)));
    }
    let seen = body_to_file(resp, dest)
        .await
        .with_context(|| format!("cannot download {url}"))?;
    Ok(Fetched::Hit(seen))
}

/// The file at `path` as a streamed request body that advances a byte progress bar; with
/// its length (for `Content-Length`) and the bar (to clear once the request is answered).
async fn file_body(path: &Path) -> anyhow::Result<(reqwest::Body, u64, ProgressBar)> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata().await?.len();
    let progress = bar(Some(len), "uploading");
    let counted = progress.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
        if let Ok(c) = &chunk {
            counted.inc(c.len() as u64);
        }
        chunk
    });
    Ok((reqwest::Body::wrap_stream(stream), len, progress))
}

/// Streams a successful response's body into a new file `dest` with a byte progress bar;
/// returns the bytes written, or an error if the body ends short of its `Content-Length`.
pub async fn body_to_file(resp: reqwest::Response, dest: &Path) -> anyhow::Result<u64> {
    let declared = resp.content_length();
    let progress = bar(declared, "downloading");
    let mut out = tokio::fs::File::create(dest)
        .await
        .with_context(|| format!("creating {}", dest.display()))?;
    let mut body = resp.bytes_stream();
    let mut seen = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| anyhow!(http::explain(&e)))?;
        out.write_all(&chunk)
            .await
            .with_context(|| format!("writing {}", dest.display()))?;
        seen += chunk.len() as u64;
        progress.inc(chunk.len() as u64);
    }
    out.flush().await?;
    progress.finish_and_clear();
    if let Some(d) = declared.filter(|d| *d != seen) {
        bail!("the body ended after {seen} of {d} bytes");
    }
    Ok(seen)
}

/// `GET /admin/build/artifacts[?team=T]`: the server's JSON listing.
pub async fn list(
    server: &str,
    team: Option<&str>,
    token: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    let base = http::server_base(server)?;
    let mut url = format!("{base}/admin/build/artifacts");
    if let Some(t) = team {
        check_team(t)?;
        url.push_str(&format!("?team={t}"));
    }
    let mut req = client(Duration::from_secs(10))?.get(&url);
    if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
        req = req.bearer_auth(t);
    }
    let what = format!("cannot list artifacts from {url}");
    Ok(http::send(req, &what).await?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_teams_are_checked_before_any_request() {
        assert!(check_key("0123456789abcdefABCDEF").is_ok());
        assert!(check_key(&"a".repeat(128)).is_ok());
        for bad in ["", "xyz", "../x", "ab cd", &"a".repeat(129)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_team("team_abc").is_ok());
        for bad in ["", ".x", "a/b", "a&slug=b"] {
            assert!(check_team(bad).is_err(), "{bad:?}");
        }
    }
}
