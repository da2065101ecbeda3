//! Fastly: surrogate keys by `POST {api_base}/service/{id}/purge` with `Surrogate-Key: k1 k2`
//! (at most `max_keys_per_call` keys and 16 KiB of header per call), URLs by `PURGE <url>`,
//! everything by `POST {api_base}/service/{id}/purge_all`; always with `Fastly-Key`, and
//! `Fastly-Soft-Purge: 1` when soft purging (never for purge_all, which cannot be soft).

use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderName, HeaderValue};

use super::Call;
use crate::cdn::request::{PurgeRequest, Target, target};
use crate::cdn::secret::Secret;

/// Where Fastly's API lives.
pub const DEFAULT_API_BASE: &str = "https://api.fastly.com";
/// Fastly's limit of keys per batch purge.
pub const MAX_KEYS_PER_CALL: usize = 256;
/// Fastly ignores keys past this many bytes of `Surrogate-Key`.
pub const MAX_KEY_HEADER: usize = 16_384;

/// A Fastly service.
#[derive(Debug, Clone)]
pub struct Fastly {
    /// The service's id.
    pub service_id: String,
    /// An API token with purge_select (and purge_all for everything).
    pub token: Secret,
    /// The API's base URL (tests point it at 127.0.0.1).
    pub api_base: String,
    /// Mark objects stale instead of evicting them.
    pub soft: bool,
    /// Keys per batch purge (at most 256).
    pub max_keys_per_call: usize,
}

impl Fastly {
    /// Fastly has no prefix purge.
    pub fn unsupported(&self, request: &PurgeRequest) -> Option<String> {
        (!request.everything
            && request
                .urls
                .iter()
                .any(|u| matches!(target(u), Target::Prefix(_))))
        .then(|| {
            "Fastly cannot purge by prefix (a URL ending with *): purge by tag instead".to_owned()
        })
    }

    /// The calls: purge_all alone, else one `PURGE` per URL, then the key batches.
    pub fn plan(&self, request: &PurgeRequest) -> Result<Vec<Call>, String> {
        if let Some(why) = self.unsupported(request) {
            return Err(why);
        }
        let service = format!("{}/service/{}", self.api_base, self.service_id);
        if request.everything {
            return Ok(vec![
                self.auth(Call::new(Method::POST, format!("{service}/purge_all"))),
            ]);
        }
        let purge = Method::from_bytes(b"PURGE").map_err(|e| e.to_string())?;
        let mut calls: Vec<Call> = request
            .urls
            .iter()
            .map(|u| self.soft(self.auth(Call::new(purge.clone(), u.clone()))))
            .collect();
        for batch in key_batches(
            &request.tags,
            self.max_keys_per_call.clamp(1, MAX_KEYS_PER_CALL),
        ) {
            let keys = HeaderValue::from_str(&batch.join(" "))
                .map_err(|_| "a surrogate key holds characters a header cannot carry".to_owned())?;
            calls.push(
                self.soft(
                    self.auth(
                        Call::new(Method::POST, format!("{service}/purge"))
                            .header(HeaderName::from_static("surrogate-key"), keys),
                    ),
                ),
            );
        }
        Ok(calls)
    }

    fn auth(&self, call: Call) -> Call {
        call.header(HeaderName::from_static("fastly-key"), self.token.header(""))
            .header(ACCEPT, HeaderValue::from_static("application/json"))
    }

    fn soft(&self, call: Call) -> Call {
        if self.soft {
            call.header(
                HeaderName::from_static("fastly-soft-purge"),
                HeaderValue::from_static("1"),
            )
        } else {
            call
        }
    }
}

/// Keys in batches of at most `per` keys whose space-joined length fits the header limit.
fn key_batches(keys: &[String], per: usize) -> Vec<Vec<&str>> {
    let mut batches: Vec<Vec<&str>> = Vec::new();
    let mut len = 0;
    for k in keys {
        let full = batches
            .last()
            .is_none_or(|b| b.len() >= per || len + 1 + k.len() > MAX_KEY_HEADER);
        if full {
            batches.push(Vec::new());
            len = 0;
        } else {
            len += 1;
        }
        len += k.len();
        if let Some(b) = batches.last_mut() {
            b.push(k);
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fastly(soft: bool) -> Fastly {
        Fastly {
            service_id: "svc".into(),
            token: Secret::new("fastly-token").unwrap(),
            api_base: "http://127.0.0.1:1".into(),
            soft,
            max_keys_per_call: 256,
        }
    }

    fn req(urls: Vec<String>, tags: Vec<String>, everything: bool) -> PurgeRequest {
        PurgeRequest {
            site: "s".into(),
            urls,
            tags,
            everything,
        }
    }

    #[test]
    fn keys_are_batched_by_count_and_header_size() {
        let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
        let calls = fastly(true).plan(&req(vec![], keys, false)).unwrap();
        assert_eq!(calls.len(), 2);
        let n = |c: &Call| {
            c.headers["surrogate-key"]
                .to_str()
                .unwrap()
                .split(' ')
                .count()
        };
        assert_eq!((n(&calls[0]), n(&calls[1])), (256, 44));
        assert_eq!(calls[0].url, "http://127.0.0.1:1/service/svc/purge");
        assert_eq!(calls[0].headers["fastly-key"], "fastly-token");
        assert_eq!(calls[0].headers["fastly-soft-purge"], "1");
        let long: Vec<String> = (0..40).map(|i| format!("{i:0>1000}")).collect();
        let batches = key_batches(&long, 256);
        assert!(batches.len() >= 3);
        assert!(batches.iter().all(|b| b.join(" ").len() <= MAX_KEY_HEADER));
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 40);
    }

    #[test]
    fn urls_purge_and_everything_is_never_soft() {
        let calls = fastly(true)
            .plan(&req(vec!["https://a.example/x".into()], vec![], false))
            .unwrap();
        assert_eq!(
            (calls[0].method.as_str(), calls[0].url.as_str()),
            ("PURGE", "https://a.example/x")
        );
        assert_eq!(calls[0].headers["fastly-soft-purge"], "1");
        let all = fastly(true).plan(&req(vec![], vec![], true)).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].url, "http://127.0.0.1:1/service/svc/purge_all");
        assert!(!all[0].headers.contains_key("fastly-soft-purge"));
        assert!(
            fastly(false)
                .plan(&req(vec!["https://a.example/d/*".into()], vec![], false))
                .is_err()
        );
    }
}
