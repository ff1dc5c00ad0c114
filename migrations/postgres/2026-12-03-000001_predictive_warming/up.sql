-- How often each document was read, per tenant and time bucket (warming.history_bucket), summed over every
-- replica: each one adds its own reads (upsert, reads = reads + excluded.reads). The predictive and
-- frequency-based warmup jobs read it back; it is pruned with the statistics (issue 14 item 5).
CREATE TABLE cache_access_history (
    tenant_id TEXT NOT NULL,
    doc_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    bucket_start TIMESTAMP NOT NULL,
    reads BIGINT NOT NULL DEFAULT 0,
    -- What recomputing the document last cost: engine milliseconds and millionths of the currency.
    cost_ms BIGINT NOT NULL DEFAULT 0,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, doc_key, bucket_start)
);
CREATE INDEX cache_access_history_by_time ON cache_access_history (bucket_start);

-- Reference data warmed into `reference_data` by the `scheduled` jobs, unless warming.reference_file names a
-- file instead. Operators edit these rows; NULL tenant = global.
CREATE TABLE cache_reference_data (
    id BIGSERIAL PRIMARY KEY,
    tenant_id TEXT,
    key TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE UNIQUE INDEX cache_reference_data_by_key ON cache_reference_data (COALESCE(tenant_id, ''), key);

INSERT INTO cache_reference_data (tenant_id, key, value) VALUES
    (NULL, 'currency:EUR', '{"name":"Euro","minor_units":2}'),
    (NULL, 'currency:USD', '{"name":"US Dollar","minor_units":2}'),
    (NULL, 'currency:GBP', '{"name":"Pound Sterling","minor_units":2}'),
    (NULL, 'currency:CHF', '{"name":"Swiss Franc","minor_units":2}'),
    (NULL, 'currency:JPY', '{"name":"Yen","minor_units":0}'),
    (NULL, 'vat_rate:AT', '{"standard":20.0}'),
    (NULL, 'vat_rate:BE', '{"standard":21.0}'),
    (NULL, 'vat_rate:DE', '{"standard":19.0}'),
    (NULL, 'vat_rate:ES', '{"standard":21.0}'),
    (NULL, 'vat_rate:FR', '{"standard":20.0}'),
    (NULL, 'vat_rate:IT', '{"standard":22.0}'),
    (NULL, 'vat_rate:NL', '{"standard":21.0}'),
    (NULL, 'vat_rate:PL', '{"standard":23.0}'),
    (NULL, 'vat_rate:SE', '{"standard":25.0}');

-- The job kinds by the names operators read: frequency_based, predictive, scheduled.
ALTER TABLE cache_warmup_jobs DROP CONSTRAINT cache_warmup_jobs_strategy_check;
UPDATE cache_warmup_jobs SET strategy = 'frequency_based' WHERE strategy = 'frequency';
ALTER TABLE cache_warmup_jobs ADD CONSTRAINT cache_warmup_jobs_strategy_check
    CHECK (strategy IN ('scheduled', 'frequency_based', 'predictive'));
INSERT INTO cache_warmup_jobs (name, tenant_id, cache_type, strategy, interval_seconds, priority, enabled) VALUES
    ('predicted-documents', NULL, 'doc_hash', 'predictive', 300, 60, true);
