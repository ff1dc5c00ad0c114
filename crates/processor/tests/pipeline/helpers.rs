//! The seed's document and session helpers (`document_helpers`) write and read the cache types and keys the
//! pipeline uses, with the engine's version in the key.

use fernando_cache_processor::document_helpers::{
    cache_document_hash, cache_llm_extraction, cache_ocr_result, cache_user_session,
    get_document_hash, get_llm_extraction, get_ocr_result, get_user_session,
};
use fernando_cache_store::keys::{DocumentFingerprint, TenantId};
use serde::{Deserialize, Serialize};

use crate::support::redis_store;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Extraction {
    invoice_number: String,
    total_cents: i64,
}

fn sample(n: i64) -> Extraction {
    Extraction {
        invoice_number: format!("INV-{n}"),
        total_cents: 1999 * n,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_helpers_use_their_cache_types_and_engine_versions() {
    let (_server, store) = redis_store();
    let t = TenantId::new("acme").unwrap();
    let fp = DocumentFingerprint::of_bytes(b"%PDF-1.7 invoice");
    let _ = cache_document_hash(&store, &t, &fp, &sample(1))
        .await
        .unwrap();
    let _ = cache_ocr_result(&store, &t, &fp, "tesseract-5.3", &"text".to_owned())
        .await
        .unwrap();
    let _ = cache_llm_extraction(&store, &t, &fp, "rules-1", &fp, &sample(2))
        .await
        .unwrap();
    let _ = cache_user_session(&store, &t, "sess-1", &"alice".to_owned())
        .await
        .unwrap();
    assert_eq!(
        get_document_hash::<Extraction>(&store, &t, &fp)
            .await
            .unwrap(),
        Some(sample(1))
    );
    assert_eq!(
        get_ocr_result::<String>(&store, &t, &fp, "tesseract-5.3")
            .await
            .unwrap()
            .as_deref(),
        Some("text")
    );
    assert_eq!(
        get_ocr_result::<String>(&store, &t, &fp, "tesseract-5.4")
            .await
            .unwrap(),
        None,
        "another engine version reads nothing"
    );
    assert_eq!(
        get_llm_extraction::<Extraction>(&store, &t, &fp, "rules-1", &fp)
            .await
            .unwrap(),
        Some(sample(2))
    );
    assert_eq!(
        get_user_session::<String>(&store, &t, "sess-1")
            .await
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    let snapshot = store.metrics();
    for ty in ["doc_hash", "ocr_result", "llm_extraction", "session"] {
        assert_eq!(
            snapshot.series("acme", ty).unwrap().counters.sets,
            1,
            "{ty}"
        );
    }
}
