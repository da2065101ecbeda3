//! `tiercache audit` on a data directory (no server) and against a running server, and
//! `GET /admin/audit`: records written by the store's audit log, filtered by user, time and
//! action, surviving a crash's torn line and a restart.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use common::{Server, client};
use tiercache_core::Role;
use tiercache_store::audit::{CURRENT, audit_dir};
use tiercache_store::{Action, AuditLog, AuditRecord, Verdict};

fn rec(time_ms: u64, user: &str, scope: &str, action: Action, deny: Option<&str>) -> AuditRecord {
    AuditRecord {
        time_ms,
        principal: user.into(),
        role: Role::User,
        key: format!("object/o{time_ms}"),
        scope: scope.into(),
        action,
        decision: if deny.is_some() {
            Verdict::Deny
        } else {
            Verdict::Allow
        },
        reason: deny.map(String::from),
    }
}

/// A data directory whose audit log holds four records (and a torn fifth, as after a crash).
async fn seed(data: &Path) {
    let log = AuditLog::open(audit_dir(data), 1 << 20, 4).await.unwrap();
    for r in [
        rec(1_000, "alice", "user/alice", Action::Write, None),
        rec(2_000, "alice", "user/alice", Action::Read, None),
        rec(
            3_000,
            "bob",
            "user/alice",
            Action::Read,
            Some("another user's scope"),
        ),
        rec(
            4_000,
            "anonymous",
            "template/web",
            Action::Head,
            Some("the token does not list this template"),
        ),
    ] {
        log.record(r).await;
    }
    log.close().await.unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(audit_dir(data).join(CURRENT))
        .unwrap();
    f.write_all(b"{\"time_ms\":5000,\"principal\":\"al")
        .unwrap();
}

fn tc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tiercache"))
        .args(args)
        .env_remove("TIERCACHE_DATA_DIR")
        .env_remove("TIERCACHE_SERVER")
        .env_remove("TIERCACHE_TOKEN")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn audit_reads_a_data_directory_with_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(seed(&data));
    let dir = data.to_str().unwrap();

    let all = ok(&tc(&["audit", "--data-dir", dir]));
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 4, "{all}");
    assert_eq!(
        lines[0],
        "1970-01-01T00:00:01.000Z alice(user) write allow user/alice object/o1000"
    );
    assert_eq!(
        lines[2],
        "1970-01-01T00:00:03.000Z bob(user) read deny user/alice object/o3000 another user's scope"
    );

    let alice = ok(&tc(&["audit", "--data-dir", dir, "--user", "alice"]));
    assert_eq!(alice.lines().count(), 2, "{alice}");
    let reads = ok(&tc(&[
        "audit",
        "--data-dir",
        dir,
        "--action",
        "read",
        "--json",
    ]));
    let reads: Vec<serde_json::Value> = reads
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[1]["principal"], "bob");
    assert_eq!(reads[1]["decision"], "deny");
    let since = ok(&tc(&["audit", "--data-dir", dir, "--since", "3000"]));
    assert_eq!(since.lines().count(), 2, "{since}");
    let last = ok(&tc(&["audit", "--data-dir", dir, "--limit", "1"]));
    assert!(
        last.contains("anonymous(user) head deny template/web"),
        "{last}"
    );

    let bad = tc(&["audit", "--data-dir", dir, "--action", "steal"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--action"));
    let bad = tc(&["audit", "--data-dir", dir, "--since", "whenever"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
    let missing = tc(&[
        "audit",
        "--data-dir",
        tmp.path().join("none").to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no audit log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_admin_audit_and_keeps_the_log_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    seed(&data).await;
    let mut server = Server::start(&data, &["--npm-upstream", "http://127.0.0.1:9/"]);
    let http = client();

    let body: serde_json::Value = http
        .get(server.url("/admin/audit?user=alice&action=read"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = body["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{body}");
    assert_eq!(records[0]["time_ms"], 2000);
    assert_eq!(records[0]["scope"], "user/alice");

    for bad in ["action=steal", "since=later", "limit=0", "colour=blue"] {
        let resp = http
            .get(server.url(&format!("/admin/audit?{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let e: serde_json::Value = resp.json().await.unwrap();
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }

    let base = server.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        tc(&["audit", "--server", &base, "--user", "bob", "--json"])
    })
    .await
    .unwrap();
    let text = ok(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("\"another user's scope\""));

    assert!(server.terminate(), "server exits cleanly");
    // The torn line was cut at start-up; the four records are all still there.
    let after = ok(&tc(&["audit", "--data-dir", data.to_str().unwrap()]));
    assert_eq!(after.lines().count(), 4, "{after}");
    let current = std::fs::read_to_string(audit_dir(&data).join(CURRENT)).unwrap();
    assert!(current.ends_with('\n') && !current.contains("\"al\n"));
}
