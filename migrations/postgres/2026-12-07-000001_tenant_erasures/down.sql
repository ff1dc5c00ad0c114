DROP TABLE cache_tenant_erasures;
