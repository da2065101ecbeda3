//! How a node reaches the fleet's Redis, and the bounds every fleet operation keeps.

use std::fmt;
use std::time::Duration;

/// Where the fleet's Redis is and how long anything may wait on it.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`; several, comma-separated, are the seed nodes of a cluster.
    pub url: String,
    /// Talk Redis Cluster (slot routing, redirects) instead of a single node.
    pub cluster: bool,
    /// Prepended to every key the fleet writes, so several deployments can share one Redis.
    pub key_prefix: String,
    /// How long a fleet lock lives without renewal: a crashed holder blocks others this long.
    pub lock_lease: Duration,
    /// Bound on every Redis operation, so a slow or dead Redis never stalls a client request.
    pub op_timeout: Duration,
    /// How often buffered counters are written to Redis.
    pub flush_interval: Duration,
    /// Most distinct counter fields plus top-set members kept while Redis is unreachable;
    /// updates to new ones beyond it are dropped (and counted), so memory stays bounded.
    pub max_buffered: usize,
}

impl RedisConfig {
    /// Defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            ..RedisConfig::default()
        }
    }

    /// The seed URLs: the one URL, or each of the comma-separated ones.
    pub(crate) fn urls(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".to_owned(),
            cluster: false,
            key_prefix: "tiercache:".to_owned(),
            lock_lease: Duration::from_secs(10),
            op_timeout: Duration::from_millis(500),
            flush_interval: Duration::from_secs(1),
            max_buffered: 10_000,
        }
    }
}

/// Debug output hides any password in the URLs, since configs end up in logs.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact(&self.url))
            .field("cluster", &self.cluster)
            .field("key_prefix", &self.key_prefix)
            .field("lock_lease", &self.lock_lease)
            .field("op_timeout", &self.op_timeout)
            .field("flush_interval", &self.flush_interval)
            .field("max_buffered", &self.max_buffered)
            .finish()
    }
}

/// `url` with the user-info part of each comma-separated URL replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &one[..scheme + 3], &one[at..])
            }
            _ => one.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_passwords() {
        let cfg = RedisConfig::new("redis://:secret@a:1, redis://user:pw@b:2,redis://c:3");
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("pw"),
            "{shown}"
        );
        assert!(shown.contains("redis://***@a:1"), "{shown}");
        assert!(shown.contains("redis://c:3"), "{shown}");
    }

    #[test]
    fn urls_split_on_commas() {
        let cfg = RedisConfig::new("redis://a:1, redis://b:2,,");
        assert_eq!(cfg.urls(), vec!["redis://a:1", "redis://b:2"]);
    }
}
