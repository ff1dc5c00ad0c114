use fernando_cache_decorators::cached;

#[cached(cache_type = "Dash-Board")]
async fn report(tenant_id: &str) -> u32 {
    1
}

fn main() {}
