//! Packuments: from one upstream document, derive — once per upstream change — the full
//! document and the abbreviated ("corgi") one as ready-to-serve bytes, and a small index of
//! tarballs (basename → upstream URL and integrity) that tarball requests read instead of
//! the (possibly 40 MB) packument.
//!
//! `dist.tarball` is rewritten to `<BASE_MARKER>/<name>/-/<basename>`; the marker is replaced
//! by the proxy's own URL when a document is served, so one stored copy serves every host.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Map, Value};

use super::name::{PackageName, tarball_basename};

/// Stands for the proxy's base URL (`http://host/npm`) in stored documents.
pub const BASE_MARKER: &str = "@@tiercache-npm-base@@";

/// Fields of a version that the abbreviated form keeps (npm's list plus what pnpm reads).
const CORGI_VERSION_FIELDS: &[&str] = &[
    "name",
    "version",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bundleDependencies",
    "bundledDependencies",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "_hasShrinkwrap",
    "hasInstallScript",
    "deprecated",
    "cpu",
    "os",
    "libc",
    "funding",
];

/// Where a tarball comes from and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TarballRef {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shasum: Option<String>,
}

/// What is known about a cached package without reading its documents.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PackageIndex {
    pub name: String,
    /// When the upstream last confirmed this copy (fetch or 304).
    pub fetched_ms: u64,
    #[serde(default)]
    pub upstream_etag: Option<String>,
    #[serde(default)]
    pub upstream_last_modified: Option<String>,
    /// `time.modified` of the document (RFC 3339), served as `modified` and Last-Modified.
    pub modified: String,
    /// Content hashes of the stored full and abbreviated documents (for ETags).
    pub full_hash: String,
    pub corgi_hash: String,
    pub tarballs: BTreeMap<String, TarballRef>,
}

impl PackageIndex {
    /// Whether the copy was confirmed within `fresh_for`.
    pub fn is_fresh(&self, now_ms: u64, fresh_for: Duration) -> bool {
        let fresh_ms = u64::try_from(fresh_for.as_millis()).unwrap_or(u64::MAX);
        now_ms < self.fetched_ms.saturating_add(fresh_ms)
    }

    /// `modified` as an HTTP date, for Last-Modified.
    pub fn last_modified(&self) -> Option<String> {
        parse_time(&self.modified).map(httpdate::fmt_http_date)
    }
}

/// The three derived forms of one upstream packument.
pub struct Derived {
    pub full: Bytes,
    pub corgi: Bytes,
    pub tarballs: BTreeMap<String, TarballRef>,
    pub modified: String,
}

/// Why an upstream document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PackumentError {
    #[error("the upstream packument is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the upstream packument is not an object")]
    NotAnObject,
    #[error("the upstream packument is for {found:?}, not {wanted:?}")]
    WrongName { wanted: String, found: String },
}

/// Derives the stored forms from an upstream (full) packument.
pub fn derive(name: &PackageName, upstream: &[u8]) -> Result<Derived, PackumentError> {
    let mut doc: Value = serde_json::from_slice(upstream)?;
    let obj = doc.as_object_mut().ok_or(PackumentError::NotAnObject)?;
    if let Some(found) = obj.get("name").and_then(Value::as_str)
        && found != name.as_str()
    {
        return Err(PackumentError::WrongName {
            wanted: name.to_string(),
            found: found.to_owned(),
        });
    }
    let modified = modified_of(obj).unwrap_or_else(SystemTime::now);
    let modified = humantime::format_rfc3339_millis(modified).to_string();

    let mut tarballs = BTreeMap::new();
    let mut corgi_versions = Map::new();
    if let Some(Value::Object(versions)) = obj.get_mut("versions") {
        for (v, version) in versions.iter_mut() {
            let Some(vobj) = version.as_object_mut() else {
                continue;
            };
            rewrite_dist(name, vobj, &mut tarballs);
            corgi_versions.insert(v.clone(), corgi_version(vobj));
        }
    }
    let mut corgi = Map::new();
    corgi.insert("name".into(), Value::String(name.to_string()));
    corgi.insert("modified".into(), Value::String(modified.clone()));
    if let Some(tags) = obj.get("dist-tags") {
        corgi.insert("dist-tags".into(), tags.clone());
    }
    corgi.insert("versions".into(), Value::Object(corgi_versions));
    Ok(Derived {
        full: Bytes::from(serde_json::to_vec(&doc)?),
        corgi: Bytes::from(serde_json::to_vec(&Value::Object(corgi))?),
        tarballs,
        modified,
    })
}

/// When the document last changed: `time.modified` (or a top-level `modified`), else the
/// latest of its `time` entries (some registries omit `modified`).
fn modified_of(doc: &Map<String, Value>) -> Option<SystemTime> {
    let time = doc.get("time").and_then(Value::as_object);
    let stated = time
        .and_then(|t| t.get("modified"))
        .or_else(|| doc.get("modified"))
        .and_then(Value::as_str)
        .and_then(parse_time);
    stated.or_else(|| {
        time?
            .values()
            .filter_map(Value::as_str)
            .filter_map(parse_time)
            .max()
    })
}

/// Parses an RFC 3339 time, also in the `+00:00` form some registries write.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok().or_else(|| {
        let utc = s.strip_suffix("+00:00")?;
        humantime::parse_rfc3339_weak(utc).ok()
    })
}

/// Points `dist.tarball` at the proxy and records where the bytes really come from.
fn rewrite_dist(
    name: &PackageName,
    version: &mut Map<String, Value>,
    tarballs: &mut BTreeMap<String, TarballRef>,
) {
    let Some(Value::Object(dist)) = version.get_mut("dist") else {
        return;
    };
    let Some(url) = dist
        .get("tarball")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    let base = url.rsplit('/').next().unwrap_or("");
    let Ok(base) = tarball_basename(base) else {
        return;
    };
    let text = |k: &str| dist.get(k).and_then(Value::as_str).map(str::to_owned);
    tarballs.insert(
        base.to_owned(),
        TarballRef {
            url: url.clone(),
            integrity: text("integrity"),
            shasum: text("shasum"),
        },
    );
    dist.insert(
        "tarball".into(),
        Value::String(format!("{BASE_MARKER}/{}/-/{base}", name.as_str())),
    );
}

fn corgi_version(version: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for field in CORGI_VERSION_FIELDS {
        if let Some(v) = version.get(*field) {
            out.insert((*field).to_owned(), v.clone());
        }
    }
    if !out.contains_key("hasInstallScript")
        && let Some(Value::Object(scripts)) = version.get("scripts")
        && ["preinstall", "install", "postinstall"]
            .iter()
            .any(|s| scripts.contains_key(*s))
    {
        out.insert("hasInstallScript".into(), Value::Bool(true));
    }
    Value::Object(out)
}

/// A stored document with the marker replaced by `base`.
pub fn render(stored: &Bytes, base: &str) -> Bytes {
    let finder = memchr::memmem::Finder::new(BASE_MARKER.as_bytes());
    let mut out: Option<Vec<u8>> = None;
    let mut last = 0;
    for at in finder.find_iter(stored) {
        let buf = out.get_or_insert_with(|| Vec::with_capacity(stored.len() + 4096));
        buf.extend_from_slice(&stored[last..at]);
        buf.extend_from_slice(base.as_bytes());
        last = at + BASE_MARKER.len();
    }
    match out {
        None => stored.clone(),
        Some(mut buf) => {
            buf.extend_from_slice(&stored[last..]);
            Bytes::from(buf)
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream() -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "_id": "@acme/util",
            "name": "@acme/util",
            "readme": "long text",
            "dist-tags": {"latest": "1.1.0"},
            "time": {"created": "2020-01-01T00:00:00.000Z", "modified": "2024-05-06T07:08:09.000Z"},
            "versions": {
                "1.1.0": {
                    "name": "@acme/util", "version": "1.1.0",
                    "dependencies": {"left-pad": "^1.0.0"},
                    "scripts": {"postinstall": "node x.js", "test": "t"},
                    "readme": "drop me",
                    "dist": {
                        "tarball": "https://origin.invalid/@acme/util/-/util-1.1.0.tgz",
                        "integrity": "sha512-abc", "shasum": "0123"
                    }
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn derives_full_corgi_and_index() {
        let name = PackageName::parse("@acme/util").unwrap();
        let d = derive(&name, &upstream()).unwrap();
        assert_eq!(d.modified, "2024-05-06T07:08:09.000Z");
        assert_eq!(
            d.tarballs["util-1.1.0.tgz"].url,
            "https://origin.invalid/@acme/util/-/util-1.1.0.tgz"
        );
        let full: Value = serde_json::from_slice(&render(&d.full, "http://proxy/npm")).unwrap();
        assert_eq!(
            full["versions"]["1.1.0"]["dist"]["tarball"],
            "http://proxy/npm/@acme/util/-/util-1.1.0.tgz"
        );
        assert_eq!(full["readme"], "long text");
        let corgi: Value = serde_json::from_slice(&render(&d.corgi, "http://p/npm")).unwrap();
        assert_eq!(corgi["modified"], "2024-05-06T07:08:09.000Z");
        assert_eq!(corgi["dist-tags"]["latest"], "1.1.0");
        let v = &corgi["versions"]["1.1.0"];
        assert_eq!(v["hasInstallScript"], true);
        assert_eq!(v["dist"]["integrity"], "sha512-abc");
        assert!(v.get("readme").is_none() && v.get("scripts").is_none());
        assert!(corgi.get("readme").is_none() && corgi.get("time").is_none());
    }

    #[test]
    fn modified_falls_back_to_the_latest_time() {
        let doc = serde_json::json!({
            "name": "x",
            "time": {"1.0.0": "2024-01-01T00:00:00.000000+00:00", "1.1.0": "2025-02-03T04:05:06.000000+00:00"},
            "versions": {}
        });
        let name = PackageName::parse("x").unwrap();
        let d = derive(&name, &serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(d.modified, "2025-02-03T04:05:06.000Z");
    }

    #[test]
    fn refuses_a_document_for_another_package() {
        let name = PackageName::parse("other").unwrap();
        assert!(matches!(
            derive(&name, &upstream()),
            Err(PackumentError::WrongName { .. })
        ));
        assert!(derive(&name, b"[1,2]").is_err());
        assert!(derive(&name, b"{not json").is_err());
    }

    #[test]
    fn render_without_marker_is_identity() {
        let b = Bytes::from_static(b"{\"a\":1}");
        assert_eq!(render(&b, "x"), b);
    }
}
