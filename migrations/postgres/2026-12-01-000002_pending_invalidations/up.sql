-- Delayed invalidations (a rule's delay_seconds) are rows, not sleeping tasks: they survive a restart, and
-- run once across replicas — a replica claims due rows with a random claim token, applies them and marks them
-- done; a claim older than a minute (its replica died) may be taken over.
CREATE TABLE cache_pending_invalidations (
    id BIGSERIAL PRIMARY KEY,
    rule_name TEXT NOT NULL,
    event_type TEXT NOT NULL,
    tenant_id TEXT,
    subject TEXT,
    cache_type TEXT NOT NULL,
    strategy TEXT NOT NULL,
    due_at TIMESTAMP NOT NULL,
    claim TEXT,
    claimed_at TIMESTAMP,
    done_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX cache_pending_invalidations_due ON cache_pending_invalidations (done_at, due_at);
