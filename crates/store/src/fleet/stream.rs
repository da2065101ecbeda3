//! The fleet's event stream (a Redis Stream): appended to by the node where an event starts,
//! read by every node from the position it reached. Reads poll (no `BLOCK`): the fleet's
//! connection is multiplexed, and a blocking read would stall every other command on it.

use redis::streams::{StreamRangeReply, StreamReadReply};
use redis::{Cmd, Value};

use super::{Fleet, FleetError};

/// Entries the stream keeps (approximately); a node further behind than this clears its
/// local tiers instead of replaying.
pub const STREAM_MAX_LEN: usize = 100_000;

/// One entry of the stream: its id and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub payload: String,
}

fn payload_of(map: &std::collections::HashMap<String, Value>) -> Option<String> {
    match map.get("e")? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

impl Fleet {
    fn stream_key(&self, name: &str) -> String {
        format!("{}stream:{name}", self.inner.cfg.key_prefix)
    }

    /// Appends `payload` to stream `name`; answers the entry's id.
    pub async fn stream_add(&self, name: &str, payload: &str) -> Result<String, FleetError> {
        let mut cmd = Cmd::new();
        cmd.arg("XADD")
            .arg(self.stream_key(name))
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAX_LEN)
            .arg("*")
            .arg("e")
            .arg(payload);
        self.query(&cmd, false).await
    }

    /// Up to `count` entries of stream `name` after id `after` (exclusive), oldest first.
    pub async fn stream_read(
        &self,
        name: &str,
        after: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>, FleetError> {
        let mut cmd = Cmd::new();
        cmd.arg("XREAD")
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(self.stream_key(name))
            .arg(after);
        let reply: Option<StreamReadReply> = self.query(&cmd, false).await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .filter_map(|e| {
                Some(StreamEntry {
                    payload: payload_of(&e.map)?,
                    id: e.id,
                })
            })
            .collect())
    }

    /// The ids of the oldest and newest entries of stream `name`, if it has any.
    pub async fn stream_bounds(&self, name: &str) -> Result<Option<(String, String)>, FleetError> {
        let key = self.stream_key(name);
        let mut first = Cmd::new();
        first
            .arg("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
        let mut last = Cmd::new();
        last.arg("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let first: StreamRangeReply = self.query(&first, false).await?;
        let last: StreamRangeReply = self.query(&last, false).await?;
        Ok(match (first.ids.first(), last.ids.first()) {
            (Some(f), Some(l)) => Some((f.id.clone(), l.id.clone())),
            _ => None,
        })
    }
}
