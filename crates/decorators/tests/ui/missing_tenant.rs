use fernando_cache_decorators::cached;

#[cached(cache_type = "dashboard")]
async fn report(user_id: u64) -> u32 {
    1
}

fn main() {}
