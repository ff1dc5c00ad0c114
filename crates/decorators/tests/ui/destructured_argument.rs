use fernando_cache_decorators::cached;

#[cached]
async fn report(tenant_id: &str, (a, b): (u8, u8)) -> u8 {
    a + b
}

fn main() {}
