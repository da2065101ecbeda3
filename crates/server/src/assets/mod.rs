//! Static assets: sites deployed as immutable, numbered deploys (files stored once by
//! content in the tiered store), served at `/assets/{site}/…` and on the sites' own
//! hostnames with Cache-Control by rules, validators, ranges and precompressed variants.
//!
//! - `deploy.rs`: the deploy API (`/assets-api/…`): manifest, blob uploads, activation, rollback;
//! - `serve.rs`: `GET`/`HEAD` of a file of the current deploy;
//! - `live.rs`: the current deploy of a site as the serving path uses it;
//! - `manifest.rs`, `keys.rs`: what is stored, and where;
//! - `negotiate.rs`, `range.rs`, `headers.rs`: `Accept-Encoding`, `Range`, validators;
//! - `purge_hook.rs`: what a switch of deploys asks the CDN to forget;
//! - `routes.rs`: the routes, and dispatch by `Host`.

pub mod deploy;
#[cfg(test)]
mod deploy_tests;
pub mod headers;
pub mod keys;
pub mod live;
pub mod manifest;
pub mod negotiate;
pub mod purge_hook;
pub mod range;
pub mod routes;
pub mod serve;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tiercache_core::ContentHash;
use tiercache_core::assets::{RuleSet, SiteName};

pub use purge_hook::{PurgeRequest, PurgeSink};

/// One configured site (`[[sites]]`); sites need no configuration to be deployed and
/// served under `/assets/{site}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// The site.
    pub name: SiteName,
    /// Hostnames (lowercase, no port) whose requests are this site's, whatever the path.
    pub hostnames: Vec<String>,
    /// Where the CDN serves the site (`https://docs.example`), for purge URLs.
    pub public_url: Option<String>,
}

/// Settings of static asset hosting.
#[derive(Debug, Clone, Default)]
pub struct AssetsConfig {
    /// The Cache-Control rules.
    pub rules: RuleSet,
    /// Configured sites.
    pub sites: Vec<SiteConfig>,
    /// This server's public URL, for purge URLs of `/assets/{site}/…`.
    pub public_url: Option<String>,
}

/// The asset front-end's state, in `AppState`.
pub struct AssetsFrontend {
    rules: RuleSet,
    sites: HashMap<SiteName, SiteConfig>,
    hosts: HashMap<String, SiteName>,
    public_url: Option<String>,
    /// Per site: the pointer entry's hash, and the view of the deploy it names.
    live: RwLock<HashMap<SiteName, (ContentHash, Arc<live::LiveDeploy>)>>,
    locks: Mutex<HashMap<SiteName, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for AssetsFrontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssetsFrontend")
            .field("sites", &self.sites.len())
            .finish_non_exhaustive()
    }
}

impl Default for AssetsFrontend {
    fn default() -> Self {
        AssetsFrontend::new(AssetsConfig::default())
    }
}

impl AssetsFrontend {
    /// The front-end per `config`.
    pub fn new(config: AssetsConfig) -> Self {
        let hosts = config
            .sites
            .iter()
            .flat_map(|s| {
                s.hostnames
                    .iter()
                    .map(|h| (h.to_ascii_lowercase(), s.name.clone()))
            })
            .collect();
        AssetsFrontend {
            rules: config.rules,
            sites: config
                .sites
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect(),
            hosts,
            public_url: config
                .public_url
                .map(|u| u.trim_end_matches('/').to_owned()),
            live: RwLock::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The Cache-Control rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Whether any site is served by hostname (the router then dispatches by `Host`).
    pub fn has_hostnames(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// The site whose hostname is `host` (a `Host` header: any port is ignored).
    pub fn site_for_host(&self, host: &str) -> Option<&SiteName> {
        let name = strip_port(host.trim()).trim_end_matches('.');
        self.hosts.get(&name.to_ascii_lowercase())
    }

    /// The base URLs (no trailing `/`) under which `site` is served publicly: its
    /// `public_url`, and `/assets/{site}` on this server's public URL.
    pub fn public_bases(&self, site: &SiteName) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(u) = self.sites.get(site).and_then(|s| s.public_url.as_deref()) {
            out.push(u.trim_end_matches('/').to_owned());
        }
        if let Some(u) = &self.public_url {
            out.push(format!("{u}/assets/{site}"));
        }
        out
    }

    /// The cached view of `site`'s current deploy, if the pointer is still `pointer_hash`.
    fn cached(&self, site: &SiteName, pointer_hash: &ContentHash) -> Option<Arc<live::LiveDeploy>> {
        let map = self.live.read().ok()?;
        map.get(site)
            .filter(|(hash, _)| hash == pointer_hash)
            .map(|(_, view)| view.clone())
    }

    /// The cached view of deploy `n` of `site`, whatever pointer it was found through.
    fn cached_deploy(&self, site: &SiteName, n: u64) -> Option<Arc<live::LiveDeploy>> {
        let map = self.live.read().ok()?;
        map.get(site)
            .filter(|(_, view)| view.deploy == n)
            .map(|(_, view)| view.clone())
    }

    /// Keeps `view` as `site`'s current deploy, found through the pointer `pointer_hash`.
    fn remember(&self, site: &SiteName, pointer_hash: ContentHash, view: Arc<live::LiveDeploy>) {
        if let Ok(mut map) = self.live.write() {
            map.insert(site.clone(), (pointer_hash, view));
        }
    }

    /// Drops the cached view of `site` (after its pointer changed here).
    fn forget(&self, site: &SiteName) {
        if let Ok(mut map) = self.live.write() {
            map.remove(site);
        }
    }

    /// The lock that orders changes to `site`'s pointer on this node.
    fn lock_for(&self, site: &SiteName) -> Arc<tokio::sync::Mutex<()>> {
        match self.locks.lock() {
            Ok(mut map) => map.entry(site.clone()).or_default().clone(),
            // A poisoned map only loses the ordering of this call, never data.
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// `host` without its `:port` (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_found_by_host_whatever_the_port_and_case() {
        let site = SiteName::new("docs").unwrap();
        let f = AssetsFrontend::new(AssetsConfig {
            sites: vec![SiteConfig {
                name: site.clone(),
                hostnames: vec!["docs.example".into(), "[::1]".into()],
                public_url: Some("https://docs.example/".into()),
            }],
            public_url: Some("http://cache:7700/".into()),
            ..Default::default()
        });
        assert!(f.has_hostnames());
        assert_eq!(f.site_for_host("docs.example"), Some(&site));
        assert_eq!(f.site_for_host("DOCS.example:8080"), Some(&site));
        assert_eq!(f.site_for_host("docs.example."), Some(&site));
        assert_eq!(f.site_for_host("[::1]:7700"), Some(&site));
        assert_eq!(f.site_for_host("other.example"), None);
        assert_eq!(
            f.public_bases(&site),
            ["https://docs.example", "http://cache:7700/assets/docs"]
        );
    }
}
