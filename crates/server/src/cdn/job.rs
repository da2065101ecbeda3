//! One purge for one provider: what was asked, how far delivery got, and when it is tried
//! next. This is exactly what the outbox keeps on disk (one JSON file per job).

use serde::{Deserialize, Serialize};

use super::request::PurgeRequest;

/// Where a job stands. Delivered jobs are not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for (another) attempt.
    Pending,
    /// Given up on (a permanent error, or too many attempts or too old); kept for inspection.
    Failed,
}

/// One provider's share of a purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// `<purge_id>.<provider>`; also the file name.
    pub id: String,
    /// The purge it belongs to (shared by its jobs for every provider).
    pub purge_id: String,
    /// The provider's configured name.
    pub provider: String,
    /// The provider's kind, for display.
    pub kind: String,
    /// What is purged, exactly as recorded.
    pub request: PurgeRequest,
    /// When it was recorded (ms since the epoch).
    pub created_ms: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Calls of the plan already acknowledged (a retry resumes after them).
    pub calls_done: usize,
    /// Calls in the plan when it was last tried.
    pub calls_total: usize,
    /// Not tried before this time (ms since the epoch).
    pub next_attempt_ms: u64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Pending or failed.
    pub state: JobState,
    /// When it was marked failed.
    pub failed_ms: Option<u64>,
    /// When an admin last sent a failed job back to pending (its age counts from then).
    #[serde(default)]
    pub retried_ms: Option<u64>,
}

/// The current time in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `ms` since the epoch as an RFC 3339 time (seconds), for people.
pub fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Job {
    /// Since when its attempts count towards `max_age`.
    pub fn age_from_ms(&self) -> u64 {
        self.retried_ms.unwrap_or(self.created_ms)
    }

    /// The job as `/admin/purges` shows it: the stored fields plus readable times.
    pub fn view(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["site"] = self.request.site.clone().into();
        v["created"] = rfc3339(self.created_ms).into();
        if self.state == JobState::Pending {
            v["next_attempt"] = rfc3339(self.next_attempt_ms).into();
        }
        if let Some(f) = self.failed_ms {
            v["failed"] = rfc3339(f).into();
        }
        v
    }
}
