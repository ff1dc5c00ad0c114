use fernando_cache_decorators::cached;

#[cached(cache_type = "dashboard", time_to_live = "10m")]
async fn report(tenant_id: &str) -> u32 {
    1
}

fn main() {}
