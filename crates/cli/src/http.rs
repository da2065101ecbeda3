//! What the client-side commands (`stats`, `prewarm`) share: the server URL, one HTTP
//! client, and short, one-line explanations of failed requests.

use std::time::Duration;

use anyhow::bail;

/// Where the commands find the server unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

/// Checks a server URL and drops trailing slashes, so paths can be appended as they are.
pub fn server_base(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url.to_owned()),
        _ => bail!("server URL {url:?} must look like http://HOST:PORT"),
    }
}

/// The HTTP client: HTTPS through rustls (ring), a connect timeout, `timeout` per request,
/// and `Authorization: Bearer <token>` on every request when a token is given (auth on).
pub fn client_with_token(
    timeout: Duration,
    token: Option<&str>,
) -> anyhow::Result<reqwest::Client> {
    // One TLS provider per process; a second install (already done) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| anyhow::anyhow!("the token contains characters a header cannot hold"))?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    Ok(reqwest::Client::builder()
        .user_agent(concat!("tiercache/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .default_headers(headers)
        .build()?)
}

pub use tiercache_server::request_error::explain;

/// Sends `req` and reads its whole answer: the body of a success, else an error naming
/// `what` was asked and why it failed (connection, status and the server's message).
pub async fn send(req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<bytes::Bytes> {
    let fail = |why: String| anyhow::anyhow!("{what}: {why}");
    let resp = req.send().await.map_err(|e| fail(explain(&e)))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| fail(explain(&e)))?;
    if !status.is_success() {
        return Err(fail(explain_status(status, &bytes)));
    }
    Ok(bytes)
}

/// [`send`], with the answer parsed as JSON.
pub async fn send_json(
    req: reqwest::RequestBuilder,
    what: &str,
) -> anyhow::Result<serde_json::Value> {
    let bytes = send(req, what).await?;
    serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{what}: not a JSON answer: {e}"))
}

/// A non-success answer in one line: the status and the server's `{"error": ...}` message.
pub fn explain_status(status: reqwest::StatusCode, body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(body)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        });
    let message: String = message.chars().take(200).collect();
    if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked_and_trimmed() {
        assert_eq!(server_base("http://h:1/").unwrap(), "http://h:1");
        assert_eq!(
            server_base(" https://cache.example ").unwrap(),
            "https://cache.example"
        );
        assert!(server_base("127.0.0.1:7700").is_err());
        assert!(server_base("http://").is_err());
    }

    #[test]
    fn statuses_carry_the_servers_message() {
        let s = reqwest::StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(
            explain_status(s, br#"{"error":"origin down"}"#),
            "HTTP 503 Service Unavailable: origin down"
        );
        assert_eq!(explain_status(s, b""), "HTTP 503 Service Unavailable");
        assert_eq!(
            explain_status(s, b"<h1>bad\n gateway</h1>"),
            "HTTP 503 Service Unavailable: <h1>bad gateway</h1>"
        );
    }
}
