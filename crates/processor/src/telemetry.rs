//! Pipeline telemetry: per-stage hits and misses, time saved, and the seed's business figures (documents
//! served from cache vs processed, efficiency by document type, bytes not reprocessed).

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::Serialize;

use crate::DocumentKind;

/// A pipeline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The whole result (`doc_hash`).
    Document,
    /// Text: a PDF's text layer or OCR (`ocr_result`).
    Ocr,
    /// Field extraction (`llm_extraction`).
    Extraction,
}

impl Stage {
    /// The stage's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Document => "document",
            Stage::Ocr => "ocr",
            Stage::Extraction => "extraction",
        }
    }
}

#[derive(Debug, Default)]
struct StageCounters {
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    stages: [StageCounters; 3],
    saved_ms: AtomicU64,
    spent_ms: AtomicU64,
    bytes_seen: AtomicU64,
    bytes_not_reprocessed: AtomicU64,
    errors: AtomicU64,
    by_kind: Mutex<BTreeMap<DocumentKind, KindFigures>>,
}

/// Figures per document type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindFigures {
    /// Documents seen.
    pub documents: u64,
    /// Of which answered entirely from the cache.
    pub cached: u64,
}

impl KindFigures {
    /// Share of documents answered from the cache.
    pub fn efficiency(&self) -> Option<f64> {
        (self.documents > 0).then(|| self.cached as f64 / self.documents as f64)
    }
}

/// Hits and misses of one stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StageFigures {
    /// Answered from the cache.
    pub hits: u64,
    /// Computed.
    pub misses: u64,
}

/// A copy of the pipeline's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TelemetrySnapshot {
    /// Per stage.
    pub document: StageFigures,
    /// Text extraction.
    pub ocr: StageFigures,
    /// Field extraction.
    pub extraction: StageFigures,
    /// Engine time the cache saved (what the cached stages took when they were computed).
    pub time_saved: Duration,
    /// Engine time spent computing.
    pub time_spent: Duration,
    /// Bytes of all documents seen.
    pub bytes_seen: u64,
    /// Bytes of documents answered entirely from the cache.
    pub bytes_not_reprocessed: u64,
    /// Documents that failed.
    pub errors: u64,
    /// Per document type.
    pub by_kind: BTreeMap<DocumentKind, KindFigures>,
}

impl TelemetrySnapshot {
    /// Documents answered entirely from the cache.
    pub fn documents_cached(&self) -> u64 {
        self.document.hits
    }

    /// Documents processed (at least one stage computed).
    pub fn documents_processed(&self) -> u64 {
        self.document.misses
    }
}

impl Telemetry {
    pub(crate) fn stage(&self, stage: Stage, hit: bool, saved: Duration) {
        let c = &self.stages[stage as usize];
        if hit {
            c.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            c.misses.fetch_add(1, Ordering::Relaxed);
        }
        if stage != Stage::Document && hit {
            self.saved_ms
                .fetch_add(saved.as_millis() as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn spent(&self, d: Duration) {
        self.spent_ms
            .fetch_add(d.as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn document(&self, kind: DocumentKind, bytes: u64, cached: bool) {
        self.bytes_seen.fetch_add(bytes, Ordering::Relaxed);
        if cached {
            self.bytes_not_reprocessed
                .fetch_add(bytes, Ordering::Relaxed);
        }
        let mut by_kind = self.by_kind.lock().unwrap_or_else(|p| p.into_inner());
        let k = by_kind.entry(kind).or_default();
        k.documents += 1;
        if cached {
            k.cached += 1;
        }
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TelemetrySnapshot {
        let figures = |s: Stage| StageFigures {
            hits: self.stages[s as usize].hits.load(Ordering::Relaxed),
            misses: self.stages[s as usize].misses.load(Ordering::Relaxed),
        };
        TelemetrySnapshot {
            document: figures(Stage::Document),
            ocr: figures(Stage::Ocr),
            extraction: figures(Stage::Extraction),
            time_saved: Duration::from_millis(self.saved_ms.load(Ordering::Relaxed)),
            time_spent: Duration::from_millis(self.spent_ms.load(Ordering::Relaxed)),
            bytes_seen: self.bytes_seen.load(Ordering::Relaxed),
            bytes_not_reprocessed: self.bytes_not_reprocessed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            by_kind: self
                .by_kind
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
