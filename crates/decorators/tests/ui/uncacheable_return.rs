use fernando_cache_decorators::cached;

struct Handle;

#[cached(cache_type = "dashboard")]
async fn open(tenant_id: &str) -> Result<Handle, std::io::Error> {
    Ok(Handle)
}

fn main() {}
