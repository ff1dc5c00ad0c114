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
    /// The document needs more than its budget to read: more pixels, memory, CPU time or text than allowed.
    /// The reason names the setting (`processor.max_page_pixels`, …) and nothing of the engine's internals, so
    /// it can be shown to whoever sent the document.
    #[error("{engine} refused the document: {reason}")]
    OverBudget {
        /// The engine.
        engine: String,
        /// What was over which bound.
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

/// Tokens a model call used, as the endpoint's `usage` reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Tokens of the prompt (input).
    pub prompt_tokens: u64,
    /// Tokens of the answer (output).
    pub completion_tokens: u64,
}

impl TokenUsage {
    /// Prompt and completion tokens together.
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// Where a text was cut to an extractor's input limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    /// Characters sent.
    pub sent_chars: usize,
    /// Characters the whole text has.
    pub total_chars: usize,
}

/// `text` cut to at most `limit` characters (never inside a character), and where it was cut, if it was.
pub fn cut_to_limit(text: &str, limit: Option<usize>) -> (&str, Option<Truncation>) {
    let Some(limit) = limit else {
        return (text, None);
    };
    match text.char_indices().nth(limit) {
        None => (text, None),
        Some((end, _)) => (
            &text[..end],
            Some(Truncation {
                sent_chars: limit,
                total_chars: limit + text[end..].chars().count(),
            }),
        ),
    }
}

/// What one extraction found, and what it cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extraction {
    /// The fields.
    pub fields: ExtractedFields,
    /// Tokens the model used, when the extractor calls one and it said.
    pub usage: Option<TokenUsage>,
    /// What the usage cost at the configured price, in millionths of the currency unit (0 without a price).
    pub cost_micros: u64,
    /// Set when the text was longer than the extractor's input limit and only its start was sent.
    pub truncated: Option<Truncation>,
}

impl From<ExtractedFields> for Extraction {
    fn from(fields: ExtractedFields) -> Self {
        Extraction {
            fields,
            ..Extraction::default()
        }
    }
}

/// Extracts fields from text.
#[async_trait]
pub trait FieldExtractor: Send + Sync {
    /// The extractor's identity (part of the extraction stage's cache key).
    fn id(&self) -> EngineId;
    /// Most characters of text this extractor reads (`None`: all). The pipeline cuts texts to it before
    /// keying the extraction, so the key names exactly the text the extractor saw.
    fn max_input_chars(&self) -> Option<usize> {
        None
    }
    /// The fields of `text` (of its first [`FieldExtractor::max_input_chars`] characters), and what finding
    /// them cost.
    ///
    /// # Errors
    /// [`EngineError`] when the extractor fails.
    async fn extract(&self, text: &str) -> Result<Extraction, EngineError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_at_a_character_boundary_and_say_where() {
        assert_eq!(cut_to_limit("héllo", None), ("héllo", None));
        assert_eq!(cut_to_limit("héllo", Some(5)), ("héllo", None));
        assert_eq!(
            cut_to_limit("héllo wörld", Some(4)),
            (
                "héll",
                Some(Truncation {
                    sent_chars: 4,
                    total_chars: 11
                })
            )
        );
        assert_eq!(cut_to_limit("", Some(0)).1, None);
    }
}
