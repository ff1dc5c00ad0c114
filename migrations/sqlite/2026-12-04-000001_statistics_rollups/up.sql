-- Downsampled statistics for the dashboard (issue 16 item 2): cache_statistics' rows summed per hour
-- (resolution 3600) and per day (86400), kept by the recorder in the same transaction as the rows themselves, so
-- a 30-day range reads 30 rows per (tenant, type) instead of 43 200. Latency percentiles keep the largest value
-- of the bucket (percentiles cannot be added).
CREATE TABLE cache_statistics_rollups (
    tenant_id TEXT NOT NULL,
    cache_type TEXT NOT NULL,
    resolution INTEGER NOT NULL,
    bucket_start TIMESTAMP NOT NULL,
    hits BIGINT NOT NULL DEFAULT 0,
    misses BIGINT NOT NULL DEFAULT 0,
    sets BIGINT NOT NULL DEFAULT 0,
    deletes BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    degraded BIGINT NOT NULL DEFAULT 0,
    raw_bytes BIGINT NOT NULL DEFAULT 0,
    stored_bytes BIGINT NOT NULL DEFAULT 0,
    latency_p50_us BIGINT NOT NULL DEFAULT 0,
    latency_p95_us BIGINT NOT NULL DEFAULT 0,
    latency_p99_us BIGINT NOT NULL DEFAULT 0,
    compute_spent_ms BIGINT NOT NULL DEFAULT 0,
    compute_saved_ms BIGINT NOT NULL DEFAULT 0,
    tokens_spent BIGINT NOT NULL DEFAULT 0,
    tokens_saved BIGINT NOT NULL DEFAULT 0,
    money_spent_micros BIGINT NOT NULL DEFAULT 0,
    money_saved_micros BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (resolution, bucket_start, tenant_id, cache_type)
);
-- The dashboard filters by tenant (and type) over a range.
CREATE INDEX cache_statistics_rollups_by_tenant ON cache_statistics_rollups (resolution, tenant_id, bucket_start);
-- The minute series of one tenant.
CREATE INDEX cache_statistics_by_tenant_window ON cache_statistics (tenant_id, window_start);

INSERT INTO cache_statistics_rollups
SELECT tenant_id, cache_type, r.resolution,
       CASE r.resolution WHEN 3600 THEN strftime('%Y-%m-%d %H:00:00', window_start) ELSE strftime('%Y-%m-%d 00:00:00', window_start) END,
       SUM(hits), SUM(misses), SUM(sets), SUM(deletes), SUM(errors), SUM(degraded), SUM(raw_bytes), SUM(stored_bytes),
       MAX(latency_p50_us), MAX(latency_p95_us), MAX(latency_p99_us),
       SUM(compute_spent_ms), SUM(compute_saved_ms), SUM(tokens_spent), SUM(tokens_saved),
       SUM(money_spent_micros), SUM(money_saved_micros)
FROM cache_statistics CROSS JOIN (SELECT 3600 AS resolution UNION ALL SELECT 86400) AS r
GROUP BY tenant_id, cache_type, r.resolution,
         CASE r.resolution WHEN 3600 THEN strftime('%Y-%m-%d %H:00:00', window_start) ELSE strftime('%Y-%m-%d 00:00:00', window_start) END;
