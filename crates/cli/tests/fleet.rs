//! The fleet end to end: several `tiercache serve` nodes sharing one L3 bucket (a real S3,
//! moto) and one Redis (a real redis-server), in front of one origin fixture. What one node
//! fetched, the others serve from L3 without the origin; a cold entry is fetched from the
//! origin once for the whole fleet, even when its first fetcher dies; S3 or Redis going
//! away never makes a node fail a request; a corrupt object in the bucket is never served.

mod common;

use std::time::Duration;

use common::clients::{have, install, show, write_project};
use common::fleet::{
    Fleet, assert_serves, blocking, fetch, tarball_key, tarball_url_path, wait_for,
};
use common::origin::{Mode, Package, Version};
use common::{client, metric};
use serde_json::Value;

const CORGI: &str = "application/vnd.npm.install-v1+json";

fn packages() -> Vec<Package> {
    vec![
        Package::new("app").version(Version::new("1.0.0").dep("lib", "^1.0.0")),
        Package::with_versions("lib", &["1.0.0", "1.1.0"]),
        Package::with_versions("widget", &["1.0.0"]),
        Package::with_versions("gadget", &["1.0.0"]),
        Package::with_versions("fresh", &["1.0.0"]),
    ]
}

/// Incompressible bytes, so a tarball is as large as its content.
fn noise(len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut b = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(11).fill_bytes(&mut b);
    b
}

/// GETs the abbreviated packument of `name` on node `i`; asserts a 200.
async fn packument(fleet: &Fleet, i: usize, name: &str) -> Value {
    let r = client()
        .get(fleet.url(i, &format!("/npm/{name}")))
        .header("accept", CORGI)
        .send()
        .await
        .expect("packument answers");
    assert_eq!(r.status(), 200, "packument of {name} on node {i}");
    r.json().await.expect("packument JSON")
}

/// Asserts `version` of `name` is installed in `project`'s node_modules.
fn assert_installed(project: &std::path::Path, name: &str, version: &str) {
    let pj: Value = serde_json::from_slice(
        &std::fs::read(project.join("node_modules").join(name).join("package.json"))
            .unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    assert_eq!(pj["version"], version, "{name}@{version} not installed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_package_installed_through_one_node_installs_through_another_from_l3() {
    assert!(
        have("npm"),
        "npm is not installed: run scripts/test.sh, which installs it"
    );
    let fleet = Fleet::start(packages(), 2).await;
    let work = tempfile::tempdir().unwrap();
    let deps = [("app", "^1.0.0")];
    let run = |i: usize, n: u32| {
        let project = work.path().join(format!("p{n}"));
        let home = work.path().join(format!("home{n}"));
        let registry = fleet.url(i, "/npm/");
        async move {
            write_project(&project, &deps);
            let out = install("npm", &project, &registry, &home).await;
            assert!(out.status.success(), "install {n}: {}", show(&out));
            assert_installed(&project, "app", "1.0.0");
            assert_installed(&project, "lib", "1.1.0");
        }
    };

    // Through A: from the origin, then uploaded to L3 in the background.
    run(0, 1).await;
    assert_eq!(
        fleet.origin.tarball_requests(),
        2,
        "{:?}",
        fleet.origin.requests()
    );
    fleet.wait_l3_drained(0).await;
    fleet
        .wait_l3_entries(&[tarball_key("app", "1.0.0"), tarball_key("lib", "1.1.0")])
        .await;
    fleet.origin.clear_requests();

    // Through B, with a fresh npm cache: everything from L3, nothing from the origin.
    run(1, 2).await;
    assert!(
        fleet.origin.requests().is_empty(),
        "node B asked the origin: {:?}",
        fleet.origin.requests()
    );
    let l3_hits = fleet.hits(1, "l3").await;
    assert!(
        l3_hits >= 4.0,
        "B's L3 hits: {l3_hits}\n{}",
        fleet.metrics(1).await
    );
    let local = fleet.hits(1, "l1").await + fleet.hits(1, "l2").await;

    // Through B again: promoted, so from B's own tiers; L3 is not asked again.
    run(1, 3).await;
    assert!(
        fleet.origin.requests().is_empty(),
        "{:?}",
        fleet.origin.requests()
    );
    let m = fleet.metrics(1).await;
    let hits =
        |tier: &str| metric(&m, &format!("tiercache_hits_total{{tier=\"{tier}\"}}")).unwrap_or(0.0);
    assert_eq!(hits("l3"), l3_hits, "{m}");
    // At least both tarballs were read from B's own tiers (its packuments may be answered
    // from the npm front-end's in-memory documents without a store lookup).
    assert!(hits("l1") + hits("l2") >= local + 2.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_concurrent_requests_on_three_nodes_make_one_origin_request() {
    let fleet = Fleet::start(packages(), 3).await;
    for i in 0..3 {
        packument(&fleet, i, "widget").await;
    }
    fleet
        .origin
        .set_mode(Mode::Slow(Duration::from_millis(1000)));
    let want = fleet.origin.tarball("widget", "1.0.0").unwrap();
    let path = tarball_url_path("widget", "1.0.0");
    let c = client();
    let tasks: Vec<_> = (0..60)
        .map(|n| {
            let (c, url) = (c.clone(), fleet.url(n % 3, &path));
            tokio::spawn(async move { (url.clone(), fetch(&c, &url).await) })
        })
        .collect();
    for t in tasks {
        let (url, (status, body)) = t.await.unwrap();
        assert_eq!(status, 200, "GET {url}: {body:?}");
        let body = body.unwrap_or_else(|e| panic!("GET {url}: body cut off: {e}"));
        assert!(body == want, "GET {url}: wrong bytes");
    }
    assert_eq!(
        fleet.origin.tarball_requests_for("widget", "1.0.0"),
        1,
        "{:?}",
        fleet.origin.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cold_packument_asked_of_three_nodes_at_once_is_fetched_once() {
    let fleet = Fleet::start(packages(), 3).await;
    fleet
        .origin
        .set_mode(Mode::Slow(Duration::from_millis(500)));
    let tasks: Vec<_> = (0..30)
        .map(|n| {
            let url = fleet.url(n % 3, "/npm/gadget");
            tokio::spawn(async move {
                let r = client().get(&url).send().await.expect("answers");
                (url, r.status().as_u16())
            })
        })
        .collect();
    for t in tasks {
        let (url, status) = t.await.unwrap();
        assert_eq!(status, 200, "GET {url}");
    }
    assert_eq!(
        fleet.origin.packument_requests_for("gadget"),
        1,
        "{:?}",
        fleet.origin.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_holder_killed_mid_fetch_is_replaced_once_its_lease_runs_out() {
    let mut fleet = Fleet::start(packages(), 3).await;
    for i in 0..3 {
        packument(&fleet, i, "gadget").await;
    }
    fleet.origin.set_mode(Mode::Slow(Duration::from_secs(3)));
    let want = fleet.origin.tarball("gadget", "1.0.0").unwrap();
    let path = tarball_url_path("gadget", "1.0.0");
    let c = client();

    // A takes the fleet lock and asks the (slow) origin.
    let a = {
        let (c, url) = (c.clone(), fleet.url(0, &path));
        tokio::spawn(async move { fetch(&c, &url).await })
    };
    wait_for("the origin to see A's tarball request", || async {
        (fleet.origin.tarball_requests_for("gadget", "1.0.0") == 1).then_some(())
    })
    .await;
    // B and C find the lock held and wait for it.
    let waiters: Vec<_> = [1, 2]
        .into_iter()
        .map(|i| {
            let (c, url) = (c.clone(), fleet.url(i, &path));
            tokio::spawn(async move { (url.clone(), fetch(&c, &url).await) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A dies holding the lock: its lease runs out, and one of B and C takes over.
    fleet.kill9(0);
    let (a_status, a_body) = a.await.unwrap();
    assert!(
        a_status != 200 || a_body.is_err(),
        "A answered in full although it was killed"
    );
    for w in waiters {
        let (url, (status, body)) = w.await.unwrap();
        assert_eq!(status, 200, "GET {url}: {body:?}");
        let body = body.unwrap_or_else(|e| panic!("GET {url}: body cut off: {e}"));
        assert!(body == want, "GET {url}: wrong bytes");
    }
    assert_eq!(
        fleet.origin.tarball_requests_for("gadget", "1.0.0"),
        2,
        "{:?}",
        fleet.origin.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_s3_down_nodes_keep_serving_and_queued_uploads_land_when_it_is_back() {
    let mut fleet = Fleet::start(packages(), 2).await;
    let c = client();
    let cached = [("widget", "1.0.0"), ("lib", "1.1.0")];
    // Cached in both nodes' L2: fetched through A, then through B (from L3).
    for (name, version) in cached {
        packument(&fleet, 0, name).await;
        let want = fleet.origin.tarball(name, version).unwrap();
        assert_serves(&c, &fleet.url(0, &tarball_url_path(name, version)), &want).await;
    }
    fleet.wait_l3_drained(0).await;
    fleet
        .wait_l3_entries(&cached.map(|(n, v)| tarball_key(n, v)))
        .await;
    for (name, version) in cached {
        packument(&fleet, 1, name).await;
        let want = fleet.origin.tarball(name, version).unwrap();
        assert_serves(&c, &fleet.url(1, &tarball_url_path(name, version)), &want).await;
    }
    assert_eq!(fleet.origin.tarball_requests(), 2);
    let uploaded = fleet.metric(0, "tiercache_l3_uploads_total").await;

    fleet.stop_s3();
    // Everything cached is still served by every node, and a new package comes from the
    // origin: never a 5xx because of S3.
    for i in 0..2 {
        for (name, version) in cached {
            packument(&fleet, i, name).await;
            let want = fleet.origin.tarball(name, version).unwrap();
            assert_serves(&c, &fleet.url(i, &tarball_url_path(name, version)), &want).await;
        }
    }
    packument(&fleet, 0, "fresh").await;
    let want = fleet.origin.tarball("fresh", "1.0.0").unwrap();
    assert_serves(
        &c,
        &fleet.url(0, &tarball_url_path("fresh", "1.0.0")),
        &want,
    )
    .await;
    assert_eq!(fleet.origin.tarball_requests_for("fresh", "1.0.0"), 1);
    wait_for("node A's /healthz to show L3 degraded", || async {
        (fleet.l3_state(0).await == "degraded").then_some(())
    })
    .await;
    // The new package's uploads wait in the queue.
    assert!(
        fleet.metric(0, "tiercache_l3_queue_depth").await >= 1.0,
        "{}",
        fleet.metrics(0).await
    );

    // S3 back (empty: moto kept nothing): the queued uploads land, and L3 is ok again.
    fleet.restart_s3();
    wait_for("node A's queued uploads to land", || async {
        let m = fleet.metrics(0).await;
        let depth = metric(&m, "tiercache_l3_queue_depth").unwrap_or(f64::NAN);
        let now = metric(&m, "tiercache_l3_uploads_total").unwrap_or(0.0);
        (depth == 0.0 && now > uploaded).then_some(())
    })
    .await;
    assert!(fleet.l3_has_entry(&tarball_key("fresh", "1.0.0")));
    wait_for("node A's /healthz to show L3 ok", || async {
        (fleet.l3_state(0).await == "ok").then_some(())
    })
    .await;
    // What landed is what another node now serves, without the origin.
    assert_serves(
        &c,
        &fleet.url(1, &tarball_url_path("fresh", "1.0.0")),
        &want,
    )
    .await;
    assert_eq!(fleet.origin.tarball_requests_for("fresh", "1.0.0"), 1);
}

/// The sum of the fleet-wide counters in `/admin/stats`, once Redis answers it.
fn fleet_total(stats: &Value) -> Option<u64> {
    let fleet = stats.get("fleet")?;
    if fleet.get("error").is_some() {
        return None;
    }
    fleet["counters"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_down_nodes_keep_serving_and_fleet_counters_resume_when_it_is_back() {
    let mut fleet = Fleet::start(packages(), 2).await;
    let c = client();
    let want = fleet.origin.tarball("widget", "1.0.0").unwrap();
    let widget = tarball_url_path("widget", "1.0.0");
    for i in 0..2 {
        packument(&fleet, i, "widget").await;
        assert_serves(&c, &fleet.url(i, &widget), &want).await;
    }
    for i in 0..2 {
        wait_for(&format!("node {i}'s Redis to be ok"), || async {
            (fleet.redis_status(i).await == "ok").then_some(())
        })
        .await;
    }
    wait_for("fleet counters in /admin/stats", || async {
        fleet_total(&fleet.stats(0).await).filter(|n| *n > 0)
    })
    .await;

    fleet.stop_redis();
    // Cached and new packages are served as usual.
    for i in 0..2 {
        packument(&fleet, i, "widget").await;
        assert_serves(&c, &fleet.url(i, &widget), &want).await;
    }
    for (i, name) in [(0, "gadget"), (1, "fresh")] {
        packument(&fleet, i, name).await;
        let want = fleet.origin.tarball(name, "1.0.0").unwrap();
        assert_serves(&c, &fleet.url(i, &tarball_url_path(name, "1.0.0")), &want).await;
    }
    // The requests' counters cannot be flushed: /healthz says so.
    for i in 0..2 {
        wait_for(
            &format!("node {i}'s /healthz to show Redis degraded"),
            || async { (fleet.redis_status(i).await == "degraded").then_some(()) },
        )
        .await;
    }
    let stats = fleet.stats(0).await;
    assert!(stats.get("fleet").is_some(), "{stats}");

    // Redis back (empty): both nodes say ok again, and the counters grow again.
    fleet.restart_redis();
    for i in 0..2 {
        wait_for(&format!("node {i}'s Redis to be ok again"), || async {
            (fleet.redis_status(i).await == "ok").then_some(())
        })
        .await;
    }
    let before = wait_for("fleet counters readable again", || async {
        fleet_total(&fleet.stats(0).await)
    })
    .await;
    wait_for("fleet counters to grow", || async {
        for i in 0..2 {
            assert_serves(&c, &fleet.url(i, &widget), &want).await;
        }
        fleet_total(&fleet.stats(1).await).filter(|n| *n > before)
    })
    .await;

    // `tiercache stats` shows the fleet's numbers.
    let base = fleet.base(0);
    let out = blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tiercache"))
            .args(["stats", "--server", &base, "--json"])
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{}", show(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["fleet"].is_object(), "{json}");
    let out = blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tiercache"))
            .args(["stats", "--server", &base])
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.contains("fleet"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_object_in_the_bucket_is_never_served_nor_promoted() {
    let mut pkgs = packages();
    // Larger than what L3 reads whole before serving: this one streams.
    pkgs.push(Package::new("big").version(Version::new("1.0.0").file("blob.bin", noise(5 << 20))));
    let mut fleet = Fleet::start(pkgs, 1).await;
    let c = client();
    let cases = [("widget", "1.0.0"), ("big", "1.0.0")];
    for (name, version) in cases {
        packument(&fleet, 0, name).await;
        let want = fleet.origin.tarball(name, version).unwrap();
        assert_serves(&c, &fleet.url(0, &tarball_url_path(name, version)), &want).await;
    }
    fleet.wait_l3_drained(0).await;
    fleet
        .wait_l3_entries(&cases.map(|(n, v)| tarball_key(n, v)))
        .await;
    let mut damaged = Vec::new();
    for (name, version) in cases {
        let want = fleet.origin.tarball(name, version).unwrap();
        let blob = fleet
            .find_blob(&want)
            .unwrap_or_else(|| panic!("no blob of {name}@{version} in the bucket"));
        blocking(|| fleet.moto.corrupt(&blob));
        let bad = blocking(|| fleet.moto.get_object(&blob)).unwrap();
        assert_eq!(bad.len(), want.len());
        damaged.push(bad);
    }

    // A cold node: whatever it answers, never the damaged bytes, and once it answers the
    // right bytes (from the origin) it keeps doing so.
    let cold = fleet.add_node();
    for ((name, version), bad) in cases.into_iter().zip(&damaged) {
        let want = fleet.origin.tarball(name, version).unwrap();
        let url = fleet.url(cold, &tarball_url_path(name, version));
        wait_for(
            &format!("{name}@{version} served right by the cold node"),
            || async {
                let (status, body) = fetch(&c, &url).await;
                match body {
                    Ok(body) => {
                        assert!(body != *bad, "GET {url} served the corrupt object");
                        (status == 200 && body == want).then_some(())
                    }
                    Err(_) => None,
                }
            },
        )
        .await;
        for _ in 0..2 {
            assert_serves(&c, &url, &want).await;
        }
    }
    // Both damaged objects were detected, and the right bytes came from the origin again.
    let corrupt = fleet
        .metric(cold, "tiercache_corrupt_reads_total{tier=\"l3\"}")
        .await;
    assert!(corrupt >= 2.0, "{}", fleet.metrics(cold).await);
    for (name, version) in cases {
        assert!(
            fleet.origin.tarball_requests_for(name, version) >= 2,
            "{name}@{version}: {:?}",
            fleet.origin.requests()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_nodes_health_follows_s3_and_redis_down_and_back() {
    let mut fleet = Fleet::start(packages(), 1).await;
    wait_for("S3 and Redis to be ok at start", || async {
        (fleet.l3_state(0).await == "ok" && fleet.redis_status(0).await == "ok").then_some(())
    })
    .await;
    // No request reaches the node in between: /healthz alone must notice.
    fleet.stop_s3();
    fleet.stop_redis();
    wait_for("an idle node to see S3 down", || async {
        (fleet.l3_state(0).await == "degraded").then_some(())
    })
    .await;
    wait_for("an idle node to see Redis down", || async {
        (fleet.redis_status(0).await == "degraded").then_some(())
    })
    .await;
    fleet.restart_s3();
    fleet.restart_redis();
    wait_for("an idle node to see S3 back", || async {
        (fleet.l3_state(0).await == "ok").then_some(())
    })
    .await;
    wait_for("an idle node to see Redis back", || async {
        (fleet.redis_status(0).await == "ok").then_some(())
    })
    .await;
}
