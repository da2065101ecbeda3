//! `tiercache prewarm npm`: fills the cache by asking the server's `/npm/` routes for
//! packuments (abbreviated) and the tarballs of the chosen versions, with `--deps` their
//! dependency closure too. What to fetch is decided in `prewarm/plan.rs`; this file does
//! the requests, a bounded number at a time, and reports.

pub mod plan;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, bail};
use bytesize::ByteSize;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::debug;

use crate::cli::{PrewarmArgs, PrewarmNpmArgs, PrewarmTarget};
use crate::http;
use plan::{Failure, Packument, Planner, Spec, Step, Tarball};

/// The seed's list of packages most sandboxes install.
pub const POPULAR: &[&str] = &[
    "react",
    "react-dom",
    "next",
    "@types/react",
    "vite",
    "esbuild",
    "typescript",
    "tslib",
    "lodash",
    "axios",
    "date-fns",
    "zod",
    "tailwindcss",
    "postcss",
    "autoprefixer",
    "vitest",
    "jest",
    "@testing-library/react",
];

/// Requests in flight at once: enough to keep the server busy, not enough to flood it.
const CONCURRENCY: usize = 8;

/// The content type of abbreviated packuments (what npm and pnpm ask for).
const CORGI: &str = "application/vnd.npm.install-v1+json";

/// Runs `tiercache prewarm`.
pub fn run(args: PrewarmArgs) -> anyhow::Result<()> {
    match args.target {
        PrewarmTarget::Npm(a) => npm(a),
    }
}

fn npm(args: PrewarmNpmArgs) -> anyhow::Result<()> {
    let base = http::server_base(&args.server)?;
    let mut specs = Vec::new();
    if args.popular {
        specs.extend(POPULAR.iter().map(|n| Spec {
            name: (*n).to_owned(),
            range: None,
        }));
    }
    for s in &args.packages {
        specs.push(Spec::parse(s).map_err(anyhow::Error::msg)?);
    }
    if specs.is_empty() {
        bail!("nothing to prewarm: name packages (NAME[@RANGE]) or pass --popular");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(prewarm(&base, specs, args.deps, args.token.as_deref()))?;
    crate::stdout::print(&report.render())?;
    if !report.failures.is_empty() {
        bail!(
            "{} of the packages could not be prewarmed",
            report.failures.len()
        );
    }
    Ok(())
}

/// What a prewarm did, for the summary.
#[derive(Debug, Default)]
pub struct Report {
    pub packuments: u64,
    pub packument_bytes: u64,
    pub tarballs: u64,
    pub tarball_bytes: u64,
    /// `X-Cache` value (HIT, MISS, ...) to the number of answers that carried it.
    pub served: BTreeMap<String, u64>,
    pub failures: Vec<Failure>,
    /// Dependencies that are not in a registry (git, file, URL).
    pub skipped: Vec<String>,
}

impl Report {
    /// The summary printed at the end.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "prewarmed {} packuments ({}) and {} tarballs ({}): {} in all; {} failures",
            self.packuments,
            ByteSize(self.packument_bytes),
            self.tarballs,
            ByteSize(self.tarball_bytes),
            ByteSize(self.packument_bytes + self.tarball_bytes),
            self.failures.len()
        );
        if !self.served.is_empty() {
            let served: Vec<String> = self
                .served
                .iter()
                .map(|(how, n)| format!("{n} {how}"))
                .collect();
            let _ = writeln!(out, "the cache answered: {}", served.join(", "));
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(
                out,
                "skipped {} dependencies not from a registry:",
                self.skipped.len()
            );
            for s in &self.skipped {
                let _ = writeln!(out, "  {s}");
            }
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "failures:");
            for f in &self.failures {
                let _ = writeln!(out, "  {}: {}", f.what, f.reason);
            }
        }
        out
    }
}

/// The result of one request.
enum Done {
    Packument {
        name: String,
        result: Result<(Packument, u64, Option<String>), String>,
    },
    Tarball {
        tarball: Tarball,
        result: Result<(u64, Option<String>), String>,
    },
}

/// Two bars: packuments resolved and tarballs fetched; lengths grow as the closure does.
struct Progress {
    multi: MultiProgress,
    packuments: ProgressBar,
    tarballs: ProgressBar,
}

impl Progress {
    fn new() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{prefix:>11} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = |prefix: &'static str| {
            // No length until the first request: indicatif draws 0/0 as a full bar.
            let b = multi.add(ProgressBar::no_length());
            b.set_style(style.clone());
            b.set_prefix(prefix);
            b
        };
        let packuments = bar("packuments");
        let tarballs = bar("tarballs");
        Progress {
            multi,
            packuments,
            tarballs,
        }
    }

    /// One more request of this kind is on its way.
    fn grow(bar: &ProgressBar) {
        bar.set_length(bar.length().unwrap_or(0) + 1);
    }

    fn finish(&self) {
        self.packuments.finish_and_clear();
        self.tarballs.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// Fetches `specs` (with `deps`, their closure) through the npm proxy at `base`, sending
/// `token` as a bearer if given; shared by `prewarm npm` and `template warm`.
pub async fn prewarm(
    base: &str,
    specs: Vec<Spec>,
    deps: bool,
    token: Option<&str>,
) -> anyhow::Result<Report> {
    // Generous: a cold tarball of tens of MiB comes through the origin first.
    let client = http::client_with_token(Duration::from_secs(300), token)?;
    ping(&client, base).await?;
    let progress = Progress::new();
    let mut planner = Planner::new(deps);
    let mut report = Report::default();
    let mut queue = Queue::default();
    for spec in &specs {
        queue.route(planner.want(&spec.name, spec.range.as_deref()), &mut report);
    }
    let mut inflight = FuturesUnordered::new();
    loop {
        // Packuments first: they widen the closure; tarballs fill the remaining slots.
        while inflight.len() < CONCURRENCY {
            if let Some(name) = queue.packuments.pop_front() {
                Progress::grow(&progress.packuments);
                let url = format!("{base}/npm/{}", plan::packument_path(&name));
                inflight.push(tokio::spawn(fetch_packument(client.clone(), url, name)));
            } else if let Some(t) = queue.tarballs.pop_front() {
                Progress::grow(&progress.tarballs);
                inflight.push(tokio::spawn(fetch_tarball(client.clone(), t)));
            } else {
                break;
            }
        }
        let Some(joined) = inflight.next().await else {
            break;
        };
        let done = joined.context("a prewarm request panicked")?;
        match done {
            Done::Packument { name, result } => {
                progress.packuments.inc(1);
                match result {
                    Ok((p, bytes, served)) => {
                        report.packuments += 1;
                        report.packument_bytes += bytes;
                        count(&mut report, served);
                        queue.route(planner.packument_arrived(&name, p), &mut report);
                    }
                    Err(reason) => {
                        queue.route(planner.packument_failed(&name, &reason), &mut report);
                    }
                }
            }
            Done::Tarball { tarball, result } => {
                progress.tarballs.inc(1);
                match result {
                    Ok((bytes, served)) => {
                        report.tarballs += 1;
                        report.tarball_bytes += bytes;
                        count(&mut report, served);
                    }
                    Err(reason) => report.failures.push(Failure {
                        what: format!("{}@{}", tarball.name, tarball.version),
                        reason,
                    }),
                }
            }
        }
    }
    progress.finish();
    Ok(report)
}

/// Checks that the server answers and its npm proxy is on, so that a wrong `--server`
/// is one clear error rather than a failure per package.
async fn ping(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let url = format!("{base}/npm/-/ping");
    let resp =
        client.get(&url).send().await.map_err(|e| {
            anyhow::anyhow!("cannot reach the server at {base}: {}", http::explain(&e))
        })?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.bytes().await.unwrap_or_default();
        bail!(
            "the npm proxy at {base}/npm/ is not available: {}",
            http::explain_status(status, &body)
        );
    }
    Ok(())
}

/// Requests still to send.
#[derive(Default)]
struct Queue {
    packuments: VecDeque<String>,
    tarballs: VecDeque<Tarball>,
}

impl Queue {
    /// Queues the planner's requests; failures and skips go straight to the report.
    fn route(&mut self, steps: Vec<Step>, report: &mut Report) {
        for step in steps {
            match step {
                Step::Packument(name) => self.packuments.push_back(name),
                Step::Tarball(t) => self.tarballs.push_back(t),
                Step::Failed(f) => report.failures.push(f),
                Step::Skipped(s) => report.skipped.push(s),
            }
        }
    }
}

fn count(report: &mut Report, served: Option<String>) {
    let how = served.unwrap_or_else(|| "no X-Cache".into());
    *report.served.entry(how).or_insert(0) += 1;
}

fn x_cache(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn fetch_packument(client: reqwest::Client, url: String, name: String) -> Done {
    let result = async {
        let resp = client
            .get(&url)
            .header(reqwest::header::ACCEPT, CORGI)
            .send()
            .await
            .map_err(|e| http::explain(&e))?;
        let status = resp.status();
        let served = x_cache(&resp);
        let body = resp.bytes().await.map_err(|e| http::explain(&e))?;
        if !status.is_success() {
            return Err(http::explain_status(status, &body));
        }
        debug!(%url, bytes = body.len(), served = ?served, "packument");
        let p: Packument = serde_json::from_slice(&body)
            .map_err(|e| format!("the packument is not valid JSON: {e}"))?;
        Ok((p, body.len() as u64, served))
    }
    .await;
    Done::Packument { name, result }
}

async fn fetch_tarball(client: reqwest::Client, tarball: Tarball) -> Done {
    let result = async {
        let mut resp = client
            .get(&tarball.url)
            .send()
            .await
            .map_err(|e| http::explain(&e))?;
        let status = resp.status();
        let served = x_cache(&resp);
        if !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(http::explain_status(status, &body));
        }
        // Counted as it streams: nothing is kept, the point is that the server stores it.
        let mut bytes = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| http::explain(&e))? {
            bytes += chunk.len() as u64;
        }
        debug!(url = %tarball.url, bytes, served = ?served, "tarball");
        Ok((bytes, served))
    }
    .await;
    Done::Tarball { tarball, result }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_and_lists_failures() {
        let mut r = Report {
            packuments: 3,
            packument_bytes: 2048,
            tarballs: 2,
            tarball_bytes: 1024 * 1024,
            ..Default::default()
        };
        r.served.insert("MISS".into(), 4);
        r.served.insert("HIT".into(), 1);
        r.failures.push(Failure {
            what: "a@^9".into(),
            reason: "no version matches ^9 (latest is 1.0.0)".into(),
        });
        let text = r.render();
        assert_eq!(
            text,
            "prewarmed 3 packuments (2.0 KiB) and 2 tarballs (1.0 MiB): 1.0 MiB in all; 1 failures\n\
             the cache answered: 1 HIT, 4 MISS\n\
             failures:\n  a@^9: no version matches ^9 (latest is 1.0.0)\n"
        );
    }

    #[test]
    fn the_popular_list_is_valid_names() {
        for n in POPULAR {
            assert!(plan::check_name(n).is_ok(), "{n}");
        }
        assert_eq!(POPULAR.len(), 18);
    }
}
