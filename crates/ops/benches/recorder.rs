//! `cargo xtask bench recorder`: what recording statistics costs the store. Store `get` hits at 64 tasks, with
//! the recorder flushing every second into SQLite vs without a recorder, in alternating windows of one run.
//!
//! Environment: `BENCH_SECS` (window, default here 2 s so each "with" window contains flushes),
//! `BENCH_REPEATS` (window pairs, default 10) and `BENCH_SMOKE` (see the testkit's `bench` module).

use std::{sync::Arc, time::Duration};

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_models::{Db, run_pending};
use fernando_cache_ops::recorder::{Recorder, RecorderOptions};
use fernando_cache_store::Store;
use fernando_cache_testkit::{
    RedisServer,
    bench::{median, repeats, secs_or, throughput, warm_up},
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let window = secs_or(2.0);
    let server = RedisServer::start();
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Production)
            .set_all([fernando_cache_testkit::bench::sealing_keys()])
            .set_all(server.overrides())
            .set("redis.multiplexed_connections", "2"),
    )
    .unwrap();
    let store = Store::from_settings(&settings).unwrap();
    let tenants: Vec<TenantId> = (0..20)
        .map(|i| TenantId::new(format!("t{i}")).unwrap())
        .collect();
    for t in &tenants {
        let _ = store
            .set(t, &CacheType::SESSION, "k", &"x".repeat(100))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.sqlite3").display());
    run_pending(&mut Db::open(&url).unwrap()).unwrap();
    let tenants = Arc::new(tenants);
    let op = {
        let (store, tenants) = (store.clone(), tenants.clone());
        move |i: usize| {
            let (store, tenants) = (store.clone(), tenants.clone());
            async move {
                let t = &tenants[i % tenants.len()];
                assert!(
                    store
                        .get::<String>(t, &CacheType::SESSION, "k")
                        .await
                        .unwrap()
                        .is_some()
                );
            }
        }
    };
    println!(
        "recorder cost — store get hits, 64 tasks over 20 tenants, recorder flushing every 1s to SQLite; \
         {}s windows × {} alternating pairs",
        window.as_secs_f64(),
        repeats()
    );
    throughput(64, warm_up(Duration::from_millis(300)), op.clone()).await;
    let (mut without, mut with, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut flushes = 0;
    for i in 0..repeats() {
        let mut measure_with = async || {
            let recorder = Recorder::spawn(
                store.clone(),
                RecorderOptions::new(&url).flush_interval(Duration::from_secs(1)),
            );
            let r = throughput(64, window, op.clone()).await;
            flushes += recorder.shutdown(Duration::from_secs(10)).await.flushes;
            r
        };
        let (a, b) = if i % 2 == 0 {
            let a = throughput(64, window, op.clone()).await;
            (a, measure_with().await)
        } else {
            let b = measure_with().await;
            (throughput(64, window, op.clone()).await, b)
        };
        without.push(a);
        with.push(b);
        ratios.push(b / a);
    }
    println!(
        "| without recorder ops/s | with recorder ops/s | ratio (median of windows) | flushes |"
    );
    println!("|---:|---:|---:|---:|");
    println!(
        "| {:.0} | {:.0} | {:.3}× | {flushes} |",
        median(without),
        median(with),
        median(ratios)
    );
}
