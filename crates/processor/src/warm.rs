//! Cache warming: frequency-based (hot documents' entries are refreshed before they expire) and reference data
//! loaded on a schedule.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use fernando_cache_config::CacheType;
use fernando_cache_keys::{Scope, TenantId, layout::DocumentKeys};
use serde::Serialize;

use crate::{DocumentProcessor, processor::CachedDocument};

/// Documents read recently, with how often, per tenant.
pub(crate) struct HotSet {
    reads: moka::sync::Cache<(TenantId, String), Arc<AtomicU32>>,
}

impl HotSet {
    pub(crate) fn new() -> Self {
        HotSet {
            reads: moka::sync::Cache::builder().max_capacity(100_000).build(),
        }
    }

    pub(crate) fn touch(&self, tenant: &TenantId, doc_key: &str) {
        self.reads
            .get_with((tenant.clone(), doc_key.to_owned()), Default::default)
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The documents read at least `min` times since the last call; counts start again.
    fn take_hot(&self, min: u32) -> Vec<(TenantId, String)> {
        let mut hot = Vec::new();
        for (k, v) in &self.reads {
            if v.swap(0, Ordering::Relaxed) >= min {
                hot.push(((*k).clone().0, (*k).clone().1));
            }
        }
        hot
    }
}

/// What one warming run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WarmReport {
    /// Entries looked at.
    pub checked: u64,
    /// Entries written again (their TTL started over).
    pub refreshed: u64,
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
        let store = self.processor.store();
        let Some(full) = store.ttl_of(t) else {
            return false;
        };
        match store.ttl(tenant, t, key).await {
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
            && store.set_bytes(tenant, t, key, &bytes, None).await.is_ok()
        {
            report.refreshed += 1;
        }
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
