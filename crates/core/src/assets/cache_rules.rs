//! Cache-Control rules: an ordered list of (path pattern and/or "hashed name") → directives;
//! the first rule that matches a file decides its `Cache-Control` (for browsers and every
//! cache) and, where the edge's lifetime differs from the browser's, its `CDN-Cache-Control`
//! (RFC 9213: a CDN that reads it ignores `Cache-Control`).
//!
//! The defaults are the seed's `cacheRules` / `CacheHeaderManager`:
//!
//! | rule | Cache-Control | CDN-Cache-Control |
//! | --- | --- | --- |
//! | `/api/**` (bypass) | `no-store` | — |
//! | content-hashed names | `public, max-age=31536000, stale-if-error=86400, immutable` | — |
//! | images | `public, max-age=86400, s-maxage=604800, stale-if-error=86400` | `max-age=604800, stale-if-error=86400` |
//! | HTML | `public, max-age=0, s-maxage=300, stale-while-revalidate=60, stale-if-error=3600` | `max-age=300, stale-while-revalidate=60, stale-if-error=3600` |
//! | anything else | `public, max-age=3600, s-maxage=86400, stale-while-revalidate=86400, stale-if-error=86400` | `max-age=86400, stale-while-revalidate=86400, stale-if-error=86400` |
//!
//! A user-specific response is `private, max-age=0` ([`Directives::private`]); a site's
//! deploy is public by nature, so no default rule uses it, but a configured rule may.

use crate::assets::hashed_name::is_hashed;
use crate::assets::pattern::PathPattern;

/// One year, the lifetime of a content-hashed file.
pub const YEAR: u64 = 31_536_000;
/// One week.
pub const WEEK: u64 = 604_800;
/// One day.
pub const DAY: u64 = 86_400;

/// Who may store a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Browsers and shared caches (CDNs).
    Public,
    /// The browser only: never a shared cache.
    Private,
}

/// What a rule says about a response's caching (all times in seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// How long a browser may use it without asking (`max-age`).
    pub max_age: u64,
    /// How long a shared cache may (`s-maxage`); `None` = as long as a browser.
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate` (0 = not sent).
    pub stale_while_revalidate: u64,
    /// `stale-if-error` (0 = not sent).
    pub stale_if_error: u64,
    /// `immutable`: never revalidated while fresh (content-hashed files).
    pub immutable: bool,
    /// `public` or `private`.
    pub visibility: Visibility,
    /// `no-store`: nobody keeps it (the rest is ignored).
    pub no_store: bool,
}

impl Directives {
    /// Content-hashed files: a year, immutable.
    pub fn hashed() -> Self {
        Directives {
            max_age: YEAR,
            s_maxage: None,
            stale_while_revalidate: 0,
            stale_if_error: DAY,
            immutable: true,
            visibility: Visibility::Public,
            no_store: false,
        }
    }

    /// Images: a day in the browser, a week at the edge.
    pub fn image() -> Self {
        Directives {
            max_age: DAY,
            s_maxage: Some(WEEK),
            stale_while_revalidate: 0,
            stale_if_error: DAY,
            immutable: false,
            visibility: Visibility::Public,
            no_store: false,
        }
    }

    /// HTML: revalidated by the browser every time, five minutes at the edge.
    pub fn html() -> Self {
        Directives {
            max_age: 0,
            s_maxage: Some(300),
            stale_while_revalidate: 60,
            stale_if_error: 3600,
            immutable: false,
            visibility: Visibility::Public,
            no_store: false,
        }
    }

    /// Everything else (unhashed scripts, styles, fonts, data): an hour, a day at the edge.
    pub fn standard() -> Self {
        Directives {
            max_age: 3600,
            s_maxage: Some(DAY),
            stale_while_revalidate: DAY,
            stale_if_error: DAY,
            immutable: false,
            visibility: Visibility::Public,
            no_store: false,
        }
    }

    /// Never stored anywhere (`/api/`).
    pub fn bypass() -> Self {
        Directives {
            no_store: true,
            ..Directives::private()
        }
    }

    /// User-specific: the browser only, revalidated every time.
    pub fn private() -> Self {
        Directives {
            max_age: 0,
            s_maxage: None,
            stale_while_revalidate: 0,
            stale_if_error: 0,
            immutable: false,
            visibility: Visibility::Private,
            no_store: false,
        }
    }

    /// The preset called `name` in configuration: `hashed`, `image`, `html`, `standard`,
    /// `bypass`, `private`.
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "hashed" | "immutable" => Directives::hashed(),
            "image" => Directives::image(),
            "html" => Directives::html(),
            "standard" | "default" => Directives::standard(),
            "bypass" | "no-store" => Directives::bypass(),
            "private" => Directives::private(),
            _ => return None,
        })
    }

    /// The shared caches' lifetime, when it differs from the browser's.
    fn edge_differs(&self) -> Option<u64> {
        self.s_maxage.filter(|s| *s != self.max_age)
    }

    /// Whether shared caches may keep the response for a year without asking (no purge helps
    /// a URL cached like that, so a deploy does not ask for one).
    pub fn is_immutable(&self) -> bool {
        self.immutable && !self.no_store && self.visibility == Visibility::Public
    }

    /// The `Cache-Control` value.
    pub fn cache_control(&self) -> String {
        if self.no_store {
            return "no-store".to_owned();
        }
        let mut parts = Vec::with_capacity(6);
        match self.visibility {
            Visibility::Public => parts.push("public".to_owned()),
            Visibility::Private => parts.push("private".to_owned()),
        }
        parts.push(format!("max-age={}", self.max_age));
        if self.visibility == Visibility::Public
            && let Some(s) = self.edge_differs()
        {
            parts.push(format!("s-maxage={s}"));
        }
        self.push_stale(&mut parts);
        if self.immutable {
            parts.push("immutable".to_owned());
        }
        parts.join(", ")
    }

    /// The `CDN-Cache-Control` value (RFC 9213), sent only where the edge's lifetime
    /// differs from the browser's (elsewhere CDNs read `Cache-Control` alone).
    pub fn cdn_cache_control(&self) -> Option<String> {
        if self.no_store || self.visibility == Visibility::Private {
            return None;
        }
        let edge = self.edge_differs()?;
        let mut parts = vec![format!("max-age={edge}")];
        self.push_stale(&mut parts);
        Some(parts.join(", "))
    }

    fn push_stale(&self, parts: &mut Vec<String>) {
        if self.stale_while_revalidate > 0 {
            parts.push(format!(
                "stale-while-revalidate={}",
                self.stale_while_revalidate
            ));
        }
        if self.stale_if_error > 0 {
            parts.push(format!("stale-if-error={}", self.stale_if_error));
        }
    }
}

/// One rule: when it applies, and what it says. A rule with neither condition matches all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRule {
    /// The file's path must match this pattern.
    pub pattern: Option<PathPattern>,
    /// The file's name must (or must not) be content-hashed.
    pub hashed: Option<bool>,
    /// What the response says when the rule decides.
    pub directives: Directives,
}

impl CacheRule {
    /// Whether the rule applies to the file at `path`.
    pub fn applies(&self, path: &str) -> bool {
        self.pattern.as_ref().is_none_or(|p| p.matches(path))
            && self.hashed.is_none_or(|h| h == is_hashed(path))
    }
}

/// The ordered rules a server applies; the first match decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    rules: Vec<CacheRule>,
}

fn pattern(p: &str) -> Option<PathPattern> {
    PathPattern::new(p).ok()
}

impl RuleSet {
    /// The seed's rules (see the module's table).
    pub fn defaults() -> Vec<CacheRule> {
        vec![
            CacheRule {
                pattern: pattern("/api/**"),
                hashed: None,
                directives: Directives::bypass(),
            },
            CacheRule {
                pattern: None,
                hashed: Some(true),
                directives: Directives::hashed(),
            },
            CacheRule {
                pattern: pattern("*.{png,jpg,jpeg,gif,webp,avif,svg,ico,bmp}"),
                hashed: None,
                directives: Directives::image(),
            },
            CacheRule {
                pattern: pattern("*.{html,htm}"),
                hashed: None,
                directives: Directives::html(),
            },
            CacheRule {
                pattern: None,
                hashed: None,
                directives: Directives::standard(),
            },
        ]
    }

    /// `rules` in order, then the defaults if `with_defaults`.
    pub fn new(rules: Vec<CacheRule>, with_defaults: bool) -> Self {
        let mut all = rules;
        if with_defaults {
            all.extend(RuleSet::defaults());
        }
        RuleSet { rules: all }
    }

    /// The directives for the file at `path` (`docs/index.html`): the first matching rule's,
    /// else [`Directives::standard`].
    pub fn decide(&self, path: &str) -> Directives {
        self.rules
            .iter()
            .find(|r| r.applies(path))
            .map_or_else(Directives::standard, |r| r.directives.clone())
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[CacheRule] {
        &self.rules
    }
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet::new(Vec::new(), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(path: &str) -> (String, Option<String>) {
        let d = RuleSet::default().decide(path);
        (d.cache_control(), d.cdn_cache_control())
    }

    #[test]
    fn hashed_files_are_immutable_for_a_year() {
        let (c, cdn) = cc("assets/index-BzT3c9aF.js");
        assert_eq!(
            c,
            "public, max-age=31536000, stale-if-error=86400, immutable"
        );
        assert_eq!(cdn, None);
        assert!(
            RuleSet::default()
                .decide("main.3f2a9c1b.css")
                .is_immutable()
        );
    }

    #[test]
    fn images_a_week_at_the_edge_a_day_in_the_browser() {
        let (c, cdn) = cc("img/logo.png");
        assert_eq!(
            c,
            "public, max-age=86400, s-maxage=604800, stale-if-error=86400"
        );
        assert_eq!(cdn.as_deref(), Some("max-age=604800, stale-if-error=86400"));
        // A hashed image is hashed first.
        assert!(cc("assets/logo-Cq8Zz1Ab.png").0.contains("immutable"));
    }

    #[test]
    fn html_revalidates_in_the_browser_and_lives_five_minutes_at_the_edge() {
        let (c, cdn) = cc("docs/index.html");
        assert_eq!(
            c,
            "public, max-age=0, s-maxage=300, stale-while-revalidate=60, stale-if-error=3600"
        );
        assert_eq!(
            cdn.as_deref(),
            Some("max-age=300, stale-while-revalidate=60, stale-if-error=3600")
        );
    }

    #[test]
    fn api_bypasses_and_the_rest_is_standard() {
        assert_eq!(cc("api/users.json"), ("no-store".to_owned(), None));
        assert_eq!(cc("api/app-BzT3c9aF.js").0, "no-store");
        let (c, cdn) = cc("vendor/jquery-3.7.1.min.js");
        assert_eq!(
            c,
            "public, max-age=3600, s-maxage=86400, stale-while-revalidate=86400, stale-if-error=86400"
        );
        assert!(cdn.is_some());
    }

    #[test]
    fn private_responses_never_reach_shared_caches() {
        let d = Directives::private();
        assert_eq!(d.cache_control(), "private, max-age=0");
        assert_eq!(d.cdn_cache_control(), None);
        assert!(!d.is_immutable());
    }

    #[test]
    fn configured_rules_come_first_and_defaults_can_go() {
        let mine = CacheRule {
            pattern: pattern("/account/**"),
            hashed: None,
            directives: Directives::private(),
        };
        let set = RuleSet::new(vec![mine.clone()], true);
        assert_eq!(
            set.decide("account/me.html").cache_control(),
            "private, max-age=0"
        );
        assert!(
            set.decide("x.html")
                .cache_control()
                .contains("s-maxage=300")
        );
        let only = RuleSet::new(vec![mine], false);
        assert_eq!(only.decide("x.html"), Directives::standard());
        assert_eq!(Directives::preset("html"), Some(Directives::html()));
        assert_eq!(Directives::preset("nope"), None);
    }
}
