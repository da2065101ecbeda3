//! `tiercache invalidate EVENT ...` (an event, applied on every node: `POST /admin/events`)
//! and the cache half of `tiercache purge` (entries by key, prefix, tag, scope or kind:
//! `POST /admin/invalidate`), both with `--dry-run` to count first.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::http;

/// Flags of `tiercache invalidate`.
#[derive(Args, Debug)]
pub struct InvalidateArgs {
    #[command(subcommand)]
    pub event: EventArgs,
    /// The tiercache server.
    #[arg(long, global = true, env = "TIERCACHE_SERVER", default_value = crate::http::DEFAULT_SERVER)]
    pub server: String,
    /// An admin token (needed when the server has an auth secret).
    #[arg(long, global = true, env = "TIERCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Count what would be removed, remove nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Print the server's JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The events.
#[derive(Subcommand, Debug)]
pub enum EventArgs {
    /// A package changed upstream: its packument leaves every tier on every node.
    PackageUpdate { name: String },
    /// A template changed: its scope is dropped everywhere.
    TemplateUpdate { name: String },
    /// A site changed: its CDNs forget these paths (everything of the site if none).
    Deploy { site: String, paths: Vec<String> },
    /// A team's build artifacts (all, or these hashes) are invalid.
    BuildInvalidate { team: String, hashes: Vec<String> },
    /// Raise a kind's or a template's version epoch: older entries are never served again.
    Epoch {
        /// The kind (npm-full, turbo, asset-blob, ...).
        #[arg(
            long,
            conflicts_with = "template",
            required_unless_present = "template"
        )]
        kind: Option<String>,
        /// The template.
        #[arg(long)]
        template: Option<String>,
        /// The new epoch (epochs only go up).
        epoch: u32,
    },
}

impl EventArgs {
    fn to_json(&self) -> Value {
        match self {
            EventArgs::PackageUpdate { name } => json!({ "event": "package-update", "name": name }),
            EventArgs::TemplateUpdate { name } => {
                json!({ "event": "template-update", "name": name })
            }
            EventArgs::Deploy { site, paths } => {
                json!({ "event": "deploy", "site": site, "paths": paths })
            }
            EventArgs::BuildInvalidate { team, hashes } => {
                json!({ "event": "build-invalidate", "team": team, "hashes": hashes })
            }
            EventArgs::Epoch {
                kind,
                template,
                epoch,
            } => json!({ "event": "epoch", "kind": kind, "template": template, "epoch": epoch }),
        }
    }
}

/// Runs `tiercache invalidate`.
pub fn run(args: InvalidateArgs) -> anyhow::Result<()> {
    let base = http::server_base(&args.server)?;
    let answer = post(
        &base,
        "/admin/events",
        args.token.as_deref(),
        args.dry_run,
        &args.event.to_json(),
    )?;
    print(&answer, args.json)
}

/// Selects cache entries for `tiercache purge` (without `--site`).
#[derive(Debug, Default)]
pub struct EntrySelection {
    pub keys: Vec<String>,
    pub prefixes: Vec<String>,
    pub tags: Vec<String>,
    pub scopes: Vec<String>,
    pub kinds: Vec<String>,
}

impl EntrySelection {
    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.prefixes.is_empty()
            && self.tags.is_empty()
            && self.scopes.is_empty()
            && self.kinds.is_empty()
    }

    fn selectors(&self) -> Vec<Value> {
        let one = |field: &str, values: &[String]| -> Vec<Value> {
            values.iter().map(|v| json!({ field: v })).collect()
        };
        [
            one("key", &self.keys),
            one("prefix", &self.prefixes),
            one("tag", &self.tags),
            one("scope", &self.scopes),
            one("kind", &self.kinds),
        ]
        .concat()
    }
}

/// `tiercache purge --key|--prefix|--tag|--scope|--kind [--dry-run]`: removes the entries
/// from every tier of every node and prints how many each tier had.
pub fn purge_entries(
    server: &str,
    token: Option<&str>,
    selection: &EntrySelection,
    dry_run: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let base = http::server_base(server)?;
    let body = json!({ "selectors": selection.selectors() });
    let answer = post(&base, "/admin/invalidate", token, dry_run, &body)?;
    print(&answer, json_out)
}

fn post(
    base: &str,
    path: &str,
    token: Option<&str>,
    dry_run: bool,
    body: &Value,
) -> anyhow::Result<Value> {
    let url = format!("{base}{path}{}", if dry_run { "?dry_run=true" } else { "" });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let client = http::client_with_token(Duration::from_secs(300), token)?;
        http::send_json(client.post(&url).json(body), &url).await
    })
}

/// One line: what was (or would be) removed per tier, or what was sent to the CDNs.
pub fn render(answer: &Value) -> String {
    let verb = if answer["dry_run"].as_bool().unwrap_or(false) {
        "would remove"
    } else {
        "removed"
    };
    if let Some(removed) = answer.get("removed") {
        let n = |t: &str| removed[t].as_u64().unwrap_or(0);
        let mut line = format!(
            "{verb}: L1 {}, L2 {}, L3 {} entries",
            n("l1"),
            n("l2"),
            n("l3")
        );
        if let Some(id) = answer["stream_id"].as_str() {
            line.push_str(&format!(" (sent to the fleet as {id})"));
        }
        return line + "\n";
    }
    let purge = &answer["purge"];
    format!(
        "CDN purge {}: {} URLs, tags {}\n",
        if answer["recorded"].as_bool().unwrap_or(false) {
            "recorded"
        } else {
            "planned"
        },
        purge["urls"].as_u64().unwrap_or(0),
        purge["tags"]
    )
}

fn print(answer: &Value, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        crate::stdout::print(&format!("{answer:#}\n"))
    } else {
        crate::stdout::print(&render(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_one_line() {
        let a = json!({"dry_run": true, "removed": {"l1": 1, "l2": 2, "l3": 0}, "stream_id": null});
        assert_eq!(render(&a), "would remove: L1 1, L2 2, L3 0 entries\n");
        let a =
            json!({"dry_run": false, "removed": {"l1": 0, "l2": 3, "l3": 3}, "stream_id": "1-0"});
        assert_eq!(
            render(&a),
            "removed: L1 0, L2 3, L3 3 entries (sent to the fleet as 1-0)\n"
        );
    }
}
