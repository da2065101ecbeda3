//! Why a fleet operation failed; callers treat every variant the same way: carry on alone.

use std::time::Duration;

/// Why a fleet operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// No connection to Redis has been established yet (the first attempt failed or is slow).
    #[error("not connected to redis yet")]
    NotConnected,
    /// Redis failed moments ago: lock operations answer at once instead of waiting on it again.
    #[error("redis failed moments ago; not asking again yet")]
    RecentlyFailed,
    /// Redis did not answer within the operation timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis, or the way to it, answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}
