//! A fleet for end-to-end tests: one origin fixture, one real S3 (moto, bucket created), one
//! real redis-server, and N `tiercache serve` nodes (each its own data dir and port) sharing
//! the origin, the bucket and Redis. Nodes can be killed (`kill -9`) and restarted; S3 and
//! Redis can be stopped and restarted on their ports. Everything listens on 127.0.0.1.
//!
//! The launchers block (they wait for processes to answer); from async tests they run under
//! `block_in_place`, so tests must use the multi-thread runtime (as every e2e test does).

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tiercache_testkit::moto::{ACCESS_KEY_ID, BUCKET, Moto, REGION, SECRET_ACCESS_KEY};
use tiercache_testkit::redis::RedisServer;

use super::origin::{Origin, Package};
use super::{Server, client, metric};

/// The fleet lock's lease the nodes are configured with: short, so a crashed holder is
/// replaced quickly.
pub const LOCK_LEASE: &str = "1s";
/// How long anything awaited may take before the test fails instead of hanging. Not a
/// performance bound: every wait polls for its condition and returns as soon as it holds.
pub const PATIENCE: Duration = Duration::from_secs(60);
/// The prefix objects live under in the bucket (the L3 default).
pub const L3_PREFIX: &str = "tiercache";

/// Runs a blocking launcher call from async code without starving the runtime.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Polls `check` every 50 ms until it returns `Some`, failing the test after [`PATIENCE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One node: its data dir survives a kill, so a restart finds its L2.
pub struct Node {
    pub data_dir: PathBuf,
    server: Option<Server>,
}

/// The whole fleet; everything is stopped when it is dropped.
pub struct Fleet {
    pub origin: Origin,
    pub moto: Moto,
    pub redis: RedisServer,
    nodes: Vec<Node>,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// Starts the origin with `packages`, moto, redis-server and `nodes` tiercache nodes.
    pub async fn start(packages: Vec<Package>, nodes: usize) -> Fleet {
        let origin = Origin::start(packages).await;
        let (moto, redis) = blocking(|| {
            let moto = std::thread::spawn(Moto::start);
            let redis = RedisServer::start();
            (moto.join().expect("moto starts"), redis)
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("tiercache.toml");
        std::fs::write(
            &config,
            format!(
                "[npm]\nfresh_for = \"300s\"\nretries = 1\nretry_min = \"20ms\"\n\
                 retry_max = \"50ms\"\nbreaker_threshold = 50\n\n\
                 [redis]\nlock_lease = \"{LOCK_LEASE}\"\nfleet_wait = \"30s\"\n"
            ),
        )
        .expect("config written");
        let mut fleet = Fleet {
            origin,
            moto,
            redis,
            nodes: Vec::new(),
            config,
            dir,
        };
        for _ in 0..nodes {
            fleet.add_node();
        }
        fleet
    }

    /// Starts one more node, with a fresh (empty) data dir; returns its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let data_dir = self.dir.path().join(format!("node{i}"));
        self.nodes.push(Node {
            data_dir,
            server: None,
        });
        self.restart(i);
        i
    }

    /// How many nodes were started (killed ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The running server of node `i`.
    pub fn node(&self, i: usize) -> &Server {
        self.nodes[i]
            .server
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} is not running"))
    }

    /// `http://127.0.0.1:PORT` of node `i` (its port changes when it is restarted).
    pub fn base(&self, i: usize) -> String {
        self.node(i).base.clone()
    }

    /// The URL of `path` on node `i`.
    pub fn url(&self, i: usize, path: &str) -> String {
        self.node(i).url(path)
    }

    /// The data dir of node `i`.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.nodes[i].data_dir
    }

    /// Kills node `i` at once (SIGKILL), as a crash would.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut server) = self.nodes[i].server.take() {
            server.kill9();
        }
    }

    /// (Re)starts node `i` on its data dir, pointed at the fleet's origin, bucket and Redis.
    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        let origin = self.origin.url();
        let endpoint = self.moto.endpoint();
        let redis = self.redis.url();
        let config = self.config.to_str().expect("utf-8 path").to_owned();
        let data_dir = self.nodes[i].data_dir.clone();
        let args = [
            "--npm-upstream",
            origin.as_str(),
            "--config",
            config.as_str(),
            "--l3-endpoint",
            endpoint.as_str(),
            "--l3-bucket",
            BUCKET,
            "--l3-region",
            REGION,
            "--redis-url",
            redis.as_str(),
        ];
        let env = [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            // Never ask an instance metadata service for anything.
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        let server = blocking(|| Server::start_with_env(&data_dir, &args, &env));
        self.nodes[i].server = Some(server);
    }

    /// Stops S3 (moto loses everything it held).
    pub fn stop_s3(&mut self) {
        blocking(|| self.moto.stop());
    }

    /// Starts S3 again on its port, empty, with the bucket created again.
    pub fn restart_s3(&mut self) {
        blocking(|| self.moto.restart());
    }

    /// Stops Redis (it keeps nothing).
    pub fn stop_redis(&mut self) {
        blocking(|| self.redis.stop());
    }

    /// Starts Redis again on its port, empty.
    pub fn restart_redis(&mut self) {
        blocking(|| self.redis.restart());
    }

    // --- what a node says -----------------------------------------------------------------

    /// The Prometheus text of node `i`.
    pub async fn metrics(&self, i: usize) -> String {
        let r = client()
            .get(self.url(i, "/metrics"))
            .send()
            .await
            .expect("GET /metrics answers");
        assert_eq!(r.status(), 200, "GET /metrics");
        r.text().await.expect("metrics body")
    }

    /// One sample of node `i`'s metrics (`name` or `name{labels}`), 0 when absent.
    pub async fn metric(&self, i: usize, name_and_labels: &str) -> f64 {
        metric(&self.metrics(i).await, name_and_labels).unwrap_or(0.0)
    }

    /// `tiercache_hits_total{tier="…"}` of node `i`.
    pub async fn hits(&self, i: usize, tier: &str) -> f64 {
        self.metric(i, &format!("tiercache_hits_total{{tier=\"{tier}\"}}"))
            .await
    }

    /// `/healthz` of node `i`.
    pub async fn healthz(&self, i: usize) -> Value {
        self.json(i, "/healthz").await
    }

    /// `/admin/stats` of node `i`.
    pub async fn stats(&self, i: usize) -> Value {
        self.json(i, "/admin/stats").await
    }

    async fn json(&self, i: usize, path: &str) -> Value {
        let r = client()
            .get(self.url(i, path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on node {i}: {e}"));
        assert_eq!(r.status(), 200, "GET {path} on node {i}");
        r.json()
            .await
            .unwrap_or_else(|e| panic!("{path} JSON: {e}"))
    }

    /// Waits until node `i` has nothing left to upload to L3 and has uploaded something.
    pub async fn wait_l3_drained(&self, i: usize) {
        wait_for(&format!("node {i}'s L3 upload queue to drain"), || async {
            let m = self.metrics(i).await;
            let depth = metric(&m, "tiercache_l3_queue_depth").unwrap_or(f64::NAN);
            // Queued uploads and a fleet lock holder's direct ones both count as L3 writes.
            let written = metric(&m, "tiercache_writes_total{tier=\"l3\"}").unwrap_or(0.0);
            (depth == 0.0 && written > 0.0).then_some(())
        })
        .await;
    }

    /// The state of L3 in node `i`'s `/healthz` (`ok` or `degraded`).
    pub async fn l3_state(&self, i: usize) -> String {
        let h = self.healthz(i).await;
        h["tiers"]["l3"]["state"]
            .as_str()
            .unwrap_or_else(|| panic!("no tiers.l3.state in /healthz: {h}"))
            .to_owned()
    }

    /// The state of Redis in node `i`'s `/healthz` (`ok`, `degraded` or `connecting`).
    pub async fn redis_status(&self, i: usize) -> String {
        let h = self.healthz(i).await;
        h["redis"]["status"]
            .as_str()
            .unwrap_or_else(|| panic!("no redis.status in /healthz: {h}"))
            .to_owned()
    }

    // --- what the bucket holds ------------------------------------------------------------

    /// Every object key in the bucket under `prefix`.
    pub fn bucket_keys(&self, prefix: &str) -> Vec<String> {
        blocking(|| self.moto.list(prefix))
    }

    /// Whether the bucket holds the entry of the store key `key` (e.g.
    /// `global/npm-tgz/widget~widget-1.0.0.tgz`).
    pub fn l3_has_entry(&self, key: &str) -> bool {
        let path = format!("{L3_PREFIX}/entries/{key}");
        self.bucket_keys(&path).contains(&path)
    }

    /// Waits until the bucket holds the entries of every key in `keys`.
    pub async fn wait_l3_entries(&self, keys: &[String]) {
        wait_for(&format!("L3 to hold {keys:?}"), || async {
            keys.iter().all(|k| self.l3_has_entry(k)).then_some(())
        })
        .await;
    }

    /// The object key of the blob holding exactly `bytes`, if the bucket has one.
    pub fn find_blob(&self, bytes: &[u8]) -> Option<String> {
        blocking(|| {
            self.moto
                .list(&format!("{L3_PREFIX}/blobs/"))
                .into_iter()
                .find(|k| self.moto.get_object(k).as_deref() == Some(bytes))
        })
    }
}

/// The store key of a tarball: `global/npm-tgz/<name, / as +>~<basename>-<version>.tgz`.
pub fn tarball_key(name: &str, version: &str) -> String {
    format!(
        "global/npm-tgz/{}~{}-{version}.tgz",
        name.replacen('/', "+", 1),
        super::origin::basename(name)
    )
}

/// The proxy path of a tarball: `/npm/<name>/-/<basename>-<version>.tgz`.
pub fn tarball_url_path(name: &str, version: &str) -> String {
    format!("/npm{}", super::origin::tarball_path(name, version))
}

/// A GET's outcome: the status, and the whole body or the error that cut it off.
pub async fn fetch(c: &reqwest::Client, url: &str) -> (u16, Result<Vec<u8>, String>) {
    match c.get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (
                status,
                r.bytes()
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|e| e.to_string()),
            )
        }
        Err(e) => (0, Err(e.to_string())),
    }
}

/// Asserts `url` answers 200 with exactly `want`.
pub async fn assert_serves(c: &reqwest::Client, url: &str, want: &[u8]) {
    let (status, body) = fetch(c, url).await;
    assert_eq!(status, 200, "GET {url}: {body:?}");
    let body = body.unwrap_or_else(|e| panic!("GET {url}: body cut off: {e}"));
    assert!(
        body == want,
        "GET {url}: wrong bytes ({} bytes, want {})",
        body.len(),
        want.len()
    );
}
