//! `HttpCacheLayer` in an axum app: the app is served on 127.0.0.1 (a free port), asked twice for the same
//! report by tenant `acme`, and each answer's `X-Cache` header is printed — `MISS` (the handler ran, the
//! response was stored), then `HIT` (answered from the cache; the handler did not run). The store is the
//! in-process backend: nothing to install.
//!
//! ```sh
//! cargo run -p fernando-cache-examples --example axum_layer
//! ```

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use axum::{
    Router,
    extract::Path,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use fernando_cache_http::{HttpCacheLayer, Route, tenant_from_header};
use fernando_cache_store::{
    Store,
    config::{CacheType, Environment, Settings},
};

/// How many times the handler ran.
static HANDLER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A report that is expensive to build; its `Cache-Control` lets shared caches keep it for a minute.
async fn report(Path(id): Path<u32>) -> Response {
    let run = HANDLER_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    (
        [(header::CACHE_CONTROL, "max-age=60")],
        format!("report {id}, built by handler run {run}"),
    )
        .into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::from_settings(&Settings::embedded(Environment::Test)?)?;
    // GETs under /v1/reports/ are cached per tenant, the tenant named by the `x-tenant-id` header (which an
    // authenticating proxy or an earlier middleware sets), for at most ten minutes.
    let cache = HttpCacheLayer::builder(store, tenant_from_header("x-tenant-id".parse()?))
        .route(
            Route::new("/v1/reports/**")
                .cache_type(CacheType::DASHBOARD)
                .ttl(Duration::from_secs(600)),
        )
        .build()?;
    let app = Router::new()
        .route("/v1/reports/{id}", get(report))
        .layer(cache);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving on http://{addr}");

    let client = reqwest::Client::new();
    for _ in 0..2 {
        let response = client
            .get(format!("http://{addr}/v1/reports/7"))
            .header("x-tenant-id", "acme")
            .send()
            .await?;
        let x_cache = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned();
        let body = response.text().await?;
        println!("GET /v1/reports/7 -> X-Cache: {x_cache}; body: {body}");
    }
    let runs = HANDLER_RUNS.load(Ordering::SeqCst);
    println!("the handler ran {runs} time(s) for 2 requests");
    Ok(())
}
