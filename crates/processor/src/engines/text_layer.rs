//! Text that documents carry themselves: text files (UTF-8, or UTF-16 or a legacy encoding such as Latin-1,
//! detected: `decode_text`), HTML pages without their markup (html2text) and the text layer of PDFs (lopdf). HTML
//! and PDF parsing runs where the pipeline's [`Parsers`] say: in a server, a child process per document under a
//! memory and CPU budget.

use std::borrow::Cow;

use async_trait::async_trait;
use lopdf::LoadOptions;

use crate::{
    DocumentKind, EngineError, EngineId, TextEngine,
    sandbox::{Job, Parsers, Refusal},
};

/// The name in this engine's errors.
const ENGINE: &str = "text-layer";

/// The default of [`TextLayer`]'s largest decompressed PDF stream.
pub(crate) const DEFAULT_MAX_STREAM_BYTES: usize = 64 << 20;

/// Reads text documents, HTML pages and PDF text layers; no OCR.
#[derive(Debug, Clone)]
pub struct TextLayer {
    parsers: Parsers,
    /// Largest decompressed PDF stream read.
    max_stream_bytes: usize,
}

impl TextLayer {
    /// Bumped whenever the produced text could change. 2: HTML tables read cell by cell at 200 columns.
    const VERSION: &'static str = "2";

    /// A reader whose HTML and PDF parsing runs on `parsers`, no PDF stream decompressed past
    /// `max_stream_bytes`.
    pub fn new(parsers: Parsers, max_stream_bytes: usize) -> Self {
        TextLayer {
            parsers,
            max_stream_bytes,
        }
    }

    /// A reader parsing in this process ([`Parsers::in_process`], no memory or time bound) and decompressing
    /// PDF streams to at most 64 MiB: for tests.
    pub fn in_process() -> Self {
        TextLayer::new(Parsers::in_process(), DEFAULT_MAX_STREAM_BYTES)
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
        match kind {
            // Decoded and normalised in linear passes: nothing to budget. UTF-8 text reads exactly as before the
            // other encodings were accepted, and they used to be refused, never cached: no version bump.
            DocumentKind::Text => {
                decode_text(bytes)
                    .map(|text| normalise(&text))
                    .map_err(|reason| EngineError::Unreadable {
                        engine: ENGINE.into(),
                        reason,
                    })
            }
            DocumentKind::Pdf => {
                let job = Job::PdfText {
                    max_stream_bytes: self.max_stream_bytes,
                };
                self.parsers.text(ENGINE, job, bytes).await
            }
            DocumentKind::Html => self.parsers.text(ENGINE, Job::Html, bytes).await,
            other => Err(EngineError::Unreadable {
                engine: ENGINE.into(),
                reason: format!("{other} documents need OCR"),
            }),
        }
    }
}

/// The characters of a text document: UTF-8 as it is; UTF-16 (or UTF-8) by its byte-order mark; otherwise the
/// legacy encoding chardetng guesses from the bytes — windows-1252 (Latin-1's superset) for most Western European
/// text, windows-1250, windows-1251, Shift_JIS, GBK and the others browsers read. Refused, with the encoding
/// tried named: NUL bytes without a byte-order mark (binary data, not text), and bytes invalid in the encoding
/// guessed.
pub(crate) fn decode_text(bytes: &[u8]) -> Result<Cow<'_, str>, String> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(Cow::Borrowed(text));
    }
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return encoding
            .decode_without_bom_handling_and_without_replacement(&bytes[bom..])
            .ok_or_else(|| {
                format!(
                    "not valid {} text, although it starts with that encoding's byte-order mark",
                    encoding.name()
                )
            });
    }
    if bytes.contains(&0) {
        return Err("not text: neither UTF-8 nor a legacy encoding holds NUL bytes".to_owned());
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    // Not UTF-8 (checked above), so UTF-8 is not a guess; no top-level domain tells a file's origin.
    let encoding = detector.guess(None, false);
    let text = encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .ok_or_else(|| {
            format!(
                "not UTF-8 text, nor valid {} (the encoding its bytes suggest)",
                encoding.name()
            )
        })?;
    tracing::debug!(
        encoding = encoding.name(),
        "text document decoded from a legacy encoding"
    );
    Ok(text)
}

/// The text of an HTML page without its markup (scripts and styles dropped, entities decoded).
///
/// Tables are read cell by cell, each cell its own line (html2text's raw mode), and lines wrap at 200 columns:
/// laid out as a table at an unbounded width, every row was padded to the widest cell, so a page of 17 000 rows
/// and one 100 000-character cell asked for gigabytes (issue 28, item 17). A label and its value in adjacent
/// cells end up on adjacent lines, which the rules read across.
pub(crate) fn html_text(bytes: &[u8]) -> Result<String, Refusal> {
    const WIDTH: usize = 200;
    let text = html2text::config::plain_no_decorate()
        .raw_mode(true)
        .allow_width_overflow()
        .string_from_read(bytes, WIDTH)
        .map_err(|e| Refusal::Unreadable(format!("not a readable HTML page: {e}")))?;
    let text = normalise(&text);
    if text.trim().is_empty() {
        return Err(Refusal::Unreadable("the HTML page has no text".into()));
    }
    Ok(text)
}

/// The text layer of every page of a PDF, no stream decompressed past `limit` — object streams included, which
/// lopdf decodes as it loads the document.
pub(crate) fn pdf_text(bytes: &[u8], limit: usize) -> Result<String, Refusal> {
    let doc = lopdf::Document::load_mem_with_options(
        bytes,
        LoadOptions::with_max_decompressed_size(limit),
    )
    .map_err(|e| Refusal::Unreadable(format!("not a readable PDF: {e}")))?;
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    if pages.is_empty() {
        return Err(Refusal::Unreadable("the PDF has no pages".into()));
    }
    let text = doc
        .extract_text_with_limit(&pages, limit)
        .map_err(|e| Refusal::Unreadable(format!("no text layer could be read: {e}")))?;
    let text = normalise(&text);
    if text.trim().is_empty() {
        return Err(Refusal::Unreadable(
            "the PDF has no text layer (a scan? convert it to an image for OCR)".into(),
        ));
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
        let e = TextLayer::in_process();
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

    #[tokio::test]
    async fn text_in_another_encoding_is_decoded_and_binary_data_refused() {
        let e = TextLayer::in_process();
        // Latin-1: "Müller, Straße" (ü = FC, ß = DF).
        assert_eq!(
            e.text(DocumentKind::Text, b"Rechnung M\xfcller, Stra\xdfe 5\r\n")
                .await
                .unwrap(),
            "Rechnung Müller, Straße 5"
        );
        // UTF-16 little-endian with its byte-order mark.
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("Größe".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(e.text(DocumentKind::Text, &utf16).await.unwrap(), "Größe");
        let binary = e
            .text(DocumentKind::Text, b"\x01\x00\xfe\xff")
            .await
            .unwrap_err()
            .to_string();
        assert!(binary.contains("not text"), "{binary}");
        // UTF-8 stays exactly as it was read before (its byte-order mark included).
        assert_eq!(
            decode_text("\u{feff}Größe".as_bytes()).unwrap(),
            "\u{feff}Größe"
        );
    }

    #[test]
    fn a_wide_table_cell_does_not_pad_every_row() {
        // 1 000 rows under a 20 000-character cell: laid out as a table at 100 000 columns, 20 MB of text.
        let page = fernando_cache_testkit::hostile::wide_table_html(4_000, 1_000);
        let text = html_text(page.as_bytes()).unwrap();
        assert!(text.len() < 2 * page.len(), "{} bytes of text", text.len());
        assert!(text.lines().all(|l| l.chars().count() <= 200), "wrapped");
        assert!(
            text.starts_with("Invoice number: INV-5150"),
            "{:.200}",
            text
        );
    }

    #[test]
    fn table_cells_keep_labels_next_to_their_values() {
        let page = "<table><tr><td>Rechnung Nr.</td><td>RE-2026-0777</td></tr>\
                    <tr><td>Gesamtbetrag</td><td>1.234,50&nbsp;EUR</td></tr></table>";
        let text = html_text(page.as_bytes()).unwrap();
        let fields = crate::engines::rules::extract(&text);
        assert_eq!(
            fields.invoice_number.as_deref(),
            Some("RE-2026-0777"),
            "{text}"
        );
        assert_eq!(fields.total.as_deref(), Some("1234.50 EUR"), "{text}");
    }
}
