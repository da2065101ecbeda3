//! The durable outbox: every purge is written to `<data_dir>/purges/` — one JSON file per
//! provider job, atomically (see [`super::atomic`]) — before it is acknowledged, and a
//! job's file changes only by atomic replacement as attempts are made. Delivered jobs are
//! deleted; failed ones stay, marked, for inspection. At start every file is read back, so
//! pending jobs survive restarts and crashes.
//!
//! Why files rather than an append-only log: jobs are few, small and change state a few
//! times each; one file per job makes every change a single rename, start-up a directory
//! scan, and needs no compaction. A file that cannot be parsed is renamed `*.corrupt` and
//! kept.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

use super::atomic;
use super::config::{ProviderConfig, PurgeConfig};
use super::job::{Job, JobState, now_ms};
use super::request::{PurgeRequest, PurgeSink, RequestError};

/// Why a purge was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The request is malformed (400).
    #[error(transparent)]
    Invalid(#[from] RequestError),
    /// No configured provider purges this site (404).
    #[error("unknown site {0:?}: no purge provider is configured for it")]
    UnknownSite(String),
    /// A provider for the site could never carry it out (400).
    #[error("provider {provider:?}: {reason}")]
    Unsupported { provider: String, reason: String },
    /// The outbox could not be written (503).
    #[error("recording the purge failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Why an admin's change to a kept job was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No such job (404).
    #[error("no purge job {0:?}")]
    NotFound(String),
    /// Only failed jobs can be retried or forgotten (409).
    #[error("purge job {0:?} is pending: only failed jobs can be retried or forgotten")]
    Pending(String),
    /// The outbox could not be written (503).
    #[error("changing the purge job failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A recorded purge: its id and the jobs it became.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recorded {
    /// The purge's id.
    pub id: String,
    /// `(job id, provider name)` per provider.
    pub jobs: Vec<(String, String)>,
}

/// The outbox: the jobs on disk and in memory, the providers, and a wake-up per provider.
pub struct Outbox {
    dir: PathBuf,
    config: PurgeConfig,
    jobs: Mutex<BTreeMap<String, Job>>,
    wake: HashMap<String, Arc<Notify>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.dir)
            .field("providers", &self.config.providers.len())
            .finish()
    }
}

/// The suffix of job files.
const JOB_SUFFIX: &str = ".json";

impl Outbox {
    /// Opens (creating) `dir`, removes unfinished writes and loads every job. Jobs of a
    /// provider that is no longer configured are marked failed.
    pub async fn open(dir: PathBuf, config: PurgeConfig) -> std::io::Result<Arc<Outbox>> {
        let load_dir = dir.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&load_dir))
            .await
            .map_err(std::io::Error::other)??;
        let wake = config
            .providers
            .iter()
            .map(|p| (p.name.clone(), Arc::new(Notify::new())))
            .collect();
        let outbox = Arc::new(Outbox {
            dir,
            config,
            jobs: Mutex::new(BTreeMap::new()),
            wake,
        });
        let mut orphans = Vec::new();
        {
            let mut jobs = outbox.lock();
            for mut job in loaded {
                if job.state == JobState::Pending && outbox.provider(&job.provider).is_none() {
                    job.state = JobState::Failed;
                    job.failed_ms = Some(now_ms());
                    job.last_error = Some(format!(
                        "provider {:?} is no longer configured",
                        job.provider
                    ));
                    orphans.push(job.clone());
                }
                jobs.insert(job.id.clone(), job);
            }
        }
        for job in orphans {
            warn!(job = %job.id, provider = %job.provider, "purge job for a provider no longer configured: marked failed");
            outbox.save(job).await?;
        }
        let (pending, failed) = outbox.counts();
        if pending + failed > 0 {
            info!(pending, failed, "purge outbox loaded");
        }
        outbox.publish_gauges();
        Ok(outbox)
    }

    /// The configuration it delivers with.
    pub fn config(&self) -> &PurgeConfig {
        &self.config
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.config.providers.iter().find(|p| p.name == name)
    }

    /// Validates `request`, writes one job per provider serving its site, and wakes their
    /// workers; returns once every job file is durable.
    pub async fn record(&self, request: PurgeRequest) -> Result<Recorded, RecordError> {
        let request = request.validated()?;
        let providers: Vec<&ProviderConfig> = self
            .config
            .providers
            .iter()
            .filter(|p| p.serves(&request.site))
            .collect();
        if providers.is_empty() {
            return Err(RecordError::UnknownSite(request.site));
        }
        for p in &providers {
            if let Some(reason) = p.provider.unsupported(&request) {
                return Err(RecordError::Unsupported {
                    provider: p.name.clone(),
                    reason,
                });
            }
        }
        let now = now_ms();
        let purge_id = format!("{now:013}-{:08x}", rand::random::<u32>());
        let jobs: Vec<Job> = providers
            .iter()
            .map(|p| Job {
                id: format!("{purge_id}.{}", p.name),
                purge_id: purge_id.clone(),
                provider: p.name.clone(),
                kind: p.provider.kind().to_owned(),
                request: request.clone(),
                created_ms: now,
                attempts: 0,
                calls_done: 0,
                calls_total: 0,
                next_attempt_ms: now,
                last_error: None,
                state: JobState::Pending,
                failed_ms: None,
                retried_ms: None,
            })
            .collect();
        let files = jobs
            .iter()
            .map(|j| Ok((file_name(&j.id), serde_json::to_vec_pretty(j)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(std::io::Error::other)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || atomic::write_all(&dir, &files))
            .await
            .map_err(std::io::Error::other)??;
        let recorded = Recorded {
            id: purge_id,
            jobs: jobs
                .iter()
                .map(|j| (j.id.clone(), j.provider.clone()))
                .collect(),
        };
        {
            let mut map = self.lock();
            for j in jobs {
                map.insert(j.id.clone(), j);
            }
        }
        self.publish_gauges();
        info!(purge = %recorded.id, site = %request.site, urls = request.urls.len(), tags = request.tags.len(), everything = request.everything, jobs = recorded.jobs.len(), "purge recorded");
        for (_, provider) in &recorded.jobs {
            self.wake(provider);
        }
        Ok(recorded)
    }

    /// Sends a failed job back to pending, due now, with its attempts and age counted
    /// afresh.
    pub async fn retry(&self, id: &str) -> Result<Job, ChangeError> {
        let mut job = self.failed(id)?;
        let now = now_ms();
        job.state = JobState::Pending;
        job.failed_ms = None;
        job.attempts = 0;
        job.next_attempt_ms = now;
        job.retried_ms = Some(now);
        self.save(job.clone()).await?;
        info!(job = %id, "failed purge job sent back to pending");
        self.wake(&job.provider);
        Ok(job)
    }

    /// Deletes a failed job.
    pub async fn forget(&self, id: &str) -> Result<(), ChangeError> {
        self.failed(id)?;
        self.finish(id).await?;
        info!(job = %id, "failed purge job forgotten");
        Ok(())
    }

    fn failed(&self, id: &str) -> Result<Job, ChangeError> {
        match self.lock().get(id) {
            None => Err(ChangeError::NotFound(id.to_owned())),
            Some(j) if j.state == JobState::Pending => Err(ChangeError::Pending(id.to_owned())),
            Some(j) => Ok(j.clone()),
        }
    }

    /// Every kept job (pending and failed), oldest first.
    pub fn jobs(&self) -> Vec<Job> {
        self.lock().values().cloned().collect()
    }

    /// Pending jobs of `provider` due at `now`, oldest first.
    pub fn due(&self, provider: &str, now: u64) -> Vec<Job> {
        self.lock()
            .values()
            .filter(|j| {
                j.provider == provider && j.state == JobState::Pending && j.next_attempt_ms <= now
            })
            .cloned()
            .collect()
    }

    /// When `provider`'s next pending job is due.
    pub fn next_due(&self, provider: &str) -> Option<u64> {
        self.lock()
            .values()
            .filter(|j| j.provider == provider && j.state == JobState::Pending)
            .map(|j| j.next_attempt_ms)
            .min()
    }

    /// Writes `job`'s new state (atomically), then keeps it in memory.
    pub async fn save(&self, job: Job) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&job).map_err(std::io::Error::other)?;
        let dir = self.dir.clone();
        let name = file_name(&job.id);
        tokio::task::spawn_blocking(move || atomic::write_all(&dir, &[(name, bytes)]))
            .await
            .map_err(std::io::Error::other)??;
        self.lock().insert(job.id.clone(), job);
        self.publish_gauges();
        Ok(())
    }

    /// Forgets a delivered job: its file is removed, then the memory.
    pub async fn finish(&self, id: &str) -> std::io::Result<()> {
        let dir = self.dir.clone();
        let name = file_name(id);
        tokio::task::spawn_blocking(move || atomic::remove(&dir, &name))
            .await
            .map_err(std::io::Error::other)??;
        self.lock().remove(id);
        self.publish_gauges();
        Ok(())
    }

    /// The wake-up of `provider`'s worker.
    pub fn waker(&self, provider: &str) -> Option<Arc<Notify>> {
        self.wake.get(provider).cloned()
    }

    fn wake(&self, provider: &str) {
        if let Some(n) = self.wake.get(provider) {
            n.notify_one();
        }
    }

    /// `(pending, failed)` job counts.
    pub fn counts(&self) -> (usize, usize) {
        let jobs = self.lock();
        let pending = jobs
            .values()
            .filter(|j| j.state == JobState::Pending)
            .count();
        (pending, jobs.len() - pending)
    }

    fn publish_gauges(&self) {
        let jobs = self.lock();
        for p in &self.config.providers {
            let (mut pending, mut failed) = (0usize, 0usize);
            for j in jobs.values().filter(|j| j.provider == p.name) {
                match j.state {
                    JobState::Pending => pending += 1,
                    JobState::Failed => failed += 1,
                }
            }
            metrics::gauge!("tiercache_purge_pending", "provider" => p.name.clone())
                .set(pending as f64);
            metrics::gauge!("tiercache_purge_failed_kept", "provider" => p.name.clone())
                .set(failed as f64);
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Job>> {
        // A panic while holding the lock leaves a consistent map (no multi-step updates).
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The retry policy and timeout.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }
}

/// A site no provider serves has nothing to purge: a deploy of it is not an error.
impl PurgeSink for Outbox {
    fn submit(&self, request: PurgeRequest) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match self.record(request).await {
                Ok(_) => Ok(()),
                Err(RecordError::UnknownSite(site)) => {
                    tracing::debug!(%site, "no purge provider serves this site: nothing to purge");
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

fn file_name(job_id: &str) -> String {
    format!("{job_id}{JOB_SUFFIX}")
}

/// Creates `dir`, removes unfinished writes, and reads every job file (a corrupt one is
/// renamed `*.corrupt` and skipped).
fn load(dir: &Path) -> std::io::Result<Vec<Job>> {
    std::fs::create_dir_all(dir)?;
    let cleaned = atomic::clean_temp(dir)?;
    if cleaned > 0 {
        info!(cleaned, "removed unfinished purge outbox writes");
    }
    let mut jobs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.to_string_lossy().ends_with(JOB_SUFFIX) {
            continue;
        }
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Job>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(job) => jobs.push(job),
            Err(e) => {
                let kept = path.with_extension("corrupt");
                warn!(file = %path.display(), error = %e, "unreadable purge job kept as {}", kept.display());
                std::fs::rename(&path, &kept)?;
            }
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdn::config::PurgeFile;

    fn config(names: &[&str]) -> PurgeConfig {
        let text: String = names
            .iter()
            .map(|n| format!("[[providers]]\nkind = \"webhook\"\nname = \"{n}\"\nurl = \"http://127.0.0.1:1/{n}\"\n"))
            .collect();
        let file: PurgeFile = toml::from_str(&text).unwrap();
        file.resolve(&|_| None).unwrap().unwrap()
    }

    fn request() -> PurgeRequest {
        PurgeRequest {
            site: "docs".into(),
            urls: vec!["https://docs.example/a".into()],
            tags: vec![],
            everything: false,
        }
    }

    #[tokio::test]
    async fn jobs_survive_reopening_and_debris_is_handled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("purges");
        let outbox = Outbox::open(path.clone(), config(&["a", "b"]))
            .await
            .unwrap();
        let recorded = outbox.record(request()).await.unwrap();
        assert_eq!(recorded.jobs.len(), 2);
        let before = outbox.jobs();
        drop(outbox);
        std::fs::write(path.join("x.json.tmp"), b"{torn").unwrap();
        std::fs::write(path.join("y.json"), b"not json").unwrap();

        // Provider "b" is gone: its job is kept, failed, with the reason.
        let outbox = Outbox::open(path.clone(), config(&["a"])).await.unwrap();
        let jobs = outbox.jobs();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0], before[0]);
        assert_eq!(jobs[1].state, JobState::Failed);
        assert!(
            jobs[1]
                .last_error
                .as_deref()
                .unwrap()
                .contains("no longer configured")
        );
        assert!(!path.join("x.json.tmp").exists());
        assert!(path.join("y.corrupt").exists());
        assert_eq!(outbox.counts(), (1, 1));

        assert!(matches!(
            outbox.retry(&jobs[0].id).await,
            Err(ChangeError::Pending(_))
        ));
        let again = outbox.retry(&jobs[1].id).await.unwrap();
        assert_eq!((again.state, again.attempts), (JobState::Pending, 0));
        outbox.finish(&jobs[0].id).await.unwrap();
        assert!(!path.join(format!("{}.json", jobs[0].id)).exists());
        assert!(matches!(
            outbox
                .record(PurgeRequest {
                    site: "".into(),
                    ..request()
                })
                .await,
            Err(RecordError::Invalid(_))
        ));
        // Through the seam: a bad request is refused with the reason, an unserved site has
        // nothing to purge, valid ones are recorded.
        let sink: &dyn PurgeSink = &*outbox;
        let bad = PurgeRequest {
            tags: vec!["a b".into()],
            ..request()
        };
        let e = sink.submit(bad).await.unwrap_err();
        assert!(e.contains("printable"), "{e}");
        let elsewhere = PurgeRequest {
            site: "app".into(),
            ..request()
        };
        let mut only_docs = config(&["a"]);
        only_docs.providers[0].sites = Some(vec!["docs".into()]);
        let path2 = dir.path().join("purges2");
        let scoped = Outbox::open(path2, only_docs).await.unwrap();
        let scoped_sink: &dyn PurgeSink = &*scoped;
        scoped_sink.submit(elsewhere).await.unwrap();
        assert_eq!(scoped.counts(), (0, 0));
        sink.submit(request()).await.unwrap();
        assert_eq!(outbox.counts().0, 2);
    }
}
