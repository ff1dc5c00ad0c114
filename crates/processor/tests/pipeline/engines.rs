//! Real engines on the sample corpus: `tesseract` on a scanned PNG, the PDF text layer, and errors — among them
//! images past the pixel bound (issue 28, item 19).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use fernando_cache_processor::{
    DocumentKind, DocumentProcessor, EngineError, ProcessError, RuleExtractor, StageOutcome,
    Tesseract, TextEngine, TextLayer,
};

use fernando_cache_testkit::hostile;

use crate::support::{redis_store, sample};

async fn tesseract() -> Tesseract {
    let t = Tesseract::new("tesseract", "eng", Duration::from_secs(60)).await;
    assert!(
        t.is_available(),
        "tesseract is not installed: `cargo xtask test` installs the Debian package tesseract-ocr as root; \
         install it (apt-get install tesseract-ocr) to run this test"
    );
    t
}

#[tokio::test]
async fn tesseract_reads_the_scanned_invoice_and_the_rules_find_its_fields() {
    let (_server, store) = redis_store();
    let mut p = DocumentProcessor::new(
        store,
        vec![
            Arc::new(TextLayer::in_process()),
            Arc::new(tesseract().await),
        ],
        Arc::new(RuleExtractor),
        50 << 20,
    );
    p.set_tenant_context("acme".parse().unwrap());
    let scan = sample("acme/scans/RE-2026-0042-scan.png");
    let doc = p.process_file(&scan).await.unwrap();
    assert_eq!(doc.result.kind, DocumentKind::Png);
    assert!(
        doc.result.text_engine.starts_with("tesseract@"),
        "{}",
        doc.result.text_engine
    );
    assert!(
        doc.result.text.contains("ACME Office Supplies"),
        "{}",
        doc.result.text
    );
    let f = &doc.result.fields;
    assert_eq!(f.invoice_number.as_deref(), Some("RE-2026-0042"));
    assert_eq!(f.total.as_deref(), Some("342.60 EUR"));
    assert!(f.ibans.contains("DE89370400440532013000"), "{f:?}");
    let again = p.process_file(&scan).await.unwrap();
    assert_eq!(again.stages.document, StageOutcome::Hit);
    assert!(again.time_saved >= Duration::from_millis(doc.result.text_ms));
}

#[tokio::test]
async fn pdf_text_layers_are_read_directly() {
    let text = TextLayer::in_process()
        .text(
            DocumentKind::Pdf,
            &std::fs::read(sample("acme/letters/contract-renewal.pdf")).unwrap(),
        )
        .await
        .unwrap();
    assert!(
        text.contains("Renewal of the warehouse service contract"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_engine_is_a_per_document_error_saying_how_to_install_it() {
    let (_server, store) = redis_store();
    let missing = Tesseract::new("/nonexistent/tesseract", "eng", Duration::from_secs(5)).await;
    let mut p = DocumentProcessor::new(
        store,
        vec![Arc::new(TextLayer::in_process()), Arc::new(missing)],
        Arc::new(RuleExtractor),
        50 << 20,
    );
    p.set_tenant_context("acme".parse().unwrap());
    let err = p
        .process_file(&sample("acme/scans/receipt.png"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProcessError::Engine(EngineError::Missing { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("apt-get install tesseract-ocr"),
        "{err}"
    );
    // The next document of the batch is fine.
    let ok = p
        .process_file(&sample("acme/letters/payment-reminder.txt"))
        .await
        .unwrap();
    assert_eq!(ok.result.kind, DocumentKind::Text);
    // Unsupported and oversized inputs are clear errors too.
    let err = p.process(&[0, 159, 146, 150], None).await.unwrap_err();
    assert!(
        err.to_string().contains("unsupported document type"),
        "{err}"
    );
    let err = p.process(b"x", Some("application/zip")).await.unwrap_err();
    assert!(err.to_string().contains("application/zip"), "{err}");
}

/// A processor reading text, HTML and PDF directly and images with tesseract, extracting with the rules.
async fn full_processor() -> (fernando_cache_testkit::RedisServer, DocumentProcessor) {
    let (server, store) = redis_store();
    let mut p = DocumentProcessor::new(
        store,
        vec![
            Arc::new(TextLayer::in_process()),
            Arc::new(tesseract().await),
        ],
        Arc::new(RuleExtractor),
        50 << 20,
    );
    p.set_tenant_context("acme".parse().unwrap());
    (server, p)
}

#[tokio::test]
async fn an_html_page_is_read_without_its_markup() {
    let (_server, p) = full_processor().await;
    let page = br#"<!DOCTYPE html>
<html><head><title>Invoice</title><style>td { color: red }</style>
<script>var secret = "INV-FROM-SCRIPT";</script></head>
<body><h1>ACME Office Supplies</h1>
<p>Rechnung Nr. <b>RE-2026-0777</b></p>
<table><tr><td>Gesamtbetrag</td><td>1.234,50&nbsp;EUR</td></tr></table>
<p>Kontakt: <a href="mailto:billing@example.com">billing@example.com</a> &amp; mehr</p>
</body></html>"#;
    let doc = p.process(page, None).await.unwrap();
    assert_eq!(doc.result.kind, DocumentKind::Html);
    let text = &doc.result.text;
    assert!(text.contains("Rechnung Nr. RE-2026-0777"), "{text}");
    assert!(text.contains("& mehr"), "entities decoded: {text}");
    for markup in ["<", ">", "color: red", "INV-FROM-SCRIPT", "secret"] {
        assert!(
            !text.contains(markup),
            "{markup:?} left in the text: {text}"
        );
    }
    assert_eq!(
        doc.result.fields.invoice_number.as_deref(),
        Some("RE-2026-0777")
    );
    assert!(doc.result.fields.emails.contains("billing@example.com"));
    // Declared as HTML, the same bytes are the same document.
    let again = p
        .process(page, Some("text/html; charset=utf-8"))
        .await
        .unwrap();
    assert_eq!(again.stages.document, StageOutcome::Hit);
}

#[tokio::test]
async fn anything_else_is_an_unsupported_type_that_names_what_was_detected() {
    let (_server, p) = full_processor().await;
    let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00some compressed bytes\x00\x01";
    let err = p.process(zip, None).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ProcessError::UnknownKind(_)), "{msg}");
    assert!(msg.contains("unsupported document type"), "{msg}");
    assert!(msg.contains("application/zip"), "names what it saw: {msg}");
    let elf = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00";
    let msg = p.process(elf, None).await.unwrap_err().to_string();
    assert!(
        msg.contains("unsupported document type") && msg.contains("detected"),
        "{msg}"
    );
    let noise: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) | 0x80).collect();
    let msg = p.process(&noise, None).await.unwrap_err().to_string();
    assert!(msg.contains("no known format"), "{msg}");
}

/// Two scans as the pages of one TIFF, as a scanner writes them.
fn two_page_tiff() -> Vec<u8> {
    fernando_cache_testkit::documents::multi_page_tiff(&[
        &sample("acme/scans/RE-2026-0042-scan.png"),
        &sample("acme/scans/receipt.png"),
    ])
}

#[tokio::test]
async fn every_page_of_a_multi_page_tiff_is_read() {
    let (_server, p) = full_processor().await;
    let doc = p.process(&two_page_tiff(), None).await.unwrap();
    assert_eq!(doc.result.kind, DocumentKind::Tiff);
    let text = &doc.result.text;
    assert!(text.contains("RE-2026-0042"), "page 1: {text}");
    assert!(text.contains("CITY CAFE"), "page 2: {text}");
    let first = text.find("RE-2026-0042").unwrap();
    assert!(
        text.find("CITY CAFE").unwrap() > first,
        "pages in order: {text}"
    );
}

#[tokio::test]
async fn images_past_the_pixel_bound_are_refused_from_their_header_before_tesseract_runs() {
    let t = tesseract().await.with_max_page_pixels(40_000_000);
    // 25 000 × 25 000 pixels in under 500 KB: tesseract took 662 MB and 8 s of CPU on such a PNG.
    let png = hostile::huge_png(25_000, 25_000);
    let started = Instant::now();
    let err = t.text(DocumentKind::Png, &png).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EngineError::OverBudget { .. }), "{err:?}");
    assert!(msg.contains("25000 × 25000 pixels"), "{msg}");
    assert!(msg.contains("processor.max_page_pixels"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused from the header, not decoded: {:?}",
        started.elapsed()
    );
    // The bytes decide, not the declared kind.
    let err = t.text(DocumentKind::Jpeg, &png).await.unwrap_err();
    assert!(
        err.to_string().contains("processor.max_page_pixels"),
        "{err}"
    );

    // A scanner's two-page TIFF whose second page is 10 000 × 10 000 pixels (100 MP).
    let receipt = sample("acme/scans/receipt.png");
    let tiff = hostile::tiff_with_blank_page(&receipt, (10_000, 10_000));
    let err = t.text(DocumentKind::Tiff, &tiff).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("page 2 of the image is 10000 × 10000 pixels"),
        "{err}"
    );
    // Within the bound the same kind of TIFF is read, every page.
    let fine = hostile::tiff_with_blank_page(&receipt, (2_000, 2_000));
    let text = t.text(DocumentKind::Tiff, &fine).await.unwrap();
    assert!(text.contains("CITY CAFE"), "{text}");

    // Through the pipeline (the default bound, 40 MP), a per-document error; the next document is fine.
    let (_server, p) = full_processor().await;
    let err = p.process(&png, None).await.unwrap_err();
    assert!(
        matches!(err, ProcessError::Engine(EngineError::OverBudget { .. })),
        "{err:?}"
    );
    let ok = p
        .process_file(&sample("acme/scans/receipt.png"))
        .await
        .unwrap();
    assert!(ok.result.text.contains("CITY CAFE"), "{}", ok.result.text);
}
