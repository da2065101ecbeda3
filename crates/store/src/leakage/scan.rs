//! Reading one entry's body through the scanner: on a blocking thread, fed chunk by chunk,
//! archives walked file by file. A body that ends in an error (a verification failure) is
//! not scanned clean: the error is the outcome.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tiercache_core::{CacheKey, Kind, Scope};
use tiercache_scan::{LeakageRules, ScanReport, Scanner};
use tokio::sync::mpsc;

use crate::body::Body;
use crate::screen::ChannelReader;

/// Chunks waiting for the scanner.
const DEPTH: usize = 8;

/// Bumped whenever the rules change in a way that makes earlier clean verdicts stale.
pub(crate) const RULES_VERSION: &str = "leakage-rules-1";

/// The two rule sets of one run: every rule, and public npm packages' (no email or
/// unknown-UUID rules: their manifests and docs name their authors by design).
pub(crate) struct Scanners {
    full: Scanner,
    public_npm: Scanner,
    /// Identifies the rules and the user ids they look for: a clean verdict under other
    /// rules is not trusted.
    pub fingerprint: [u8; 32],
    /// How many user ids are looked for.
    pub ids: usize,
}

impl Scanners {
    /// Compiles both rule sets for `user_ids` (CPU work: call on a blocking thread).
    pub fn new(user_ids: Vec<String>) -> Result<Self, String> {
        let full_rules = LeakageRules {
            user_ids,
            emails: true,
            uuid_user_ids: true,
        };
        let npm_rules = LeakageRules {
            emails: false,
            uuid_user_ids: false,
            ..full_rules.clone()
        };
        let ids = full_rules.effective_ids();
        let mut h = blake3::Hasher::new();
        h.update(RULES_VERSION.as_bytes());
        for id in &ids {
            h.update(b"\n");
            h.update(id.as_bytes());
        }
        let compile = |rules: &LeakageRules| {
            Scanner::new()
                .and_then(|s| s.with_leakage(rules))
                .map_err(|e| e.to_string())
        };
        Ok(Scanners {
            full: compile(&full_rules)?,
            public_npm: compile(&npm_rules)?,
            fingerprint: *h.finalize().as_bytes(),
            ids: ids.len(),
        })
    }

    /// The scanner for `key`'s entry.
    pub fn for_key(&self, key: &CacheKey) -> &Scanner {
        if is_public_npm(key.scope(), key.kind()) {
            &self.public_npm
        } else {
            &self.full
        }
    }
}

/// What the npm front-end stores in the global scope (`npm`, `npm-index`, `npm-full`,
/// `npm-corgi`, `npm-tgz`): public packages from the verified origin.
pub(crate) fn is_public_npm(scope: &Scope, kind: &Kind) -> bool {
    matches!(scope, Scope::Global) && (kind.as_str() == "npm" || kind.as_str().starts_with("npm-"))
}

/// Scans `body` (named `name` in findings) with the scanner `pick` chooses from `scanners`.
pub(crate) async fn scan_body(
    scanners: Arc<Scanners>,
    key: CacheKey,
    body: Body,
) -> Result<ScanReport, String> {
    let name = key.name().as_str().to_owned();
    match body {
        Body::Bytes(bytes) => tokio::task::spawn_blocking(move || {
            scanners
                .for_key(&key)
                .scan_reader(&name, bytes.as_ref())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?,
        Body::Stream(mut stream) => {
            let (tx, rx) = mpsc::channel::<Bytes>(DEPTH);
            let scan = tokio::task::spawn_blocking(move || {
                let mut reader = ChannelReader::new(rx);
                let result = scanners
                    .for_key(&key)
                    .scan_reader(&name, &mut reader)
                    .map_err(|e| e.to_string());
                // Drain what the scanner did not need, so the sender never waits on it.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
                result
            });
            let mut failed = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(chunk) => {
                        if tx.send(chunk).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        failed = Some(format!("reading the body failed: {e}"));
                        break;
                    }
                }
            }
            drop(tx);
            let report = scan.await.map_err(|e| e.to_string())?;
            match failed {
                Some(why) => Err(why),
                None => report,
            }
        }
    }
}
