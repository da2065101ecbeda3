//! A JSON webhook: `POST <url>` with the [`PurgeRequest`] as JSON, its id in
//! `X-Tiercache-Purge-Id`, and with a shared secret `<signature_header>: sha256=<hex>`, the
//! HMAC-SHA256 of the exact body bytes.

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};

use super::Call;
use crate::cdn::request::PurgeRequest;
use crate::cdn::secret::Secret;

/// The signature header unless configured.
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-tiercache-signature";

/// A webhook endpoint.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Where the JSON is posted.
    pub url: String,
    /// Signs the body when set.
    pub secret: Option<Secret>,
    /// The header carrying the signature.
    pub signature_header: HeaderName,
}

impl Webhook {
    /// One call: the request as JSON.
    pub fn plan(&self, purge_id: &str, request: &PurgeRequest) -> Result<Vec<Call>, String> {
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let id = HeaderValue::from_str(purge_id).map_err(|e| e.to_string())?;
        let mut call = Call::new(Method::POST, self.url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(HeaderName::from_static("x-tiercache-purge-id"), id);
        if let Some(secret) = &self.secret {
            let sig = HeaderValue::from_str(&format!("sha256={}", sign(secret, &body)))
                .map_err(|e| e.to_string())?;
            call = call.header(self.signature_header.clone(), sig);
        }
        call.body = Some(body);
        Ok(vec![call])
    }
}

/// Lowercase hex of HMAC-SHA256(`secret`, `body`).
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_body() {
        // RFC 4231 test case 2.
        let s = Secret::new("Jefe").unwrap();
        assert_eq!(
            sign(&s, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let w = Webhook {
            url: "http://127.0.0.1:1/hook".into(),
            secret: Some(s.clone()),
            signature_header: HeaderName::from_static(DEFAULT_SIGNATURE_HEADER),
        };
        let request = PurgeRequest {
            site: "s".into(),
            urls: vec![],
            tags: vec!["t".into()],
            everything: false,
        };
        let calls = w.plan("p1", &request).unwrap();
        let body = calls[0].body.clone().unwrap();
        assert_eq!(
            serde_json::from_slice::<PurgeRequest>(&body).unwrap(),
            request
        );
        assert_eq!(
            calls[0].headers[DEFAULT_SIGNATURE_HEADER],
            format!("sha256={}", sign(&s, &body)).as_str()
        );
    }
}
