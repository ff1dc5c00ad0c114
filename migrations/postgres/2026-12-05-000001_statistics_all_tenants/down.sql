DELETE FROM cache_statistics_rollups WHERE tenant_id = '' OR resolution = 0;
