//! Whether this node has seen every invalidation event of its fleet. A node that is behind
//! (just started, or cut off from Redis) might hold entries an unseen event invalidated, so
//! for a grace period it answers from L3 and the origin only (where events are applied once,
//! at their source), never from its own L1/L2 — until it has caught up or the grace ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tiercache_core::Selector;
use tracing::{debug, warn};

use super::Reach;
use super::event::Envelope;
use crate::clock::now_ms;
use crate::fleet::{Fleet, FleetError};
use crate::tiered::TieredStore;

/// The node's position relative to the fleet's events.
#[derive(Debug)]
pub struct FeedState {
    /// This process's id on the stream (its own events are not applied twice).
    node: String,
    /// Whether this node follows a fleet's stream (otherwise it is never behind).
    following: AtomicBool,
    caught_up: AtomicBool,
    /// When the node fell behind (ms since the epoch).
    behind_since: AtomicU64,
    grace: Duration,
}

impl FeedState {
    /// A node that follows no stream yet (so it is not behind).
    pub fn new(grace: Duration) -> Self {
        FeedState {
            node: format!("{:016x}", rand::random::<u64>()),
            following: AtomicBool::new(false),
            caught_up: AtomicBool::new(true),
            behind_since: AtomicU64::new(now_ms()),
            grace,
        }
    }

    /// This process's id on the stream.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// From now on the node follows a stream, and is behind until it has read it.
    fn start_following(&self) {
        self.following.store(true, Ordering::Release);
        self.behind_since.store(now_ms(), Ordering::Release);
        self.caught_up.store(false, Ordering::Release);
    }

    /// Whether reads must skip L1 and L2 now: behind, and within the grace period.
    pub fn bypass_local(&self) -> bool {
        if !self.following.load(Ordering::Acquire) || self.caught_up.load(Ordering::Acquire) {
            return false;
        }
        let since = self.behind_since.load(Ordering::Acquire);
        let grace = u64::try_from(self.grace.as_millis()).unwrap_or(u64::MAX);
        now_ms().saturating_sub(since) < grace
    }

    /// Whether every event of the stream has been applied.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// The stream's backlog is applied.
    pub fn caught_up(&self) {
        self.caught_up.store(true, Ordering::Release);
    }

    /// The stream cannot be read: events may be happening unseen from now.
    pub fn fell_behind(&self) {
        if self.caught_up.swap(false, Ordering::AcqRel) {
            self.behind_since.store(now_ms(), Ordering::Release);
        }
    }
}

/// The stream every node of a fleet reads invalidations from.
pub const STREAM: &str = "invalidations";
/// How often a caught-up node asks the stream for new events.
const POLL: Duration = Duration::from_millis(200);
/// Entries read per request.
const BATCH: usize = 100;
/// The longest wait between two attempts while Redis cannot be read.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A stream id, ordered (`<ms>-<seq>`).
fn id_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Reads and applies the fleet's invalidation events until dropped.
pub struct FeedHandle(tokio::task::JoinHandle<()>);

impl Drop for FeedHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TieredStore {
    /// Starts following the fleet's invalidation events (none without Redis): until the
    /// backlog since this node's last position is applied, reads skip L1 and L2 (for at most
    /// the grace period). The position is kept in `<data_dir>/events.pos`.
    pub fn follow_events(&self, data_dir: &Path) -> Option<FeedHandle> {
        let fleet = self.fleet()?.clone();
        self.feed().start_following();
        let store = self.clone();
        let pos_path = data_dir.join("events.pos");
        Some(FeedHandle(tokio::spawn(async move {
            follow(store, fleet, pos_path).await;
        })))
    }
}

async fn follow(store: TieredStore, fleet: Fleet, pos_path: PathBuf) {
    let me = store.feed().node().to_owned();
    let mut pos: Option<String> = std::fs::read_to_string(&pos_path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let mut check_gap = true;
    let mut retry = POLL;
    loop {
        match step(&store, &fleet, &me, &mut pos, &mut check_gap, &pos_path).await {
            Ok(more) => {
                retry = POLL;
                if !more {
                    store.feed().caught_up();
                    tokio::time::sleep(POLL).await;
                }
            }
            Err(e) => {
                store.feed().fell_behind();
                check_gap = true;
                debug!(error = %e, "reading the fleet's invalidation events failed; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// One read: answers whether more events are waiting.
async fn step(
    store: &TieredStore,
    fleet: &Fleet,
    me: &str,
    pos: &mut Option<String>,
    check_gap: &mut bool,
    pos_path: &Path,
) -> Result<bool, FleetError> {
    if *check_gap {
        let bounds = fleet.stream_bounds(STREAM).await?;
        match (&*pos, bounds) {
            // A new node: its tiers are empty of anything older; start at the end.
            (None, Some((_, last))) => set_pos(pos, last, pos_path),
            (None, None) => set_pos(pos, "0-0".into(), pos_path),
            // Trimmed past our position: events were lost to us; nothing local is trusted.
            (Some(p), Some((first, last))) if id_order(p) < id_order(&first) && p != "0-0" => {
                warn!(position = %p, oldest = %first, "missed invalidation events (the stream was trimmed); clearing this node's L1 and L2");
                let all: Vec<Selector> = ["global/", "template/", "user/"]
                    .into_iter()
                    .filter_map(|p| Selector::prefix(p).ok())
                    .collect();
                if let Err(e) = store.invalidate(&all, Reach::Local, false).await {
                    warn!(error = %e, "clearing the local tiers failed");
                }
                set_pos(pos, last, pos_path);
            }
            _ => {}
        }
        *check_gap = false;
    }
    let after = pos.clone().unwrap_or_else(|| "0-0".into());
    let entries = fleet.stream_read(STREAM, &after, BATCH).await?;
    let more = entries.len() == BATCH;
    let Some(last) = entries.last().map(|e| e.id.clone()) else {
        return Ok(false);
    };
    for entry in entries {
        let Ok(env) = serde_json::from_str::<Envelope>(&entry.payload) else {
            warn!(id = %entry.id, "an unreadable invalidation event on the stream; skipped");
            continue;
        };
        if env.origin == me {
            continue;
        }
        match store.apply(&env.event, Reach::Local, false).await {
            Ok(removed) => {
                debug!(id = %entry.id, reason = %env.event.reason, ?removed, "applied a fleet invalidation")
            }
            Err(e) => warn!(id = %entry.id, error = %e, "applying a fleet invalidation failed"),
        }
    }
    set_pos(pos, last, pos_path);
    Ok(more)
}

fn set_pos(pos: &mut Option<String>, id: String, path: &Path) {
    // Best effort: a lost position replays a few events (harmless: they are idempotent).
    let tmp = path.with_extension("pos.tmp");
    if std::fs::write(&tmp, &id).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
    *pos = Some(id);
}
