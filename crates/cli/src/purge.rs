//! `tiercache purge`: purge a site's URLs, tags or everything at its CDNs and caches
//! through a running server's outbox (`POST /admin/purges`), optionally waiting until every
//! provider acknowledged; `--status` lists pending and failed purges (`GET /admin/purges`);
//! `--retry JOB` sends a failed job back to pending, `--forget JOB` deletes it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::http;

/// Flags of `tiercache purge`.
#[derive(Args, Debug)]
pub struct PurgeArgs {
    /// The site whose content is purged at its CDNs (without it: cache entries are purged).
    #[arg(long, required_unless_present_any = ["status", "retry", "forget", "keys", "prefixes", "scopes", "kinds", "tags"])]
    pub site: Option<String>,
    /// An absolute URL to purge (repeatable); one ending with * purges every URL starting so.
    #[arg(long = "path", visible_alias = "url", value_name = "URL")]
    pub paths: Vec<String>,
    /// A cache tag / surrogate key to purge (repeatable); without --site, the cache's own
    /// entries carrying the tag.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Without --site: the cache entry with this key (`<scope>/<kind>/<name>`), on every node.
    #[arg(long = "key", value_name = "KEY", conflicts_with = "site")]
    pub keys: Vec<String>,
    /// Without --site: every cache entry whose key starts with this.
    #[arg(long = "prefix", value_name = "PREFIX", conflicts_with = "site")]
    pub prefixes: Vec<String>,
    /// Without --site: every entry of this scope (global, template/T, user/U).
    #[arg(long = "scope", value_name = "SCOPE", conflicts_with = "site")]
    pub scopes: Vec<String>,
    /// Without --site: every entry of this kind (npm-full, turbo, ...), in every scope.
    #[arg(long = "kind", value_name = "KIND", conflicts_with = "site")]
    pub kinds: Vec<String>,
    /// Cache entries: count what would be removed per tier, remove nothing.
    #[arg(long, conflicts_with = "site")]
    pub dry_run: bool,
    /// Purge everything of the site.
    #[arg(long)]
    pub all: bool,
    /// Show the pending and failed purges instead of purging.
    #[arg(long, conflicts_with_all = ["site", "paths", "tags", "all", "wait", "retry", "forget"])]
    pub status: bool,
    /// Send this failed job (an id from --status) back to pending.
    #[arg(long, value_name = "JOB", conflicts_with_all = ["site", "paths", "tags", "all", "wait", "forget"])]
    pub retry: Option<String>,
    /// Delete this failed job (an id from --status).
    #[arg(long, value_name = "JOB", conflicts_with_all = ["site", "paths", "tags", "all", "wait"])]
    pub forget: Option<String>,
    /// Wait until every provider acknowledged the purge, at most this long (e.g. 30s);
    /// exit 1 if one failed or it is still pending then.
    #[arg(long, value_name = "DURATION")]
    pub wait: Option<String>,
    /// The tiercache server.
    #[arg(long, env = "TIERCACHE_SERVER", default_value = crate::http::DEFAULT_SERVER)]
    pub server: String,
    /// An admin token (needed when the server has an auth secret).
    #[arg(long, env = "TIERCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: PurgeArgs) -> anyhow::Result<()> {
    let cache_purge =
        args.site.is_none() && !args.status && args.retry.is_none() && args.forget.is_none();
    if cache_purge {
        let selection = crate::invalidate::EntrySelection {
            keys: args.keys,
            prefixes: args.prefixes,
            tags: args.tags,
            scopes: args.scopes,
            kinds: args.kinds,
        };
        if selection.is_empty() {
            bail!(
                "nothing to purge: give --key, --prefix, --tag, --scope or --kind (or --site for a CDN purge)"
            );
        }
        return crate::invalidate::purge_entries(
            &args.server,
            args.token.as_deref(),
            &selection,
            args.dry_run,
            args.json,
        );
    }
    let base = http::server_base(&args.server)?;
    let wait = args
        .wait
        .as_deref()
        .map(|w| {
            humantime::parse_duration(w.trim())
                .with_context(|| format!("--wait {w:?} is not a duration (e.g. 30s)"))
        })
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = http::client_with_token(Duration::from_secs(60), args.token.as_deref())?;
    runtime.block_on(async {
        if args.status {
            let list = fetch(&client, &base).await?;
            return if args.json {
                crate::stdout::print(&format!("{list:#}\n"))
            } else {
                crate::stdout::print(&render_status(&list))
            };
        }
        if let Some(job) = &args.retry {
            change(
                &client,
                reqwest::Method::POST,
                &format!("{base}/admin/purges/{job}/retry"),
            )
            .await?;
            return crate::stdout::print(&format!("purge job {job} is pending again\n"));
        }
        if let Some(job) = &args.forget {
            change(
                &client,
                reqwest::Method::DELETE,
                &format!("{base}/admin/purges/{job}"),
            )
            .await?;
            return crate::stdout::print(&format!("purge job {job} forgotten\n"));
        }
        if args.paths.is_empty() && args.tags.is_empty() && !args.all {
            bail!("nothing to purge: give --path URL, --tag TAG or --all");
        }
        if args.site.is_none() {
            bail!("--path and --all purge a site at its CDNs: give --site");
        }
        let body = json!({
            "site": args.site,
            "urls": args.paths,
            "tags": args.tags,
            "everything": args.all,
        });
        let recorded = submit(&client, &base, &body).await?;
        if args.json {
            crate::stdout::print(&format!("{recorded:#}\n"))?;
        } else {
            let providers: Vec<&str> = recorded["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|j| j["provider"].as_str())
                .collect();
            crate::stdout::print(&format!(
                "purge {} recorded for {}\n",
                recorded["id"].as_str().unwrap_or("?"),
                providers.join(", ")
            ))?;
        }
        match wait {
            Some(limit) => {
                let id = recorded["id"].as_str().unwrap_or_default().to_owned();
                wait_delivered(&client, &base, &id, limit).await
            }
            None => Ok(()),
        }
    })
}

async fn submit(client: &reqwest::Client, base: &str, body: &Value) -> anyhow::Result<Value> {
    let url = format!("{base}/admin/purges");
    http::send_json(
        client.post(&url).json(body),
        &format!("purge refused by {url}"),
    )
    .await
}

/// A retry or forget of one job.
async fn change(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
) -> anyhow::Result<()> {
    http::send(
        client.request(method.clone(), url),
        &format!("{method} {url}"),
    )
    .await?;
    Ok(())
}

async fn fetch(client: &reqwest::Client, base: &str) -> anyhow::Result<Value> {
    let url = format!("{base}/admin/purges");
    http::send_json(client.get(&url), &format!("cannot read purges from {url}")).await
}

/// Polls until no job of purge `id` is pending; a failed one is an error.
async fn wait_delivered(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let list = fetch(client, base).await?;
        let of = |state: &str| -> Vec<Value> {
            list[state]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|j| j["purge_id"] == id)
                .cloned()
                .collect()
        };
        if let Some(f) = of("failed").first() {
            bail!(
                "purge {id} failed at {}: {}",
                f["provider"].as_str().unwrap_or("?"),
                f["last_error"].as_str().unwrap_or("?")
            );
        }
        let pending = of("pending");
        if pending.is_empty() {
            return crate::stdout::print(&format!("purge {id} delivered\n"));
        }
        if Instant::now() >= deadline {
            let who: Vec<String> = pending
                .iter()
                .map(|j| {
                    format!(
                        "{} ({})",
                        j["provider"].as_str().unwrap_or("?"),
                        j["last_error"].as_str().unwrap_or("not tried yet")
                    )
                })
                .collect();
            bail!(
                "purge {id} still pending after {}: {}",
                humantime::format_duration(limit),
                who.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pending and failed jobs as two tables.
fn render_status(list: &Value) -> String {
    let mut out = String::new();
    if list["configured"] == false {
        out.push_str("purges are not configured on this server (no [[purge.providers]])\n");
    }
    for (state, title, when) in [
        ("pending", "pending", "next_attempt"),
        ("failed", "failed", "failed"),
    ] {
        let jobs = list[state].as_array().cloned().unwrap_or_default();
        out.push_str(&format!("{title}: {}\n", jobs.len()));
        if jobs.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "  {:<40} {:<20} {:<16} {:>8}  {:<20}  {}\n",
            "ID",
            "SITE",
            "PROVIDER",
            "ATTEMPTS",
            if state == "pending" {
                "NEXT ATTEMPT"
            } else {
                "FAILED AT"
            },
            "LAST ERROR"
        ));
        for j in jobs {
            let s = |k: &str| j[k].as_str().unwrap_or("-").to_owned();
            out.push_str(&format!(
                "  {:<40} {:<20} {:<16} {:>8}  {:<20}  {}\n",
                s("id"),
                s("site"),
                s("provider"),
                j["attempts"].as_u64().unwrap_or(0),
                s(when),
                s("last_error"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_two_tables() {
        let list = json!({
            "configured": true,
            "pending": [{ "id": "1-a.cloudflare", "site": "docs", "provider": "cloudflare", "attempts": 3,
                          "next_attempt": "2030-01-01T00:00:00Z", "last_error": "cannot connect" }],
            "failed": [],
        });
        let text = render_status(&list);
        assert!(
            text.contains("pending: 1") && text.contains("failed: 0"),
            "{text}"
        );
        assert!(
            text.contains("1-a.cloudflare") && text.contains("cannot connect"),
            "{text}"
        );
    }
}
