-- A document's HTTP copies (GET /v1/documents/{sha256}, cached as api_response under the document's
-- fingerprint) are derived from it too: the seeded document rule reaches them. A rule an operator changed is
-- left as it is.
UPDATE cache_invalidation_rules
SET cache_types = 'ocr_result,llm_extraction,doc_hash,api_response'
WHERE name = 'document-updated' AND cache_types = 'ocr_result,llm_extraction,doc_hash';
