//! A local npm origin registry for end-to-end tests: an axum server on 127.0.0.1 inside the
//! test process, serving real packuments and real gzip'd tarballs built from [`Package`]s.
//!
//! ```ignore
//! let origin = Origin::start(vec![
//!     Package::new("a").version(Version::new("1.0.0").dep("b", "^1.0.0")),
//!     Package::new("b").version(Version::new("1.0.0")),
//! ])
//! .await;
//! // point tiercache at it: --npm-upstream <origin.url()>
//! ```
//!
//! Routes (raw paths; `@scope%2fname`, `@scope%2Fname` and `@scope/name` all name a scoped
//! package):
//! - `GET /<name>`: the full packument (`application/json`, `ETag`, `If-None-Match` → 304);
//! - `GET /<name>/<version-or-tag>`: one version's manifest;
//! - `GET /<name>/-/<basename>-<version>.tgz`: the tarball (`application/octet-stream`);
//! - anything unknown: 404 `{"error":"Not found"}`.
//!
//! The server runs as tasks on the current tokio runtime: a test that blocks its thread (for
//! example `std::process::Command::output()` running npm) must use a multi-thread runtime or
//! `spawn_blocking`, or the origin cannot answer.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha1::Digest as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The mtime npm itself writes into every tarball entry (1985-10-26T08:15:00Z).
const NPM_TAR_MTIME: u64 = 499_162_500;

// ---------------------------------------------------------------------------------------------
// Packages and versions
// ---------------------------------------------------------------------------------------------

/// One version of a package: its dependencies and the files of its tarball (paths relative to
/// `package/`). `package.json` is generated unless given; so is `index.js` (exporting the
/// name and version) unless given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub version: String,
    pub dependencies: BTreeMap<String, String>,
    pub files: Vec<(String, Vec<u8>)>,
}

impl Version {
    /// A version with no dependencies and only the generated files.
    pub fn new(version: &str) -> Version {
        Version {
            version: version.to_owned(),
            dependencies: BTreeMap::new(),
            files: Vec::new(),
        }
    }

    /// Adds a dependency `name@range`.
    pub fn dep(mut self, name: &str, range: &str) -> Version {
        self.dependencies.insert(name.to_owned(), range.to_owned());
        self
    }

    /// Adds (or replaces) a file at `path` (relative to `package/`, e.g. `index.js`).
    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Version {
        let contents = contents.into();
        match self.files.iter_mut().find(|(p, _)| p == path) {
            Some(f) => f.1 = contents,
            None => self.files.push((path.to_owned(), contents)),
        }
        self
    }

    /// The generated `package.json` for this version of `name`.
    pub fn package_json(&self, name: &str) -> Value {
        json!({
            "name": name,
            "version": self.version,
            "description": format!("fixture package {name}"),
            "main": "index.js",
            "license": "MIT",
            "dependencies": self.dependencies,
        })
    }

    /// Every file of the tarball as `(path under package/, contents)`, generated ones included,
    /// in archive order.
    pub fn all_files(&self, name: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        if !self.files.iter().any(|(p, _)| p == "package.json") {
            let pj = serde_json::to_vec_pretty(&self.package_json(name)).expect("serialises");
            out.push(("package.json".to_owned(), pj));
        }
        if !self.files.iter().any(|(p, _)| p == "index.js") {
            let js = format!(
                "module.exports = {{ name: {}, version: {} }};\n",
                Value::from(name),
                Value::from(self.version.as_str())
            );
            out.push(("index.js".to_owned(), js.into_bytes()));
        }
        out.extend(self.files.iter().cloned());
        out
    }

    /// The real npm tarball: a gzip'd ustar archive with every entry under `package/`.
    /// Deterministic: the same version always gives the same bytes.
    pub fn tarball(&self, name: &str) -> Vec<u8> {
        build_tgz(&self.all_files(name))
    }

    /// `sha512-<base64>` of the tarball, as in `dist.integrity`.
    pub fn integrity(&self, name: &str) -> String {
        integrity_of(&self.tarball(name))
    }

    /// Hex SHA-1 of the tarball, as in `dist.shasum`.
    pub fn shasum(&self, name: &str) -> String {
        shasum_of(&self.tarball(name))
    }
}

/// A package: its name (may be scoped, `@acme/util`), versions in publish order, and
/// dist-tags. Without a `latest` tag, the origin tags the last non-prerelease version
/// (or else the last version) `latest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub versions: Vec<Version>,
    pub dist_tags: BTreeMap<String, String>,
}

impl Package {
    /// A package with no versions yet.
    pub fn new(name: &str) -> Package {
        Package {
            name: name.to_owned(),
            versions: Vec::new(),
            dist_tags: BTreeMap::new(),
        }
    }

    /// A package with plain versions (no dependencies, generated files).
    pub fn with_versions(name: &str, versions: &[&str]) -> Package {
        versions
            .iter()
            .fold(Package::new(name), |p, v| p.version(Version::new(v)))
    }

    /// Adds a version (publish order is the order of the calls).
    pub fn version(mut self, version: Version) -> Package {
        self.versions.push(version);
        self
    }

    /// Sets the dist-tag `tag` to `version`.
    pub fn tag(mut self, tag: &str, version: &str) -> Package {
        self.dist_tags.insert(tag.to_owned(), version.to_owned());
        self
    }

    /// The version `version`, if the package has it.
    pub fn get(&self, version: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// The name without its scope: `util` for `@acme/util`.
    pub fn basename(&self) -> &str {
        basename(&self.name)
    }

    /// The tarball's path on the origin: `/a/-/a-1.0.0.tgz`, `/@acme/util/-/util-1.0.0.tgz`.
    pub fn tarball_path(&self, version: &str) -> String {
        tarball_path(&self.name, version)
    }

    /// The tarball of `version`.
    pub fn tarball(&self, version: &str) -> Option<Vec<u8>> {
        self.get(version).map(|v| v.tarball(&self.name))
    }

    /// `dist.integrity` of `version`.
    pub fn integrity(&self, version: &str) -> Option<String> {
        self.get(version).map(|v| v.integrity(&self.name))
    }

    /// `dist.shasum` of `version`.
    pub fn shasum(&self, version: &str) -> Option<String> {
        self.get(version).map(|v| v.shasum(&self.name))
    }
}

/// The name without its scope.
pub fn basename(name: &str) -> &str {
    match name.strip_prefix('@') {
        Some(rest) => rest.split_once('/').map_or(rest, |(_, n)| n),
        None => name,
    }
}

/// `/<name>/-/<basename>-<version>.tgz`.
pub fn tarball_path(name: &str, version: &str) -> String {
    format!("/{name}/-/{}-{version}.tgz", basename(name))
}

/// `sha512-<base64>` of `bytes` (Subresource Integrity, as npm writes it).
pub fn integrity_of(bytes: &[u8]) -> String {
    let digest = sha2::Sha512::digest(bytes);
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Hex SHA-1 of `bytes` (npm's legacy `dist.shasum`).
pub fn shasum_of(bytes: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(bytes))
}

/// Builds a gzip'd tar with each `(path, contents)` at `package/<path>`, as npm packs.
pub fn build_tgz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, contents) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("package/{path}"))
            .expect("path fits ustar");
        h.set_size(contents.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(NPM_TAR_MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, contents.as_slice()).expect("tar entry");
    }
    tar.into_inner()
        .expect("tar finishes")
        .finish()
        .expect("gzip finishes")
}

/// Unpacks a gzip'd tar into `(path, contents)` pairs; `Err` if it is not a valid one.
pub fn unpack_tgz(bytes: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents)?;
        out.push((path, contents));
    }
    Ok(out)
}

/// ISO 8601 UTC with milliseconds, as in the registry's `time`: `2024-01-02T03:04:05.678Z`.
pub fn iso8601(t: SystemTime) -> String {
    iso8601_ms(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64)
}

fn iso8601_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

// ---------------------------------------------------------------------------------------------
// Controls
// ---------------------------------------------------------------------------------------------

/// How the origin answers every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Normally.
    Normal,
    /// 500 `{"error":"Internal Server Error"}` to everything.
    Fail500,
    /// Normally, after this delay (before the response head is sent).
    Slow(Duration),
}

/// What a request asked for, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `GET /<name>` (or `/<name>/<version>`).
    Packument {
        name: String,
    },
    /// `GET /<name>/-/<file>.tgz`, with the version when the file name matched a version.
    Tarball {
        name: String,
        version: Option<String>,
    },
    Other,
}

/// One request the origin received (counted on arrival, whatever the mode).
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    /// The raw path, as sent (no percent-decoding), without the query.
    pub path: String,
    pub kind: RequestKind,
    pub accept: Option<String>,
    pub if_none_match: Option<String>,
    pub user_agent: Option<String>,
    /// The `Authorization` header, to see what a proxy forwards.
    pub authorization: Option<String>,
}

struct VersionState {
    version: Version,
    tarball: Vec<u8>,
    integrity: String,
    shasum: String,
    time_ms: i64,
    corrupt: bool,
}

struct PackageState {
    name: String,
    versions: Vec<VersionState>,
    dist_tags: BTreeMap<String, String>,
    created_ms: i64,
    modified_ms: i64,
}

impl PackageState {
    fn version(&self, v: &str) -> Option<&VersionState> {
        self.versions.iter().find(|s| s.version.version == v)
    }

    fn version_mut(&mut self, v: &str) -> Option<&mut VersionState> {
        self.versions.iter_mut().find(|s| s.version.version == v)
    }

    fn version_doc(&self, v: &VersionState, base: &str) -> Value {
        let mut doc = match v.version.package_json(&self.name) {
            Value::Object(m) => m,
            _ => unreachable!("package.json is an object"),
        };
        let files = v.version.all_files(&self.name);
        doc.insert(
            "_id".into(),
            Value::from(format!("{}@{}", self.name, v.version.version)),
        );
        doc.insert(
            "dist".into(),
            json!({
                "shasum": v.shasum,
                "integrity": v.integrity,
                "tarball": format!("{}{}", base.trim_end_matches('/'), tarball_path(&self.name, &v.version.version)),
                "fileCount": files.len(),
                "unpackedSize": files.iter().map(|(_, c)| c.len()).sum::<usize>(),
            }),
        );
        Value::Object(doc)
    }

    /// The full packument (no top-level `modified`: only `time.modified`).
    fn packument(&self, base: &str) -> Value {
        let mut versions = Map::new();
        let mut time = Map::new();
        time.insert("created".into(), Value::from(iso8601_ms(self.created_ms)));
        time.insert("modified".into(), Value::from(iso8601_ms(self.modified_ms)));
        for v in &self.versions {
            versions.insert(v.version.version.clone(), self.version_doc(v, base));
            time.insert(
                v.version.version.clone(),
                Value::from(iso8601_ms(v.time_ms)),
            );
        }
        json!({
            "_id": self.name,
            "name": self.name,
            "description": format!("fixture package {}", self.name),
            "dist-tags": self.dist_tags,
            "versions": versions,
            "time": time,
            "license": "MIT",
        })
    }

    fn add_version(&mut self, version: Version, time_ms: i64) {
        let tarball = version.tarball(&self.name);
        let state = VersionState {
            integrity: integrity_of(&tarball),
            shasum: shasum_of(&tarball),
            tarball,
            version,
            time_ms,
            corrupt: false,
        };
        match self
            .versions
            .iter_mut()
            .find(|s| s.version.version == state.version.version)
        {
            Some(existing) => *existing = state,
            None => self.versions.push(state),
        }
        self.modified_ms = self.modified_ms.max(time_ms);
    }

    /// Bytes that are a valid tarball, but not the one `dist.integrity` describes.
    fn corrupt_bytes(&self, v: &VersionState) -> Vec<u8> {
        v.version
            .clone()
            .file(
                "CORRUPTED",
                b"these bytes do not match dist.integrity\n".to_vec(),
            )
            .tarball(&self.name)
    }
}

struct Shared {
    port: u16,
    packages: Mutex<BTreeMap<String, PackageState>>,
    mode: Mutex<Mode>,
    log: Mutex<Vec<RequestRecord>>,
}

impl Shared {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn packages(&self) -> MutexGuard<'_, BTreeMap<String, PackageState>> {
        self.packages.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self) -> MutexGuard<'_, Vec<RequestRecord>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Run {
    token: CancellationToken,
    task: JoinHandle<()>,
}

/// The running origin. Stops when dropped.
pub struct Origin {
    shared: Arc<Shared>,
    run: Mutex<Option<Run>>,
}

impl Origin {
    /// Starts the origin on `127.0.0.1:<free port>` in the current tokio runtime.
    pub async fn start(packages: Vec<Package>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("origin binds");
        let port = listener.local_addr().expect("local addr").port();
        // Initial versions were "published" an hour ago, a minute apart, in order.
        let start = now_ms() - 3_600_000;
        let mut map = BTreeMap::new();
        for p in packages {
            let mut st = PackageState {
                name: p.name.clone(),
                versions: Vec::new(),
                dist_tags: p.dist_tags.clone(),
                created_ms: start,
                modified_ms: start,
            };
            for (i, v) in p.versions.into_iter().enumerate() {
                st.add_version(v, start + 60_000 * (i as i64 + 1));
            }
            if !st.dist_tags.contains_key("latest")
                && let Some(v) = st
                    .versions
                    .iter()
                    .rev()
                    .find(|v| !v.version.version.contains('-'))
                    .or(st.versions.last())
            {
                st.dist_tags
                    .insert("latest".into(), v.version.version.clone());
            }
            map.insert(p.name, st);
        }
        let shared = Arc::new(Shared {
            port,
            packages: Mutex::new(map),
            mode: Mutex::new(Mode::Normal),
            log: Mutex::new(Vec::new()),
        });
        let run = serve(shared.clone(), listener);
        Origin {
            shared,
            run: Mutex::new(Some(run)),
        }
    }

    /// `http://127.0.0.1:PORT/` (with the trailing slash npm wants in `registry=`).
    pub fn url(&self) -> String {
        self.shared.base()
    }

    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// The absolute URL of a tarball, as in `dist.tarball`.
    pub fn tarball_url(&self, name: &str, version: &str) -> String {
        format!(
            "http://127.0.0.1:{}{}",
            self.port(),
            tarball_path(name, version)
        )
    }

    // --- what was asked -------------------------------------------------------------------

    /// Every request so far as `(method, raw path)`, in arrival order.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.shared
            .log()
            .iter()
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect()
    }

    /// Every request so far, with its decoded kind and a few headers.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.log().clone()
    }

    /// Forgets the requests so far (counters restart at zero).
    pub fn clear_requests(&self) {
        self.shared.log().clear();
    }

    /// How many requests had exactly this raw path.
    pub fn requests_to(&self, raw_path: &str) -> usize {
        self.shared
            .log()
            .iter()
            .filter(|r| r.path == raw_path)
            .count()
    }

    /// Packument requests (any package, any encoding of the name).
    pub fn packument_requests(&self) -> usize {
        self.count(|k| matches!(k, RequestKind::Packument { .. }))
    }

    /// Tarball requests (any package).
    pub fn tarball_requests(&self) -> usize {
        self.count(|k| matches!(k, RequestKind::Tarball { .. }))
    }

    /// Packument requests for `name`, however its scope separator was encoded.
    pub fn packument_requests_for(&self, name: &str) -> usize {
        self.count(|k| matches!(k, RequestKind::Packument { name: n } if n == name))
    }

    /// Tarball requests for `name@version`.
    pub fn tarball_requests_for(&self, name: &str, version: &str) -> usize {
        self.count(|k| {
            matches!(k, RequestKind::Tarball { name: n, version: Some(v) } if n == name && v == version)
        })
    }

    fn count(&self, f: impl Fn(&RequestKind) -> bool) -> usize {
        self.shared.log().iter().filter(|r| f(&r.kind)).count()
    }

    // --- behaviour --------------------------------------------------------------------------

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// While `on`, the tarball of `name@version` is served as other (valid gzip tar) bytes, so
    /// its SHA-512 no longer matches `dist.integrity`. The packument is unchanged.
    /// Panics if the version does not exist.
    pub fn corrupt_tarball(&self, name: &str, version: &str, on: bool) {
        let mut pkgs = self.shared.packages();
        let v = pkgs
            .get_mut(name)
            .and_then(|p| p.version_mut(version))
            .unwrap_or_else(|| panic!("no {name}@{version} on the origin"));
        v.corrupt = on;
    }

    /// Publishes `version` of `name` now (creating the package if new): adds it (replacing a
    /// version of the same number), sets `time[version]` and `time.modified` to now and
    /// `dist-tags.latest` to it. The packument, and so its ETag, changes.
    pub fn publish(&self, name: &str, version: Version) {
        self.publish_tagged(name, version, "latest");
    }

    /// Like [`Origin::publish`], but moves the dist-tag `tag` instead of `latest`.
    pub fn publish_tagged(&self, name: &str, version: Version, tag: &str) {
        let mut pkgs = self.shared.packages();
        let now = now_ms();
        let p = pkgs.entry(name.to_owned()).or_insert_with(|| PackageState {
            name: name.to_owned(),
            versions: Vec::new(),
            dist_tags: BTreeMap::new(),
            created_ms: now,
            modified_ms: now,
        });
        // time.modified strictly increases, so the document always changes.
        let t = now.max(p.modified_ms + 1);
        let number = version.version.clone();
        p.add_version(version, t);
        p.dist_tags.insert(tag.to_owned(), number);
    }

    /// Points the dist-tag `tag` of `name` at `version` and bumps `time.modified`.
    pub fn set_dist_tag(&self, name: &str, tag: &str, version: &str) {
        let mut pkgs = self.shared.packages();
        let p = pkgs
            .get_mut(name)
            .unwrap_or_else(|| panic!("no {name} on the origin"));
        p.dist_tags.insert(tag.to_owned(), version.to_owned());
        p.modified_ms = now_ms().max(p.modified_ms + 1);
    }

    // --- what is served ---------------------------------------------------------------------

    /// The packument of `name` as served now.
    pub fn packument(&self, name: &str) -> Option<Value> {
        let base = self.url();
        self.shared.packages().get(name).map(|p| p.packument(&base))
    }

    /// The ETag the packument of `name` is served with now (quoted).
    pub fn etag(&self, name: &str) -> Option<String> {
        self.packument(name).map(|doc| etag_of(&doc_bytes(&doc)))
    }

    /// The genuine tarball of `name@version` (what `dist.integrity` describes).
    pub fn tarball(&self, name: &str, version: &str) -> Option<Vec<u8>> {
        let pkgs = self.shared.packages();
        pkgs.get(name)
            .and_then(|p| p.version(version))
            .map(|v| v.tarball.clone())
    }

    /// `dist.integrity` of `name@version`.
    pub fn integrity(&self, name: &str, version: &str) -> Option<String> {
        let pkgs = self.shared.packages();
        pkgs.get(name)
            .and_then(|p| p.version(version))
            .map(|v| v.integrity.clone())
    }

    /// `dist.shasum` of `name@version`.
    pub fn shasum(&self, name: &str, version: &str) -> Option<String> {
        let pkgs = self.shared.packages();
        pkgs.get(name)
            .and_then(|p| p.version(version))
            .map(|v| v.shasum.clone())
    }

    // --- life -------------------------------------------------------------------------------

    /// Whether the server is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.run.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Kills the server, as if the origin process died: the listener closes (new connections
    /// are refused) and every open connection, idle or mid-request, is dropped without a
    /// response. Returns once the port is closed. Idempotent.
    pub async fn stop(&self) {
        let run = self.run.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(run) = run {
            run.token.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), run.task).await;
        }
    }

    /// Starts the server again on the same port, with the same packages and counters (after
    /// [`Origin::stop`]; a no-op while running).
    pub async fn restart(&self) {
        if self.is_running() {
            return;
        }
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.shared.port)).await {
                Ok(l) => break l,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("origin cannot rebind port {}: {e}", self.shared.port),
            }
        };
        let run = serve(self.shared.clone(), listener);
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = Some(run);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(run) = self.run.lock().unwrap_or_else(|e| e.into_inner()).take() {
            run.token.cancel();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    token: CancellationToken,
}

fn serve(shared: Arc<Shared>, listener: TcpListener) -> Run {
    let token = CancellationToken::new();
    let app = Router::new().fallback(handle).with_state(Ctx {
        shared,
        token: token.clone(),
    });
    let listener = KillableListener {
        inner: listener,
        token: token.clone(),
    };
    let shutdown = token.clone().cancelled_owned();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Run { token, task }
}

fn header_string(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

enum Route {
    Packument { name: String },
    Manifest { name: String, spec: String },
    Tarball { name: String, file: String },
    Other,
}

/// Splits a raw path into what it asks for.
fn route(raw: &str) -> Route {
    let raw = raw.trim_start_matches('/');
    if raw.is_empty() {
        return Route::Other;
    }
    if let Some((pkg, file)) = raw.split_once("/-/") {
        return Route::Tarball {
            name: decode(pkg),
            file: decode(file),
        };
    }
    let path = decode(raw);
    let (name, rest) = if path.starts_with('@') {
        let mut parts = path.splitn(3, '/');
        let scope = parts.next().unwrap_or_default();
        match parts.next() {
            Some(n) if !n.is_empty() => (format!("{scope}/{n}"), parts.next()),
            _ => return Route::Other,
        }
    } else {
        match path.split_once('/') {
            Some((n, rest)) => (n.to_owned(), Some(rest)),
            None => (path.clone(), None),
        }
    };
    match rest {
        None | Some("") => Route::Packument { name },
        Some(spec) if !spec.contains('/') => Route::Manifest {
            name,
            spec: spec.to_owned(),
        },
        Some(_) => Route::Other,
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, json!({"error": "Not found"}))
}

fn doc_bytes(doc: &Value) -> Vec<u8> {
    serde_json::to_vec(doc).expect("serialises")
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", &hex::encode(sha2::Sha256::digest(bytes))[..32])
}

fn if_none_match_hits(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// A body with an ETag, or 304 when `If-None-Match` names it.
fn validated(headers: &HeaderMap, content_type: &'static str, body: Vec<u8>) -> Response {
    let etag = etag_of(&body);
    if if_none_match_hits(headers, &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::ETAG, etag),
        ],
        Body::from(body),
    )
        .into_response()
}

async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let route = route(&raw_path);
    let kind = match &route {
        Route::Packument { name } | Route::Manifest { name, .. } => {
            RequestKind::Packument { name: name.clone() }
        }
        Route::Tarball { name, file } => RequestKind::Tarball {
            name: name.clone(),
            version: file
                .strip_prefix(&format!("{}-", basename(name)))
                .and_then(|f| f.strip_suffix(".tgz"))
                .map(str::to_owned),
        },
        Route::Other => RequestKind::Other,
    };
    ctx.shared.log().push(RequestRecord {
        method: method.to_string(),
        path: raw_path,
        kind: kind.clone(),
        accept: header_string(&headers, header::ACCEPT),
        if_none_match: header_string(&headers, header::IF_NONE_MATCH),
        user_agent: header_string(&headers, header::USER_AGENT),
        authorization: header_string(&headers, header::AUTHORIZATION),
    });

    let mode = *ctx.shared.mode.lock().unwrap_or_else(|e| e.into_inner());
    match mode {
        Mode::Normal => {}
        Mode::Fail500 => {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "Internal Server Error"}),
            );
        }
        Mode::Slow(d) => {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                // Stopped while waiting: the connection is being dropped anyway.
                _ = ctx.token.cancelled() => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
    }
    if method != Method::GET && method != Method::HEAD {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "Method not allowed"}),
        );
    }

    let base = ctx.shared.base();
    let pkgs = ctx.shared.packages();
    match route {
        Route::Packument { name } => match pkgs.get(&name) {
            Some(p) => validated(&headers, "application/json", doc_bytes(&p.packument(&base))),
            None => not_found(),
        },
        Route::Manifest { name, spec } => {
            let Some(p) = pkgs.get(&name) else {
                return not_found();
            };
            let number = p.dist_tags.get(&spec).unwrap_or(&spec);
            match p.version(number) {
                Some(v) => validated(
                    &headers,
                    "application/json",
                    doc_bytes(&p.version_doc(v, &base)),
                ),
                None => not_found(),
            }
        }
        Route::Tarball { name, .. } => {
            let RequestKind::Tarball {
                version: Some(version),
                ..
            } = kind
            else {
                return not_found();
            };
            let Some(p) = pkgs.get(&name) else {
                return not_found();
            };
            match p.version(&version) {
                Some(v) if v.corrupt => {
                    validated(&headers, "application/octet-stream", p.corrupt_bytes(v))
                }
                Some(v) => validated(&headers, "application/octet-stream", v.tarball.clone()),
                None => not_found(),
            }
        }
        Route::Other => not_found(),
    }
}

// ---------------------------------------------------------------------------------------------
// Connections that die with the server
// ---------------------------------------------------------------------------------------------

struct KillableListener {
    inner: TcpListener,
    token: CancellationToken,
}

impl axum::serve::Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let stream = KillableStream {
                        inner: stream,
                        killed: Box::pin(self.token.clone().cancelled_owned()),
                        token: self.token.clone(),
                    };
                    return (stream, addr);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that fails every read and write once the origin is stopped, so hyper drops
/// the connection at once (idle keep-alive connections included: a pending read is woken).
struct KillableStream {
    inner: TcpStream,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    token: CancellationToken,
}

impl KillableStream {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.token.is_cancelled() || self.killed.as_mut().poll(cx).is_ready() {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "origin stopped",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
