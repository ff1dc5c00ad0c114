//! The seed's document and session helpers (`cache_document_hash`, `cache_ocr_result`, …): thin calls of the
//! typed API with the key layouts of [`fernando_cache_keys::layout`], the same ones the document pipeline
//! uses, so an entry written here is the entry the pipeline reads and an event about the document reaches it.

use fernando_cache_config::CacheType;
use fernando_cache_keys::{DocumentFingerprint, TenantId, layout::DocumentKeys};
use serde::{Serialize, de::DeserializeOwned};

use crate::{Store, StoreError, WriteOutcome};

impl Store {
    /// Caches a processed document's result under its fingerprint (`doc_hash`, the document's own entry).
    ///
    /// # Errors
    /// As [`Store::set`].
    pub async fn cache_document_hash<T: Serialize + ?Sized>(
        &self,
        tenant: &TenantId,
        fingerprint: &DocumentFingerprint,
        value: &T,
    ) -> Result<WriteOutcome, StoreError> {
        let keys = DocumentKeys::new(fingerprint);
        self.set(tenant, &CacheType::DOC_HASH, keys.document(), value)
            .await
    }

    /// Reads a processed document's result by fingerprint (`doc_hash`).
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn get_document_hash<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        fingerprint: &DocumentFingerprint,
    ) -> Result<Option<T>, StoreError> {
        let keys = DocumentKeys::new(fingerprint);
        self.get(tenant, &CacheType::DOC_HASH, keys.document())
            .await
    }

    /// Caches a document's OCR result (`ocr_result`); `engine` (name and version) is part of the key, so a new
    /// engine never reads an old engine's output.
    ///
    /// # Errors
    /// As [`Store::set`].
    pub async fn cache_ocr_result<T: Serialize + ?Sized>(
        &self,
        tenant: &TenantId,
        fingerprint: &DocumentFingerprint,
        engine: &str,
        value: &T,
    ) -> Result<WriteOutcome, StoreError> {
        let key = DocumentKeys::new(fingerprint).text(engine);
        self.set(tenant, &CacheType::OCR_RESULT, &key, value).await
    }

    /// Reads a document's OCR result for one engine (`ocr_result`).
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn get_ocr_result<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        fingerprint: &DocumentFingerprint,
        engine: &str,
    ) -> Result<Option<T>, StoreError> {
        let key = DocumentKeys::new(fingerprint).text(engine);
        self.get(tenant, &CacheType::OCR_RESULT, &key).await
    }

    /// Caches the fields one extractor (name and version) found in a document's text (`llm_extraction`),
    /// keyed by the document and by the text (its fingerprint), as the pipeline does.
    ///
    /// # Errors
    /// As [`Store::set`].
    pub async fn cache_llm_extraction<T: Serialize + ?Sized>(
        &self,
        tenant: &TenantId,
        fingerprint: &DocumentFingerprint,
        extractor: &str,
        text: &DocumentFingerprint,
        value: &T,
    ) -> Result<WriteOutcome, StoreError> {
        let key = DocumentKeys::new(fingerprint).fields(extractor, text);
        self.set(tenant, &CacheType::LLM_EXTRACTION, &key, value)
            .await
    }

    /// Reads the fields one extractor found in a document's text (`llm_extraction`).
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn get_llm_extraction<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        fingerprint: &DocumentFingerprint,
        extractor: &str,
        text: &DocumentFingerprint,
    ) -> Result<Option<T>, StoreError> {
        let key = DocumentKeys::new(fingerprint).fields(extractor, text);
        self.get(tenant, &CacheType::LLM_EXTRACTION, &key).await
    }

    /// Caches a user's session data (`session`) under the session id (the subject of `user.logout` events).
    ///
    /// # Errors
    /// As [`Store::set`].
    pub async fn cache_user_session<T: Serialize + ?Sized>(
        &self,
        tenant: &TenantId,
        session_id: &str,
        value: &T,
    ) -> Result<WriteOutcome, StoreError> {
        self.set(tenant, &CacheType::SESSION, session_id, value)
            .await
    }

    /// Reads a user's session data (`session`).
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn get_user_session<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        session_id: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get(tenant, &CacheType::SESSION, session_id).await
    }
}
