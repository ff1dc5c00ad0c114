//! PDFs as they really arrive (issue 14): a scan saved as a PDF (an image per page, no text layer), a mixed
//! PDF (a typed page and a scanned one), and the bombs — a PDF claiming 100 000 pages and a page that would
//! render at 60 000 × 60 000 pixels — against real `pdftoppm` and `tesseract`. The PDFs are built here from the
//! sample scans, so the text the OCR must find is known.

use std::{sync::Arc, time::Duration};

use fernando_cache_processor::{
    DocumentKind, DocumentProcessor, Parsers, PdfLimits, PdfPages, ProcessError, RuleExtractor,
    Tesseract, TextEngine, TextLayer,
};
use fernando_cache_testkit::documents::{PdfPage, pdf as build};

use crate::support::{redis_store, sample};

/// A PDF of typed lines and sample scans (`Err(path)` names a scan under `samples/`).
fn build_pdf(
    pages: &[Result<&str, &str>],
    claimed: Option<i64>,
    media: Option<(f32, f32)>,
) -> Vec<u8> {
    let scans: Vec<std::path::PathBuf> = pages
        .iter()
        .map(|p| match p {
            Err(rel) => sample(rel),
            Ok(_) => std::path::PathBuf::new(),
        })
        .collect();
    let spec: Vec<PdfPage<'_>> = pages
        .iter()
        .zip(&scans)
        .map(|(p, scan)| match p {
            Ok(line) => PdfPage::Typed(line),
            Err(_) => PdfPage::Scan(scan),
        })
        .collect();
    build(&spec, claimed, media)
}

async fn engine(limits: PdfLimits) -> PdfPages {
    let ocr = Tesseract::new("tesseract", "eng", Duration::from_secs(60)).await;
    assert!(
        ocr.is_available(),
        "tesseract is not installed: `cargo xtask test` installs tesseract-ocr as root"
    );
    let pdf = PdfPages::new("pdftoppm", Arc::new(ocr), limits, Parsers::in_process()).await;
    assert!(
        !pdf.id().version.contains("missing"),
        "pdftoppm is not installed: `cargo xtask test` installs poppler-utils as root"
    );
    pdf
}

fn limits() -> PdfLimits {
    PdfLimits {
        dpi: 200,
        max_pages: 50,
        max_page_pixels: 40_000_000,
        render_timeout: Duration::from_secs(60),
        max_stream_bytes: 64 << 20,
    }
}

#[tokio::test]
async fn a_scanned_invoice_saved_as_a_pdf_is_ocrd_and_its_fields_found() {
    let (_server, store) = redis_store();
    let pdf = engine(limits()).await;
    let mut p = DocumentProcessor::new(
        store,
        vec![Arc::new(pdf), Arc::new(TextLayer::in_process())],
        Arc::new(RuleExtractor),
        50 << 20,
    );
    p.set_tenant_context("acme".parse().unwrap());
    let scan = build_pdf(&[Err("acme/scans/RE-2026-0042-scan.png")], None, None);
    // The text layer alone refuses it: there is none.
    let err = TextLayer::in_process()
        .text(DocumentKind::Pdf, &scan)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no text layer"), "{err}");

    let doc = p.process(&scan, Some("application/pdf")).await.unwrap();
    assert!(
        doc.result.text_engine.starts_with("pdf-pages@"),
        "{}",
        doc.result.text_engine
    );
    assert!(
        doc.result.text.contains("ACME Office Supplies"),
        "{}",
        doc.result.text
    );
    assert_eq!(
        doc.result.fields.invoice_number.as_deref(),
        Some("RE-2026-0042")
    );
    // The stage key names the renderer, its resolution and the OCR engine with its languages.
    for part in ["pdftoppm", "200dpi", "tesseract@", "+eng"] {
        assert!(
            doc.result.text_engine.contains(part),
            "{part}: {}",
            doc.result.text_engine
        );
    }
}

#[tokio::test]
async fn a_mixed_pdf_reads_typed_pages_directly_and_ocrs_scanned_ones_in_page_order() {
    let pdf = engine(limits()).await;
    let mixed = build_pdf(
        &[
            Ok("Cover letter for order 77123"),
            Err("acme/scans/receipt.png"),
            Ok("Appendix: terms and conditions"),
        ],
        None,
        None,
    );
    let text = pdf.text(DocumentKind::Pdf, &mixed).await.unwrap();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {text}"))
    };
    assert!(
        at("Cover letter for order 77123") < at("CITY CAFE"),
        "{text}"
    );
    assert!(at("CITY CAFE") < at("Appendix: terms"), "{text}");
}

#[tokio::test]
async fn pdf_bombs_are_clear_errors_not_out_of_memory() {
    let pdf = engine(limits()).await;
    let claims = build_pdf(&[Ok("one real page")], Some(100_000), None);
    let err = pdf.text(DocumentKind::Pdf, &claims).await.unwrap_err();
    assert!(err.to_string().contains("100000 pages"), "{err}");
    assert!(err.to_string().contains("max_pdf_pages"), "{err}");

    let many: Vec<Result<&str, &str>> = (0..51).map(|_| Ok("page")).collect();
    let err = pdf
        .text(DocumentKind::Pdf, &build_pdf(&many, None, None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 50"), "{err}");

    // 60 000 × 60 000 pixels at 200 dpi is a 21 600-point square page.
    let huge = build_pdf(
        &[Err("acme/scans/receipt.png")],
        None,
        Some((21_600.0, 21_600.0)),
    );
    let err = pdf.text(DocumentKind::Pdf, &huge).await.unwrap_err();
    assert!(err.to_string().contains("60000 × 60000 pixels"), "{err}");
    assert!(err.to_string().contains("max_page_pixels"), "{err}");
}

#[tokio::test]
async fn without_pdftoppm_a_scanned_pdf_says_how_to_install_it_and_typed_pdfs_still_read() {
    let ocr = Tesseract::new("tesseract", "eng", Duration::from_secs(60)).await;
    let pdf = PdfPages::new(
        "/nonexistent/pdftoppm",
        Arc::new(ocr),
        limits(),
        Parsers::in_process(),
    )
    .await;
    let typed = build_pdf(&[Ok("Invoice number: INV-3001")], None, None);
    assert!(
        pdf.text(DocumentKind::Pdf, &typed)
            .await
            .unwrap()
            .contains("INV-3001")
    );
    let scan = build_pdf(&[Err("acme/scans/receipt.png")], None, None);
    let err = pdf.text(DocumentKind::Pdf, &scan).await.unwrap_err();
    assert!(
        err.to_string().contains("apt-get install poppler-utils"),
        "{err}"
    );
    assert!(matches!(
        ProcessError::from(err),
        ProcessError::Engine(fernando_cache_processor::EngineError::Missing { .. })
    ));
}
