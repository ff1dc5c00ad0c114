use fernando_cache_decorators::cached;

struct Pool;

#[cached(cache_type = "dashboard")]
async fn report(tenant_id: &str, pool: &Pool, month: u8) -> u32 {
    1
}

fn main() {}
