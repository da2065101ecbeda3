//! What `tiercache prewarm npm` fetches, decided without any I/O: which version a range
//! picks from a packument (npm's rules), and the dependency closure, each package@version
//! once. The driver in `prewarm.rs` feeds packuments in and carries out the steps out.

use std::collections::{BTreeMap, HashMap, HashSet};

use nodejs_semver::{Range, Version};
use serde::{Deserialize, Deserializer};

/// The parts of an (abbreviated) packument that prewarming reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Packument {
    /// Tag name to version, e.g. `latest`.
    #[serde(rename = "dist-tags", default)]
    pub dist_tags: BTreeMap<String, String>,
    /// Version string to what that version needs.
    #[serde(default)]
    pub versions: BTreeMap<String, Manifest>,
}

/// One version of a package, as far as prewarming cares.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Manifest {
    /// `dependencies` only: dev, peer and optional ones are not installed for a consumer.
    #[serde(default, deserialize_with = "string_map")]
    pub dependencies: BTreeMap<String, String>,
    #[serde(default)]
    pub dist: Dist,
    /// npm passes over deprecated versions when another one satisfies the range.
    #[serde(default, deserialize_with = "deprecation")]
    pub deprecated: bool,
}

/// Where a version's tarball is.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Dist {
    pub tarball: Option<String>,
}

/// Old packuments hold odd shapes (arrays, nulls): keep only `"name": "range"` pairs.
fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

/// `deprecated` is a message; an empty string or `false` means not deprecated.
fn deprecation<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Bool(b) => b,
        _ => false,
    })
}

/// Something that could not be prewarmed, and why (listed in the summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `name`, `name@range` or `name@version`.
    pub what: String,
    pub reason: String,
}

/// A tarball to fetch: one per package@version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tarball {
    pub name: String,
    pub version: String,
    /// `dist.tarball` of the served packument.
    pub url: String,
}

/// What the driver has to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Fetch this package's packument, then call [`Planner::packument_arrived`] or
    /// [`Planner::packument_failed`].
    Packument(String),
    Tarball(Tarball),
    Failed(Failure),
    /// A dependency that does not come from a registry (git, file, URL): nothing to warm.
    Skipped(String),
}

/// A package the user asked for: `name` or `name@range` (`range` may be a dist-tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub range: Option<String>,
}

impl Spec {
    /// Parses `NAME[@RANGE]`, scoped names included (`@types/react@^18`).
    pub fn parse(s: &str) -> Result<Spec, String> {
        let s = s.trim();
        let at = s
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '@')
            .map(|(i, _)| i);
        let (name, range) = match at {
            Some(i) => (&s[..i], Some(s[i + 1..].trim())),
            None => (s, None),
        };
        check_name(name)?;
        Ok(Spec {
            name: name.to_owned(),
            range: range.filter(|r| !r.is_empty()).map(str::to_owned),
        })
    }
}

/// Refuses anything that is not an npm name (`pkg` or `@scope/pkg`), so a name can go
/// into a URL path as it is.
pub fn check_name(name: &str) -> Result<(), String> {
    let part = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.starts_with('_')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    };
    let ok = name.len() <= 214
        && match name.strip_prefix('@') {
            Some(rest) => rest
                .split_once('/')
                .is_some_and(|(scope, pkg)| part(scope) && part(pkg)),
            None => part(name),
        };
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not an npm package name"))
    }
}

/// The packument's path under `/npm/`: scoped names as `@scope%2fname`.
pub fn packument_path(name: &str) -> String {
    name.replacen('/', "%2f", 1)
}

/// The version npm would install for `range`: no range means the `latest` tag; a tag name
/// means that tag; otherwise `latest` if it satisfies the range (npm prefers it), else the
/// highest satisfying version that is not deprecated, else the highest deprecated one.
pub fn pick_version(p: &Packument, range: Option<&str>) -> Result<String, String> {
    let known = |v: &str| {
        if p.versions.contains_key(v) {
            Ok(v.to_owned())
        } else {
            Err(format!(
                "dist-tag points at {v}, which the packument does not list"
            ))
        }
    };
    let range = range.map(str::trim).unwrap_or("latest");
    if let Some(v) = p.dist_tags.get(range) {
        return known(v);
    }
    let parsed = Range::parse(range).map_err(|_| {
        if range.bytes().any(|b| b.is_ascii_digit()) || range.is_empty() {
            format!("{range:?} is not a valid semver range")
        } else {
            format!("no dist-tag {range:?}")
        }
    })?;
    if let Some(latest) = p.dist_tags.get("latest")
        && Version::parse(latest).is_ok_and(|v| parsed.satisfies(&v))
        && p.versions.contains_key(latest)
    {
        return Ok(latest.clone());
    }
    let best = p
        .versions
        .iter()
        .filter_map(|(s, m)| {
            let v = Version::parse(s).ok()?;
            parsed.satisfies(&v).then_some((!m.deprecated, v, s))
        })
        .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    match best {
        Some((_, _, s)) => Ok(s.clone()),
        None => Err(match p.dist_tags.get("latest") {
            Some(latest) => format!("no version matches {range} (latest is {latest})"),
            None => format!("no version matches {range}"),
        }),
    }
}

/// A dependency's spec turned into a registry package and range: `npm:real@range` aliases
/// point at `real`; git, file, link, URL and workspace specs are not in a registry.
fn registry_spec(name: &str, spec: &str) -> Option<(String, Option<String>)> {
    let spec = spec.trim();
    if let Some(alias) = spec.strip_prefix("npm:") {
        return Spec::parse(alias).ok().map(|s| (s.name, s.range));
    }
    if spec.contains(':') || spec.contains('/') {
        return None;
    }
    Some((name.to_owned(), Some(spec.to_owned())))
}

/// The closure walker: remembers every name@range asked for, every package@version
/// planned, and the packuments seen, so that each is handled once.
#[derive(Debug, Default)]
pub struct Planner {
    with_deps: bool,
    asked: HashSet<(String, String)>,
    planned: HashSet<(String, String)>,
    packuments: HashMap<String, Packument>,
    failed: HashSet<String>,
    waiting: HashMap<String, Vec<Option<String>>>,
}

impl Planner {
    /// A planner; `with_deps` walks each picked version's `dependencies` too.
    pub fn new(with_deps: bool) -> Self {
        Planner {
            with_deps,
            ..Default::default()
        }
    }

    /// Asks for `name` at `range` (`None`: the `latest` tag).
    pub fn want(&mut self, name: &str, range: Option<&str>) -> Vec<Step> {
        let mut steps = Vec::new();
        self.want_into(name, range, &mut steps);
        steps
    }

    fn want_into(&mut self, name: &str, range: Option<&str>, steps: &mut Vec<Step>) {
        let key = (name.to_owned(), range.unwrap_or("").to_owned());
        if !self.asked.insert(key) {
            return;
        }
        if let Err(reason) = check_name(name) {
            steps.push(Step::Failed(Failure {
                what: describe(name, range),
                reason,
            }));
            return;
        }
        if self.failed.contains(name) {
            // Already listed once as a failure of the package itself.
            return;
        }
        if self.packuments.contains_key(name) {
            self.resolve(name, range, steps);
            return;
        }
        let waiting = self.waiting.entry(name.to_owned()).or_default();
        if waiting.is_empty() {
            steps.push(Step::Packument(name.to_owned()));
        }
        waiting.push(range.map(str::to_owned));
    }

    /// Takes in a fetched packument and resolves everything that waited for it.
    pub fn packument_arrived(&mut self, name: &str, packument: Packument) -> Vec<Step> {
        self.packuments.insert(name.to_owned(), packument);
        let mut steps = Vec::new();
        for range in self.waiting.remove(name).unwrap_or_default() {
            self.resolve(name, range.as_deref(), &mut steps);
        }
        steps
    }

    /// Records that a packument could not be fetched: everything waiting for it fails.
    pub fn packument_failed(&mut self, name: &str, reason: &str) -> Vec<Step> {
        self.failed.insert(name.to_owned());
        let ranges = self.waiting.remove(name).unwrap_or_default();
        if ranges.is_empty() {
            return Vec::new();
        }
        // One entry per package: the fetch failed, whatever range was asked.
        vec![Step::Failed(Failure {
            what: name.to_owned(),
            reason: reason.to_owned(),
        })]
    }

    fn resolve(&mut self, name: &str, range: Option<&str>, steps: &mut Vec<Step>) {
        let Some(p) = self.packuments.get(name) else {
            return;
        };
        let version = match pick_version(p, range) {
            Ok(v) => v,
            Err(reason) => {
                steps.push(Step::Failed(Failure {
                    what: describe(name, range),
                    reason,
                }));
                return;
            }
        };
        if !self.planned.insert((name.to_owned(), version.clone())) {
            return;
        }
        let Some(manifest) = p.versions.get(&version) else {
            return;
        };
        match &manifest.dist.tarball {
            Some(url) => steps.push(Step::Tarball(Tarball {
                name: name.to_owned(),
                version: version.clone(),
                url: url.clone(),
            })),
            None => steps.push(Step::Failed(Failure {
                what: format!("{name}@{version}"),
                reason: "the packument has no dist.tarball for this version".into(),
            })),
        }
        if !self.with_deps {
            return;
        }
        let deps: Vec<(String, String)> = manifest
            .dependencies
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (dep, spec) in deps {
            match registry_spec(&dep, &spec) {
                Some((real, range)) => self.want_into(&real, range.as_deref(), steps),
                None => steps.push(Step::Skipped(format!(
                    "{dep}@{spec} (needed by {name}@{version}): not from a registry"
                ))),
            }
        }
    }
}

fn describe(name: &str, range: Option<&str>) -> String {
    match range {
        Some(r) => format!("{name}@{r}"),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packument(latest: &str, versions: &[(&str, &[(&str, &str)])]) -> Packument {
        let mut p = Packument::default();
        p.dist_tags.insert("latest".into(), latest.into());
        for (v, deps) in versions {
            p.versions.insert(
                (*v).into(),
                Manifest {
                    dependencies: deps
                        .iter()
                        .map(|(a, b)| ((*a).into(), (*b).into()))
                        .collect(),
                    dist: Dist {
                        tarball: Some(format!("http://cache/npm/x/-/x-{v}.tgz")),
                    },
                    deprecated: false,
                },
            );
        }
        p
    }

    /// Drives a planner to the end over a fixed set of packuments.
    fn plan(
        roots: &[&str],
        deps: bool,
        registry: &HashMap<&str, Packument>,
    ) -> (Vec<(String, String)>, Vec<Failure>, usize) {
        let mut planner = Planner::new(deps);
        let mut queue: Vec<Step> = Vec::new();
        for r in roots {
            let s = Spec::parse(r).unwrap();
            queue.extend(planner.want(&s.name, s.range.as_deref()));
        }
        let (mut tarballs, mut failures, mut fetched) = (Vec::new(), Vec::new(), 0);
        while let Some(step) = queue.pop() {
            match step {
                Step::Packument(name) => {
                    fetched += 1;
                    match registry.get(name.as_str()) {
                        Some(p) => queue.extend(planner.packument_arrived(&name, p.clone())),
                        None => queue.extend(planner.packument_failed(&name, "404")),
                    }
                }
                Step::Tarball(t) => tarballs.push((t.name, t.version)),
                Step::Failed(f) => failures.push(f),
                Step::Skipped(_) => {}
            }
        }
        tarballs.sort();
        (tarballs, failures, fetched)
    }

    #[test]
    fn caret_picks_the_highest_of_its_major() {
        let p = packument(
            "2.0.0",
            &[
                ("1.1.0", &[]),
                ("1.2.0", &[]),
                ("1.9.3", &[]),
                ("2.0.0", &[]),
            ],
        );
        assert_eq!(pick_version(&p, Some("^1.2.0")).unwrap(), "1.9.3");
        assert_eq!(pick_version(&p, Some("~1.1")).unwrap(), "1.1.0");
        assert_eq!(pick_version(&p, Some("1.2.0")).unwrap(), "1.2.0");
        assert_eq!(pick_version(&p, Some(">=1 <1.5")).unwrap(), "1.2.0");
        assert_eq!(pick_version(&p, Some("1.x || 2.x")).unwrap(), "2.0.0");
    }

    #[test]
    fn no_range_means_latest_and_tags_are_followed() {
        let mut p = packument("1.0.0", &[("1.0.0", &[]), ("2.0.0-rc.1", &[])]);
        p.dist_tags.insert("next".into(), "2.0.0-rc.1".into());
        assert_eq!(pick_version(&p, None).unwrap(), "1.0.0");
        assert_eq!(pick_version(&p, Some("next")).unwrap(), "2.0.0-rc.1");
        assert_eq!(pick_version(&p, Some("*")).unwrap(), "1.0.0");
        // Prereleases match only ranges that name one.
        assert_eq!(
            pick_version(&p, Some(">=1.5")).unwrap_err(),
            "no version matches >=1.5 (latest is 1.0.0)"
        );
        assert_eq!(pick_version(&p, Some("^2.0.0-rc.0")).unwrap(), "2.0.0-rc.1");
    }

    #[test]
    fn latest_wins_when_it_satisfies_and_deprecated_versions_lose() {
        // A newer 1.x was published under another tag; npm still installs `latest` for ^1.
        let mut p = packument("1.2.0", &[("1.2.0", &[]), ("1.3.0", &[]), ("1.4.0", &[])]);
        assert_eq!(pick_version(&p, Some("^1")).unwrap(), "1.2.0");
        p.dist_tags.insert("latest".into(), "0.9.0".into());
        assert!(
            pick_version(&p, None)
                .unwrap_err()
                .contains("does not list")
        );
        if let Some(m) = p.versions.get_mut("1.4.0") {
            m.deprecated = true;
        }
        assert_eq!(pick_version(&p, Some("^1")).unwrap(), "1.3.0");
        assert_eq!(pick_version(&p, Some("^1.4")).unwrap(), "1.4.0");
    }

    #[test]
    fn a_range_nothing_matches_or_a_bad_one_is_an_error_entry() {
        let reg = HashMap::from([("a", packument("1.0.0", &[("1.0.0", &[])]))]);
        let (tarballs, failures, _) = plan(&["a@^3", "a@nosuchtag", "missing@^1"], true, &reg);
        assert!(tarballs.is_empty());
        let mut whats: Vec<_> = failures.iter().map(|f| f.what.as_str()).collect();
        whats.sort();
        assert_eq!(whats, ["a@^3", "a@nosuchtag", "missing"]);
        let tag = failures.iter().find(|f| f.what == "a@nosuchtag").unwrap();
        assert_eq!(tag.reason, "no dist-tag \"nosuchtag\"");
    }

    #[test]
    fn the_closure_is_walked_once_per_package_version() {
        let reg = HashMap::from([
            (
                "app",
                packument(
                    "1.0.0",
                    &[("1.0.0", &[("lib", "^1.0.0"), ("util", "~2.1.0")])],
                ),
            ),
            (
                "lib",
                packument(
                    "1.5.0",
                    &[
                        ("1.0.0", &[]),
                        ("1.5.0", &[("util", "^2.0.0"), ("git-dep", "github:a/b")]),
                    ],
                ),
            ),
            (
                "util",
                packument(
                    "2.2.0",
                    &[
                        ("2.1.0", &[("lib", "^1.2.0")]),
                        ("2.1.4", &[("lib", ">=1.1")]),
                        ("2.2.0", &[]),
                    ],
                ),
            ),
        ]);
        let (tarballs, failures, fetched) = plan(&["app"], true, &reg);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(fetched, 3, "one packument per package");
        let want: Vec<(String, String)> = [
            ("app", "1.0.0"),
            ("lib", "1.5.0"),
            ("util", "2.1.4"),
            ("util", "2.2.0"),
        ]
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect();
        assert_eq!(tarballs, want);
        // Without --deps only the root.
        let (tarballs, _, fetched) = plan(&["app", "app@1.0.0", "app@^1"], false, &reg);
        assert_eq!((tarballs.len(), fetched), (1, 1));
    }

    #[test]
    fn aliases_follow_the_real_package() {
        let reg = HashMap::from([
            (
                "app",
                packument("1.0.0", &[("1.0.0", &[("old", "npm:new@^2")])]),
            ),
            ("new", packument("2.1.0", &[("2.1.0", &[])])),
        ]);
        let (tarballs, failures, _) = plan(&["app"], true, &reg);
        assert!(failures.is_empty());
        assert!(tarballs.contains(&("new".into(), "2.1.0".into())));
    }

    #[test]
    fn specs_and_paths() {
        let s = Spec::parse("@types/react@^18").unwrap();
        assert_eq!(
            (s.name.as_str(), s.range.as_deref()),
            ("@types/react", Some("^18"))
        );
        let s = Spec::parse("@types/react").unwrap();
        assert_eq!((s.name.as_str(), s.range), ("@types/react", None));
        let s = Spec::parse("is-number@").unwrap();
        assert_eq!(s.range, None);
        assert!(Spec::parse("../etc").is_err());
        assert!(Spec::parse("@scope").is_err());
        assert!(Spec::parse("a/b").is_err());
        assert_eq!(packument_path("@types/react"), "@types%2freact");
        assert_eq!(packument_path("react"), "react");
    }

    #[test]
    fn odd_packuments_parse() {
        let p: Packument = serde_json::from_str(
            r#"{"name":"x","dist-tags":{"latest":"1.0.0"},"versions":{"1.0.0":{"dependencies":["a"],"deprecated":"","dist":{"tarball":"t"}},"0.1.0":{"dependencies":{"a":"1","b":null},"deprecated":"old"}}}"#,
        )
        .unwrap();
        assert!(p.versions["1.0.0"].dependencies.is_empty());
        assert!(!p.versions["1.0.0"].deprecated);
        assert_eq!(p.versions["0.1.0"].dependencies.len(), 1);
        assert!(p.versions["0.1.0"].deprecated);
    }
}
