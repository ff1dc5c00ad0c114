//! `cargo xtask bench regions` (issue 33, design 0026): two regions on this machine — each its own
//! redis-server, the second reaching the first through a TCP relay that adds latency — and a replicator applying
//! the first region's stream to the second.
//!
//! - **writes**: a replicated type's `set` (1 KB) with the region on (each write also appended to the stream) vs
//!   the same store with no region, on one server (goal ≥ 0.9×: replication must not slow the writing region);
//! - **hits**: `get` with the region on vs off (goal ≥ 0.97×: reads never touch the stream);
//! - **propagation**: lazy invalidations made in the first region at 1 000 a second, each seen applied in the
//!   second by a keyspace notification of its generation key; p50 / p99 of the delay, and the same less the
//!   link's one-way latency (goal p99 ≤ 50 ms over it);
//! - **catch-up**: the link cut for `BENCH_PARTITION_SECS` (default 60; 1 in a smoke run) while invalidations go
//!   on at 1 000 a second, then healed: entries applied per second until the second region is caught up.
//!
//! Environment: `BENCH_SECS`, `BENCH_REPEATS` (the paired sections), `BENCH_TASKS` (a comma list, default
//! `1,16,64`), `BENCH_ONLY` (a comma list of `writes,hits,propagation,catchup`; default all), `BENCH_LINK_MS`
//! (one-way latency, default 10), `BENCH_PARTITION_SECS`, `BENCH_SMOKE`; `BENCH_CPU=1` prints the CPU each
//! pair's sides spent per operation, client and servers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fernando_cache_store::{
    InvalidationStrategy, Replicator, Store, Target,
    config::{CacheType, Environment, LoadOptions, Settings},
    keys::TenantId,
};
use fernando_cache_testkit::{
    RedisServer, TcpProxy,
    bench::{env_or, pair, pct, repeats, scaled, secs, smoke},
};
use futures_util::StreamExt;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Whether `section` is measured (`BENCH_ONLY`, default all).
fn enabled(section: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

/// The paired sections' task counts (`BENCH_TASKS`, default 1, 16 and 64).
fn tasks() -> Vec<usize> {
    std::env::var("BENCH_TASKS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .filter(|list: &Vec<usize>| !list.is_empty())
        .unwrap_or_else(|| vec![1, 16, 64])
}

/// Invalidations a second in the propagation and catch-up sections.
const RATE: u64 = 1_000;

/// A store on `url` as region `region` (none when empty), its stream bounded to `kept` entries.
fn settings(url: &str, region: &str, kept: u64) -> Settings {
    settings_with(url, region, kept, true)
}

/// [`settings`], with compression dictionaries on or off.
fn settings_with(url: &str, region: &str, kept: u64, dictionaries: bool) -> Settings {
    Settings::load(
        LoadOptions::isolated(Environment::Production)
            .set("encryption.document_data", "false")
            .set("backend", "redis")
            .set("redis.url", url)
            .set("regions.name", region)
            .set("regions.stream_max_entries", kept.to_string())
            .set("compression.dictionaries", dictionaries.to_string()),
    )
    .unwrap()
}

/// The write section's bound: it appends 1 KB values as fast as the store writes.
const WRITES_KEPT: u64 = 20_000;
/// The other sections' bound: more than a partition leaves behind.
const KEPT: u64 = 1_000_000;

fn text(len: usize) -> String {
    "Invoice INV-2026-0042 total 1482.00 GBP due 2026-12-31. "
        .repeat(len / 56 + 1)
        .chars()
        .take(len)
        .collect()
}

/// Lazy invalidations of `count` tenants named `{prefix}{i}`, paced at [`RATE`]; when each was made.
async fn invalidate_paced(store: &Store, prefix: &str, count: usize) -> Vec<(String, Instant)> {
    let mut made = Vec::with_capacity(count);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..count {
        tick.tick().await;
        let tenant = TenantId::new(format!("{prefix}{i}")).unwrap();
        let at = Instant::now();
        store
            .invalidate(
                Target::entries(&tenant, &CacheType::OCR_RESULT),
                InvalidationStrategy::Lazy,
            )
            .await
            .unwrap();
        made.push((tenant.as_str().to_owned(), at));
    }
    made
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let one_way = Duration::from_millis(env_or("BENCH_LINK_MS", 10));
    let eu = RedisServer::start();
    let us = RedisServer::start_with(&["--notify-keyspace-events", "K$"]);
    let link = TcpProxy::start_with_latency(&format!("127.0.0.1:{}", eu.port()), one_way);
    let stream = "fernando:production:_repl:eu";
    println!(
        "fernando-cache regions benchmark — region eu on 127.0.0.1:{}, us on 127.0.0.1:{}, a relay adding {} ms each \
         way between them; {}s windows × {} alternating pairs",
        eu.port(),
        us.port(),
        one_way.as_millis(),
        secs().as_secs_f64(),
        repeats()
    );

    // Writes and hits, with the region on and off, on one server; no replicator running (it would share the
    // cores).
    let on = Store::from_settings(&settings(&eu.url(), "eu", WRITES_KEPT)).unwrap();
    let off = Store::from_settings(&settings(&eu.url(), "", WRITES_KEPT)).unwrap();
    let tenant = TenantId::new("bench").unwrap();
    let value = text(1024);
    println!("\n| case | tasks | off ops/s | on ops/s | ratio (median of windows) | goal |");
    println!("|---|---:|---:|---:|---:|---|");
    let writes = |store: &Store| {
        let (store, tenant, value) = (store.clone(), tenant.clone(), value.clone());
        move |i: usize| {
            let (store, tenant, value) = (store.clone(), tenant.clone(), value.clone());
            async move {
                let key = format!("w{}", i % 64);
                let stored = store
                    .set(&tenant, &CacheType::OCR_RESULT, &key, &value)
                    .await
                    .unwrap();
                assert_ne!(stored, fernando_cache_store::WriteOutcome::OverQuota);
            }
        }
    };
    for tasks in tasks().into_iter().filter(|_| enabled("writes")) {
        let (b, s, ratio) = pair(tasks, writes(&off), writes(&on)).await;
        println!(
            "| ocr_result set (1 KB), replicated vs not | {tasks} | {b:.0} | {s:.0} | {ratio:.2}× | ≥ 0.90× |"
        );
    }
    // A replicated type is never compressed with a dictionary (each region trains its own): with them off on
    // both sides, what is left is the append's own cost.
    let on_plain =
        Store::from_settings(&settings_with(&eu.url(), "eu", WRITES_KEPT, false)).unwrap();
    let off_plain =
        Store::from_settings(&settings_with(&eu.url(), "", WRITES_KEPT, false)).unwrap();
    for tasks in tasks().into_iter().filter(|_| enabled("writes")) {
        let (b, s, ratio) = pair(tasks, writes(&off_plain), writes(&on_plain)).await;
        println!(
            "| ocr_result set (1 KB), replicated vs not, no dictionaries either side | {tasks} | {b:.0} | {s:.0} | {ratio:.2}× | ≥ 0.90× |"
        );
    }
    on_plain.flush_replication().await;
    let dropped = on_plain.replication_dropped();
    // What the writes queued is appended before anything else is measured, and none was dropped: the write
    // rows count a value as written when its entry is queued, so the queue must have kept up.
    on.flush_replication().await;
    let dropped = dropped + on.replication_dropped();
    println!("\nvalues' entries dropped (queue full or stream unreachable): {dropped}");
    let _ = eu.cli(&["DEL", stream]);
    let stored = on
        .set(&tenant, &CacheType::OCR_RESULT, "hit", &value)
        .await
        .unwrap();
    assert_eq!(stored, fernando_cache_store::WriteOutcome::Stored);
    for tasks in tasks().into_iter().filter(|_| enabled("hits")) {
        let side = |store: &Store| {
            let (store, tenant) = (store.clone(), tenant.clone());
            move |_| {
                let (store, tenant) = (store.clone(), tenant.clone());
                async move {
                    let v: Option<String> = store
                        .get(&tenant, &CacheType::OCR_RESULT, "hit")
                        .await
                        .unwrap();
                    assert!(v.is_some(), "the benchmark's value is gone");
                }
            }
        };
        let (b, s, ratio) = pair(tasks, side(&off), side(&on)).await;
        println!(
            "| ocr_result get hit, region on vs off | {tasks} | {b:.0} | {s:.0} | {ratio:.2}× | ≥ 0.97× |"
        );
    }
    let _ = eu.cli(&["DEL", stream]);
    if !enabled("propagation") && !enabled("catchup") {
        return;
    }

    // The replicator of eu into us, reading eu through the relay.
    let on = Store::from_settings(&settings(&eu.url(), "eu", KEPT)).unwrap();
    let local = Store::from_settings(&settings(&us.url(), "us", KEPT)).unwrap();
    let remote =
        Store::from_settings(&settings(&format!("redis://{}", link.addr()), "", KEPT)).unwrap();
    let replicator =
        Arc::new(Replicator::new(local, remote, "eu", "bench", Duration::from_secs(10)).unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let r = replicator.clone();
        tokio::spawn(async move {
            r.run(Duration::from_millis(1), async {
                let _ = stop_rx.await;
            })
            .await;
        })
    };

    // Steady state first: the replicator has connected through the relay, joined its group and gone round
    // once (what it costs to start is not propagation).
    let deadline = Instant::now() + Duration::from_secs(30);
    while eu.stream_group_behind(stream).0.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    if enabled("propagation") {
        propagation(&on, &us, one_way).await;
    }
    if enabled("catchup") {
        catch_up(&on, &eu, &link, stream).await;
    }
    let _ = stop_tx.send(());
    let _ = running.await;
}

/// Propagation: each invalidation made in `on` seen applied in `us` by its generation key's notification.
async fn propagation(on: &Store, us: &RedisServer, one_way: Duration) {
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let client = redis::Client::open(us.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .psubscribe("__keyspace@0__:fernando:production:_gen:*")
        .await
        .unwrap();
    let listening = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(m) = messages.next().await {
                let channel = m.get_channel_name().to_owned();
                // `…:_gen:{tenant_<id>}:ocr_result`
                if let Some(id) = channel
                    .split("{tenant_")
                    .nth(1)
                    .and_then(|rest| rest.split('}').next())
                {
                    seen.lock()
                        .unwrap()
                        .entry(id.to_owned())
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    let count = scaled(3_000, 50);
    let made = invalidate_paced(on, "p", count).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut delays: Vec<Duration> = {
        let seen = seen.lock().unwrap();
        made.iter()
            .filter_map(|(t, at)| seen.get(t).map(|s| s.saturating_duration_since(*at)))
            .collect()
    };
    delays.sort();
    let over = |q: f64| pct(&delays, q) - one_way.as_secs_f64() * 1e3;
    println!(
        "\n### Propagation of lazy invalidations, {RATE}/s, link {} ms each way\n\n\
         | invalidations | seen applied | p50 ms | p99 ms | p50 over the link ms | p99 over the link ms | goal |\n\
         |---:|---:|---:|---:|---:|---:|---|\n\
         | {count} | {} | {:.1} | {:.1} | {:.1} | {:.1} | p99 ≤ 50 ms over the link |",
        one_way.as_millis(),
        delays.len(),
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        over(0.5),
        over(0.99),
    );
    listening.abort();
}

/// Catch-up: `link` cut while `on` invalidates at [`RATE`], then healed; how fast the replicator reads `stream`
/// back to its end.
async fn catch_up(on: &Store, eu: &RedisServer, link: &TcpProxy, stream: &str) {
    let partition = Duration::from_secs_f64(env_or("BENCH_PARTITION_SECS", scaled(60.0, 1.0)));
    link.block();
    let cut = (partition.as_secs_f64() * RATE as f64) as usize;
    let _ = invalidate_paced(on, "c", cut).await;
    let healed = Instant::now();
    link.unblock();
    let deadline = healed + Duration::from_secs(600);
    let mut left = eu.stream_group_behind(stream);
    while left != (Some(0), 0) && Instant::now() < deadline {
        assert!(
            left.0.is_some() || left.1 > 0,
            "entries made while the link was cut were trimmed unread: raise regions.stream_max_entries"
        );
        tokio::time::sleep(Duration::from_millis(if smoke() { 10 } else { 50 })).await;
        left = eu.stream_group_behind(stream);
    }
    assert_eq!(left, (Some(0), 0), "not caught up within 600 s");
    let took = healed.elapsed();
    println!(
        "\n### Catch-up after a {:.0} s partition\n\n\
         | entries made while cut | caught up in s | entries/s applied |\n|---:|---:|---:|\n| {cut} | {:.2} | {:.0} |",
        partition.as_secs_f64(),
        took.as_secs_f64(),
        cut as f64 / took.as_secs_f64()
    );
}
