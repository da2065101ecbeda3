//! A template's outputs on the server, through the object API: `PUT` and `GET` of
//! [`super::object_path`] with an optional Bearer token, bodies streamed from and to files
//! with a progress bar. Refusals are turned into messages that say what to do.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;

use super::args::ServerArgs;
use crate::build::remote::{self, Fetched};
use crate::http;

/// A server, a token and the template whose outputs are moved.
pub struct Outputs {
    url: String,
    name: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Outputs {
    /// Checks the server URL and the template name and builds the client.
    pub fn new(server: &ServerArgs, name: &str) -> anyhow::Result<Self> {
        tiercache_core::Scope::template(name)
            .map_err(|e| anyhow!("the template name {name:?} is not valid: {e}"))?;
        let base = http::server_base(&server.server)?;
        Ok(Outputs {
            url: format!("{base}{}", super::object_path(name)),
            name: name.to_owned(),
            token: server
                .token
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            client: remote::client(Duration::from_secs(10))?,
        })
    }

    /// The URL of the outputs, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// A refusal in words: what the status means for a template cache, then the server's message.
    fn explain(&self, status: reqwest::StatusCode, body: &[u8], writing: bool) -> String {
        let server = http::explain_status(status, body);
        let name = &self.name;
        match status.as_u16() {
            401 => {
                format!("{server} (the server requires a valid token: --token or TIERCACHE_TOKEN)")
            }
            403 if writing => format!(
                "{server} (this token may not write template/{name}: only a warmer token \
                 listing it, `tiercache token issue --role warmer --template {name}`, or an \
                 admin may)"
            ),
            422 => format!(
                "{server} (the server found sensitive content in the outputs and stored \
                 nothing; remove it from the shared build outputs)"
            ),
            413 => format!("{server} (the outputs are larger than the server accepts)"),
            _ => server,
        }
    }

    /// Uploads the archive at `path`, streamed; the entry replaces any earlier one.
    pub async fn put(&self, path: &Path) -> anyhow::Result<u64> {
        let req = self
            .auth(self.client.put(&self.url))
            .header(reqwest::header::CONTENT_TYPE, super::CONTENT_TYPE);
        let hint = format!(
            "may this token write template/{}, and is the archive within the server's size limit?",
            self.name
        );
        remote::upload(
            req,
            path,
            &format!("cannot store the outputs at {}", self.url),
            &hint,
            |status, body| self.explain(status, body, true),
        )
        .await
    }

    /// Downloads the archive into `dest` (streamed), or reports a miss: absent, or in a
    /// template the token does not list (the server answers both alike).
    pub async fn get(&self, dest: &Path) -> anyhow::Result<Fetched> {
        let req = self.auth(self.client.get(&self.url));
        remote::download(req, &self.url, dest, |status, body| {
            self.explain(status, body, false)
        })
        .await
    }
}
