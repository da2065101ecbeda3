//! `tiercache audit`: the audit log, read straight from a data directory (no server needed)
//! or from a running server's `GET /admin/audit`, one line per record
//! (`time principal action decision scope key reason`) or one JSON object per line.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use tiercache_store::audit::{AuditFilter, audit_dir, parse_since, read_dir};
use tiercache_store::{Action, AuditRecord};

use crate::cli::AuditArgs;
use crate::http;

/// Where `tiercache serve` keeps its data unless told otherwise.
const DEFAULT_DATA_DIR: &str = "./tiercache-data";

/// Runs `tiercache audit`.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let filter = filter(&args)?;
    let records = match &args.server {
        Some(server) => {
            let base = http::server_base(server)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(fetch(&base, args.token.as_deref(), &filter))?
        }
        None => {
            let data_dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
            let dir = audit_dir(&data_dir);
            if !dir.is_dir() {
                bail!(
                    "no audit log in {} (has `tiercache serve` run with --data-dir {}?)",
                    dir.display(),
                    data_dir.display()
                );
            }
            read_dir(&dir, &filter)?
        }
    };
    crate::stdout::print(&render(&records, args.json)?)
}

/// The filter the flags ask for.
fn filter(args: &AuditArgs) -> anyhow::Result<AuditFilter> {
    if args.limit == 0 {
        bail!("--limit must be at least 1");
    }
    let since_ms = args
        .since
        .as_deref()
        .map(|s| parse_since(s, tiercache_store::clock::now_ms()))
        .transpose()
        .map_err(|e| anyhow!("--{e}"))?;
    let action = args
        .action
        .as_deref()
        .map(str::parse::<Action>)
        .transpose()
        .map_err(|e| anyhow!("--action: {e}"))?;
    Ok(AuditFilter {
        user: args.user.clone(),
        since_ms,
        action,
        limit: args.limit,
    })
}

#[derive(Deserialize)]
struct Answer {
    records: Vec<AuditRecord>,
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn query_string(f: &AuditFilter) -> String {
    let mut parts = vec![format!("limit={}", f.limit)];
    if let Some(u) = &f.user {
        parts.push(format!("user={}", encode(u)));
    }
    if let Some(t) = f.since_ms {
        parts.push(format!("since={t}"));
    }
    if let Some(a) = f.action {
        parts.push(format!("action={a}"));
    }
    parts.join("&")
}

async fn fetch(
    base: &str,
    token: Option<&str>,
    filter: &AuditFilter,
) -> anyhow::Result<Vec<AuditRecord>> {
    let url = format!("{base}/admin/audit?{}", query_string(filter));
    let what = format!("cannot read the audit log from {base}/admin/audit");
    let client = http::client_with_token(Duration::from_secs(60), token)?;
    let body = http::send(client.get(&url), &what).await?;
    let fail = |why: String| anyhow!("{what}: {why}");
    let answer: Answer =
        serde_json::from_slice(&body).map_err(|e| fail(format!("not the audit JSON ({e})")))?;
    Ok(answer.records)
}

/// A record's time as RFC 3339 (UTC, milliseconds).
fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The records as text columns, or as JSON Lines.
pub fn render(records: &[AuditRecord], json: bool) -> anyhow::Result<String> {
    let mut out = String::new();
    for r in records {
        if json {
            out.push_str(&serde_json::to_string(r)?);
            out.push('\n');
            continue;
        }
        let role = serde_json::to_value(r.role)?;
        let role = role.as_str().unwrap_or("?");
        let _ = write!(
            out,
            "{} {}({role}) {} {} {} {}",
            time(r.time_ms),
            r.principal,
            r.action,
            r.decision,
            r.scope,
            r.key
        );
        if let Some(why) = &r.reason {
            let _ = write!(out, " {why}");
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use tiercache_core::Role;
    use tiercache_store::Verdict;

    use super::*;

    #[test]
    fn records_render_as_columns_or_json_lines() {
        let r = AuditRecord {
            time_ms: 1_718_006_400_123,
            principal: "bob".into(),
            role: Role::User,
            key: "object/x".into(),
            scope: "user/alice".into(),
            action: Action::Read,
            decision: Verdict::Deny,
            reason: Some("another user's scope".into()),
        };
        assert_eq!(
            render(std::slice::from_ref(&r), false).unwrap(),
            "2024-06-10T08:00:00.123Z bob(user) read deny user/alice object/x another user's scope\n"
        );
        let json = render(&[r.clone(), r], true).unwrap();
        assert_eq!(json.lines().count(), 2);
        for line in json.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["decision"], "deny");
        }
    }

    #[test]
    fn the_query_string_is_encoded() {
        let f = AuditFilter {
            user: Some("a b&c".into()),
            since_ms: Some(5),
            action: Some(Action::Write),
            limit: 7,
        };
        assert_eq!(
            query_string(&f),
            "limit=7&user=a%20b%26c&since=5&action=write"
        );
    }
}
