DROP TABLE cache_recorder_flushes;
