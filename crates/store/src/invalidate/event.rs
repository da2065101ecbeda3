//! One invalidation as it travels the fleet: the entries to remove and the epochs to raise.
//! The node where it starts applies it to every tier (L3 once, there); every other node
//! applies it to its own L1 and L2 when it reads it from the stream.

use serde::{Deserialize, Serialize};
use tiercache_core::Selector;

use super::epochs::EpochOf;

/// Most selectors (and epoch bumps) one invalidation may carry.
pub const MAX_STEPS: usize = 1000;

/// An epoch to raise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochBump {
    pub of: EpochOf,
    pub epoch: u32,
}

/// What one event invalidates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invalidation {
    /// Entries to remove.
    #[serde(default)]
    pub selectors: Vec<Selector>,
    /// Epochs to raise.
    #[serde(default)]
    pub epochs: Vec<EpochBump>,
    /// What caused it, for logs and answers (`package-update left-pad`).
    #[serde(default)]
    pub reason: String,
}

/// An invalidation on the stream, with the node it came from (which applied it already).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub origin: String,
    pub event: Invalidation,
}
