//! Text that documents carry themselves: UTF-8 text files and the text layer of PDFs (read with `lopdf`).

use async_trait::async_trait;

use crate::{DocumentKind, EngineError, EngineId, TextEngine};

/// Reads text documents and PDF text layers; no OCR.
#[derive(Debug, Clone)]
pub struct TextLayer {
    /// Largest decompressed PDF content stream read.
    max_stream_bytes: usize,
}

impl TextLayer {
    /// Bumped whenever the produced text could change.
    const VERSION: &'static str = "1";

    /// A reader whose PDF content streams may decompress to at most `max_stream_bytes`.
    pub fn new(max_stream_bytes: usize) -> Self {
        TextLayer { max_stream_bytes }
    }
}

impl Default for TextLayer {
    fn default() -> Self {
        TextLayer::new(64 << 20)
    }
}

#[async_trait]
impl TextEngine for TextLayer {
    fn id(&self) -> EngineId {
        EngineId::new("text-layer", format!("{}+lopdf0.47", Self::VERSION))
    }

    fn accepts(&self, kind: DocumentKind) -> bool {
        matches!(
            kind,
            DocumentKind::Text | DocumentKind::Html | DocumentKind::Pdf
        )
    }

    async fn text(&self, kind: DocumentKind, bytes: &[u8]) -> Result<String, EngineError> {
        let unreadable = |reason: String| EngineError::Unreadable {
            engine: "text-layer".into(),
            reason,
        };
        match kind {
            DocumentKind::Text => std::str::from_utf8(bytes)
                .map(normalise)
                .map_err(|e| unreadable(format!("not UTF-8 text: {e}"))),
            DocumentKind::Pdf => {
                // PDF parsing is CPU work on untrusted input: off the async threads, bounded, and a panic in
                // the parser becomes an error for this document only.
                let bytes = bytes.to_vec();
                let limit = self.max_stream_bytes;
                tokio::task::spawn_blocking(move || pdf_text(&bytes, limit))
                    .await
                    .map_err(|e| unreadable(format!("PDF reader failed: {e}")))?
                    .map_err(unreadable)
            }
            DocumentKind::Html => {
                // An HTML parser on untrusted input: off the async threads, like the PDF reader.
                let bytes = bytes.to_vec();
                tokio::task::spawn_blocking(move || html_text(&bytes))
                    .await
                    .map_err(|e| unreadable(format!("HTML reader failed: {e}")))?
                    .map_err(unreadable)
            }
            other => Err(unreadable(format!("{other} documents need OCR"))),
        }
    }
}

/// The text of an HTML page without its markup (scripts and styles dropped, entities decoded), unwrapped.
fn html_text(bytes: &[u8]) -> Result<String, String> {
    // Wide enough that lines are never wrapped: the rules read the text line by line.
    const WIDTH: usize = 100_000;
    let text = html2text::config::plain_no_decorate()
        .no_table_borders()
        .string_from_read(bytes, WIDTH)
        .map_err(|e| format!("not a readable HTML page: {e}"))?;
    let text = normalise(&text);
    if text.trim().is_empty() {
        return Err("the HTML page has no text".into());
    }
    Ok(text)
}

fn pdf_text(bytes: &[u8], limit: usize) -> Result<String, String> {
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| format!("not a readable PDF: {e}"))?;
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    if pages.is_empty() {
        return Err("the PDF has no pages".into());
    }
    let text = doc
        .extract_text_with_limit(&pages, limit)
        .map_err(|e| format!("no text layer could be read: {e}"))?;
    let text = normalise(&text);
    if text.trim().is_empty() {
        return Err("the PDF has no text layer (a scan? convert it to an image for OCR)".into());
    }
    Ok(text)
}

/// Line endings unified, trailing spaces and blank-line runs removed, so equal content gives equal text.
pub(crate) fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank > 0 {
                out.push('\n');
            }
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn text_is_normalised_and_garbage_pdfs_are_errors() {
        let e = TextLayer::default();
        assert_eq!(
            e.text(DocumentKind::Text, b"a  \r\n\r\n\r\nb\n")
                .await
                .unwrap(),
            "a\n\nb"
        );
        let err = e
            .text(DocumentKind::Pdf, b"%PDF-1.4 garbage")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a readable PDF"), "{err}");
        assert!(e.text(DocumentKind::Png, b"").await.is_err());
    }
}
