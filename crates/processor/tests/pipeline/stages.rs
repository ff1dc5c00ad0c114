//! Stage by stage: full hits, engine upgrades, tenants, concurrent duplicates, Redis going away.

use std::time::Duration;

use fernando_cache_processor::StageOutcome::{Hit, Miss};
use tokio::task::JoinSet;

use crate::support::{CountingText, processor, redis_store, sample};

#[tokio::test]
async fn the_second_processing_of_a_document_is_a_full_hit() {
    let (_server, store) = redis_store();
    let engine = CountingText::new("1");
    let p = processor(store, engine.clone(), "acme");
    let path = sample("acme/invoices/RE-2026-0042.txt");
    let first = p.process_file(&path).await.unwrap();
    assert_eq!(
        (
            first.stages.document,
            first.stages.ocr,
            first.stages.extraction
        ),
        (Miss, Miss, Miss)
    );
    assert_eq!(
        first.result.fields.invoice_number.as_deref(),
        Some("RE-2026-0042")
    );
    assert_eq!(first.result.fields.total.as_deref(), Some("342.60 EUR"));
    let second = p.process_file(&path).await.unwrap();
    assert_eq!(
        (
            second.stages.document,
            second.stages.ocr,
            second.stages.extraction
        ),
        (Hit, Hit, Hit)
    );
    assert_eq!(second.result, first.result);
    assert_eq!(engine.calls(), 1);
    // The resent copy has another name but the same bytes: also a full hit.
    let resent = p
        .process_file(&sample("acme/invoices/RE-2026-0042 (resent).txt"))
        .await
        .unwrap();
    assert_eq!(resent.stages.document, Hit);
    let t = p.telemetry();
    assert_eq!((t.documents_cached(), t.documents_processed()), (2, 1));
    assert_eq!(t.ocr.hits, 2);
}

#[tokio::test]
async fn a_new_engine_version_misses_the_text_stage_only() {
    let (_server, store) = redis_store();
    let v1 = CountingText::new("1");
    let path = sample("acme/invoices/INV-7781.pdf");
    let first = processor(store.clone(), v1.clone(), "acme")
        .process_file(&path)
        .await
        .unwrap();
    assert_eq!(
        first.result.fields.invoice_number.as_deref(),
        Some("INV-7781")
    );
    let v2 = CountingText::new("2");
    let again = processor(store, v2.clone(), "acme")
        .process_file(&path)
        .await
        .unwrap();
    assert_eq!(
        again.stages.ocr, Miss,
        "the upgraded engine reads the document again"
    );
    assert_eq!(
        again.stages.extraction, Hit,
        "same text, same extractor: its fields are reused"
    );
    assert_eq!(
        again.stages.document, Miss,
        "the whole result names the engines it came from"
    );
    assert_eq!(again.result.text_engine, "counting-text@2");
    assert_eq!((v1.calls(), v2.calls()), (1, 1));
}

#[tokio::test]
async fn tenants_do_not_share_entries() {
    let (_server, store) = redis_store();
    let engine = CountingText::new("1");
    let acme = processor(store.clone(), engine.clone(), "acme");
    let globex = processor(store, engine.clone(), "globex");
    let path = sample("acme/invoices/RE-2026-0042.txt");
    acme.process_file(&path).await.unwrap();
    let other = globex
        .process_file(&sample("globex/invoices/RE-2026-0042.txt"))
        .await
        .unwrap();
    assert_eq!(
        (
            other.stages.document,
            other.stages.ocr,
            other.stages.extraction
        ),
        (Miss, Miss, Miss)
    );
    assert_eq!(engine.calls(), 2);
    let fp = other.result.fingerprint.parse().unwrap();
    assert!(acme.cached(&fp).await.unwrap().is_some());
    assert!(
        processor(acme.store().clone(), engine, "initech")
            .cached(&fp)
            .await
            .unwrap()
            .is_none(),
        "a third tenant cannot read it by fingerprint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_of_one_document_process_once() {
    let (_server, store) = redis_store();
    let engine = CountingText::slow("1", Duration::from_millis(200));
    let p = processor(store, engine.clone(), "acme");
    let bytes = std::fs::read(sample("acme/invoices/FA-553.pdf")).unwrap();
    let mut set = JoinSet::new();
    for _ in 0..20 {
        let (p, bytes) = (p.clone(), bytes.clone());
        set.spawn(async move { p.process(&bytes, Some("application/pdf")).await });
    }
    let mut misses = 0;
    while let Some(r) = set.join_next().await {
        let doc = r.unwrap().unwrap();
        assert_eq!(doc.result.fields.invoice_number.as_deref(), Some("FA-553"));
        if doc.stages.document == Miss {
            misses += 1;
        }
    }
    assert_eq!(
        engine.calls(),
        1,
        "one upload processed, nineteen waited for it"
    );
    assert_eq!(misses, 1);
}

#[tokio::test]
async fn redis_killed_mid_batch_the_batch_completes() {
    let (mut server, store) = redis_store();
    let engine = CountingText::new("1");
    let p = processor(store, engine.clone(), "acme");
    let batch = [
        "acme/invoices/RE-2026-0042.txt",
        "acme/invoices/INV-7781.pdf",
        "acme/letters/payment-reminder.txt",
        "acme/invoices/FA-553.pdf",
        "acme/letters/contract-renewal.pdf",
        "acme/invoices/RE-2026-0042 (resent).txt",
    ];
    let mut done = Vec::new();
    for (i, rel) in batch.iter().enumerate() {
        if i == 2 {
            server.kill();
        }
        let doc = p
            .process_file(&sample(rel))
            .await
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        done.push(doc);
    }
    assert_eq!(done.len(), batch.len());
    assert_eq!(
        done[3].result.fields.invoice_number.as_deref(),
        Some("FA-553")
    );
    // Without Redis nothing is cached: the resent copy is processed again, not lost.
    assert_eq!(done[5].stages.document, Miss);
    assert_eq!(engine.calls(), batch.len());
}
