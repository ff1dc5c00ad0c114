ALTER TABLE cache_statistics DROP COLUMN money_saved_micros;
ALTER TABLE cache_statistics DROP COLUMN money_spent_micros;
ALTER TABLE cache_statistics DROP COLUMN tokens_saved;
ALTER TABLE cache_statistics DROP COLUMN tokens_spent;
ALTER TABLE cache_statistics DROP COLUMN compute_saved_ms;
ALTER TABLE cache_statistics DROP COLUMN compute_spent_ms;
