//! When a failed delivery is tried again: exponential backoff from `retry_min` doubling to
//! `retry_max`, with jitter (a random point in the upper half of the step, so nodes that
//! failed together do not retry together), and when to give up.

use std::time::Duration;

/// How deliveries are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
    /// A job still undelivered this long after it was recorded is marked failed.
    pub max_age: Duration,
    /// A job that failed this many attempts is marked failed (`None`: no limit but `max_age`).
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
            max_age: Duration::from_secs(24 * 3600),
            max_attempts: None,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempts` (1 = the first), honouring a
    /// provider's `Retry-After` up to `max`.
    pub fn delay(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let step = self
            .min
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
            .min(self.max);
        let half = step / 2;
        let jitter = Duration::from_millis(rand::random_range(0..=half.as_millis() as u64));
        let wait = half + jitter;
        match retry_after {
            Some(r) => wait.max(r).min(self.max),
            None => wait,
        }
    }

    /// Whether a job with these numbers has been tried long enough.
    pub fn exhausted(&self, attempts: u32, age: Duration) -> bool {
        self.max_attempts.is_some_and(|m| attempts >= m) || age >= self.max_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_stays_bounded() {
        let p = RetryPolicy {
            min: Duration::from_millis(100),
            max: Duration::from_secs(2),
            ..Default::default()
        };
        for _ in 0..50 {
            let d1 = p.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.delay(3, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            assert!(p.delay(60, None) <= Duration::from_secs(2));
            assert!(p.delay(1, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
            assert!(p.delay(1, Some(Duration::from_secs(99))) <= Duration::from_secs(2));
        }
        assert!(!p.exhausted(1000, Duration::from_secs(1)));
        assert!(p.exhausted(1, Duration::from_secs(86_400)));
        let limited = RetryPolicy {
            max_attempts: Some(3),
            ..p
        };
        assert!(limited.exhausted(3, Duration::ZERO));
    }
}
