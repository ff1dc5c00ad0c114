use fernando_cache_decorators::cached;

#[cached(skip(connection))]
async fn report(tenant_id: &str, conn: u8) -> u32 {
    1
}

fn main() {}
