//! `tiercache scan-shared` and the periodic leakage scan against the real binary, with auth
//! on: an admin's secret-bearing object in a template (admins are not screened on write) is
//! found, quarantined and from then on answers a user exactly as a missing key does; the
//! clean object next to it stays; the quarantine is for admins only; the audit record
//! survives a restart; and a short `[leakage] interval` catches a new bad entry on its own.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Server, client};
use tiercache_testkit::secrets::aws_key_id;

const SECRET: &str = "scan-shared-test-secret-0123456789abcdef-xy";

fn tc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tiercache"))
        .args(args)
        .env("TIERCACHE_AUTH_SECRET", SECRET)
        .env_remove("TIERCACHE_CONFIG")
        .env_remove("TIERCACHE_SERVER")
        .env_remove("TIERCACHE_TOKEN")
        .env("NO_COLOR", "1")
        .output()
        .expect("tiercache runs")
}

fn token(args: &[&str]) -> String {
    let mut all = vec!["token", "issue"];
    all.extend_from_slice(args);
    let out = tc(&all);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn server(dir: &Path, interval: &str) -> Server {
    let config = dir.join("tiercache.toml");
    std::fs::write(
        &config,
        format!("[auth]\nleeway = \"0s\"\n[leakage]\ninterval = \"{interval}\"\n"),
    )
    .unwrap();
    Server::start_with_env(
        &dir.join("data"),
        &["--config", config.to_str().unwrap()],
        &[("TIERCACHE_AUTH_SECRET", SECRET)],
    )
}

async fn call(method: reqwest::Method, url: &str, bearer: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let mut req = client().request(method, url).bearer_auth(bearer);
    if !body.is_empty() {
        req = req.body(body);
    }
    let resp = req.send().await.expect("the server answers");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap_or_default().to_vec())
}

fn scan_shared(base: &str, token: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["scan-shared", "--server", base, "--token", token];
    args.extend_from_slice(extra);
    let out = tc(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_shared_quarantines_a_templates_secret_and_the_periodic_scan_finds_new_ones() {
    use reqwest::Method as M;
    let dir = tempfile::tempdir().unwrap();
    let admin = token(&["--user", "ops", "--role", "admin"]);
    let alice = token(&["--user", "alice", "--template", "t1"]);
    let mut srv = server(dir.path(), "off");

    let bad = srv.url("/objects/template/t1/object/deploy-env");
    let good = srv.url("/objects/template/t1/object/readme");
    let missing = srv.url("/objects/template/t1/object/never-written");
    let secret_body = format!("AWS_ACCESS_KEY_ID={}\nREGION=eu-west-1\n", aws_key_id());
    let (s, _) = call(M::PUT, &bad, &admin, secret_body.clone().into_bytes()).await;
    assert_eq!(s, 201, "admins are trusted on write");
    let (s, _) = call(M::PUT, &good, &admin, b"# the web template\n".to_vec()).await;
    assert_eq!(s, 201);
    assert_eq!(call(M::GET, &bad, &alice, vec![]).await.0, 200);
    assert_eq!(call(M::GET, &good, &alice, vec![]).await.0, 200);

    // Only admins may scan or see the quarantine.
    let (code, _, err) = scan_shared(&srv.base, &alice, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("403"), "{err}");
    assert_eq!(
        call(M::GET, &srv.url("/admin/quarantine"), &alice, vec![])
            .await
            .0,
        403
    );

    // A dry run reports and leaves everything in place.
    let (code, out, err) = scan_shared(&srv.base, &admin, &["--dry-run"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        out,
        "template/t1/object/deploy-env: deploy-env:1: aws-access-key-id (dry run: left in place)\n"
    );
    assert_eq!(call(M::GET, &bad, &alice, vec![]).await.0, 200);

    // The real scan: one finding, quarantined; the secret is never printed.
    let (code, out, err) = scan_shared(&srv.base, &admin, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(
            "template/t1/object/deploy-env: deploy-env:1: aws-access-key-id (quarantined as "
        ),
        "{out}"
    );
    assert!(err.contains("1 quarantined"), "{err}");
    assert!(!out.contains(&aws_key_id()) && !err.contains(&aws_key_id()));

    // To the user it is gone, exactly like a key that never existed; the clean one stays.
    let gone = call(M::GET, &bad, &alice, vec![]).await;
    assert_eq!(gone, call(M::GET, &missing, &alice, vec![]).await);
    assert_eq!(gone.0, 404);
    let (s, b) = call(M::GET, &good, &alice, vec![]).await;
    assert_eq!((s, b.as_slice()), (200, &b"# the web template\n"[..]));

    // Kept for admins only.
    let (s, listing) = call(M::GET, &srv.url("/admin/quarantine"), &admin, vec![]).await;
    assert_eq!(s, 200);
    let listing: serde_json::Value = serde_json::from_slice(&listing).unwrap();
    let items = listing["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listing}");
    assert_eq!(items[0]["key"], "template/t1/object/deploy-env");
    assert_eq!(items[0]["findings"][0]["rule"], "aws-access-key-id");
    assert!(!listing.to_string().contains(&aws_key_id()));
    let item = srv.url(&format!(
        "/admin/quarantine/{}",
        items[0]["id"].as_str().unwrap()
    ));
    let (s, kept) = call(M::GET, &item, &admin, vec![]).await;
    assert_eq!((s, kept), (200, secret_body.into_bytes()));
    assert_eq!(call(M::GET, &item, &alice, vec![]).await.0, 403);
    assert_eq!(
        call(
            M::GET,
            &srv.url("/admin/quarantine/1-00000000"),
            &admin,
            vec![]
        )
        .await
        .0,
        404
    );

    // Nothing new: a clean exit.
    let (code, out, err) = scan_shared(&srv.base, &admin, &[]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("0 finding(s)"), "{err}");
    assert!(srv.terminate(), "server exits cleanly");

    // After a restart the audit log has the quarantine; the periodic scan (every second)
    // catches a new bad entry on its own.
    let srv = server(dir.path(), "1s");
    let audit = srv.url("/admin/audit?action=quarantine");
    let (s, records) = call(M::GET, &audit, &admin, vec![]).await;
    assert_eq!(s, 200);
    let records: serde_json::Value = serde_json::from_slice(&records).unwrap();
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["scope"], "template/t1");
    assert_eq!(records[0]["key"], "object/deploy-env");
    assert_eq!(records[0]["principal"], "ops");
    assert!(
        !records[0]["reason"]
            .as_str()
            .unwrap()
            .contains(&aws_key_id())
    );

    let late = srv.url("/objects/template/t1/object/deploy-log");
    let log = b"deployed by mara.k@firma-intern.de at 12:00\n".to_vec();
    assert_eq!(call(M::PUT, &late, &admin, log).await.0, 201);
    let mut caught = false;
    for _ in 0..100 {
        if call(M::GET, &late, &alice, vec![]).await.0 == 404 {
            caught = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(caught, "the periodic scan did not quarantine the new entry");
    let (_, listing) = call(M::GET, &srv.url("/admin/quarantine"), &admin, vec![]).await;
    let listing: serde_json::Value = serde_json::from_slice(&listing).unwrap();
    let last = &listing["items"][1];
    assert_eq!(last["key"], "template/t1/object/deploy-log");
    assert_eq!(last["by"], "leakage-scan");
    assert_eq!(last["findings"][0]["rule"], "email-address");
    let good = srv.url("/objects/template/t1/object/readme");
    assert_eq!(call(M::GET, &good, &alice, vec![]).await.0, 200);
}
