use fernando_cache_decorators::invalidates;

#[invalidates(cache_type = "dashboard", strategy = "later")]
async fn update(tenant_id: &str) -> Result<(), std::io::Error> {
    Ok(())
}

fn main() {}
