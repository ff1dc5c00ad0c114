-- fernando-cache statistics schema (SQLite). Times are UTC, stored as TIMESTAMP.

CREATE TABLE cache_statistics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    cache_type TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    window_seconds INTEGER NOT NULL,
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
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT cache_statistics_window UNIQUE (tenant_id, cache_type, window_start)
);
CREATE INDEX cache_statistics_by_window ON cache_statistics (window_start);

CREATE TABLE cache_invalidation_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    tenant_id TEXT,
    cache_types TEXT NOT NULL,
    strategy TEXT NOT NULL CHECK (strategy IN ('eager', 'lazy', 'hybrid')),
    delay_seconds INTEGER NOT NULL DEFAULT 0,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX cache_invalidation_rules_by_event ON cache_invalidation_rules (event_type, enabled);

CREATE TABLE cache_performance_metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    window_start TIMESTAMP NOT NULL,
    operation TEXT NOT NULL,
    cache_type TEXT NOT NULL,
    count BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    p50_us BIGINT NOT NULL DEFAULT 0,
    p95_us BIGINT NOT NULL DEFAULT 0,
    p99_us BIGINT NOT NULL DEFAULT 0,
    max_us BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT cache_performance_metrics_window UNIQUE (operation, cache_type, window_start)
);

CREATE TABLE cache_health_status (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    checked_at TIMESTAMP NOT NULL,
    component TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('healthy', 'degraded', 'down')),
    latency_us BIGINT,
    used_memory BIGINT,
    max_memory BIGINT,
    eviction_policy TEXT,
    evicted_keys BIGINT,
    connected_clients BIGINT,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX cache_health_status_by_component ON cache_health_status (component, checked_at);

CREATE TABLE cache_warmup_jobs (
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

CREATE TABLE cache_event_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at TIMESTAMP NOT NULL,
    event_type TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    tenant_id TEXT,
    cache_type TEXT,
    details TEXT NOT NULL DEFAULT ''
);
CREATE INDEX cache_event_log_by_time ON cache_event_log (occurred_at);
CREATE INDEX cache_event_log_by_type ON cache_event_log (event_type, occurred_at);

-- Default invalidation rules (seed: "Default invalidation rules setup").
INSERT INTO cache_invalidation_rules (name, event_type, tenant_id, cache_types, strategy, delay_seconds, enabled, created_at) VALUES
    ('document-updated', 'document.updated', NULL, 'ocr_result,llm_extraction,doc_hash', 'hybrid', 0, 1, CURRENT_TIMESTAMP),
    ('user-logout', 'user.logout', NULL, 'session', 'eager', 0, 1, CURRENT_TIMESTAMP),
    ('billing-changed', 'billing.changed', NULL, 'billing,dashboard', 'lazy', 0, 1, CURRENT_TIMESTAMP),
    ('reference-data-changed', 'reference_data.changed', NULL, 'reference_data', 'eager', 0, 1, CURRENT_TIMESTAMP);

-- Default warmup jobs (seed: "Cache warmup job configuration").
INSERT INTO cache_warmup_jobs (name, tenant_id, cache_type, strategy, interval_seconds, priority, enabled) VALUES
    ('reference-data-at-start', NULL, 'reference_data', 'scheduled', 86400, 100, 1),
    ('hot-documents', NULL, 'doc_hash', 'frequency', 300, 50, 1);
