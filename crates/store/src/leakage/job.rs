//! The periodic run `serve` starts: the first one a few minutes after start-up (or one
//! interval, if shorter), then every interval; each run is one [`Leakage::run`], so it never
//! overlaps a run an admin asked for.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::{Leakage, RunOptions};

/// Longest wait for the first run after start-up.
const FIRST_RUN: Duration = Duration::from_secs(300);

/// The running job; dropping it stops it (a run in progress is cut short between entries).
pub struct JobHandle(tokio::task::JoinHandle<()>);

impl Drop for JobHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Leakage {
    /// Runs the scan every `interval` in the background (needs a Tokio runtime).
    pub fn spawn_periodic(self: &Arc<Self>, interval: Duration) -> JobHandle {
        let lk = self.clone();
        info!(every = %humantime::format_duration(interval), "leakage scan scheduled");
        JobHandle(tokio::spawn(async move {
            tokio::time::sleep(interval.min(FIRST_RUN)).await;
            loop {
                lk.run(RunOptions::periodic()).await;
                tokio::time::sleep(interval).await;
            }
        }))
    }
}
