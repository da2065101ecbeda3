//! Delivery: one worker per provider (so a provider that is down holds back no other),
//! taking its due jobs oldest first, sending each job's plan call by call, and recording
//! the outcome: delivered (the job is deleted), retry later (exponential backoff with
//! jitter), or failed (a permanent error, or tried for too long; kept).

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::config::ProviderConfig;
use super::job::{Job, JobState, now_ms};
use super::outbox::Outbox;
use super::providers::{Ack, Call};

/// A worker with nothing due looks again at least this often.
const IDLE: Duration = Duration::from_secs(60);
/// Progress of a long plan is saved every this many acknowledged calls (a crash repeats
/// at most these; purges are idempotent).
const SAVE_EVERY: usize = 32;
/// At most this much of an answer's body is read.
const MAX_ANSWER: usize = 64 * 1024;

/// Starts one worker per provider on the current runtime.
pub fn start(outbox: &Arc<Outbox>) -> Result<(), reqwest::Error> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("tiercache/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    for p in &outbox.config().providers {
        tokio::spawn(worker(outbox.clone(), p.clone(), client.clone()));
    }
    Ok(())
}

async fn worker(outbox: Arc<Outbox>, provider: ProviderConfig, client: reqwest::Client) {
    let Some(wake) = outbox.waker(&provider.name) else {
        return;
    };
    loop {
        for job in outbox.due(&provider.name, now_ms()) {
            deliver(&outbox, &provider, &client, job).await;
        }
        let now = now_ms();
        let wait = outbox.next_due(&provider.name).map_or(IDLE, |t| {
            Duration::from_millis(t.saturating_sub(now)).min(IDLE)
        });
        if !wait.is_zero() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// One attempt at `job`: the remaining calls of its plan, in order, until one fails.
async fn deliver(outbox: &Outbox, p: &ProviderConfig, client: &reqwest::Client, mut job: Job) {
    let label = p.name.clone();
    let calls = match p.provider.plan(&job.purge_id, &job.request) {
        Ok(c) => c,
        Err(e) => return settle(outbox, p, job, Ack::Permanent(e)).await,
    };
    if job.calls_total != calls.len() || job.calls_done > calls.len() {
        // The plan changed (a configuration change): start over; purging twice is harmless.
        job.calls_done = 0;
        job.calls_total = calls.len();
    }
    job.attempts += 1;
    let start = job.calls_done;
    for (i, call) in calls.iter().enumerate().skip(start) {
        let ack = send(client, call, outbox.timeout(), p).await;
        if ack != Ack::Done {
            return settle(outbox, p, job, ack).await;
        }
        job.calls_done = i + 1;
        if (i + 1 - start).is_multiple_of(SAVE_EVERY)
            && i + 1 < calls.len()
            && let Err(e) = outbox.save(job.clone()).await
        {
            warn!(job = %job.id, error = %e, "saving purge progress failed");
        }
    }
    if let Err(e) = outbox.finish(&job.id).await {
        warn!(job = %job.id, error = %e, "removing a delivered purge job failed; it may be sent again");
        return;
    }
    metrics::counter!("tiercache_purge_delivered_total", "provider" => label).increment(1);
    info!(job = %job.id, provider = %p.name, calls = calls.len(), attempts = job.attempts, "purge delivered");
}

/// Records a failed attempt: retried later, or marked failed.
async fn settle(outbox: &Outbox, p: &ProviderConfig, mut job: Job, ack: Ack) {
    let now = now_ms();
    let redact = |s: String| p.provider.secret().map_or(s.clone(), |k| k.redact(&s));
    let age = Duration::from_millis(now.saturating_sub(job.age_from_ms()));
    let policy = &outbox.config().retry;
    match ack {
        Ack::Done => return,
        Ack::Retry { error, after } if !policy.exhausted(job.attempts, age) => {
            let wait = policy.delay(job.attempts, after);
            job.next_attempt_ms = now + wait.as_millis() as u64;
            job.last_error = Some(redact(error));
            metrics::counter!("tiercache_purge_retries_total", "provider" => p.name.clone())
                .increment(1);
            warn!(job = %job.id, provider = %p.name, attempts = job.attempts, retry_in = ?wait, error = job.last_error.as_deref().unwrap_or(""), "purge not delivered; will retry");
        }
        Ack::Retry { error, .. } => {
            job.state = JobState::Failed;
            job.failed_ms = Some(now);
            job.last_error = Some(redact(format!(
                "gave up after {} attempts over {}: {error}",
                job.attempts,
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            )));
        }
        Ack::Permanent(error) => {
            job.state = JobState::Failed;
            job.failed_ms = Some(now);
            job.last_error = Some(redact(error));
        }
    }
    if job.state == JobState::Failed {
        metrics::counter!("tiercache_purge_failed_total", "provider" => p.name.clone())
            .increment(1);
        warn!(job = %job.id, provider = %p.name, attempts = job.attempts, error = job.last_error.as_deref().unwrap_or(""), "purge failed; kept for inspection in /admin/purges");
    }
    if let Err(e) = outbox.save(job.clone()).await {
        warn!(job = %job.id, error = %e, "saving a purge job's state failed");
    }
}

/// Sends one call and judges the answer; network failures and timeouts are retried.
async fn send(client: &reqwest::Client, call: &Call, timeout: Duration, p: &ProviderConfig) -> Ack {
    let mut request = client
        .request(call.method.clone(), &call.url)
        .headers(call.headers.clone())
        .timeout(timeout);
    if let Some(body) = &call.body {
        request = request.body(body.clone());
    }
    debug!(provider = %p.name, call = %call.describe(), "purge call");
    let what = call.describe();
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return Ack::Retry {
                error: format!(
                    "{what}: {}",
                    crate::request_error::explain(&e.without_url())
                ),
                after: None,
            };
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = read_some(response).await;
    match p.provider.judge(status, retry_after, &body) {
        Ack::Done => Ack::Done,
        Ack::Retry { error, after } => Ack::Retry {
            error: format!("{what}: {error}"),
            after,
        },
        Ack::Permanent(error) => Ack::Permanent(format!("{what}: {error}")),
    }
}

/// The first [`MAX_ANSWER`] bytes of the body (what a judgement or an error needs).
async fn read_some(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ANSWER {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body
}
