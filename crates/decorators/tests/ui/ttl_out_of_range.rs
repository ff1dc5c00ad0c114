use fernando_cache_decorators::cached;

#[cached(ttl = "400days")]
async fn report(tenant_id: &str) -> u32 {
    1
}

fn main() {}
