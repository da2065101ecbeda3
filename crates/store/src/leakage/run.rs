//! One pass over the shared scopes: pages of this node's L2 index (`global/`, `template/`),
//! then, with L3, the bucket's entry documents of the same scopes; each entry not scanned
//! clean before (same hash, same rules) is read (verified) and scanned, one at a time on a
//! blocking thread, and quarantined if anything is found.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tiercache_core::{CacheKey, ContentHash};
use tracing::{info, warn};

use super::quarantine::{FindingView, QuarantineItem, new_id};
use super::scan::{Scanners, scan_body};
use super::{EntryFindings, Leakage, LeakageReport, RunOptions, Unscannable};
use crate::audit::{Action, AuditRecord, Verdict, user_principals};
use crate::body::Hit;
use crate::clock::now_ms;
use crate::tier::object::ObjectTier;

/// Entries listed, checked against the remembered verdicts and scanned per batch.
const PAGE: usize = 64;
/// Errors listed in a report; more are counted in the last line.
const MAX_ERRORS: usize = 20;
/// Findings named in an audit record's reason; the rest are counted.
const AUDIT_FINDINGS: usize = 3;

/// Where a scanned copy is read from.
#[derive(Debug, Clone, Copy)]
enum Source {
    L2,
    L3,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::L2 => "l2",
            Source::L3 => "l3",
        }
    }
}

/// The state of one run.
pub(super) struct Run<'a> {
    lk: &'a Leakage,
    opts: RunOptions,
    report: LeakageReport,
    /// (key, hash) pairs handled in this run (an entry in both L2 and L3 is scanned once).
    seen: HashSet<(String, ContentHash)>,
    /// Every key listed, to forget verdicts of entries that are gone.
    keys: HashSet<String>,
    /// Whether every listing answered (only then are old verdicts forgotten).
    complete: bool,
    /// Clean verdicts not yet written.
    clean: Vec<(String, ContentHash)>,
    more_errors: usize,
}

impl<'a> Run<'a> {
    /// A run over `lk`'s store as `opts` say.
    pub fn new(lk: &'a Leakage, opts: RunOptions) -> Self {
        let report = LeakageReport {
            dry_run: opts.dry_run,
            ..LeakageReport::default()
        };
        Run {
            lk,
            opts,
            report,
            seen: HashSet::new(),
            keys: HashSet::new(),
            complete: true,
            clean: Vec::new(),
            more_errors: 0,
        }
    }

    /// Runs the pass and answers its report (failures are in it, never an error).
    pub async fn go(mut self) -> LeakageReport {
        let t0 = Instant::now();
        let ids = self.user_ids().await;
        let scanners = match tokio::task::spawn_blocking(move || Scanners::new(ids)).await {
            Ok(Ok(s)) => Arc::new(s),
            Ok(Err(e)) => return self.fail(format!("the detector failed: {e}")),
            Err(e) => return self.fail(format!("the detector failed: {e}")),
        };
        self.report.user_ids = scanners.ids;
        for prefix in ["global/", "template/"] {
            self.l2_pass(prefix, &scanners).await;
        }
        if let Some(l3) = self.lk.store.l3().cloned() {
            self.report.l3 = true;
            for scope in ["global", "template"] {
                self.l3_pass(&l3, scope, &scanners).await;
            }
        }
        self.flush_clean(&scanners).await;
        if self.complete && !self.opts.dry_run {
            let (scanned, keys) = (self.lk.scanned.clone(), std::mem::take(&mut self.keys));
            match tokio::task::spawn_blocking(move || scanned.prune(&keys)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => self.error(format!("forgetting old verdicts failed: {e}")),
                Err(e) => self.error(format!("forgetting old verdicts failed: {e}")),
            }
        }
        if self.report.quarantined > 0
            && let Err(e) = self.lk.audit.flush().await
        {
            self.error(format!("syncing the audit log failed: {e}"));
        }
        if self.more_errors > 0 {
            let n = self.more_errors;
            self.report.errors.push(format!("… and {n} more errors"));
        }
        self.report.elapsed_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let r = &self.report;
        info!(
            dry_run = r.dry_run,
            scanned = r.scanned,
            skipped = r.skipped,
            with_findings = r.entries.len(),
            quarantined = r.quarantined,
            unscannable = r.unscannable.len(),
            errors = r.errors.len(),
            elapsed_ms = r.elapsed_ms,
            "leakage scan done"
        );
        self.report
    }

    fn fail(mut self, why: String) -> LeakageReport {
        warn!(error = %why, "leakage scan failed");
        self.report.errors.push(why);
        self.report
    }

    fn error(&mut self, why: String) {
        warn!(error = %why, "leakage scan");
        if self.report.errors.len() < MAX_ERRORS {
            self.report.errors.push(why);
        } else {
            self.more_errors += 1;
        }
    }

    /// The ids of this server's users: owners of user scopes (L2, L3) and user-role
    /// principals in the audit log.
    async fn user_ids(&mut self) -> Vec<String> {
        let mut ids = BTreeSet::new();
        match self.lk.store.l2().scope_ids("user/").await {
            Ok(v) => ids.extend(v),
            Err(e) => self.error(format!("listing user scopes on disk failed: {e}")),
        }
        if let Some(l3) = self.lk.store.l3() {
            match l3.scope_ids("user").await {
                Ok(v) => ids.extend(v),
                Err(e) => self.error(format!("listing user scopes in L3 failed: {e}")),
            }
        }
        if self.lk.audit.is_enabled() {
            let _ = self.lk.audit.flush().await;
            let dir = self.lk.audit.dir().to_owned();
            match tokio::task::spawn_blocking(move || user_principals(&dir)).await {
                Ok(Ok(v)) => ids.extend(v),
                Ok(Err(e)) => self.error(format!("reading users from the audit log failed: {e}")),
                Err(e) => self.error(format!("reading users from the audit log failed: {e}")),
            }
        }
        ids.into_iter().collect()
    }

    async fn l2_pass(&mut self, prefix: &str, scanners: &Arc<Scanners>) {
        let mut after: Option<String> = None;
        loop {
            let page = match self
                .lk
                .store
                .l2()
                .list_after(prefix, after.clone(), PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    self.complete = false;
                    return self.error(format!("listing {prefix} on disk failed: {e}"));
                }
            };
            let Some((last, _)) = page.last() else { return };
            after = Some(last.clone());
            let batch = page
                .into_iter()
                .filter_map(|(k, m)| CacheKey::parse_path(&k).ok().map(|key| (key, m.hash)))
                .collect();
            self.batch(batch, Source::L2, scanners).await;
            // Bounded work per batch: let requests have the runtime.
            tokio::task::yield_now().await;
        }
    }

    async fn l3_pass(&mut self, l3: &ObjectTier, scope: &str, scanners: &Arc<Scanners>) {
        let keys = match l3.list_keys(scope).await {
            Ok(k) => k,
            Err(e) => {
                self.complete = false;
                return self.error(format!("listing {scope} in L3 failed: {e}"));
            }
        };
        for chunk in keys.chunks(PAGE) {
            let mut batch = Vec::with_capacity(chunk.len());
            for key in chunk {
                match l3.head(key).await {
                    Ok(Some(meta)) => batch.push((key.clone(), meta.hash)),
                    Ok(None) => {} // expired or gone since the listing
                    Err(e) => {
                        self.complete = false;
                        self.error(format!("reading {key} in L3 failed: {e}"));
                    }
                }
            }
            self.batch(batch, Source::L3, scanners).await;
            tokio::task::yield_now().await;
        }
    }

    /// Scans the entries of one page that this run has not handled and that were not
    /// found clean before.
    async fn batch(
        &mut self,
        items: Vec<(CacheKey, ContentHash)>,
        source: Source,
        scanners: &Arc<Scanners>,
    ) {
        let mut fresh = Vec::with_capacity(items.len());
        for (key, hash) in items {
            let text = key.to_string();
            self.keys.insert(text.clone());
            if self.seen.insert((text, hash)) {
                fresh.push((key, hash));
            }
        }
        if fresh.is_empty() {
            return;
        }
        let texts: Vec<(String, ContentHash)> =
            fresh.iter().map(|(k, h)| (k.to_string(), *h)).collect();
        let (scanned, fp) = (self.lk.scanned.clone(), scanners.fingerprint);
        let clean = match tokio::task::spawn_blocking(move || scanned.clean(&texts, &fp)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                self.error(format!("reading earlier verdicts failed: {e}"));
                vec![false; fresh.len()]
            }
            Err(e) => {
                self.error(format!("reading earlier verdicts failed: {e}"));
                vec![false; fresh.len()]
            }
        };
        for ((key, hash), was_clean) in fresh.into_iter().zip(clean) {
            if was_clean {
                self.report.skipped += 1;
            } else {
                self.entry(key, hash, source, scanners).await;
            }
        }
        self.flush_clean(scanners).await;
    }

    /// Reads the entry's verified body from `source` without counting a hit or touching
    /// the LRU order.
    async fn read(&self, key: &CacheKey, source: Source) -> Result<Option<Hit>, String> {
        match source {
            Source::L2 => self
                .lk
                .store
                .l2()
                .get_quiet(key)
                .await
                .map_err(|e| e.to_string()),
            Source::L3 => match self.lk.store.l3() {
                Some(l3) => l3.get_quiet(key).await.map_err(|e| e.to_string()),
                None => Ok(None),
            },
        }
    }

    async fn entry(
        &mut self,
        key: CacheKey,
        listed: ContentHash,
        source: Source,
        scanners: &Arc<Scanners>,
    ) {
        let unscannable = |reason: String| Unscannable {
            key: key.to_string(),
            reason,
        };
        let hit = match self.read(&key, source).await {
            Ok(Some(hit)) => hit,
            Ok(None) => return, // gone, expired or corrupt (removed by the tier)
            Err(e) => return self.report.unscannable.push(unscannable(e)),
        };
        let meta = hit.meta;
        if meta.hash != listed {
            self.seen.insert((key.to_string(), meta.hash));
        }
        self.report.scanned += 1;
        let report = match scan_body(scanners.clone(), key.clone(), hit.body).await {
            Ok(r) => r,
            Err(e) => return self.report.unscannable.push(unscannable(e)),
        };
        if report.findings.is_empty() {
            if let Some(s) = report.skipped.first() {
                let reason = format!("{}: {}", s.path, s.reason);
                return self.report.unscannable.push(unscannable(reason));
            }
            if !self.opts.dry_run {
                self.clean.push((key.to_string(), meta.hash));
            }
            return;
        }
        let findings: Vec<FindingView> = report.findings.iter().map(FindingView::from).collect();
        let mut entry = EntryFindings {
            key: key.to_string(),
            tier: source.name().to_owned(),
            hash: meta.hash.to_hex(),
            size: meta.size,
            quarantine_id: None,
            error: None,
            findings,
        };
        if !self.opts.dry_run {
            let item = QuarantineItem {
                id: new_id(now_ms()),
                key: key.to_string(),
                scope: key.scope().to_string(),
                hash: meta.hash.to_hex(),
                size: meta.size,
                content_type: meta.content_type.clone(),
                quarantined_ms: now_ms(),
                by: self.opts.by.clone(),
                tier: source.name().to_owned(),
                findings: entry.findings.clone(),
            };
            let (id, error) = self.quarantine(&key, meta.hash, source, item).await;
            if id.is_some() && error.is_none() {
                self.report.quarantined += 1;
            }
            if let Some(e) = &error {
                warn!(%key, error = %e, "quarantine incomplete");
            }
            (entry.quarantine_id, entry.error) = (id, error);
        }
        self.report.entries.push(entry);
    }

    /// Keeps the entry in the quarantine, removes it from every tier, and audits that.
    /// Returns the item's id (if kept) and what went wrong (if anything).
    async fn quarantine(
        &self,
        key: &CacheKey,
        hash: ContentHash,
        source: Source,
        item: QuarantineItem,
    ) -> (Option<String>, Option<String>) {
        let body = match self.read(key, source).await {
            Ok(Some(hit)) if hit.meta.hash == hash => hit.body,
            Ok(_) => return (None, Some("changed or gone before it could be kept".into())),
            Err(e) => return (None, Some(format!("reading it again failed: {e}"))),
        };
        match self.lk.quarantine.put(&item, body, hash).await {
            Ok(true) => {}
            Ok(false) => return (None, Some("changed while it was being kept".into())),
            Err(e) => return (None, Some(format!("keeping it failed: {e}"))),
        }
        let id = item.id.clone();
        let removed = self.lk.store.delete(key).await;
        let mut reasons: Vec<&str> = item
            .findings
            .iter()
            .take(AUDIT_FINDINGS)
            .map(|f| f.reason.as_str())
            .collect();
        let more = item.findings.len().saturating_sub(AUDIT_FINDINGS);
        let more = format!("and {more} more");
        if item.findings.len() > AUDIT_FINDINGS {
            reasons.push(&more);
        }
        let reason = format!("{}; quarantined as {id}", reasons.join("; "));
        self.lk
            .audit
            .record(AuditRecord {
                time_ms: item.quarantined_ms,
                principal: self.opts.by.clone(),
                role: self.opts.role,
                key: format!("{}/{}", key.kind().as_str(), key.name().as_str()),
                scope: key.scope().to_string(),
                action: Action::Quarantine,
                decision: Verdict::Allow,
                reason: Some(reason),
            })
            .await;
        if let Err(e) = removed {
            return (Some(id), Some(format!("kept, but removing it failed: {e}")));
        }
        // L3 fails open (a failed delete is only logged): make sure it is gone there too,
        // else say so (the next run finds it again).
        if let Some(l3) = self.lk.store.l3() {
            match l3.head(key).await {
                Ok(None) => {}
                Ok(Some(_)) => return (Some(id), Some("kept, but still in L3".into())),
                Err(e) => return (Some(id), Some(format!("kept, but L3 is unreachable: {e}"))),
            }
        }
        (Some(id), None)
    }

    /// Writes the clean verdicts gathered so far.
    async fn flush_clean(&mut self, scanners: &Scanners) {
        if self.clean.is_empty() {
            return;
        }
        let (items, scanned, fp) = (
            std::mem::take(&mut self.clean),
            self.lk.scanned.clone(),
            scanners.fingerprint,
        );
        match tokio::task::spawn_blocking(move || scanned.remember(&items, &fp)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.error(format!("remembering verdicts failed: {e}")),
            Err(e) => self.error(format!("remembering verdicts failed: {e}")),
        }
    }
}
