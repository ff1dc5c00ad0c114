//! [`DocumentProcessor`]: fingerprint once, then each stage cache-first with fallback to real work.

use std::{
    any::Any,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use fernando_cache_config::{CacheType, ExtractorKind, Settings};
use fernando_cache_keys::{DocumentFingerprint, TenantId, layout::DocumentKeys};
use fernando_cache_store::{Compute, Cost, Store};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::{
    DocumentKind, DocumentResult, EngineError, FieldExtractor, ProcessError, ProcessedDocument,
    StageOutcome, Stages, TextEngine,
    access::{AccessJournal, AccessRecord, HotSet},
    cut_to_limit,
    engines::{DEFAULT_MAX_STREAM_BYTES, OpenAiExtractor, RuleExtractor, Tesseract, TextLayer},
    sandbox::{ParseBudget, ParserHost, Parsers, text_too_long},
    stage::{Ran, costed_stage, flatten},
    telemetry::{Stage, Telemetry, TelemetrySnapshot},
};

/// What a caller keeps taken while the work it started runs (see [`DocumentProcessor::process_holding`]).
type Held = Arc<dyn Any + Send + Sync>;

/// What a document's cache entry holds: its result, and whether that rests on a stale stage (never true in a
/// stored entry: such results are not stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedDocument {
    pub(crate) result: DocumentResult,
    pub(crate) stale: bool,
}

/// The whole-document budget of a pipeline built with [`DocumentProcessor::new`].
const DOCUMENT_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) struct Shared {
    pub(crate) store: Store,
    text_engines: Vec<Arc<dyn TextEngine>>,
    extractor: Arc<dyn FieldExtractor>,
    pub(crate) max_bytes: u64,
    /// Most bytes of text one document may have, from any engine.
    max_text_bytes: usize,
    /// Longest one document's text may take to read, all its pages together (`processor.document_timeout`).
    document_timeout: Duration,
    telemetry: Telemetry,
    pub(crate) hot: HotSet,
    pub(crate) access: AccessJournal,
}

/// The document pipeline with a tenant context. Cheap to clone; clones share engines, cache and telemetry.
#[derive(Clone)]
pub struct DocumentProcessor {
    pub(crate) shared: Arc<Shared>,
    tenant: Option<TenantId>,
    /// Whether reads count as accesses (hot set, access history); off for the warmer's own recomputations,
    /// which would otherwise vote for themselves.
    track_reads: bool,
}

impl std::fmt::Debug for DocumentProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentProcessor")
            .field("tenant", &self.tenant)
            .field(
                "text_engines",
                &self
                    .shared
                    .text_engines
                    .iter()
                    .map(|e| e.id().to_string())
                    .collect::<Vec<_>>(),
            )
            .field("extractor", &self.shared.extractor.id().to_string())
            .finish()
    }
}

impl DocumentProcessor {
    /// A pipeline over `store` with these engines; the first engine accepting a kind reads it. A document's
    /// text may have at most 8 MiB (the default of `processor.max_text_bytes`).
    pub fn new(
        store: Store,
        text_engines: Vec<Arc<dyn TextEngine>>,
        extractor: Arc<dyn FieldExtractor>,
        max_document_bytes: u64,
    ) -> Self {
        let max_text_bytes = ParseBudget::default().max_text_bytes;
        Self::build(
            store,
            text_engines,
            extractor,
            max_document_bytes,
            (max_text_bytes, DOCUMENT_TIMEOUT),
        )
    }

    fn build(
        store: Store,
        text_engines: Vec<Arc<dyn TextEngine>>,
        extractor: Arc<dyn FieldExtractor>,
        max_document_bytes: u64,
        (max_text_bytes, document_timeout): (usize, Duration),
    ) -> Self {
        DocumentProcessor {
            shared: Arc::new(Shared {
                store,
                text_engines,
                extractor,
                max_bytes: max_document_bytes,
                max_text_bytes,
                document_timeout,
                telemetry: Telemetry::default(),
                hot: HotSet::new(),
                access: AccessJournal::default(),
            }),
            tenant: None,
            track_reads: true,
        }
    }

    /// The configured pipeline: PDFs page by page (text layers read, scanned pages rendered with `pdftoppm` and
    /// OCR'd), the text layer for text and HTML, `tesseract` for images, and the configured extractor. HTML and
    /// PDF parsing runs on `parsers` within the configured budget: a server gives a
    /// [`ParserHost::Child`]; [`ParserHost::InProcess`] leaves the parsers' memory and time unbounded.
    pub async fn from_settings(settings: &Settings, store: Store, parsers: ParserHost) -> Self {
        let p = &settings.processor;
        let parsers = Parsers::new(parsers, ParseBudget::from_settings(p));
        let tesseract: Arc<dyn TextEngine> = Arc::new(
            Tesseract::new(&p.tesseract, &p.ocr_languages, p.ocr_timeout)
                .await
                .with_max_page_pixels(p.max_page_pixels),
        );
        let limits = crate::PdfLimits {
            dpi: p.pdf_dpi,
            max_pages: p.max_pdf_pages,
            max_page_pixels: p.max_page_pixels,
            render_timeout: p.ocr_timeout,
            max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
        };
        let pdf =
            crate::PdfPages::new(&p.pdftoppm, tesseract.clone(), limits, parsers.clone()).await;
        let text = TextLayer::new(parsers.clone(), DEFAULT_MAX_STREAM_BYTES);
        let extractor: Arc<dyn FieldExtractor> = match p.extractor {
            ExtractorKind::Openai => Arc::new(OpenAiExtractor::new(&p.openai, &settings.prices)),
            _ => Arc::new(RuleExtractor),
        };
        DocumentProcessor::build(
            store,
            vec![Arc::new(pdf), Arc::new(text), tesseract],
            extractor,
            p.max_document_bytes,
            (parsers.budget().max_text_bytes, p.document_timeout),
        )
    }

    /// The documents read since the last call, with their reads summed per `bucket`, for the shared access
    /// history; and how many reads were dropped because too many were pending (ever, since start).
    pub fn drain_accesses(&self, bucket: Duration) -> (Vec<AccessRecord>, u64) {
        (
            self.shared.access.drain(bucket),
            self.shared.access.dropped(),
        )
    }

    /// Puts back what [`drain_accesses`](Self::drain_accesses) returned when writing it to the history failed,
    /// so the next drain holds it: a database outage delays the read counts but loses none (past the pending
    /// bound, reads are counted as dropped).
    pub fn restore_accesses(&self, records: Vec<AccessRecord>) {
        self.shared.access.restore(records);
    }

    /// Sets the tenant whose namespace every following call uses (the seed's `set_tenant_context`).
    pub fn set_tenant_context(&mut self, tenant: TenantId) {
        self.tenant = Some(tenant);
    }

    /// A clone working for `tenant`.
    #[must_use]
    pub fn for_tenant(&self, tenant: TenantId) -> Self {
        DocumentProcessor {
            shared: self.shared.clone(),
            tenant: Some(tenant),
            track_reads: self.track_reads,
        }
    }

    /// A clone whose reads are not counted as accesses: for the warmer, whose recomputations are not demand.
    #[must_use]
    pub fn without_read_tracking(&self) -> Self {
        DocumentProcessor {
            shared: self.shared.clone(),
            tenant: self.tenant.clone(),
            track_reads: false,
        }
    }

    /// The tenant context, if set.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The pipeline's figures so far.
    pub fn telemetry(&self) -> TelemetrySnapshot {
        self.shared.telemetry.snapshot()
    }

    pub(crate) fn engine_for(
        &self,
        kind: DocumentKind,
    ) -> Result<&Arc<dyn TextEngine>, ProcessError> {
        self.shared
            .text_engines
            .iter()
            .find(|e| e.accepts(kind))
            .ok_or(ProcessError::NoEngine(kind))
    }

    pub(crate) fn document_key(&self, fp: &DocumentFingerprint, engine: &dyn TextEngine) -> String {
        DocumentKeys::new(fp).result(
            &engine.id().to_string(),
            &self.shared.extractor.id().to_string(),
        )
    }

    /// Processes a document held in memory. `content_type` (a MIME type) says what it is, unless the bytes
    /// plainly say otherwise: a PDF sent as `text/plain` is read as a PDF, and the answer says so
    /// ([`ProcessedDocument::detected_type`], [`ProcessedDocument::warnings`]).
    ///
    /// # Errors
    /// [`ProcessError`] for this document — [`ProcessError::Mislabelled`] for bytes that are plainly not what
    /// was declared nor anything readable; the cache being down is not an error.
    pub async fn process(
        &self,
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<ProcessedDocument, ProcessError> {
        self.process_in_memory(bytes, content_type, None).await
    }

    /// [`process`](Self::process), keeping `held` — an engine slot, say — until every stage this call starts
    /// has ended. A stage goes on when its caller stops waiting (its result is shared with concurrent callers
    /// and cached), so whatever admitted the work must stay taken for as long as the work runs, not as long as
    /// the caller waits.
    ///
    /// # Errors
    /// As [`process`](Self::process).
    pub async fn process_holding(
        &self,
        bytes: &[u8],
        content_type: Option<&str>,
        held: impl Any + Send + Sync,
    ) -> Result<ProcessedDocument, ProcessError> {
        self.process_in_memory(bytes, content_type, Some(Arc::new(held)))
            .await
    }

    async fn process_in_memory(
        &self,
        bytes: &[u8],
        content_type: Option<&str>,
        held: Option<Held>,
    ) -> Result<ProcessedDocument, ProcessError> {
        let size = bytes.len() as u64;
        self.check_size(size)?;
        let reading = crate::document::kind_of(content_type, bytes)?;
        if let Some(declared) = &reading.overruled {
            tracing::info!(
                declared = declared.as_str(),
                read_as = reading.kind.mime_type(),
                "the bytes overruled the declared type"
            );
        }
        let fp = DocumentFingerprint::of_bytes(bytes);
        // The bytes are copied only when a stage must run; a hit never copies the document.
        let mut doc = self
            .run(fp, reading.kind, size, held, || async move {
                Ok(bytes.to_vec())
            })
            .await?;
        if let Some(warning) = reading.warning() {
            doc.detected_type = Some(reading.kind.mime_type());
            doc.warnings.push(warning);
        }
        Ok(doc)
    }

    /// Processes a file. The file is read once, whole (at most `processor.max_document_bytes`), and those very
    /// bytes are fingerprinted and processed: a file replaced while it is processed can never have one version's
    /// result stored under the other version's fingerprint.
    ///
    /// # Errors
    /// [`ProcessError`] for this document.
    pub async fn process_file(&self, path: &Path) -> Result<ProcessedDocument, ProcessError> {
        let (p, limit) = (path.to_owned(), self.shared.max_bytes);
        let file = tokio::task::spawn_blocking(move || crate::batch::read_file(&p, limit))
            .await
            .map_err(|e| ProcessError::Io(e.to_string()))??;
        self.process_read(file).await
    }

    /// The pipeline over a file already read and fingerprinted.
    pub(crate) async fn process_read(
        &self,
        file: crate::batch::ReadFile,
    ) -> Result<ProcessedDocument, ProcessError> {
        let crate::batch::ReadFile {
            fp,
            kind,
            size,
            bytes,
        } = file;
        self.run(fp, kind, size, None, move || async move { Ok(bytes) })
            .await
    }

    /// The stored result of a document of this tenant, by fingerprint, if any.
    ///
    /// # Errors
    /// [`ProcessError::NoTenant`] without a tenant context.
    pub async fn cached(
        &self,
        fp: &DocumentFingerprint,
    ) -> Result<Option<DocumentResult>, ProcessError> {
        let tenant = self.tenant.as_ref().ok_or(ProcessError::NoTenant)?;
        for engine in &self.shared.text_engines {
            let key = self.document_key(fp, engine.as_ref());
            if let Ok(Some(r)) = self
                .shared
                .store
                .get::<CachedDocument>(tenant, &CacheType::DOC_HASH, &key)
                .await
            {
                return Ok(Some(r.result));
            }
        }
        Ok(None)
    }

    fn check_size(&self, size: u64) -> Result<(), ProcessError> {
        if size > self.shared.max_bytes {
            return Err(ProcessError::TooLarge {
                size,
                limit: self.shared.max_bytes,
            });
        }
        Ok(())
    }

    async fn run<L, LF>(
        &self,
        fp: DocumentFingerprint,
        kind: DocumentKind,
        size: u64,
        held: Option<Held>,
        load: L,
    ) -> Result<ProcessedDocument, ProcessError>
    where
        L: FnOnce() -> LF,
        LF: Future<Output = Result<Vec<u8>, ProcessError>>,
    {
        let tenant = self.tenant.clone().ok_or(ProcessError::NoTenant)?;
        let span = tracing::info_span!(
            "document",
            tenant = tenant.as_str(),
            fingerprint = %fp,
            kind = kind.as_str()
        );
        let result = self
            .run_inner(&tenant, fp, kind, size, held, load)
            .instrument(span)
            .await;
        if result.is_err() {
            self.shared.telemetry.error();
        }
        result
    }

    async fn run_inner<L, LF>(
        &self,
        tenant: &TenantId,
        fp: DocumentFingerprint,
        kind: DocumentKind,
        size: u64,
        held: Option<Held>,
        load: L,
    ) -> Result<ProcessedDocument, ProcessError>
    where
        L: FnOnce() -> LF,
        LF: Future<Output = Result<Vec<u8>, ProcessError>>,
    {
        let start = Instant::now();
        let engine = self.engine_for(kind)?.clone();
        let doc_key = self.document_key(&fp, engine.as_ref());
        let keys = DocumentKeys::new(&fp);
        let computed = AtomicBool::new(false);
        let (ocr, extracting) = (Ran::default(), Ran::default());
        let shared = &self.shared;
        // A document whose result rests on a stale stage is returned but not cached whole: the next call
        // retries the stage (once its throttle period is over).
        let outcome = shared
            .store
            .get_or_compute_with(
                tenant,
                &CacheType::DOC_HASH,
                &doc_key,
                Compute::default().store_if(|doc: &CachedDocument| !doc.stale),
                || async {
                    computed.store(true, Ordering::Relaxed);
                    let bytes: Arc<[u8]> = load().await?.into();
                    let text_id = engine.id().to_string();
                    let read = engine.clone();
                    let (max_text, engine_name) = (shared.max_text_bytes, text_id.clone());
                    let budget = shared.document_timeout;
                    // A stage this call starts keeps `held` until it ends, whether or not we still wait.
                    let held_by_text = held.clone();
                    let text = costed_stage(
                        shared,
                        tenant,
                        &CacheType::OCR_RESULT,
                        &keys.text(&text_id),
                        &ocr,
                        move || async move {
                            let _held = held_by_text;
                            // All of a document's pages within one budget: dropping the read ends its
                            // engines' processes (they are killed on drop).
                            let text = tokio::time::timeout(budget, read.text(kind, &bytes))
                                .await
                                .map_err(|_| EngineError::OverBudget {
                                    engine: engine_name.clone(),
                                    reason: format!(
                                        "reading the document took longer than its {}s \
                                         (processor.document_timeout)",
                                        budget.as_secs()
                                    ),
                                })??;
                            // Whatever the engine, one document's text is bounded (and never cached past it).
                            if text.len() > max_text {
                                return Err(EngineError::OverBudget {
                                    engine: engine_name,
                                    reason: text_too_long(text.len(), max_text),
                                });
                            }
                            Ok((text, Cost::default()))
                        },
                    )
                    .await?;
                    let extractor_id = shared.extractor.id().to_string();
                    // Keyed by the text the extractor reads: a longer limit later is a new key.
                    let (input, truncated) =
                        cut_to_limit(&text.value, shared.extractor.max_input_chars());
                    let text_fp = DocumentFingerprint::of_bytes(input.as_bytes());
                    let (extractor, input) = (shared.extractor.clone(), input.to_owned());
                    let held_by_extraction = held.clone();
                    let extraction = costed_stage(
                        shared,
                        tenant,
                        &CacheType::LLM_EXTRACTION,
                        &keys.fields(&extractor_id, &text_fp),
                        &extracting,
                        move || async move {
                            let _held = held_by_extraction;
                            let e = extractor.extract(&input).await?;
                            let cost = Cost {
                                tokens: e.usage.map_or(0, |u| u.total()),
                                money_micros: e.cost_micros,
                                ..Cost::default()
                            };
                            Ok((e, cost))
                        },
                    )
                    .await?;
                    let stale = [&ocr, &extracting]
                        .iter()
                        .any(|r| r.outcome() == StageOutcome::Stale);
                    let e = extraction.value;
                    Ok::<_, ProcessError>(CachedDocument {
                        result: DocumentResult {
                            fingerprint: fp.to_hex(),
                            kind,
                            size,
                            text: text.value,
                            fields: e.fields,
                            text_engine: text_id,
                            extractor: extractor_id,
                            text_ms: text.cost.compute_ms,
                            extract_ms: extraction.cost.compute_ms,
                            usage: e.usage,
                            cost_micros: e.cost_micros,
                            truncated: truncated.or(e.truncated),
                        },
                        stale,
                    })
                },
            )
            .await;
        let result = outcome.map_err(flatten)?.value.result;
        let stages = if computed.load(Ordering::Relaxed) {
            Stages {
                document: StageOutcome::Miss,
                ocr: ocr.outcome(),
                extraction: extracting.outcome(),
            }
        } else {
            Stages::HIT
        };
        Ok(self.finish(tenant, (&fp, &doc_key), result, stages, start))
    }

    /// A document's answer, with what it saved counted in the telemetry, the cost recorder and the access
    /// history: the one account every path to an answer keeps, a batch's hits as one document's.
    pub(crate) fn finish(
        &self,
        tenant: &TenantId,
        (fp, doc_key): (&DocumentFingerprint, &str),
        result: DocumentResult,
        stages: Stages,
        start: Instant,
    ) -> ProcessedDocument {
        let shared = &self.shared;
        // What fresh hits saved, as the stages recorded it (a stale answer saved no spending: its computation
        // ran or failed). A whole-document hit saves the cost its result was computed with.
        let saved_cost = if stages.document == StageOutcome::Hit {
            let cost = result.cost();
            shared
                .store
                .coordinator()
                .record_saved(tenant, &CacheType::DOC_HASH, cost);
            cost
        } else {
            let mut c = Cost::default();
            if stages.ocr == StageOutcome::Hit {
                c = c.plus(result.text_cost());
            }
            if stages.extraction == StageOutcome::Hit {
                c = c.plus(result.extraction_cost());
            }
            c
        };
        let t = &shared.telemetry;
        let text_ms = Duration::from_millis(result.text_ms);
        let extract_ms = Duration::from_millis(result.extract_ms);
        let mut saved = Duration::ZERO;
        for (stage, outcome, cost) in [
            (Stage::Document, stages.document, Duration::ZERO),
            (Stage::Ocr, stages.ocr, text_ms),
            (Stage::Extraction, stages.extraction, extract_ms),
        ] {
            // A stale stage was answered from the cache too: its engine time was not spent on a result.
            let hit = outcome != StageOutcome::Miss;
            t.stage(stage, hit, cost);
            if hit {
                saved += cost;
            } else if stage != Stage::Document {
                t.spent(cost);
            }
            tracing::info!(
                stage = stage.as_str(),
                outcome = outcome.as_str(),
                saved_ms = if hit { cost.as_millis() as u64 } else { 0 },
                "document stage"
            );
        }
        t.document(
            result.kind,
            result.size,
            stages.document == StageOutcome::Hit,
        );
        if self.track_reads {
            shared.hot.touch(tenant, doc_key);
            shared.access.record(tenant, doc_key, fp, result.cost());
        }
        ProcessedDocument {
            result,
            stages,
            time_saved: saved,
            saved: saved_cost,
            elapsed: start.elapsed(),
            detected_type: None,
            warnings: Vec::new(),
        }
    }
}
