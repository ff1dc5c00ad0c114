UPDATE cache_invalidation_rules
SET cache_types = 'ocr_result,llm_extraction,doc_hash'
WHERE name = 'document-updated' AND cache_types = 'ocr_result,llm_extraction,doc_hash,api_response';
