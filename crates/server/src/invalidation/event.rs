//! The events operators and upstreams send, and what each means for the cache: a front-end
//! concept (a package, a template, a site, a team's builds) turned into the store's
//! invalidation (selectors and epochs), or into a CDN purge for a site.

use serde::Deserialize;
use tiercache_core::{Kind, Scope, Selector};
use tiercache_store::{EpochBump, EpochOf, Invalidation};

use crate::build::{KIND as TURBO_KIND, check_hash, check_team};
use crate::npm::name::PackageName;
use crate::npm::{KIND_CORGI, KIND_FULL, KIND_INDEX};

/// Most paths or hashes one event may name.
pub const MAX_ITEMS: usize = 1000;

/// One event, as `POST /admin/events` and `tiercache invalidate` send it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Event {
    /// A package changed upstream: its packument leaves every tier (published tarballs are
    /// immutable and stay).
    PackageUpdate { name: String },
    /// A template changed: its scope is dropped.
    TemplateUpdate { name: String },
    /// A site was deployed elsewhere: the CDN forgets these paths (all of the site if none).
    Deploy {
        site: String,
        #[serde(default)]
        paths: Vec<String>,
    },
    /// A team's build artifacts (all, or these hashes) are no longer valid.
    BuildInvalidate {
        team: String,
        #[serde(default)]
        hashes: Vec<String>,
    },
    /// A kind's or a template's version epoch is raised: older entries are never served again.
    Epoch {
        #[serde(default)]
        kind: Option<String>,
        #[serde(default)]
        template: Option<String>,
        epoch: u32,
    },
}

/// What an event becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// An invalidation of the cache's own tiers (on every node).
    Cache(Invalidation),
    /// A purge of a site at its CDNs (through the purge outbox).
    Site { site: String, paths: Vec<String> },
}

impl Event {
    /// The event's name, for answers and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Event::PackageUpdate { .. } => "package-update",
            Event::TemplateUpdate { .. } => "template-update",
            Event::Deploy { .. } => "deploy",
            Event::BuildInvalidate { .. } => "build-invalidate",
            Event::Epoch { .. } => "epoch",
        }
    }

    /// Checks the event and says what it does; `Err` is a client's mistake, with the reason.
    pub fn plan(&self) -> Result<Plan, String> {
        let cache = |selectors: Vec<Selector>, epochs: Vec<EpochBump>, reason: String| {
            Ok(Plan::Cache(Invalidation {
                selectors,
                epochs,
                reason,
            }))
        };
        match self {
            Event::PackageUpdate { name } => {
                let pkg = PackageName::parse(name).map_err(|e| e.0)?;
                let selectors = [KIND_INDEX, KIND_FULL, KIND_CORGI]
                    .into_iter()
                    .map(|k| pkg.key(&Scope::Global, k, None).map(Selector::Key))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.0)?;
                cache(selectors, Vec::new(), format!("package-update {pkg}"))
            }
            Event::TemplateUpdate { name } => {
                let scope = Scope::template(name).map_err(|e| e.to_string())?;
                cache(
                    vec![Selector::Scope(scope)],
                    Vec::new(),
                    format!("template-update {name}"),
                )
            }
            Event::Deploy { site, paths } => {
                if paths.len() > MAX_ITEMS {
                    return Err(format!("at most {MAX_ITEMS} paths per event"));
                }
                Ok(Plan::Site {
                    site: site.clone(),
                    paths: paths.clone(),
                })
            }
            Event::BuildInvalidate { team, hashes } => {
                check_team(team).map_err(|e| e.message.clone())?;
                if hashes.len() > MAX_ITEMS {
                    return Err(format!("at most {MAX_ITEMS} hashes per event"));
                }
                let mut selectors = Vec::new();
                if hashes.is_empty() {
                    selectors.push(names(&format!("{team}~"))?);
                }
                for h in hashes {
                    check_hash(h).map_err(|e| e.message.clone())?;
                    selectors.push(names(&format!("{team}~{}", h.to_ascii_lowercase()))?);
                }
                cache(selectors, Vec::new(), format!("build-invalidate {team}"))
            }
            Event::Epoch {
                kind,
                template,
                epoch,
            } => {
                let of = match (kind, template) {
                    (Some(k), None) => {
                        Kind::new(k).map_err(|e| e.to_string())?;
                        EpochOf::Kind(k.clone())
                    }
                    (None, Some(t)) => {
                        Scope::template(t).map_err(|e| e.to_string())?;
                        EpochOf::Template(t.clone())
                    }
                    _ => return Err("an epoch event names either a kind or a template".into()),
                };
                let reason = format!("epoch {of:?} → {epoch}");
                cache(Vec::new(), vec![EpochBump { of, epoch: *epoch }], reason)
            }
        }
    }
}

fn names(prefix: &str) -> Result<Selector, String> {
    Selector::names(TURBO_KIND, prefix).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str) -> Result<Plan, String> {
        serde_json::from_str::<Event>(json)
            .map_err(|e| e.to_string())?
            .plan()
    }

    #[test]
    fn events_become_the_invalidations_they_name() {
        let Plan::Cache(inv) = plan(r#"{"event":"package-update","name":"@types/react"}"#).unwrap()
        else {
            panic!("a cache invalidation");
        };
        let keys: Vec<String> = inv
            .selectors
            .iter()
            .map(|s| match s {
                Selector::Key(k) => k.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            keys,
            [
                "global/npm-index/@types+react",
                "global/npm-full/@types+react",
                "global/npm-corgi/@types+react"
            ]
        );
        let Plan::Cache(inv) =
            plan(r#"{"event":"build-invalidate","team":"web","hashes":["ABC1"]}"#).unwrap()
        else {
            panic!("a cache invalidation");
        };
        assert_eq!(
            inv.selectors,
            [Selector::names("turbo", "web~abc1").unwrap()]
        );
        assert_eq!(
            plan(r#"{"event":"deploy","site":"docs"}"#).unwrap(),
            Plan::Site {
                site: "docs".into(),
                paths: Vec::new()
            }
        );
        let Plan::Cache(inv) = plan(r#"{"event":"epoch","template":"vite","epoch":3}"#).unwrap()
        else {
            panic!("a cache invalidation");
        };
        assert_eq!(inv.epochs[0].epoch, 3);
    }

    #[test]
    fn malformed_events_are_refused_with_a_reason() {
        for bad in [
            r#"{"event":"package-update"}"#,
            r#"{"event":"package-update","name":"../etc"}"#,
            r#"{"event":"template-update","name":"a/b"}"#,
            r#"{"event":"build-invalidate","team":"web","hashes":["xyz"]}"#,
            r#"{"event":"epoch","epoch":1}"#,
            r#"{"event":"epoch","kind":"npm-full","template":"x","epoch":1}"#,
            r#"{"event":"reboot"}"#,
            r#"{"event":"package-update","name":"x","extra":1}"#,
        ] {
            assert!(plan(bad).is_err(), "{bad}");
        }
    }
}
