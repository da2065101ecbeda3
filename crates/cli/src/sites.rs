//! `[[sites]]` and `[assets]` in the config file: the sites served by hostname (and their
//! public URLs, for purges), and the Cache-Control rules of static assets.
//!
//! ```toml
//! [[sites]]
//! name = "docs"                              # deploy with `tiercache deploy dist --site docs`
//! hostnames = ["docs.example.com"]           # requests for these hosts are the site's
//! public_url = "https://docs.example.com"    # where the CDN serves it (purge URLs)
//!
//! [assets]
//! default_rules = true                       # the seed's rules after yours (false: yours alone)
//! [[assets.rules]]                           # first match wins; yours come first
//! pattern = "/account/**"                    # glob: *, **, ?, {a,b}; no leading / = any depth
//! preset = "private"                         # hashed | image | html | standard | bypass | private
//! [[assets.rules]]
//! pattern = "*.pdf"
//! max_age = "1d"                             # seconds, or a duration ("10m", "1d")
//! s_maxage = "7d"
//! stale_while_revalidate = 60
//! ```

use std::collections::HashSet;

use anyhow::{Context, bail};
use serde::Deserialize;
use tiercache_core::assets::{CacheRule, Directives, PathPattern, RuleSet, SiteName, Visibility};
use tiercache_server::assets::{AssetsConfig, SiteConfig};

/// One `[[sites]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    /// The site's name, as `tiercache deploy --site` gives it.
    pub name: String,
    /// Hosts whose requests are all this site's.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Where the CDN serves the site, for purge URLs.
    pub public_url: Option<String>,
}

/// A time in seconds, or a humantime duration.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Seconds {
    /// Whole seconds.
    Number(u64),
    /// A duration such as `10m` or `1d`.
    Text(String),
}

impl Seconds {
    fn seconds(&self, what: &str) -> anyhow::Result<u64> {
        match self {
            Seconds::Number(n) => Ok(*n),
            Seconds::Text(s) => Ok(humantime::parse_duration(s.trim())
                .with_context(|| format!("{what}: {s:?} is not a duration (e.g. 600, 10m, 1d)"))?
                .as_secs()),
        }
    }
}

/// One `[[assets.rules]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The path pattern a file must match.
    pub pattern: Option<String>,
    /// Only content-hashed names (true) or only others (false).
    pub hashed: Option<bool>,
    /// The directives to start from.
    pub preset: Option<String>,
    /// `max-age`: the browser's lifetime.
    pub max_age: Option<Seconds>,
    /// `s-maxage`: shared caches' lifetime.
    pub s_maxage: Option<Seconds>,
    /// `stale-while-revalidate`.
    pub stale_while_revalidate: Option<Seconds>,
    /// `stale-if-error`.
    pub stale_if_error: Option<Seconds>,
    /// `immutable`.
    pub immutable: Option<bool>,
    /// `private` instead of `public`.
    pub private: Option<bool>,
    /// `no-store`.
    pub no_store: Option<bool>,
}

/// The `[assets]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetsFile {
    /// Whether the seed's rules follow the configured ones (default true).
    pub default_rules: Option<bool>,
    /// The configured rules, in order.
    #[serde(default)]
    pub rules: Vec<RuleFile>,
}

fn rule(i: usize, r: &RuleFile) -> anyhow::Result<CacheRule> {
    let what = format!("assets.rules[{i}]");
    let pattern = r
        .pattern
        .as_deref()
        .map(PathPattern::new)
        .transpose()
        .with_context(|| format!("{what}: bad pattern"))?;
    let mut d = match &r.preset {
        Some(p) => Directives::preset(p).with_context(|| {
            format!("{what}: unknown preset {p:?} (hashed, image, html, standard, bypass, private)")
        })?,
        None if r.max_age.is_some() || r.no_store == Some(true) => Directives {
            s_maxage: None,
            stale_while_revalidate: 0,
            stale_if_error: 0,
            immutable: false,
            ..Directives::private()
        },
        None => bail!("{what}: give a preset, max_age or no_store"),
    };
    if r.preset.is_none() {
        d.visibility = Visibility::Public;
    }
    if let Some(s) = &r.max_age {
        d.max_age = s.seconds(&format!("{what}.max_age"))?;
    }
    if let Some(s) = &r.s_maxage {
        d.s_maxage = Some(s.seconds(&format!("{what}.s_maxage"))?);
    }
    if let Some(s) = &r.stale_while_revalidate {
        d.stale_while_revalidate = s.seconds(&format!("{what}.stale_while_revalidate"))?;
    }
    if let Some(s) = &r.stale_if_error {
        d.stale_if_error = s.seconds(&format!("{what}.stale_if_error"))?;
    }
    if let Some(b) = r.immutable {
        d.immutable = b;
    }
    if let Some(b) = r.private {
        d.visibility = if b {
            Visibility::Private
        } else {
            Visibility::Public
        };
    }
    if let Some(b) = r.no_store {
        d.no_store = b;
    }
    Ok(CacheRule {
        pattern,
        hashed: r.hashed,
        directives: d,
    })
}

fn hostname_ok(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && (h
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            || (h.starts_with('[') && h.ends_with(']')))
}

/// Checks the sites and rules and makes the server's asset settings.
pub fn resolve(
    sites: &[SiteFile],
    assets: &AssetsFile,
    public_url: Option<String>,
) -> anyhow::Result<AssetsConfig> {
    let rules = assets
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(i, r))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut names = HashSet::new();
    let mut hosts = HashSet::new();
    let mut out = Vec::new();
    for s in sites {
        let name = SiteName::new(&s.name)
            .map_err(|e| anyhow::anyhow!("[[sites]] name {:?}: {e}", s.name))?;
        if !names.insert(name.clone()) {
            bail!("[[sites]] names {name} twice");
        }
        let mut hostnames = Vec::new();
        for h in &s.hostnames {
            let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
            if !hostname_ok(&h) {
                bail!("[[sites]] {name}: {h:?} is not a hostname (no scheme, port or path)");
            }
            if !hosts.insert(h.clone()) {
                bail!("[[sites]] hostname {h} is given twice");
            }
            hostnames.push(h);
        }
        if let Some(u) = &s.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            bail!("[[sites]] {name}: public_url {u:?} must be an http:// or https:// URL");
        }
        out.push(SiteConfig {
            name,
            hostnames,
            public_url: s.public_url.clone(),
        });
    }
    Ok(AssetsConfig {
        rules: RuleSet::new(rules, assets.default_rules.unwrap_or(true)),
        sites: out,
        public_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        sites: Vec<SiteFile>,
        #[serde(default)]
        assets: AssetsFile,
    }

    fn load(text: &str) -> anyhow::Result<AssetsConfig> {
        let f: File = toml::from_str(text)?;
        resolve(&f.sites, &f.assets, None)
    }

    #[test]
    fn sites_and_rules_are_read() {
        let c = load(
            r#"
            [[sites]]
            name = "docs"
            hostnames = ["Docs.Example.com"]
            public_url = "https://docs.example.com"
            [[assets.rules]]
            pattern = "/account/**"
            preset = "private"
            [[assets.rules]]
            pattern = "*.pdf"
            max_age = "1d"
            s_maxage = 604800
            "#,
        )
        .unwrap();
        assert_eq!(c.sites[0].hostnames, ["docs.example.com"]);
        assert_eq!(
            c.rules.decide("account/x.html").cache_control(),
            "private, max-age=0"
        );
        assert_eq!(
            c.rules.decide("a/b.pdf").cache_control(),
            "public, max-age=86400, s-maxage=604800"
        );
        assert!(
            c.rules
                .decide("index.html")
                .cache_control()
                .contains("s-maxage=300")
        );
    }

    #[test]
    fn mistakes_are_explained() {
        for (text, needle) in [
            ("[[sites]]\nname = \"../x\"", "name"),
            ("[[sites]]\nname = \"a\"\n[[sites]]\nname = \"a\"", "twice"),
            (
                "[[sites]]\nname = \"a\"\nhostnames = [\"http://x\"]",
                "not a hostname",
            ),
            ("[[assets.rules]]\npattern = \"*.x\"", "preset, max_age"),
            ("[[assets.rules]]\npreset = \"forever\"", "unknown preset"),
            (
                "[[assets.rules]]\npattern = \"{a\"\npreset = \"html\"",
                "bad pattern",
            ),
            ("[[assets.rules]]\nmax_age = \"soon\"", "not a duration"),
        ] {
            let e = format!("{:#}", load(text).unwrap_err());
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
