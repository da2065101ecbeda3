//! Single-flight: of all concurrent callers that miss the same key, one (the leader) loads
//! it; the others wait for its outcome. A leader that is cancelled hands over to a waiter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tiercache_core::CacheKey;
use tokio::sync::watch;

use crate::error::LoadError;

/// How a leader's load ended, as its followers learn it.
#[derive(Clone)]
pub enum Outcome {
    /// The entry is stored now: read it.
    Stored,
    /// The origin does not have it.
    NotFound,
    /// The load failed; followers fail the same way instead of stampeding the origin.
    Failed(LoadError),
}

type Slot = watch::Receiver<Option<Outcome>>;

/// The table of loads in progress.
#[derive(Default)]
pub struct SingleFlight {
    inflight: Arc<Mutex<HashMap<CacheKey, Slot>>>,
}

/// What a caller is for one key.
pub enum Role {
    /// Load it, then report with [`Leader::finish`].
    Leader(Leader),
    /// Wait for the leader with [`Follower::wait`].
    Follower(Follower),
}

/// The one caller that loads; dropping it unfinished lets a follower take over.
pub struct Leader {
    key: CacheKey,
    tx: watch::Sender<Option<Outcome>>,
    inflight: Arc<Mutex<HashMap<CacheKey, Slot>>>,
}

/// A caller waiting on a leader.
pub struct Follower {
    rx: Slot,
}

impl SingleFlight {
    /// Joins the load of `key`: the first caller leads, later ones follow.
    pub fn join(&self, key: &CacheKey) -> Role {
        let Ok(mut map) = self.inflight.lock() else {
            // A poisoned table only means a panic elsewhere; load without coalescing.
            let (tx, _) = watch::channel(None);
            return Role::Leader(Leader {
                key: key.clone(),
                tx,
                inflight: Arc::new(Mutex::new(HashMap::new())),
            });
        };
        if let Some(rx) = map.get(key) {
            return Role::Follower(Follower { rx: rx.clone() });
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.clone(), rx);
        Role::Leader(Leader {
            key: key.clone(),
            tx,
            inflight: self.inflight.clone(),
        })
    }
}

impl Leader {
    /// Tells every follower how the load ended.
    pub fn finish(self, outcome: Outcome) {
        let _ = self.tx.send(Some(outcome));
        // Drop removes the table entry.
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Ok(mut map) = self.inflight.lock() {
            map.remove(&self.key);
        }
    }
}

impl Follower {
    /// The leader's outcome, or `None` if the leader went away without one.
    pub async fn wait(mut self) -> Option<Outcome> {
        match self.rx.wait_for(|o| o.is_some()).await {
            Ok(o) => o.clone(),
            Err(_) => None,
        }
    }
}
