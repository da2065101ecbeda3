//! Upload bodies: an HTTP request body as a store stream that stops at a size limit, so a
//! client that sends more than it may (with or without Content-Length) is cut off early.

use std::io;

use axum::body::Body as HttpBody;
use futures::{StreamExt, TryStreamExt};
use tiercache_store::{BodyStream, StoreError};

/// `body` as a stream that fails once more than `limit` bytes have arrived.
pub fn limited(body: HttpBody, limit: u64) -> BodyStream {
    let mut seen = 0u64;
    Box::pin(
        body.into_data_stream()
            .map_err(io::Error::other)
            .map(move |chunk| {
                let chunk = chunk?;
                seen += chunk.len() as u64;
                if seen > limit {
                    return Err(io::Error::new(
                        io::ErrorKind::FileTooLarge,
                        "the body exceeds the size limit",
                    ));
                }
                Ok(chunk)
            }),
    )
}

/// Whether a store error is a [`limited`] body passing its limit.
pub fn over_limit(e: &StoreError) -> bool {
    matches!(e, StoreError::Body(io) if io.kind() == io::ErrorKind::FileTooLarge)
}

/// Most bytes of a refused body read (and dropped) before the refusal is sent.
const DRAIN_BYTES: usize = 8 * 1024 * 1024;
/// Longest time spent reading a refused body.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and drops a bounded part of a body that will be refused, so a client still
/// sending it reads the refusal instead of a broken pipe (what a lingering close gives).
pub async fn drain(body: HttpBody) {
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read >= DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}
