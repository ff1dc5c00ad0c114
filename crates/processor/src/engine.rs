//! The engine seams: text engines (a PDF's text layer, OCR) and field extractors, each with an identity that
//! is part of its cache keys, so upgrading an engine never serves an old engine's output.

use std::{collections::BTreeSet, fmt};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::DocumentKind;

/// An engine's name and version, as it appears in cache keys (`tesseract@5.3.0+eng`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EngineId {
    /// The engine's name.
    pub name: String,
    /// Its version (and anything else that changes its output, such as languages).
    pub version: String,
}

impl EngineId {
    /// An identity.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        EngineId {
            name: name.into(),
            version: version.into(),
        }
    }
}

impl fmt::Display for EngineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// Why an engine produced nothing. Per document: other documents go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EngineError {
    /// A program the engine runs is not installed.
    #[error("{program} is not installed: {hint}")]
    Missing {
        /// The program.
        program: String,
        /// How to install it.
        hint: String,
    },
    /// The document could not be read by the engine.
    #[error("{engine} could not read the document: {reason}")]
    Unreadable {
        /// The engine.
        engine: String,
        /// What went wrong.
        reason: String,
    },
    /// A remote service failed or answered something unusable.
    #[error("{engine}: {reason}")]
    Upstream {
        /// The engine.
        engine: String,
        /// What went wrong.
        reason: String,
    },
    /// The engine took longer than allowed.
    #[error("{engine} took longer than {seconds}s")]
    Timeout {
        /// The engine.
        engine: String,
        /// The limit.
        seconds: u64,
    },
}

/// Turns a document's bytes into text.
#[async_trait]
pub trait TextEngine: Send + Sync {
    /// The engine's identity (part of the OCR stage's cache key).
    fn id(&self) -> EngineId;
    /// Whether this engine reads documents of `kind`.
    fn accepts(&self, kind: DocumentKind) -> bool;
    /// The document's text.
    ///
    /// # Errors
    /// [`EngineError`] when the document cannot be read or the engine is unavailable.
    async fn text(&self, kind: DocumentKind, bytes: &[u8]) -> Result<String, EngineError>;
}

/// Fields extracted from a document's text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractedFields {
    /// The invoice number, if the document is an invoice.
    pub invoice_number: Option<String>,
    /// Dates found, as ISO 8601 (`2026-11-25`), in order of appearance, without repeats.
    pub dates: Vec<String>,
    /// The total amount with its currency, e.g. `1234.56 EUR`.
    pub total: Option<String>,
    /// VAT / tax identification numbers.
    pub vat_ids: BTreeSet<String>,
    /// IBANs (checksum verified), without spaces.
    pub ibans: BTreeSet<String>,
    /// Email addresses, lowercased.
    pub emails: BTreeSet<String>,
}

/// Extracts fields from text.
#[async_trait]
pub trait FieldExtractor: Send + Sync {
    /// The extractor's identity (part of the extraction stage's cache key).
    fn id(&self) -> EngineId;
    /// The fields of `text`.
    ///
    /// # Errors
    /// [`EngineError`] when the extractor fails.
    async fn extract(&self, text: &str) -> Result<ExtractedFields, EngineError>;
}
