-- Every tenant's sums as rollups of their own (tenant_id '', which no tenant id can be), per cache type, at the
-- recorded windows (resolution 0) and per hour and day: a dashboard over all tenants reads one row per type
-- and bucket instead of one per tenant. Written by the recorder with the other rollups from now on; filled here
-- from what is already recorded.
INSERT INTO cache_statistics_rollups
SELECT '', cache_type, 0, window_start,
       SUM(hits), SUM(misses), SUM(sets), SUM(deletes), SUM(errors), SUM(degraded), SUM(raw_bytes), SUM(stored_bytes),
       MAX(latency_p50_us), MAX(latency_p95_us), MAX(latency_p99_us),
       SUM(compute_spent_ms), SUM(compute_saved_ms), SUM(tokens_spent), SUM(tokens_saved),
       SUM(money_spent_micros), SUM(money_saved_micros)
FROM cache_statistics
GROUP BY cache_type, window_start;
INSERT INTO cache_statistics_rollups
SELECT '', cache_type, resolution, bucket_start,
       SUM(hits), SUM(misses), SUM(sets), SUM(deletes), SUM(errors), SUM(degraded), SUM(raw_bytes), SUM(stored_bytes),
       MAX(latency_p50_us), MAX(latency_p95_us), MAX(latency_p99_us),
       SUM(compute_spent_ms), SUM(compute_saved_ms), SUM(tokens_spent), SUM(tokens_saved),
       SUM(money_spent_micros), SUM(money_saved_micros)
FROM cache_statistics_rollups
WHERE tenant_id <> '' AND resolution IN (3600, 86400)
GROUP BY cache_type, resolution, bucket_start;
