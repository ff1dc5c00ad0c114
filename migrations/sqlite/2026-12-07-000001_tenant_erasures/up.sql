-- When each erased tenant was last erased (issue 31): a replica that recorded a tenant's statistics, events or
-- reads before another process erased the tenant, and writes them after, drops them instead of writing them
-- back. The tenant's id stays here, as it does in the erasure's audit event.
CREATE TABLE cache_tenant_erasures (
    tenant_id TEXT PRIMARY KEY,
    erased_at TIMESTAMP NOT NULL
);
