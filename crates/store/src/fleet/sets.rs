//! Fleet-wide sets with an expiry: who, across every node, has done something (the
//! promotion witnesses: the users who uploaded identical bytes under one key).

use std::time::Duration;

use tokio::time::Instant;

use super::{Fleet, FleetError};

impl Fleet {
    /// Adds `member` to set `name` (created with, and refreshed to, `ttl`) and answers the
    /// members it then holds, up to `limit` of them (any order).
    pub async fn set_add(
        &self,
        name: &str,
        member: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<String>, FleetError> {
        let key = format!("{}{name}", self.inner.cfg.key_prefix);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        // Not MULTI: a cluster routes each command; two concurrent adders may both see the
        // full set, which is fine for a count that only ever grows.
        let mut pipe = redis::pipe();
        pipe.sadd(&key, member)
            .ignore()
            .pexpire(&key, i64::try_from(ttl_ms).unwrap_or(i64::MAX))
            .ignore()
            .cmd("SRANDMEMBER")
            .arg(&key)
            .arg(i64::try_from(limit).unwrap_or(i64::MAX));
        let limit_t = self.inner.cfg.op_timeout;
        let deadline = Instant::now() + limit_t;
        let mut conn = self.conn(true, deadline).await?;
        let result =
            match tokio::time::timeout_at(deadline, pipe.query_async::<(Vec<String>,)>(&mut conn))
                .await
            {
                Ok(Ok((members,))) => Ok(members),
                Ok(Err(e)) => Err(FleetError::Redis(e)),
                Err(_) => Err(FleetError::Timeout(limit_t)),
            };
        self.record(&result);
        result
    }
}
