//! The seed's document and session helpers (`cache_document_hash`, `cache_ocr_result`, …) as free functions
//! over a [`Store`]: thin calls of its typed API with the key layouts of [`fernando_cache_keys::layout`], the
//! ones the pipeline uses — a document's text and fields are the pipeline's own `ocr_result` and
//! `llm_extraction` entries, and everything about a document sits under its subject, so an event about the
//! document reaches what these wrote.
//!
//! ```
//! use fernando_cache_processor::document_helpers::{cache_ocr_result, get_ocr_result};
//! use fernando_cache_store::{Store, config::{Environment, Settings}, keys::{DocumentFingerprint, TenantId}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::from_settings(&Settings::embedded(Environment::Test)?)?;
//! let (tenant, fp) = (TenantId::new("acme")?, DocumentFingerprint::of_bytes(b"%PDF-1.7 invoice"));
//! let _ = cache_ocr_result(&store, &tenant, &fp, "tesseract-5.3", "Invoice 7781").await?;
//! let text: Option<String> = get_ocr_result(&store, &tenant, &fp, "tesseract-5.3").await?;
//! assert_eq!(text.as_deref(), Some("Invoice 7781"));
//! # Ok(()) }
//! ```

use fernando_cache_config::CacheType;
use fernando_cache_keys::{DocumentFingerprint, TenantId, layout::DocumentKeys};
use fernando_cache_store::{Store, StoreError, WriteOutcome};
use serde::{Serialize, de::DeserializeOwned};

/// Caches a processed document's result under its fingerprint (`doc_hash`, the document's own entry).
///
/// # Errors
/// As [`Store::set`].
pub async fn cache_document_hash<T: Serialize + ?Sized>(
    store: &Store,
    tenant: &TenantId,
    fingerprint: &DocumentFingerprint,
    value: &T,
) -> Result<WriteOutcome, StoreError> {
    let keys = DocumentKeys::new(fingerprint);
    store
        .set(tenant, &CacheType::DOC_HASH, keys.document(), value)
        .await
}

/// Reads a processed document's result by fingerprint (`doc_hash`).
///
/// # Errors
/// As [`Store::get`].
pub async fn get_document_hash<T: DeserializeOwned>(
    store: &Store,
    tenant: &TenantId,
    fingerprint: &DocumentFingerprint,
) -> Result<Option<T>, StoreError> {
    let keys = DocumentKeys::new(fingerprint);
    store
        .get(tenant, &CacheType::DOC_HASH, keys.document())
        .await
}

/// Caches a document's OCR result (`ocr_result`); `engine` (name and version) is part of the key, so a new
/// engine never reads an old engine's output.
///
/// # Errors
/// As [`Store::set`].
pub async fn cache_ocr_result<T: Serialize + ?Sized>(
    store: &Store,
    tenant: &TenantId,
    fingerprint: &DocumentFingerprint,
    engine: &str,
    value: &T,
) -> Result<WriteOutcome, StoreError> {
    let key = DocumentKeys::new(fingerprint).text(engine);
    store.set(tenant, &CacheType::OCR_RESULT, &key, value).await
}

/// Reads a document's OCR result for one engine (`ocr_result`).
///
/// # Errors
/// As [`Store::get`].
pub async fn get_ocr_result<T: DeserializeOwned>(
    store: &Store,
    tenant: &TenantId,
    fingerprint: &DocumentFingerprint,
    engine: &str,
) -> Result<Option<T>, StoreError> {
    let key = DocumentKeys::new(fingerprint).text(engine);
    store.get(tenant, &CacheType::OCR_RESULT, &key).await
}

/// Caches the fields one extractor (name and version) found in a document's text (`llm_extraction`), keyed by
/// the document and by the text (its fingerprint), as the pipeline does.
///
/// # Errors
/// As [`Store::set`].
pub async fn cache_llm_extraction<T: Serialize + ?Sized>(
    store: &Store,
    tenant: &TenantId,
    fingerprint: &DocumentFingerprint,
    extractor: &str,
    text: &DocumentFingerprint,
    value: &T,
) -> Result<WriteOutcome, StoreError> {
    let key = DocumentKeys::new(fingerprint).fields(extractor, text);
    store
        .set(tenant, &CacheType::LLM_EXTRACTION, &key, value)
        .await
}

/// Reads the fields one extractor found in a document's text (`llm_extraction`).
///
/// # Errors
/// As [`Store::get`].
pub async fn get_llm_extraction<T: DeserializeOwned>(
    store: &Store,
    tenant: &TenantId,
    fingerprint: &DocumentFingerprint,
    extractor: &str,
    text: &DocumentFingerprint,
) -> Result<Option<T>, StoreError> {
    let key = DocumentKeys::new(fingerprint).fields(extractor, text);
    store.get(tenant, &CacheType::LLM_EXTRACTION, &key).await
}

/// Caches a user's session data (`session`) under the session id (the subject of `user.logout` events).
///
/// # Errors
/// As [`Store::set`].
pub async fn cache_user_session<T: Serialize + ?Sized>(
    store: &Store,
    tenant: &TenantId,
    session_id: &str,
    value: &T,
) -> Result<WriteOutcome, StoreError> {
    store
        .set(tenant, &CacheType::SESSION, session_id, value)
        .await
}

/// Reads a user's session data (`session`).
///
/// # Errors
/// As [`Store::get`].
pub async fn get_user_session<T: DeserializeOwned>(
    store: &Store,
    tenant: &TenantId,
    session_id: &str,
) -> Result<Option<T>, StoreError> {
    store.get(tenant, &CacheType::SESSION, session_id).await
}
