use fernando_cache_decorators::cached;

#[cached(tenant = account)]
async fn report(account: u64) -> u32 {
    1
}

fn main() {}
