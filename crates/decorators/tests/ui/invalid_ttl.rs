use fernando_cache_decorators::cached;

#[cached(ttl = "ten minutes")]
async fn report(tenant_id: &str) -> u32 {
    1
}

fn main() {}
