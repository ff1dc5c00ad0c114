-- What the cache saved, per tenant, cache type and window: engine time, model tokens and money (millionths of
-- the configured currency) spent on misses' computations and saved by hits (issue 14: tokens and money).
ALTER TABLE cache_statistics ADD COLUMN compute_spent_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cache_statistics ADD COLUMN compute_saved_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cache_statistics ADD COLUMN tokens_spent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cache_statistics ADD COLUMN tokens_saved BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cache_statistics ADD COLUMN money_spent_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cache_statistics ADD COLUMN money_saved_micros BIGINT NOT NULL DEFAULT 0;
