//! `cargo xtask bench http`: an axum route whose handler takes 20 ms, behind the cache layer, under 64
//! concurrent clients over TCP, against a private redis-server.
//!
//! Misses are requests with `Cache-Control: no-cache` (the layer skips the lookup, runs the handler and
//! stores the response — the full miss path); hits are plain requests for the stored response. Hit and miss
//! windows alternate; latency percentiles are per request, measured by the client. Environment: `BENCH_SECS`
//! (window, default 0.3 s → 2 s here), `BENCH_REPEATS` (window pairs, default 10 → 3 here), `BENCH_CLIENTS` (64),
//! `BENCH_SMOKE` (see the testkit's `bench` module).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use fernando_cache_http::{HttpCacheLayer, Route, tenant_from_header};
use fernando_cache_store::{
    Store,
    config::{CacheType, Environment, LoadOptions, Settings},
};
use fernando_cache_testkit::{
    RedisServer,
    bench::{env_or, pct, repeats_or, secs_or},
};

async fn report() -> String {
    tokio::time::sleep(Duration::from_millis(20)).await;
    "x".repeat(2_048)
}

struct Window {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

async fn window(
    client: &reqwest::Client,
    url: &str,
    clients: usize,
    dur: Duration,
    miss: bool,
) -> Window {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, latencies) = (client.clone(), url.to_owned(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut req = client.get(&url).header("x-tenant-id", "acme");
                if miss {
                    req = req.header("cache-control", "no-cache");
                }
                let resp = req.send().await.expect("request");
                let x_cache = resp.headers()["x-cache"].to_str().unwrap().to_owned();
                resp.bytes().await.expect("body");
                assert_eq!(x_cache, if miss { "MISS" } else { "HIT" });
                mine.push(t.elapsed());
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let latencies = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    Window {
        latencies,
        elapsed: start.elapsed(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let redis = RedisServer::start();
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Production)
            .set_all([fernando_cache_testkit::bench::sealing_keys()])
            .set_all(redis.overrides()),
    )
    .unwrap();
    let store = Store::from_settings(&settings).unwrap();
    let layer = HttpCacheLayer::builder(store, tenant_from_header("x-tenant-id".parse().unwrap()))
        .route(Route::new("/v1/reports/**").cache_type(CacheType::DASHBOARD))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/v1/reports/{id}", get(report))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let clients = env_or("BENCH_CLIENTS", 64usize);
    let secs = secs_or(2.0);
    let repeats = repeats_or(3);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let url = format!("http://{addr}/v1/reports/42?period=2026-11");
    // Store the entry and warm connections on both paths (not cut down in a smoke run: the hit windows need the
    // entry stored).
    window(&client, &url, clients, Duration::from_millis(300), true).await;
    window(&client, &url, clients, Duration::from_millis(300), false).await;

    let (mut hits, mut misses) = (Vec::new(), Vec::new());
    let (mut hit_time, mut miss_time) = (Duration::ZERO, Duration::ZERO);
    for i in 0..repeats {
        for miss in if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        } {
            let w = window(&client, &url, clients, secs, miss).await;
            if miss {
                miss_time += w.elapsed;
                misses.extend(w.latencies);
            } else {
                hit_time += w.elapsed;
                hits.extend(w.latencies);
            }
        }
    }
    hits.sort();
    misses.sort();
    let row = |name: &str, v: &[Duration], t: Duration| {
        println!(
            "| {name} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
            v.len(),
            v.len() as f64 / t.as_secs_f64(),
            pct(v, 0.5),
            pct(v, 0.95),
            pct(v, 0.99)
        );
    };
    println!(
        "axum route with a 20 ms handler behind the cache layer, {clients} concurrent clients, {repeats} × {:.1}s windows per side\n",
        secs.as_secs_f64()
    );
    println!("| path | requests | req/s | p50 | p95 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|");
    row("miss (no-cache: handler + store)", &misses, miss_time);
    row("hit", &hits, hit_time);
    let speedup = (hits.len() as f64 / hit_time.as_secs_f64())
        / (misses.len() as f64 / miss_time.as_secs_f64());
    println!("\nhit throughput = {speedup:.1}× miss throughput");
}
