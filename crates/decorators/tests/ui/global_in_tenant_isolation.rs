use fernando_cache_decorators::cache_with_tenant_isolation;

#[cache_with_tenant_isolation(global)]
async fn report(month: u8) -> u32 {
    1
}

fn main() {}
