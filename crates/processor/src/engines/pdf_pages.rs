//! PDFs as they arrive — text layers, scans, and both mixed — read page by page: a page with a text layer is
//! read directly (`lopdf`), a page without one is rendered with `pdftoppm` (Debian package `poppler-utils`,
//! run as a child process like tesseract) and OCR'd; the text is assembled in page order.
//!
//! Bounded before any work: the page count (and the count the page tree claims), each page's pixels at the
//! rendering resolution (from its `MediaBox`), and each render's and OCR's time. Reading the page tree and
//! the text layers runs where the pipeline's [`Parsers`] say: in a server, a child process per document under
//! a memory and CPU budget.

use std::time::Duration;

use async_trait::async_trait;
use lopdf::{Document, LoadOptions, Object, ObjectId};
use serde::{Deserialize, Serialize};

use crate::{
    DocumentKind, EngineError, EngineId, TextEngine,
    engines::{subprocess, text_layer::normalise},
    sandbox::{Parsers, Refusal},
};

/// The name in this engine's errors.
const ENGINE: &str = "pdf-pages";

const INSTALL_HINT: &str = "install it with `apt-get install poppler-utils` (Debian/Ubuntu) or `brew install \
poppler`, or set processor.pdftoppm to its path";

/// How a [`PdfPages`] reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PdfLimits {
    /// Rendering resolution of pages without a text layer, in dots per inch.
    pub dpi: u32,
    /// Most pages a PDF may have.
    pub max_pages: usize,
    /// Most pixels one page may render to.
    pub max_page_pixels: u64,
    /// Longest one page's rendering may take.
    pub render_timeout: Duration,
    /// Largest decompressed content stream read for a text layer.
    pub max_stream_bytes: usize,
}

/// Reads PDFs page by page, OCR'ing the pages that have no text layer with `ocr`.
#[derive(Clone)]
pub struct PdfPages {
    program: String,
    /// `pdftoppm`'s version, or why it could not be run: asked on first use (see [`PdfPages::new`]).
    version: std::sync::Arc<std::sync::OnceLock<Result<String, EngineError>>>,
    ocr: std::sync::Arc<dyn TextEngine>,
    limits: PdfLimits,
    parsers: Parsers,
}

impl std::fmt::Debug for PdfPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfPages")
            .field("program", &self.program)
            .field("ocr", &self.ocr.id().to_string())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What one page needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Page {
    /// Its text layer.
    Text(String),
    /// Rendering and OCR, at this size in pixels.
    Scan { width: u64, height: u64 },
}

impl Page {
    pub(crate) fn text_len(&self) -> usize {
        match self {
            Page::Text(text) => text.len(),
            Page::Scan { .. } => 0,
        }
    }
}

impl PdfPages {
    /// Bumped whenever the produced text could change.
    const VERSION: &'static str = "1";

    /// An engine rendering scanned pages with `program` (`pdftoppm`). Its version is asked on first use, not
    /// here (a run that renders no page starts no program). A missing program is not an error here: a page that
    /// needs it then fails with a message saying how to install it (pages with a text layer still read). The
    /// page tree and text layers are read on `parsers`.
    pub async fn new(
        program: &str,
        ocr: std::sync::Arc<dyn TextEngine>,
        limits: PdfLimits,
        parsers: Parsers,
    ) -> Self {
        PdfPages {
            program: program.to_owned(),
            version: std::sync::Arc::default(),
            ocr,
            limits,
            parsers,
        }
    }

    /// `pdftoppm`'s version, asked once (blocking, a few milliseconds: only the first page rendered or PDF
    /// keyed in a process pays it).
    fn version(&self) -> &Result<String, EngineError> {
        self.version.get_or_init(|| {
            let out = subprocess::probe("pdftoppm", &self.program, "-v", INSTALL_HINT)?;
            // pdftoppm prints its version on stderr: "pdftoppm version 22.12.0".
            Ok(String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(2))
                .unwrap_or("unknown")
                .to_owned())
        })
    }

    /// Renders page `number` (1-based) to a grey PNG.
    async fn render(&self, pdf: &[u8], number: usize) -> Result<Vec<u8>, EngineError> {
        if let Err(e) = self.version() {
            return Err(e.clone());
        }
        let failed = |reason: String| EngineError::Unreadable {
            engine: "pdftoppm".into(),
            reason,
        };
        let page = number.to_string();
        let dpi = self.limits.dpi.to_string();
        let out = subprocess::run(
            "pdftoppm",
            &self.program,
            &["-f", &page, "-l", &page, "-r", &dpi, "-gray", "-png", "-"],
            pdf,
            self.limits.render_timeout,
        )
        .await?;
        if !out.status.success() || out.stdout.is_empty() {
            return Err(failed(format!(
                "page {number} could not be rendered ({})",
                out.status
            )));
        }
        Ok(out.stdout)
    }
}

#[async_trait]
impl TextEngine for PdfPages {
    fn id(&self) -> EngineId {
        // Everything that changes the text of a scanned page: the renderer and its resolution, and the OCR
        // engine with its version and languages.
        let renderer = self.version().as_deref().unwrap_or("missing");
        EngineId::new(
            "pdf-pages",
            format!(
                "{}+lopdf0.47+pdftoppm{renderer}@{}dpi+{}",
                Self::VERSION,
                self.limits.dpi,
                self.ocr.id()
            ),
        )
    }

    fn accepts(&self, kind: DocumentKind) -> bool {
        kind == DocumentKind::Pdf
    }

    async fn text(&self, _kind: DocumentKind, bytes: &[u8]) -> Result<String, EngineError> {
        let pages = self
            .parsers
            .pages(ENGINE, self.limits.clone(), bytes)
            .await?;
        let mut texts = Vec::with_capacity(pages.len());
        for (i, page) in pages.into_iter().enumerate() {
            let text = match page {
                Page::Text(t) => t,
                Page::Scan { width, height } => {
                    tracing::debug!(
                        page = i + 1,
                        width,
                        height,
                        "rendering a page without text layer"
                    );
                    let image = self.render(bytes, i + 1).await?;
                    self.ocr.text(DocumentKind::Png, &image).await?
                }
            };
            texts.push(text);
        }
        let text = normalise(&texts.join("\n\n"));
        if text.trim().is_empty() {
            return Err(EngineError::Unreadable {
                engine: ENGINE.into(),
                reason: "no page has readable text".into(),
            });
        }
        Ok(text)
    }
}

/// Reads the page tree within the limits: each page's text layer, or its rendering size if it has none. No
/// stream is decompressed past `max_stream_bytes`, object streams included (lopdf decodes them as it loads).
pub(crate) fn plan(bytes: &[u8], limits: &PdfLimits) -> Result<Vec<Page>, Refusal> {
    let doc = Document::load_mem_with_options(
        bytes,
        LoadOptions::with_max_decompressed_size(limits.max_stream_bytes),
    )
    .map_err(|e| Refusal::Unreadable(format!("not a readable PDF: {e}")))?;
    let claimed = doc
        .catalog()
        .ok()
        .and_then(|c| c.get(b"Pages").ok()?.as_reference().ok())
        .and_then(|id| {
            doc.get_dictionary(id)
                .ok()?
                .get(b"Count")
                .ok()?
                .as_i64()
                .ok()
        })
        .unwrap_or(0);
    let over = |n: String| {
        Refusal::OverBudget(format!(
            "the PDF has {n} pages; at most {} are read (processor.max_pdf_pages)",
            limits.max_pages
        ))
    };
    if usize::try_from(claimed).is_ok_and(|c| c > limits.max_pages) {
        return Err(over(claimed.to_string()));
    }
    let ids: Vec<ObjectId> = doc.page_iter().take(limits.max_pages + 1).collect();
    if ids.len() > limits.max_pages {
        return Err(over(format!("more than {}", limits.max_pages)));
    }
    if ids.is_empty() {
        return Err(Refusal::Unreadable("the PDF has no pages".into()));
    }
    let mut pages = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let text = doc
            .extract_text_with_limit(&[number], limits.max_stream_bytes)
            .map(|t| normalise(&t))
            .unwrap_or_default();
        if !text.trim().is_empty() {
            pages.push(Page::Text(text));
            continue;
        }
        let [x0, y0, x1, y1] = media_box(&doc, *id).ok_or_else(|| {
            Refusal::Unreadable(format!("page {number} has no readable MediaBox"))
        })?;
        let px =
            |points: f32| (f64::from(points.abs()) * f64::from(limits.dpi) / 72.0).ceil() as u64;
        let (width, height) = (px(x1 - x0), px(y1 - y0));
        if width.saturating_mul(height) > limits.max_page_pixels {
            return Err(Refusal::OverBudget(format!(
                "page {number} would render at {width} × {height} pixels at {} dpi, above the {} allowed \
                 (processor.max_page_pixels)",
                limits.dpi, limits.max_page_pixels
            )));
        }
        pages.push(Page::Scan { width, height });
    }
    Ok(pages)
}

/// A page's `MediaBox`, inherited from its ancestors when it has none of its own.
fn media_box(doc: &Document, page: ObjectId) -> Option<[f32; 4]> {
    let mut id = page;
    // A page tree deeper than this is not one a scanner wrote.
    for _ in 0..32 {
        let dict = doc.get_dictionary(id).ok()?;
        if let Ok(Object::Array(a)) = dict.get(b"MediaBox") {
            let v: Vec<f32> = a.iter().filter_map(|o| o.as_float().ok()).collect();
            return match v.as_slice() {
                [a, b, c, d] if [a, b, c, d].iter().all(|x| x.is_finite()) => {
                    Some([*a, *b, *c, *d])
                }
                _ => None,
            };
        }
        id = dict.get(b"Parent").ok()?.as_reference().ok()?;
    }
    None
}
