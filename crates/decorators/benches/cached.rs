//! `cargo xtask bench cached`: a `#[cached]` function's hit against a hand-written `Store::get` of the same
//! value, in one run, against a private redis-server (goal: at most 1.05× the time).
//!
//! The hand-written side does what a user would write without the macro: build the tenant id, format a key,
//! `store.get`. The macro side derives its key from the arguments (SHA-256 of their canonical encoding) and
//! reads through the single-flight path. Both read the same 1 KB value on the same store. Pairs run in
//! alternating windows (see `fernando_cache_testkit::bench`); the ratio is the median of per-window ratios.
//! Environment: `BENCH_SECS`, `BENCH_REPEATS`, `BENCH_TASKS` (comma list, default `1,16,64`), `BENCH_SMOKE` (see the
//! testkit's `bench` module).

use std::sync::Arc;

use fernando_cache_decorators::cached;
use fernando_cache_store::{
    Store,
    config::{CacheType, Environment, LoadOptions, Settings},
    keys::TenantId,
};
use fernando_cache_testkit::{
    RedisServer,
    bench::{pair, repeats, secs},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Dashboard {
    tenant: String,
    month: u8,
    rows: Vec<(String, u64)>,
}

fn dashboard(tenant: &str, month: u8) -> Dashboard {
    Dashboard {
        tenant: tenant.to_owned(),
        month,
        rows: (0..40)
            .map(|i| (format!("metric-{i:02}"), i * 1_000))
            .collect(),
    }
}

#[cached(store = store, cache_type = "dashboard")]
async fn cached_dashboard(store: &Store, tenant_id: &str, month: u8) -> Result<Dashboard, String> {
    Ok(dashboard(tenant_id, month))
}

async fn by_hand(store: &Store, tenant_id: &str, month: u8) -> Result<Dashboard, String> {
    let tenant = TenantId::new(tenant_id).map_err(|e| e.to_string())?;
    let key = format!("dashboard:{month}");
    match store.get(&tenant, &CacheType::DASHBOARD, &key).await {
        Ok(Some(d)) => Ok(d),
        _ => Err("the benchmark expects a hit".to_owned()),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = RedisServer::start();
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Production)
            .set_all([fernando_cache_testkit::bench::sealing_keys()])
            .set_all(server.overrides())
            .set("redis.multiplexed_connections", "2"),
    )
    .unwrap();
    let store = Arc::new(Store::from_settings(&settings).unwrap());
    let tenant = TenantId::new("acme").unwrap();
    let value = dashboard("acme", 11);
    let _ = store
        .set(&tenant, &CacheType::DASHBOARD, "dashboard:11", &value)
        .await
        .unwrap();
    // Warm the macro's entry (a miss, computed and stored), then check both sides hit.
    cached_dashboard(&store, "acme", 11).await.unwrap();
    assert_eq!(by_hand(&store, "acme", 11).await.unwrap().rows.len(), 40);
    let before = store.metrics().totals();
    cached_dashboard(&store, "acme", 11).await.unwrap();
    assert_eq!(
        store.metrics().totals().since(&before).hits,
        1,
        "the macro side hits"
    );

    let tasks: Vec<usize> = std::env::var("BENCH_TASKS")
        .ok()
        .map(|s| s.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 16, 64]);
    println!(
        "`#[cached]` hit vs hand-written `store.get` (1 KB value, redis-server on loopback, {} × {:.1}s windows)\n",
        repeats(),
        secs().as_secs_f64()
    );
    println!("| tasks | by hand ops/s | #[cached] ops/s | time ratio (cached / by hand) |");
    println!("|---:|---:|---:|---:|");
    for n in tasks {
        let (s1, s2) = (store.clone(), store.clone());
        let (hand, macro_side, ratio) = pair(
            n,
            move |_| {
                let s = s1.clone();
                async move {
                    by_hand(&s, "acme", 11).await.unwrap();
                }
            },
            move |_| {
                let s = s2.clone();
                async move {
                    cached_dashboard(&s, "acme", 11).await.unwrap();
                }
            },
        )
        .await;
        // Throughput ratio subject/baseline; time per call is its inverse.
        println!(
            "| {n} | {hand:.0} | {macro_side:.0} | {:.3}× |",
            1.0 / ratio
        );
    }
}
