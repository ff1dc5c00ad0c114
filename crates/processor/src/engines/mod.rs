//! The engines that ship with the pipeline.

mod image_size;
mod openai;
mod pdf_pages;
mod rules;
mod subprocess;
mod tesseract;
mod text_layer;

pub use openai::OpenAiExtractor;
pub use pdf_pages::{PdfLimits, PdfPages};
pub use rules::RuleExtractor;
pub use tesseract::Tesseract;
pub use text_layer::TextLayer;

// The parsers the sandbox runs, wherever it runs them.
pub(crate) use pdf_pages::{Page, plan};
pub(crate) use text_layer::{DEFAULT_MAX_STREAM_BYTES, html_text, pdf_text};
