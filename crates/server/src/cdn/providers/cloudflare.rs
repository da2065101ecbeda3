//! Cloudflare: `POST {api_base}/zones/{zone_id}/purge_cache` with `Authorization: Bearer`,
//! one body per call — `{"files": [...]}`, `{"prefixes": [...]}`, `{"tags": [...]}` in
//! batches of at most `max_per_call`, or `{"purge_everything": true}`.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Ack, Call};
use crate::cdn::request::{PurgeRequest, Target, target};
use crate::cdn::secret::Secret;

/// Where Cloudflare's API lives.
pub const DEFAULT_API_BASE: &str = "https://api.cloudflare.com/client/v4";
/// URLs, prefixes or tags per call on every plan (Enterprise allows 500 URLs).
pub const DEFAULT_MAX_PER_CALL: usize = 100;

/// A Cloudflare zone.
#[derive(Debug, Clone)]
pub struct Cloudflare {
    /// The zone's id.
    pub zone_id: String,
    /// An API token with the zone's Cache Purge permission.
    pub token: Secret,
    /// The API's base URL (tests point it at 127.0.0.1).
    pub api_base: String,
    /// URLs, prefixes or tags per call.
    pub max_per_call: usize,
}

impl Cloudflare {
    /// The calls: everything alone, else files, then prefixes, then tags, each batched.
    pub fn plan(&self, request: &PurgeRequest) -> Vec<Call> {
        if request.everything {
            return vec![self.call(json!({ "purge_everything": true }))];
        }
        let mut files = Vec::new();
        let mut prefixes = Vec::new();
        for u in &request.urls {
            match target(u) {
                Target::Url(u) => files.push(u.to_owned()),
                // Cloudflare's prefixes have no scheme: `www.example.com/docs/`.
                Target::Prefix(p) => {
                    prefixes.push(p.split_once("://").map_or(p, |(_, r)| r).to_owned())
                }
            }
        }
        let per = self.max_per_call.max(1);
        let mut calls = Vec::new();
        for (field, items) in [
            ("files", &files),
            ("prefixes", &prefixes),
            ("tags", &request.tags),
        ] {
            for chunk in items.chunks(per) {
                calls.push(self.call(json!({ field: chunk })));
            }
        }
        calls
    }

    fn call(&self, body: Value) -> Call {
        Call::new(
            Method::POST,
            format!("{}/zones/{}/purge_cache", self.api_base, self.zone_id),
        )
        .header(AUTHORIZATION, self.token.header("Bearer "))
        .header(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        )
        .json(&body)
    }
}

/// As [`super::judge`], and a 2xx whose JSON says `"success": false` is a permanent failure.
pub fn judge(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Ack {
    if status.is_success()
        && let Ok(v) = serde_json::from_slice::<Value>(body)
        && v.get("success") == Some(&Value::Bool(false))
    {
        let errors = v.get("errors").map(Value::to_string).unwrap_or_default();
        return Ack::Permanent(format!("Cloudflare answered success=false: {errors}"));
    }
    super::judge(status, retry_after, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cf() -> Cloudflare {
        Cloudflare {
            zone_id: "z1".into(),
            token: Secret::new("cf-token").unwrap(),
            api_base: "http://127.0.0.1:1/client/v4".into(),
            max_per_call: 100,
        }
    }

    fn body(c: &Call) -> Value {
        serde_json::from_slice(c.body.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn batches_files_prefixes_and_tags() {
        let request = PurgeRequest {
            site: "s".into(),
            urls: (0..250)
                .map(|i| format!("https://a.example/{i}"))
                .chain(["https://a.example/docs/*".to_owned()])
                .collect(),
            tags: (0..101).map(|i| format!("t{i}")).collect(),
            everything: false,
        };
        let calls = cf().plan(&request);
        let sizes: Vec<(String, usize)> = calls
            .iter()
            .map(|c| {
                let b = body(c);
                let (k, v) = b.as_object().unwrap().iter().next().unwrap();
                (k.clone(), v.as_array().unwrap().len())
            })
            .collect();
        let expect = [
            ("files", 100),
            ("files", 100),
            ("files", 50),
            ("prefixes", 1),
            ("tags", 100),
            ("tags", 1),
        ];
        assert_eq!(sizes, expect.map(|(k, n)| (k.to_owned(), n)));
        assert_eq!(body(&calls[3])["prefixes"][0], "a.example/docs/");
        let c = &calls[0];
        assert_eq!(c.method, Method::POST);
        assert_eq!(c.url, "http://127.0.0.1:1/client/v4/zones/z1/purge_cache");
        assert_eq!(c.headers[AUTHORIZATION], "Bearer cf-token");
        assert!(!format!("{c:?}").contains("cf-token"));
    }

    #[test]
    fn everything_is_one_call_and_success_false_fails() {
        let request = PurgeRequest {
            site: "s".into(),
            urls: vec![],
            tags: vec![],
            everything: true,
        };
        let calls = cf().plan(&request);
        assert_eq!(calls.len(), 1);
        assert_eq!(body(&calls[0]), json!({ "purge_everything": true }));
        assert!(matches!(
            judge(
                StatusCode::OK,
                None,
                br#"{"success":false,"errors":[{"code":1}]}"#
            ),
            Ack::Permanent(_)
        ));
        assert_eq!(
            judge(StatusCode::OK, None, br#"{"success":true}"#),
            Ack::Done
        );
    }
}
