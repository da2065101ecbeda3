//! `tiercache deploy DIR --site S`: uploads a built site as a new, immutable deploy and
//! makes it live; `tiercache deploy --rollback S` returns to the previous one.
//!
//! 1. the site is read, hashed and precompressed here (`site_dir.rs`);
//! 2. its manifest (path → hash, size, variants) is posted; the server answers which
//!    blobs it lacks, and only those are uploaded (with a progress bar on a terminal);
//! 3. the deploy is activated: the site switches to it at once, in one write.

pub mod args;
pub mod remote;
pub mod site_dir;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail};
use tiercache_core::assets::SiteName;

use args::DeployArgs;
use remote::SiteRemote;

/// Runs `tiercache deploy`.
pub fn run(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))?;
    Ok(ExitCode::SUCCESS)
}

fn site_name(s: &str) -> anyhow::Result<SiteName> {
    SiteName::new(s).map_err(|e| anyhow::anyhow!("invalid site {s:?}: {e}"))
}

/// `n` bytes for people.
fn human(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

async fn run_async(args: DeployArgs) -> anyhow::Result<()> {
    if let Some(site) = &args.rollback {
        let site = site_name(site)?;
        let remote = SiteRemote::new(&args.server, args.token.as_deref(), &site)?;
        let answer = remote.rollback().await?;
        if args.json {
            println!("{answer}");
        } else {
            println!(
                "site {site}: rolled back to deploy {} (from {})",
                answer["deploy"], answer["previous"]
            );
        }
        return Ok(());
    }
    let (Some(dir), Some(site)) = (&args.dir, &args.site) else {
        bail!("give the site's directory and --site, or --rollback SITE");
    };
    let site = site_name(site)?;
    let remote = SiteRemote::new(&args.server, args.token.as_deref(), &site)?;
    let compress = !args.no_compress;
    let dir_owned = dir.clone();
    let local = tokio::task::spawn_blocking(move || site_dir::read(&dir_owned, compress))
        .await
        .context("reading the site")??;
    let created = remote.create(&local.manifest()).await?;
    let deploy = created["deploy"]
        .as_u64()
        .context("the server's answer has no deploy number")?;
    let missing: Vec<String> = created["missing"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let show = std::io::stderr().is_terminal() && !args.json;
    let uploaded_bytes = remote.upload_all(&local, &missing, show).await?;
    let live = remote.activate(deploy).await?;
    let files = local.files.len();
    let total: u64 = local.files.iter().map(|f| f.size).sum();
    if args.json {
        let out = serde_json::json!({
            "site": site.as_str(),
            "deploy": deploy,
            "previous": live["previous"],
            "files": files,
            "bytes": total,
            "blobs": local.sources.len(),
            "uploaded": missing.len(),
            "uploaded_bytes": uploaded_bytes,
            "purge": live["purge"],
        });
        println!("{out}");
    } else {
        let previous = match live["previous"].as_u64() {
            Some(p) => format!("; previous deploy {p}"),
            None => String::new(),
        };
        println!(
            "site {site}: deploy {deploy} is live ({files} files, {}; uploaded {} of {} blobs, {}{previous})",
            human(total),
            missing.len(),
            local.sources.len(),
            human(uploaded_bytes),
        );
    }
    Ok(())
}
