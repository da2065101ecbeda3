//! The seam to CDN purging: when a deploy goes live (or is rolled back), the URLs whose
//! answers changed are handed to a [`PurgeSink`] (the durable purge outbox, when one is
//! configured). Content-hashed files are immutable by the rules and never asked for: their
//! URLs never change content.
//!
//! Responses carry the tags `site:<site>` and `deploy:<site>:<n>` (in `Surrogate-Key`
//! and `Cache-Tag`); a deploy with more changed URLs than [`MAX_PURGE_URLS`], or a site
//! without any known public URL, is purged by the tag of the deploy it replaces instead.

use std::collections::BTreeSet;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tiercache_core::assets::{RuleSet, SitePath};

use super::manifest::{Manifest, changed_paths};

pub use crate::cdn::{PurgeRequest, PurgeSink};

/// Most URLs one purge request lists; past that, the replaced deploy's tag is purged.
pub const MAX_PURGE_URLS: usize = 1000;

/// The tag every response of `site` carries.
pub fn site_tag(site: &str) -> String {
    format!("site:{site}")
}

/// The tag every response of deploy `n` of `site` carries.
pub fn deploy_tag(site: &str, n: u64) -> String {
    format!("deploy:{site}:{n}")
}

/// Characters escaped in a URL path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'^')
    .add(b'[')
    .add(b']');

/// The URL path (no leading `/`) of a site path, each segment escaped.
fn url_path(path: &str) -> String {
    path.split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every URL under which `path` is served below `base` (no trailing `/`): the file itself,
/// and for an `index.html` its directory (`dir/` and `dir`, or `/` for the root).
fn urls_of(base: &str, path: &str) -> Vec<String> {
    let mut out = vec![format!("{base}/{}", url_path(path))];
    if path == "index.html" {
        out.push(format!("{base}/"));
    } else if let Some(dir) = path.strip_suffix("/index.html") {
        let dir = url_path(dir);
        out.push(format!("{base}/{dir}/"));
        out.push(format!("{base}/{dir}"));
    }
    out
}

/// The purge a `deploy` event asks for: `paths` of `site` under each of `bases`, or (no
/// paths) everything tagged with the site.
pub fn purge_of_paths(site: &str, bases: &[String], paths: &[SitePath]) -> PurgeRequest {
    if paths.is_empty() {
        return PurgeRequest {
            site: site.to_owned(),
            urls: Vec::new(),
            tags: vec![site_tag(site)],
            everything: false,
        };
    }
    PurgeRequest {
        site: site.to_owned(),
        urls: bases
            .iter()
            .flat_map(|b| paths.iter().flat_map(move |p| urls_of(b, p.as_str())))
            .collect(),
        tags: Vec::new(),
        everything: false,
    }
}

/// The purge a switch from `old` to `new` needs, or `None` if no mutable response changed.
/// `bases` are the site's public URL and this server's `…/assets/<site>` (no trailing `/`).
pub fn purge_for(
    old: Option<&Manifest>,
    new: &Manifest,
    rules: &RuleSet,
    bases: &[String],
) -> Option<PurgeRequest> {
    let changed: BTreeSet<String> = changed_paths(old, new)
        .into_iter()
        .filter(|p| !rules.decide(p).is_immutable())
        .collect();
    if changed.is_empty() {
        return None;
    }
    let urls: Vec<String> = bases
        .iter()
        .flat_map(|b| changed.iter().flat_map(move |p| urls_of(b, p)))
        .collect();
    let site = new.site.clone();
    if urls.is_empty() || urls.len() > MAX_PURGE_URLS {
        let tag = match old {
            Some(m) => deploy_tag(&site, m.deploy),
            None => site_tag(&site),
        };
        return Some(PurgeRequest {
            site,
            urls: Vec::new(),
            tags: vec![tag],
            everything: false,
        });
    }
    Some(PurgeRequest {
        site,
        urls,
        tags: Vec::new(),
        everything: false,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::assets::manifest::{DeployRequest, FileUpload};
    use tiercache_core::ContentHash;

    fn manifest(n: u64, files: &[(&str, &str)]) -> Manifest {
        let req = DeployRequest {
            files: files
                .iter()
                .map(|(p, b)| {
                    let upload = FileUpload {
                        hash: ContentHash::of(b.as_bytes()),
                        size: b.len() as u64,
                        variants: BTreeMap::new(),
                    };
                    ((*p).to_owned(), upload)
                })
                .collect(),
        };
        req.into_manifest("docs", n, 0, 1 << 20, None).unwrap()
    }

    #[test]
    fn a_deploy_purges_changed_mutable_urls_only() {
        let old = manifest(
            1,
            &[
                ("index.html", "v1"),
                ("guide/index.html", "g1"),
                ("assets/index-BzT3c9aF.js", "js1"),
                ("logo.png", "png"),
                ("old page.html", "gone"),
            ],
        );
        let new = manifest(
            2,
            &[
                ("index.html", "v2"),
                ("guide/index.html", "g2"),
                ("assets/index-Qx81LmZa.js", "js2"),
                ("logo.png", "png"),
            ],
        );
        let bases = vec![
            "https://docs.example".to_owned(),
            "https://cache.example/assets/docs".to_owned(),
        ];
        let req = purge_for(Some(&old), &new, &RuleSet::default(), &bases).unwrap();
        assert_eq!(req.site, "docs");
        assert!(req.tags.is_empty());
        assert!(!req.everything);
        assert_eq!(
            req.urls,
            [
                "https://docs.example/guide/index.html",
                "https://docs.example/guide/",
                "https://docs.example/guide",
                "https://docs.example/index.html",
                "https://docs.example/",
                "https://docs.example/old%20page.html",
                "https://cache.example/assets/docs/guide/index.html",
                "https://cache.example/assets/docs/guide/",
                "https://cache.example/assets/docs/guide",
                "https://cache.example/assets/docs/index.html",
                "https://cache.example/assets/docs/",
                "https://cache.example/assets/docs/old%20page.html",
            ]
        );
    }

    #[test]
    fn nothing_mutable_changed_means_no_purge() {
        let old = manifest(1, &[("index.html", "v1"), ("a-BzT3c9aF.js", "1")]);
        let new = manifest(2, &[("index.html", "v1"), ("a-Qx81LmZa.js", "2")]);
        assert_eq!(
            purge_for(Some(&old), &new, &RuleSet::default(), &["https://x".into()]),
            None
        );
    }

    #[test]
    fn without_urls_or_with_too_many_the_old_deploys_tag_is_purged() {
        let old = manifest(4, &[("index.html", "v1")]);
        let new = manifest(5, &[("index.html", "v2")]);
        let req = purge_for(Some(&old), &new, &RuleSet::default(), &[]).unwrap();
        assert_eq!(req.tags, ["deploy:docs:4"]);
        assert!(req.urls.is_empty());
        let first = purge_for(None, &new, &RuleSet::default(), &[]).unwrap();
        assert_eq!(first.tags, ["site:docs"]);
        let many: Vec<(String, String)> = (0..MAX_PURGE_URLS + 1)
            .map(|i| (format!("p{i}.html"), format!("{i}")))
            .collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let big = manifest(6, &refs);
        let req = purge_for(Some(&new), &big, &RuleSet::default(), &["https://x".into()]).unwrap();
        assert_eq!(req.tags, ["deploy:docs:5"]);
    }
}
