DELETE FROM cache_warmup_jobs WHERE strategy = 'predictive' AND name = 'predicted-documents';
CREATE TABLE cache_warmup_jobs_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    tenant_id TEXT,
    cache_type TEXT NOT NULL,
    strategy TEXT NOT NULL CHECK (strategy IN ('scheduled', 'frequency', 'predictive')),
    interval_seconds INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    last_run_at TIMESTAMP,
    next_run_at TIMESTAMP,
    last_status TEXT,
    keys_warmed BIGINT NOT NULL DEFAULT 0
);
INSERT INTO cache_warmup_jobs_old
    SELECT id, name, tenant_id, cache_type,
           CASE strategy WHEN 'frequency_based' THEN 'frequency' ELSE strategy END,
           interval_seconds, priority, enabled, last_run_at, next_run_at, last_status, keys_warmed
    FROM cache_warmup_jobs;
DROP TABLE cache_warmup_jobs;
ALTER TABLE cache_warmup_jobs_old RENAME TO cache_warmup_jobs;
DROP TABLE cache_reference_data;
DROP TABLE cache_access_history;
