use fernando_cache_decorators::cached;

#[cached(key = "user:{user_id}:{period}")]
async fn report(tenant_id: &str, user_id: u64) -> u32 {
    1
}

fn main() {}
