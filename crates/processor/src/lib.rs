//! The document pipeline of fernando-cache: a [`DocumentProcessor`] with a tenant context computes a
//! document's SHA-256 once, then runs each stage cache-first with fallback to real work — the whole result
//! (`doc_hash`), the text (`ocr_result`: a PDF's text layer or `tesseract` OCR), and the extracted fields
//! (`llm_extraction`: built-in rules or an OpenAI-compatible endpoint). Stage keys carry the engine's identity
//! and version, so an upgraded engine never serves an old engine's output; concurrent uploads of one document
//! process once; with Redis down documents still process. Every document has a budget: its pixels per page
//! (images and PDF pages), its text, and the memory and CPU time of its HTML and PDF parsing, which a server runs
//! in a child process ([`ParserHost`], [`run_child`]). Also: telemetry, cache warming, and the seed's document
//! and session helpers over a store ([`document_helpers`]).
//!
//! This crate depends on config, keys and store; it must not depend on the models, HTTP, ops, decorators or
//! binary crates (ops schedules the warmer over the statistics database; the binary wires the HTTP API around
//! it).
//!
//! ```
//! use fernando_cache_processor::{DocumentProcessor, ParserHost, StageOutcome};
//! use fernando_cache_store::{Store, config::{Environment, Settings}, keys::TenantId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = Settings::embedded(Environment::Test)?;
//! let store = Store::from_settings(&settings)?;
//! // HTML and PDF parsing in this process, unbounded: a server gives ParserHost::child(…) instead.
//! let mut processor = DocumentProcessor::from_settings(&settings, store, ParserHost::InProcess).await;
//! processor.set_tenant_context(TenantId::new("user123")?);
//!
//! let invoice = b"Invoice number: INV-7781\nTotal: 1,234.50 EUR\n";
//! let first = processor.process(invoice, Some("text/plain")).await?;   // processes the document
//! let second = processor.process(invoice, Some("text/plain")).await?;  // served from the cache
//! assert_eq!(first.stages.document, StageOutcome::Miss);
//! assert_eq!(second.stages.document, StageOutcome::Hit);
//! assert_eq!(second.result.fields.total.as_deref(), Some("1234.50 EUR"));
//! # Ok(()) }
//! ```

mod access;
mod batch;
mod document;
pub mod document_helpers;
mod engine;
mod engines;
mod outcome;
mod processor;
mod sandbox;
mod stage;
mod telemetry;
mod warm;

pub use access::{AccessRecord, MAX_PENDING_READS};
pub use batch::FileOutcome;
pub use document::DocumentKind;
pub use engine::{
    EngineError, EngineId, ExtractedFields, Extraction, FieldExtractor, TextEngine, TokenUsage,
    Truncation, cut_to_limit,
};
pub use engines::{OpenAiExtractor, PdfLimits, PdfPages, RuleExtractor, Tesseract, TextLayer};
pub use outcome::{DocumentResult, ProcessError, ProcessedDocument, StageOutcome, Stages};
pub use processor::DocumentProcessor;
pub use sandbox::{ParseBudget, ParserHost, Parsers, run_child};
pub use telemetry::{KindFigures, Stage, StageFigures, TelemetrySnapshot};
pub use warm::{
    DocumentHistory, ReferenceSource, WarmReport, Warmer,
    folder::{DocumentFolder, MAX_FILES},
    policy::{
        Budget, Candidate, History, RefreshCost, ReplayOutcome, ReplaySetup, TraceRead, WarmPolicy,
        replay,
    },
};
