//! `[purge]` and `[[purge.providers]]` in the config file, and their resolution into a
//! [`PurgeConfig`]: credentials read from the variables `token_env`/`secret_env` name
//! (or, less safely, given inline), every field checked, nothing secret in `Debug`.

use std::time::Duration;

use reqwest::header::HeaderName;
use serde::Deserialize;

use super::backoff::RetryPolicy;
use super::providers::{self, Cloudflare, Fastly, HttpPurge, Provider, Webhook};
use super::request::check_site;
use super::secret::Secret;

/// How long one call to a provider may take unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A mistake in the purge configuration, naming the provider and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("purge: {0}")]
pub struct ConfigError(pub String);

/// The `[purge]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeFile {
    /// `[[purge.providers]]`.
    #[serde(default)]
    pub providers: Vec<ProviderFile>,
    /// First retry wait, e.g. `1s`.
    pub retry_min: Option<String>,
    /// Longest retry wait, e.g. `5m`.
    pub retry_max: Option<String>,
    /// Undelivered this long after recording → failed, e.g. `24h`.
    pub max_age: Option<String>,
    /// Failed attempts before a job is marked failed (0 or absent: no limit but max_age).
    pub max_attempts: Option<u32>,
    /// Per call, e.g. `30s`.
    pub timeout: Option<String>,
}

/// One `[[purge.providers]]` entry as written, by `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProviderFile {
    /// `kind = "cloudflare"`.
    Cloudflare(CloudflareFile),
    /// `kind = "fastly"`.
    Fastly(FastlyFile),
    /// `kind = "http"`.
    Http(HttpFile),
    /// `kind = "webhook"`.
    Webhook(WebhookFile),
}

/// `kind = "cloudflare"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareFile {
    /// Unique among providers (default: the kind).
    pub name: Option<String>,
    /// Only these sites (default: every site).
    pub sites: Option<Vec<String>>,
    /// The Cloudflare zone.
    pub zone_id: String,
    /// The variable holding the API token (preferred over `token`).
    pub token_env: Option<String>,
    /// The API token inline (kept out of `Debug`).
    pub token: Option<Secret>,
    /// The API's base URL (tests point it at 127.0.0.1).
    pub api_base: Option<String>,
    /// URLs, prefixes or tags per call (default 100).
    pub max_per_call: Option<usize>,
}

/// `kind = "fastly"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastlyFile {
    /// Unique among providers (default: the kind).
    pub name: Option<String>,
    /// Only these sites (default: every site).
    pub sites: Option<Vec<String>>,
    /// The Fastly service.
    pub service_id: String,
    /// The variable holding the API token (preferred over `token`).
    pub token_env: Option<String>,
    /// The API token inline (kept out of `Debug`).
    pub token: Option<Secret>,
    /// The API's base URL (tests point it at 127.0.0.1).
    pub api_base: Option<String>,
    /// Soft purges (never for purge_all).
    #[serde(default)]
    pub soft: bool,
    /// Surrogate keys per batch purge (default and at most 256).
    pub max_keys_per_call: Option<usize>,
}

/// `kind = "http"`: PURGE/BAN to cache nodes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    /// Unique among providers (default: the kind).
    pub name: Option<String>,
    /// Only these sites (default: every site).
    pub sites: Option<Vec<String>>,
    /// Base URLs of the cache nodes.
    pub nodes: Vec<String>,
    /// The method for one URL (default `PURGE`).
    pub url_method: Option<String>,
    /// The method for tags, prefixes and everything (default `BAN`).
    pub ban_method: Option<String>,
    /// The header carrying tags (default `X-Ban-Tags`).
    pub tag_header: Option<String>,
    /// Between tags (default `,`).
    pub tag_separator: Option<String>,
    /// Tags per request (default 100).
    pub max_tags_per_call: Option<usize>,
    /// The header carrying a prefix's path (default `X-Ban-Prefix`).
    pub prefix_header: Option<String>,
    /// The header carrying the site to purge everything of (default `X-Ban-Site`).
    pub site_header: Option<String>,
}

/// `kind = "webhook"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFile {
    /// Unique among providers (default: the kind).
    pub name: Option<String>,
    /// Only these sites (default: every site).
    pub sites: Option<Vec<String>>,
    /// Where the JSON is posted.
    pub url: String,
    /// The variable holding the signing secret (preferred over `secret`).
    pub secret_env: Option<String>,
    /// The signing secret inline (kept out of `Debug`).
    pub secret: Option<Secret>,
    /// The header carrying `sha256=<hex>` (default `X-Tiercache-Signature`).
    pub signature_header: Option<String>,
}

/// One provider, resolved.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Unique among providers; names its jobs (default: the kind).
    pub name: String,
    /// The sites it purges; `None`: every site.
    pub sites: Option<Vec<String>>,
    /// What it is and how to reach it.
    pub provider: Provider,
}

impl ProviderConfig {
    /// Whether purges of `site` go to this provider.
    pub fn serves(&self, site: &str) -> bool {
        self.sites
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == site))
    }
}

/// Everything the outbox needs.
#[derive(Debug, Clone)]
pub struct PurgeConfig {
    /// At least one.
    pub providers: Vec<ProviderConfig>,
    /// Retries and giving up.
    pub retry: RetryPolicy,
    /// Per call.
    pub timeout: Duration,
}

impl PurgeFile {
    /// The resolved configuration, `None` without providers; `env` looks up variables
    /// (`std::env::var` in the binary).
    pub fn resolve(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<PurgeConfig>, ConfigError> {
        let err = |m: String| ConfigError(m);
        let dur =
            |what: &str, v: Option<String>, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(s) => humantime::parse_duration(s.trim()).map_err(|e| {
                        err(format!(
                            "{what}: {s:?} is not a duration (e.g. 1s, 5m): {e}"
                        ))
                    }),
                }
            };
        let d = RetryPolicy::default();
        let retry = RetryPolicy {
            min: dur("retry_min", self.retry_min, d.min)?,
            max: dur("retry_max", self.retry_max, d.max)?,
            max_age: dur("max_age", self.max_age, d.max_age)?,
            max_attempts: self.max_attempts.filter(|n| *n > 0),
        };
        if retry.min.is_zero() || retry.max < retry.min {
            return Err(err(
                "retry_min must be above zero and at most retry_max".into()
            ));
        }
        let timeout = dur("timeout", self.timeout, DEFAULT_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(err("timeout must be above zero".into()));
        }
        if self.providers.is_empty() {
            return Ok(None);
        }
        let mut providers: Vec<ProviderConfig> = Vec::new();
        for p in self.providers {
            let p = p.resolve(env)?;
            if providers.iter().any(|q| q.name == p.name) {
                return Err(err(format!(
                    "two providers are named {:?}: give each a distinct name",
                    p.name
                )));
            }
            providers.push(p);
        }
        Ok(Some(PurgeConfig {
            providers,
            retry,
            timeout,
        }))
    }
}

/// A provider name: 1–32 of `a-z 0-9 _ -` (it becomes part of job file names).
fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "provider name {name:?} must be 1–32 of a-z 0-9 _ -"
        )))
    }
}

/// The credential: the variable `var` names (preferred), else the inline value.
fn credential(
    who: &str,
    field: &str,
    var: Option<String>,
    inline: Option<Secret>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    match (var, inline) {
        (Some(_), Some(_)) => Err(ConfigError(format!(
            "{who}: give {field}_env or {field}, not both"
        ))),
        (Some(var), None) => {
            let value = env(&var)
                .ok_or_else(|| ConfigError(format!("{who}: {field}_env: {var} is not set")))?;
            Secret::new(&value).map(Some).ok_or_else(|| {
                ConfigError(format!(
                    "{who}: {var} is empty or holds characters a header cannot carry"
                ))
            })
        }
        (None, inline) => Ok(inline),
    }
}

fn header_name(
    who: &str,
    field: &str,
    v: Option<String>,
    default: &'static str,
) -> Result<HeaderName, ConfigError> {
    match v {
        None => Ok(HeaderName::from_static(default)),
        Some(s) => HeaderName::from_bytes(s.trim().as_bytes())
            .map_err(|_| ConfigError(format!("{who}: {field} {s:?} is not a header name"))),
    }
}

fn sites(who: &str, sites: Option<Vec<String>>) -> Result<Option<Vec<String>>, ConfigError> {
    if let Some(list) = &sites {
        for s in list {
            check_site(s).map_err(|e| ConfigError(format!("{who}: sites: {e}")))?;
        }
    }
    Ok(sites)
}

impl ProviderFile {
    fn resolve(self, env: &dyn Fn(&str) -> Option<String>) -> Result<ProviderConfig, ConfigError> {
        let kind = match &self {
            ProviderFile::Cloudflare(_) => "cloudflare",
            ProviderFile::Fastly(_) => "fastly",
            ProviderFile::Http(_) => "http",
            ProviderFile::Webhook(_) => "webhook",
        };
        let named = |name: Option<String>| -> Result<String, ConfigError> {
            let name = name.unwrap_or_else(|| kind.to_owned());
            check_name(&name)?;
            Ok(name)
        };
        let (name, site_list, provider) = match self {
            ProviderFile::Cloudflare(f) => {
                let name = named(f.name)?;
                let who = format!("provider {name:?}");
                let m = |e: String| ConfigError(format!("{who}: {e}"));
                let token = credential(&who, "token", f.token_env, f.token, env)?
                    .ok_or_else(|| m("needs token_env (or token)".into()))?;
                let max_per_call = f
                    .max_per_call
                    .unwrap_or(providers::cloudflare::DEFAULT_MAX_PER_CALL);
                if !(1..=1000).contains(&max_per_call) {
                    return Err(m("max_per_call must be 1–1000".into()));
                }
                let p = Provider::Cloudflare(Cloudflare {
                    zone_id: providers::path_id("zone_id", &f.zone_id).map_err(m)?,
                    token,
                    api_base: providers::base_url(
                        "api_base",
                        f.api_base
                            .as_deref()
                            .unwrap_or(providers::cloudflare::DEFAULT_API_BASE),
                    )
                    .map_err(m)?,
                    max_per_call,
                });
                (name, sites(&who, f.sites)?, p)
            }
            ProviderFile::Fastly(f) => {
                let name = named(f.name)?;
                let who = format!("provider {name:?}");
                let m = |e: String| ConfigError(format!("{who}: {e}"));
                let token = credential(&who, "token", f.token_env, f.token, env)?
                    .ok_or_else(|| m("needs token_env (or token)".into()))?;
                let max_keys = f
                    .max_keys_per_call
                    .unwrap_or(providers::fastly::MAX_KEYS_PER_CALL);
                if !(1..=providers::fastly::MAX_KEYS_PER_CALL).contains(&max_keys) {
                    return Err(m("max_keys_per_call must be 1–256".into()));
                }
                let p = Provider::Fastly(Fastly {
                    service_id: providers::path_id("service_id", &f.service_id).map_err(m)?,
                    token,
                    api_base: providers::base_url(
                        "api_base",
                        f.api_base
                            .as_deref()
                            .unwrap_or(providers::fastly::DEFAULT_API_BASE),
                    )
                    .map_err(m)?,
                    soft: f.soft,
                    max_keys_per_call: max_keys,
                });
                (name, sites(&who, f.sites)?, p)
            }
            ProviderFile::Http(f) => {
                let name = named(f.name)?;
                let who = format!("provider {name:?}");
                let m = |e: String| ConfigError(format!("{who}: {e}"));
                if f.nodes.is_empty() {
                    return Err(m("needs at least one of nodes".into()));
                }
                let nodes = f
                    .nodes
                    .iter()
                    .map(|n| providers::base_url("node", n))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(m)?;
                let max_tags = f
                    .max_tags_per_call
                    .unwrap_or(providers::http_purge::DEFAULT_MAX_TAGS_PER_CALL);
                if !(1..=1000).contains(&max_tags) {
                    return Err(m("max_tags_per_call must be 1–1000".into()));
                }
                let p = Provider::Http(HttpPurge {
                    nodes,
                    url_method: providers::method(f.url_method.as_deref().unwrap_or("PURGE"))
                        .map_err(m)?,
                    ban_method: providers::method(f.ban_method.as_deref().unwrap_or("BAN"))
                        .map_err(m)?,
                    tag_header: header_name(&who, "tag_header", f.tag_header, "x-ban-tags")?,
                    tag_separator: f.tag_separator.unwrap_or_else(|| ",".into()),
                    max_tags_per_call: max_tags,
                    prefix_header: header_name(
                        &who,
                        "prefix_header",
                        f.prefix_header,
                        "x-ban-prefix",
                    )?,
                    site_header: header_name(&who, "site_header", f.site_header, "x-ban-site")?,
                });
                (name, sites(&who, f.sites)?, p)
            }
            ProviderFile::Webhook(f) => {
                let name = named(f.name)?;
                let who = format!("provider {name:?}");
                let m = |e: String| ConfigError(format!("{who}: {e}"));
                let p = Provider::Webhook(Webhook {
                    url: providers::base_url("url", &f.url)
                        .map(|_| f.url.trim().to_owned())
                        .map_err(m)?,
                    secret: credential(&who, "secret", f.secret_env, f.secret, env)?,
                    signature_header: header_name(
                        &who,
                        "signature_header",
                        f.signature_header,
                        providers::webhook::DEFAULT_SIGNATURE_HEADER,
                    )?,
                });
                (name, sites(&who, f.sites)?, p)
            }
        };
        Ok(ProviderConfig {
            name,
            sites: site_list,
            provider,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        purge: PurgeFile,
    }

    fn parse(toml_text: &str) -> Result<Option<PurgeConfig>, String> {
        let f: File = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        let env = |v: &str| (v == "CF_TOKEN").then(|| "cf-secret-value".to_owned());
        f.purge.resolve(&env).map_err(|e| e.to_string())
    }

    #[test]
    fn providers_resolve_and_never_show_secrets() {
        let c = parse(
            r#"
            [purge]
            retry_min = "100ms"
            max_attempts = 5
            [[purge.providers]]
            kind = "cloudflare"
            zone_id = "abc123"
            token_env = "CF_TOKEN"
            max_per_call = 30
            [[purge.providers]]
            kind = "fastly"
            name = "fastly-eu"
            sites = ["docs"]
            service_id = "svc"
            token = "inline-fastly-secret"
            soft = true
            [[purge.providers]]
            kind = "http"
            nodes = ["http://127.0.0.1:6081/"]
            tag_header = "xkey-purge"
            tag_separator = " "
            [[purge.providers]]
            kind = "webhook"
            url = "http://127.0.0.1:9/hook"
            "#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.providers.len(), 4);
        assert_eq!(c.retry.min, Duration::from_millis(100));
        assert_eq!(c.retry.max_attempts, Some(5));
        let names: Vec<&str> = c.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["cloudflare", "fastly-eu", "http", "webhook"]);
        assert!(c.providers[1].serves("docs") && !c.providers[1].serves("app"));
        assert!(c.providers[0].serves("anything"));
        let Provider::Http(h) = &c.providers[2].provider else {
            panic!()
        };
        assert_eq!(h.nodes, ["http://127.0.0.1:6081"]);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("cf-secret-value") && !debug.contains("inline-fastly-secret"),
            "{debug}"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = |t: &str| parse(t).unwrap_err();
        assert!(
            e("[[purge.providers]]\nkind = \"cloudflare\"\nzone_id = \"z\"\n")
                .contains("token_env")
        );
        assert!(e("[[purge.providers]]\nkind = \"cloudflare\"\nzone_id = \"z\"\ntoken_env = \"NOPE\"\n").contains("NOPE is not set"));
        assert!(e("[[purge.providers]]\nkind = \"cdn77\"\n").contains("cdn77"));
        assert!(e("[[purge.providers]]\nkind = \"http\"\nnodes = [\"x\"]\n").contains("http://"));
        assert!(
            e("[[purge.providers]]\nkind = \"http\"\nnodes = [\"http://a\"]\nzone_id = \"z\"\n")
                .contains("zone_id")
        );
        assert!(e("[[purge.providers]]\nkind = \"webhook\"\nurl = \"http://a\"\n[[purge.providers]]\nkind = \"webhook\"\nurl = \"http://b\"\n").contains("distinct"));
        assert!(
            e("[[purge.providers]]\nkind = \"cloudflare\"\nzone_id = \"a/b\"\ntoken = \"t\"\n")
                .contains("zone_id")
        );
        assert!(parse("[purge]\n").unwrap().is_none());
    }
}
