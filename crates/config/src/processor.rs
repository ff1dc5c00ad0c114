//! `[processor]`: the document pipeline's engines, bounds and extractor, each value checked where it is defined.

use std::time::Duration;

use serde::Deserialize;

use crate::{ConfigError, SecretString, check, duration};

/// Which field extractor the document pipeline uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
#[non_exhaustive]
pub enum ExtractorKind {
    /// The built-in rule-based extractor (no network).
    Rules,
    /// Any OpenAI-compatible chat completions endpoint.
    Openai,
}

impl ExtractorKind {
    /// Each extractor under its name in the settings.
    const NAMES: [(&'static str, ExtractorKind); 2] = [
        ("rules", ExtractorKind::Rules),
        ("openai", ExtractorKind::Openai),
    ];
}

/// An extractor by its name in the settings; an unknown name lists the valid ones and suggests the nearest.
impl TryFrom<String> for ExtractorKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        crate::choice::pick(&name, &Self::NAMES)
    }
}

/// Document pipeline settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProcessorSettings {
    /// Largest document accepted, in bytes.
    pub max_document_bytes: u64,
    /// The `tesseract` program (a name on `PATH` or a path).
    pub tesseract: String,
    /// Tesseract languages, e.g. `eng` or `eng+deu`.
    pub ocr_languages: String,
    /// Longest an OCR run (and one PDF page's rendering) may take.
    #[serde(with = "duration")]
    pub ocr_timeout: Duration,
    /// The `pdftoppm` program (Debian package `poppler-utils`) that renders PDF pages without a text layer.
    pub pdftoppm: String,
    /// Resolution PDF pages without a text layer are rendered at for OCR, in dots per inch.
    pub pdf_dpi: u32,
    /// Most pages a PDF may have.
    pub max_pdf_pages: usize,
    /// Most pixels one page may have: a PDF page rendered at `pdf_dpi`, an image, each page of a TIFF (a page
    /// claiming more is refused, not rendered or OCR'd).
    pub max_page_pixels: u64,
    /// Most memory (address space) one document's parsing may use, in bytes: HTML and PDF parsers run in a
    /// child process with this limit, so a document over it is refused and the server goes on.
    pub parse_memory_bytes: u64,
    /// Longest one document's text may take to read, all its pages together (rendering and OCR included); a
    /// document over it is refused, and its engines are stopped.
    #[serde(with = "duration")]
    pub document_timeout: Duration,
    /// Most CPU time one document's parsing may use (its wall-clock time may be twice this).
    #[serde(with = "duration")]
    pub parse_timeout: Duration,
    /// Most bytes of text one document may have, from any engine; more is refused.
    pub max_text_bytes: u64,
    /// The field extractor.
    pub extractor: ExtractorKind,
    /// The OpenAI-compatible extractor.
    pub openai: OpenAiSettings,
}

/// An OpenAI-compatible chat completions endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenAiSettings {
    /// Base URL, e.g. `https://api.openai.com/v1` (`/chat/completions` is appended).
    pub url: String,
    /// Model name.
    pub model: String,
    /// API key; set `FERNANDO_CACHE__PROCESSOR__OPENAI__API_KEY`, never in a file.
    pub api_key: Option<SecretString>,
    /// Longest a request may take.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Most characters of a document's text sent to the model; longer texts are cut there, and the result
    /// says so.
    pub max_input_chars: usize,
}

impl ProcessorSettings {
    /// Checks every value, naming the first offending key.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let p = self;
        if p.max_document_bytes < 1024 || p.max_document_bytes > 1 << 32 {
            return Err(ConfigError::invalid(
                "processor.max_document_bytes",
                "must be between 1 KiB and 4 GiB",
            ));
        }
        if p.tesseract.trim().is_empty() {
            return Err(ConfigError::invalid("processor.tesseract", "is empty"));
        }
        if p.ocr_languages.is_empty()
            || !p
                .ocr_languages
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '_')
        {
            return Err(ConfigError::invalid(
                "processor.ocr_languages",
                "must be tesseract language codes joined by '+', like eng+deu",
            ));
        }
        check::duration("processor.ocr_timeout", p.ocr_timeout)?;
        check::duration("processor.document_timeout", p.document_timeout)?;
        check::range("processor.pdf_dpi", p.pdf_dpi as usize, 50, 1200)?;
        check::range("processor.max_pdf_pages", p.max_pdf_pages, 1, 100_000)?;
        if !(1_000_000..=1_000_000_000).contains(&p.max_page_pixels) {
            return Err(ConfigError::invalid(
                "processor.max_page_pixels",
                "must be between 1 000 000 and 1 000 000 000",
            ));
        }
        if !(128 << 20..=1 << 40).contains(&p.parse_memory_bytes) {
            return Err(ConfigError::invalid(
                "processor.parse_memory_bytes",
                "must be between 128 MiB and 1 TiB",
            ));
        }
        check::duration("processor.parse_timeout", p.parse_timeout)?;
        if !(64 << 10..=1 << 30).contains(&p.max_text_bytes) {
            return Err(ConfigError::invalid(
                "processor.max_text_bytes",
                "must be between 64 KiB and 1 GiB",
            ));
        }
        check::duration("processor.openai.timeout", p.openai.timeout)?;
        check::range(
            "processor.openai.max_input_chars",
            p.openai.max_input_chars,
            100,
            10_000_000,
        )?;
        if p.extractor == ExtractorKind::Openai {
            if !crate::http_url(&p.openai.url) {
                return Err(ConfigError::invalid(
                    "processor.openai.url",
                    format!("{:?} is not a URL", p.openai.url),
                ));
            }
            if p.openai.model.trim().is_empty() {
                return Err(ConfigError::invalid("processor.openai.model", "is empty"));
            }
        }
        Ok(())
    }
}
