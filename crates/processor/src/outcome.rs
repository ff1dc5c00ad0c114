//! What processing a document answers: its result, each stage's outcome and the time saved, or why it failed.

use std::time::Duration;

use fernando_cache_store::{Cause, Cost};
use serde::{Deserialize, Serialize};

use crate::{DocumentKind, EngineError, ExtractedFields, TokenUsage, Truncation};

/// Why a document was not processed. Per document: a batch goes on with the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// No tenant context was set.
    #[error("no tenant context: call set_tenant_context first")]
    NoTenant,
    /// The document is larger than `processor.max_document_bytes`.
    #[error("document is {size} bytes; the limit is {limit} (processor.max_document_bytes)")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Neither the declared type nor the bytes tell a supported kind; the text says what was detected.
    #[error("unsupported document type{0}; supported: text, HTML, PDF, PNG, JPEG, TIFF")]
    UnknownKind(String),
    /// The declared type and the bytes disagree, and the bytes are not a kind the pipeline reads: `found` says
    /// what they are (`application/zip (.zip)`, `empty`).
    #[error("sent as {declared}, but the bytes are {found}")]
    Mislabelled {
        /// The declared MIME type's essence (`image/png`).
        declared: String,
        /// What the bytes are.
        found: String,
    },
    /// No configured engine reads this kind.
    #[error("no text engine reads {0} documents")]
    NoEngine(DocumentKind),
    /// An engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The document could not be read from disk.
    #[error("{0}")]
    Io(String),
    /// The cache refused the call (an invalid tenant, for example); the store's error is the source.
    #[error("cache: {0}")]
    Store(#[source] Cause),
    /// A stage outlived its cache type's `hard_timeout` and no earlier result was kept to serve instead.
    #[error("timed out after {0:?} (types.<name>.hard_timeout) with no earlier result to serve")]
    TimedOut(Duration),
}

/// Whether a stage was answered from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageOutcome {
    /// From the cache (or from a concurrent caller's computation).
    Hit,
    /// Computed.
    Miss,
    /// An earlier result past its TTL, served because the engine failed or outlived the stage's soft or hard
    /// timeout (fail-safe, `types.<name>.max_stale`). A document with a stale stage is not cached whole.
    Stale,
}

impl StageOutcome {
    /// `hit`, `miss` or `stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            StageOutcome::Hit => "hit",
            StageOutcome::Miss => "miss",
            StageOutcome::Stale => "stale",
        }
    }
}

/// Per-stage outcomes of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stages {
    /// The whole result.
    pub document: StageOutcome,
    /// Text: the text file's own, a PDF's text layer or OCR. Named `text` in JSON, as in `process`'s table,
    /// since most documents' text involves no OCR; `ocr`, its former name, is still read.
    #[serde(rename = "text", alias = "ocr")]
    pub ocr: StageOutcome,
    /// Field extraction.
    pub extraction: StageOutcome,
}

impl Stages {
    /// The whole document answered from the cache: every stage a hit.
    pub const HIT: Stages = Stages {
        document: StageOutcome::Hit,
        ocr: StageOutcome::Hit,
        extraction: StageOutcome::Hit,
    };
}

/// What the pipeline stores for a document (`doc_hash`) and answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentResult {
    /// SHA-256 of the document, hex.
    pub fingerprint: String,
    /// Its kind.
    pub kind: DocumentKind,
    /// Its size in bytes.
    pub size: u64,
    /// Its text.
    pub text: String,
    /// Extracted fields.
    pub fields: ExtractedFields,
    /// The engine that produced the text.
    pub text_engine: String,
    /// The extractor that produced the fields.
    pub extractor: String,
    /// How long the text took to compute, when it was computed.
    pub text_ms: u64,
    /// How long extraction took, when it was computed.
    pub extract_ms: u64,
    /// Tokens the extraction's model call used, when it was computed (none for the rules extractor).
    pub usage: Option<TokenUsage>,
    /// What that call cost, in millionths of the configured currency unit.
    pub cost_micros: u64,
    /// Set when the text was longer than the extractor's input limit: only its start was sent.
    pub truncated: Option<Truncation>,
}

impl DocumentResult {
    /// What computing the text cost: engine time.
    pub fn text_cost(&self) -> Cost {
        Cost {
            compute_ms: self.text_ms,
            ..Cost::default()
        }
    }

    /// What computing the fields cost: engine time, tokens and money.
    pub fn extraction_cost(&self) -> Cost {
        Cost {
            compute_ms: self.extract_ms,
            tokens: self.usage.map_or(0, |u| u.total()),
            money_micros: self.cost_micros,
        }
    }

    /// What computing this result cost: both stages together.
    pub fn cost(&self) -> Cost {
        self.text_cost().plus(self.extraction_cost())
    }
}

/// One processed document: the result, where each stage came from, and the time the cache saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessedDocument {
    /// The result.
    #[serde(flatten)]
    pub result: DocumentResult,
    /// Per-stage outcomes.
    pub stages: Stages,
    /// Engine time not spent thanks to the cache.
    #[serde(serialize_with = "millis")]
    pub time_saved: Duration,
    /// Everything this call's hits saved (engine time, tokens, money), as counted in the statistics.
    pub saved: Cost,
    /// Wall time of this call.
    #[serde(serialize_with = "millis")]
    pub elapsed: Duration,
    /// The MIME type the document was read as when its bytes overruled the declared type (a PDF sent as
    /// `text/plain` is read as `application/pdf`); absent when the declared type, or the bytes alone, decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_type: Option<&'static str>,
    /// What the caller should know about how its document was read (the declared type its bytes overruled);
    /// absent when there is nothing to say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}
