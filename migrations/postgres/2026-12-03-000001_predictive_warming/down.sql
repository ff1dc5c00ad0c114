DELETE FROM cache_warmup_jobs WHERE strategy = 'predictive' AND name = 'predicted-documents';
ALTER TABLE cache_warmup_jobs DROP CONSTRAINT cache_warmup_jobs_strategy_check;
UPDATE cache_warmup_jobs SET strategy = 'frequency' WHERE strategy = 'frequency_based';
ALTER TABLE cache_warmup_jobs ADD CONSTRAINT cache_warmup_jobs_strategy_check
    CHECK (strategy IN ('scheduled', 'frequency', 'predictive'));
DROP TABLE cache_reference_data;
DROP TABLE cache_access_history;
