//! Real engines on the sample corpus: `tesseract` on a scanned PNG, the PDF text layer, and errors.

use std::{sync::Arc, time::Duration};

use fernando_cache_processor::{
    DocumentKind, DocumentProcessor, EngineError, ProcessError, RuleExtractor, StageOutcome,
    Tesseract, TextEngine, TextLayer,
};

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
        vec![Arc::new(TextLayer::default()), Arc::new(tesseract().await)],
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
    let text = TextLayer::default()
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
        vec![Arc::new(TextLayer::default()), Arc::new(missing)],
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
