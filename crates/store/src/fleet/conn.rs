//! One connection type over a single Redis node or a Redis Cluster, chosen by config.
//!
//! Both variants are cheap to clone (a handle to a multiplexed connection) and reconnect by
//! themselves once established; establishing the first connection is the fleet's job.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use super::config::RedisConfig;

/// A live connection to the fleet's Redis, single node or cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One node, through redis-rs' auto-reconnecting manager.
    Single(ConnectionManager),
    /// A cluster, with slot routing and redirects handled by redis-rs.
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects once (the caller retries with backoff): fails if Redis is unreachable now.
    pub(crate) async fn open(cfg: &RedisConfig) -> RedisResult<Conn> {
        let urls = cfg.urls();
        // Each attempt inside redis-rs is bounded by the op timeout; the whole operation is
        // bounded again by the caller.
        let per_attempt = cfg.op_timeout.max(Duration::from_millis(1));
        if cfg.cluster {
            if urls.is_empty() {
                return Err(config_error("no cluster node URL configured"));
            }
            let client = ClusterClientBuilder::new(urls)
                .connection_timeout(per_attempt)
                .response_timeout(per_attempt)
                .retries(2)
                .min_retry_wait(20)
                .max_retry_wait(200)
                .build()?;
            return Ok(Conn::Cluster(client.get_async_connection().await?));
        }
        let url = match urls.as_slice() {
            [one] => *one,
            [] => return Err(config_error("no redis URL configured")),
            _ => return Err(config_error("several redis URLs need `cluster = true`")),
        };
        let client = redis::Client::open(url)?;
        // Few, quick reconnect retries: a command waiting on a reconnect is bounded by the op
        // timeout anyway, and every later command starts a new attempt if this one failed.
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(per_attempt))
            .set_response_timeout(Some(per_attempt))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        Ok(Conn::Single(
            ConnectionManager::new_with_config(client, manager_cfg).await?,
        ))
    }

    /// Whether commands on different keys must go in separate pipelines (cluster slots).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

fn config_error(msg: &'static str) -> RedisError {
    RedisError::from((ErrorKind::Client, "invalid redis config", msg.to_owned()))
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
