DROP TABLE cache_event_log;
DROP TABLE cache_warmup_jobs;
DROP TABLE cache_health_status;
DROP TABLE cache_performance_metrics;
DROP TABLE cache_invalidation_rules;
DROP TABLE cache_statistics;
