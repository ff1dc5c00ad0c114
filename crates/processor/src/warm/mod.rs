//! Cache warming: hot documents' entries kept alive in this process, the document jobs (`frequency_based`,
//! `predictive`: documents recomputed before they are read, chosen by [`policy`] within a budget, from the
//! document folder), and reference data loaded on a schedule.

pub(crate) mod folder;
pub(crate) mod policy;

use std::{collections::BTreeMap, time::Duration};

use async_trait::async_trait;
use fernando_cache_config::CacheType;
use fernando_cache_keys::{Scope, TenantId, layout::DocumentKeys};
use fernando_cache_store::{KeyTtl, Write};
use futures_util::StreamExt as _;
use serde::Serialize;

use crate::{DocumentProcessor, StageOutcome, processor::CachedDocument};
use folder::DocumentFolder;
use policy::{Budget, Candidate, RefreshCost, WarmPolicy};

/// TTL lookups a document job keeps in flight while it plans.
const TTL_LOOKUPS_IN_FLIGHT: usize = 32;

/// What one warming run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WarmReport {
    /// Entries (or documents) looked at.
    pub checked: u64,
    /// Entries written again (their TTL started over), or documents recomputed.
    pub refreshed: u64,
    /// Documents chosen but not found in the document folder.
    pub not_found: u64,
    /// Engine milliseconds spent recomputing.
    pub spent_ms: u64,
}

/// One document's read history (summed over every replica), for the document jobs.
#[derive(Debug, Clone)]
pub struct DocumentHistory {
    /// The tenant.
    pub tenant: TenantId,
    /// The document's result key (`doc_hash`).
    pub doc_key: String,
    /// The document's fingerprint: how it is found in the folder.
    pub fingerprint: fernando_cache_keys::DocumentFingerprint,
    /// (bucket start in seconds since the epoch, reads), oldest first.
    pub reads: Vec<(u64, u32)>,
    /// What recomputing it last cost.
    pub cost: RefreshCost,
}

/// Reference data for the `reference_data` cache type: countries, currencies, tax rates, …
#[async_trait]
pub trait ReferenceSource: Send + Sync {
    /// The entries: key and value.
    ///
    /// # Errors
    /// A message saying why the data could not be loaded.
    async fn load(&self) -> Result<Vec<(String, serde_json::Value)>, String>;
}

/// Warms a processor's cache.
#[derive(Debug, Clone)]
pub struct Warmer {
    processor: DocumentProcessor,
    min_hits: u32,
    /// Entries with less than this share of their TTL left are refreshed.
    refresh_below: f64,
}

impl Warmer {
    /// A warmer for documents read at least `min_hits` times between two runs.
    pub fn new(processor: DocumentProcessor, min_hits: u32) -> Self {
        Warmer {
            processor,
            min_hits: min_hits.max(1),
            refresh_below: 0.5,
        }
    }

    /// Refreshes the entries of hot documents whose TTL has run below half: the document result, its text and
    /// its fields are written again, so a document in steady use never expires.
    pub async fn warm_hot(&self) -> WarmReport {
        let mut report = WarmReport::default();
        let store = self.processor.store();
        for (tenant, doc_key) in self.processor.shared.hot.take_hot(self.min_hits) {
            report.checked += 1;
            if !self
                .needs_refresh(&tenant, &CacheType::DOC_HASH, &doc_key)
                .await
            {
                continue;
            }
            let Ok(Some(cached)) = store
                .get::<CachedDocument>(&tenant, &CacheType::DOC_HASH, &doc_key)
                .await
            else {
                continue;
            };
            if store
                .set(&tenant, &CacheType::DOC_HASH, &doc_key, &cached)
                .await
                .is_ok()
            {
                report.refreshed += 1;
            }
            let doc = &cached.result;
            // The stages: their entries are read and written again as they are.
            if let Ok(fp) = doc
                .fingerprint
                .parse::<fernando_cache_keys::DocumentFingerprint>()
            {
                let keys = DocumentKeys::new(&fp);
                let text_key = keys.text(&doc.text_engine);
                self.refresh_raw(&tenant, &CacheType::OCR_RESULT, &text_key, &mut report)
                    .await;
                let text_fp =
                    fernando_cache_keys::DocumentFingerprint::of_bytes(doc.text.as_bytes());
                let fields_key = keys.fields(&doc.extractor, &text_fp);
                self.refresh_raw(
                    &tenant,
                    &CacheType::LLM_EXTRACTION,
                    &fields_key,
                    &mut report,
                )
                .await;
            }
        }
        tracing::info!(
            checked = report.checked,
            refreshed = report.refreshed,
            "hot documents warmed"
        );
        report
    }

    async fn needs_refresh(&self, tenant: &TenantId, t: &CacheType, key: &str) -> bool {
        let admin = self.processor.store().admin();
        let Some(full) = admin.configured_ttl(t) else {
            return false;
        };
        match admin.remaining_ttl(tenant, t, key).await {
            Ok(fernando_cache_store::KeyTtl::Expires(left)) => {
                left.as_secs_f64() < full.as_secs_f64() * self.refresh_below
            }
            _ => false,
        }
    }

    async fn refresh_raw(
        &self,
        tenant: &TenantId,
        t: &CacheType,
        key: &str,
        report: &mut WarmReport,
    ) {
        report.checked += 1;
        if !self.needs_refresh(tenant, t, key).await {
            return;
        }
        let store = self.processor.store();
        if let Ok(Some(bytes)) = store.get_bytes(tenant, t, key).await
            && store
                .set_bytes(tenant, t, key, &bytes, Write::default())
                .await
                .is_ok()
        {
            report.refreshed += 1;
        }
    }

    /// Recomputes, per tenant, the documents `policy` picks from `history` — those whose result is gone or
    /// expires within `horizon` and will probably be read within it — until `budget` (per tenant) is spent,
    /// reading each again from `folder`.
    pub async fn warm_documents(
        &self,
        policy: &WarmPolicy,
        history: &[DocumentHistory],
        folder: &DocumentFolder,
        horizon: Duration,
        budget: Budget,
    ) -> WarmReport {
        let mut report = WarmReport::default();
        let store = self.processor.store();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut by_tenant: BTreeMap<&TenantId, Vec<&DocumentHistory>> = BTreeMap::new();
        for d in history {
            by_tenant.entry(&d.tenant).or_default().push(d);
        }
        for (tenant, docs) in by_tenant {
            report.checked += docs.len() as u64;
            // One TTL lookup per document, a bounded number in flight: a history of thousands of documents is
            // not thousands of sequential round trips.
            // The futures are made first, not by a closure inside the stream: a closure's higher-ranked
            // borrow would make the job's future not `Send` for the spawned warming loop.
            let lookups: Vec<_> = docs
                .iter()
                .map(|d| async move {
                    let cached_until = match store
                        .admin()
                        .remaining_ttl(tenant, &CacheType::DOC_HASH, &d.doc_key)
                        .await
                    {
                        Ok(KeyTtl::Expires(left)) => Some(now + left.as_secs()),
                        Ok(KeyTtl::Persistent) => Some(u64::MAX),
                        // Gone — or the backend cannot say: recomputing is then the safe side.
                        _ => None,
                    };
                    Candidate {
                        history: &d.reads,
                        cost: d.cost,
                        cached_until,
                    }
                })
                .collect();
            let candidates: Vec<Candidate<'_>> = futures_util::stream::iter(lookups)
                .buffered(TTL_LOOKUPS_IN_FLIGHT)
                .collect()
                .await;
            let processor = self
                .processor
                .for_tenant(tenant.clone())
                .without_read_tracking();
            for i in policy.plan(&candidates, now, horizon, budget) {
                let d = docs[i];
                let Some(path) = folder.find(&d.fingerprint) else {
                    report.not_found += 1;
                    continue;
                };
                match processor.process_file(&path).await {
                    Ok(done) => {
                        if done.stages.document == StageOutcome::Miss {
                            report.refreshed += 1;
                            // What the stages that ran cost; stages answered from the cache cost nothing now.
                            report.spent_ms += done
                                .result
                                .cost()
                                .compute_ms
                                .saturating_sub(done.saved.compute_ms);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(tenant = tenant.as_str(), path = %path.display(), error = %e, "warming a document failed");
                    }
                }
            }
        }
        tracing::info!(
            checked = report.checked,
            refreshed = report.refreshed,
            not_found = report.not_found,
            spent_ms = report.spent_ms,
            "documents warmed"
        );
        report
    }

    /// Loads reference data into `reference_data` (globally, or for one tenant).
    ///
    /// # Errors
    /// The source's message when it cannot load.
    pub async fn warm_reference(
        &self,
        scope: Scope,
        source: &dyn ReferenceSource,
    ) -> Result<WarmReport, String> {
        let entries = source.load().await?;
        let mut report = WarmReport::default();
        for (key, value) in entries {
            report.checked += 1;
            let json = serde_json::to_string(&value).map_err(|e| e.to_string())?;
            if let Ok(fernando_cache_store::WriteOutcome::Stored) = self
                .processor
                .store()
                .set(scope.clone(), &CacheType::REFERENCE_DATA, &key, &json)
                .await
            {
                report.refreshed += 1;
            }
        }
        tracing::info!(loaded = report.refreshed, "reference data warmed");
        Ok(report)
    }

    /// Runs [`Warmer::warm_hot`] every `interval` until the task is dropped.
    pub async fn run_every(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.warm_hot().await;
        }
    }
}
