-- Idempotent statistics flushes: a flush whose commit succeeded but whose reply was lost is retried with the
-- same id, found here, and not applied twice.
CREATE TABLE cache_recorder_flushes (
    flush_id TEXT PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL
);
