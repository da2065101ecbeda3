//! Screening what is headed for a shared (template or global) scope: the body is scanned
//! for secrets as it streams into the store, on a blocking thread, and if anything is found
//! (or part of it cannot be scanned) the stream ends in an error instead of its end, so the
//! store keeps nothing. The reason names the rule and the file, never the secret.

use std::io::{self, Read};
use std::sync::LazyLock;

use bytes::Bytes;
use futures::StreamExt;
use tiercache_scan::Scanner;
use tokio::sync::mpsc;

use crate::body::{Body, BodyStream};
use crate::error::StoreError;

/// Chunks waiting for the scanner.
const DEPTH: usize = 8;

/// The detector's compiled rules, built once.
static SCANNER: LazyLock<Result<Scanner, String>> =
    LazyLock::new(|| Scanner::new().map_err(|e| e.to_string()));

/// Why a body was refused for a shared scope; carried inside the stream's `io::Error`.
#[derive(Debug, thiserror::Error)]
#[error("sensitive content refused for a shared scope: {0}")]
pub struct Sensitive(pub String);

/// Reads the chunks a stream hands over, for the scanner's blocking thread.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    /// A reader of the chunks sent to `rx`; it ends when every sender is gone.
    pub(crate) fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Runs the detector over everything read from `reader`; `Err` with the reason if the
/// content may not be shared.
fn verdict(name: &str, reader: impl Read) -> Result<(), String> {
    let scanner = SCANNER
        .as_ref()
        .map_err(|e| format!("the detector failed: {e}"))?;
    let report = scanner
        .scan_reader(name, reader)
        .map_err(|e| format!("could not be scanned: {e}"))?;
    if let Some(f) = report.findings.first() {
        return Err(f.reason());
    }
    if let Some(s) = report.skipped.first() {
        return Err(format!("{} could not be scanned", s.path));
    }
    Ok(())
}

/// Whether `bytes` may go to a shared scope.
pub async fn check_bytes(name: String, bytes: Bytes) -> Result<(), Sensitive> {
    tokio::task::spawn_blocking(move || verdict(&name, bytes.as_ref()))
        .await
        .map_err(|e| Sensitive(format!("the detector failed: {e}")))?
        .map_err(Sensitive)
}

/// `body`, passed through unchanged, scanned on the way; ends in an error carrying
/// [`Sensitive`] instead of its end if it may not be shared.
pub fn screened(name: String, mut body: BodyStream) -> BodyStream {
    let (scan_tx, scan_rx) = mpsc::channel::<Bytes>(DEPTH);
    let scan = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader::new(scan_rx);
        let result = verdict(&name, &mut reader);
        // Drain whatever the scanner did not need, so the sender never waits on it.
        let _ = io::copy(&mut reader, &mut io::sink());
        result
    });
    let (out_tx, out_rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    tokio::spawn(async move {
        let mut scan_tx = Some(scan_tx);
        while let Some(item) = body.next().await {
            match item {
                Ok(chunk) => {
                    if let Some(tx) = &scan_tx
                        && tx.send(chunk.clone()).await.is_err()
                    {
                        scan_tx = None;
                    }
                    if out_tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = out_tx.send(Err(e)).await;
                    return;
                }
            }
        }
        drop(scan_tx);
        let refused = match scan.await {
            Ok(Ok(())) => return,
            Ok(Err(reason)) => reason,
            Err(e) => format!("the detector failed: {e}"),
        };
        let error = io::Error::new(io::ErrorKind::PermissionDenied, Sensitive(refused));
        let _ = out_tx.send(Err(error)).await;
    });
    Box::pin(futures::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// `body`, screened for a shared scope: bytes are checked now (`StoreError::Sensitive`), a
/// stream as it flows into the store (pass the store's error through [`sensitive`]).
pub async fn screen_body(name: &str, body: Body) -> Result<Body, StoreError> {
    match body {
        Body::Bytes(bytes) => {
            check_bytes(name.to_owned(), bytes.clone())
                .await
                .map_err(|s| StoreError::Sensitive(s.0))?;
            Ok(Body::Bytes(bytes))
        }
        Body::Stream(stream) => Ok(Body::Stream(screened(name.to_owned(), stream))),
    }
}

/// A store error caused by a screened stream's refusal, as `StoreError::Sensitive`.
pub fn sensitive(e: StoreError) -> StoreError {
    let StoreError::Body(io) = &e else {
        return e;
    };
    match io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Sensitive>())
    {
        Some(s) => StoreError::Sensitive(s.0.clone()),
        None => e,
    }
}
