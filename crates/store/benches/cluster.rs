//! `cargo xtask bench cluster`: the store on a local Redis Cluster (3 primaries, the testkit's), in one run.
//!
//! - store `get` hit on the cluster vs a raw redis-rs cluster `GET` of a value of the same size (100 B, 4 KB),
//!   64 tasks, keys spread over every primary; and, in the same run, the single-node store hit vs a raw `GET`
//!   on one `redis-server`;
//! - what bounds a cluster hit without tracking: a raw `MGET` of the entry and its two generations vs a raw
//!   `GET`;
//! - what a tenant's sweep costs on the cluster (SCAN on every primary) and on one server, and what erasing a
//!   tenant of 100 000 entries among 1 000 000 costs (issue 31);
//! - the hit-path cost of distributed single-flight: `get_or_compute` hits with the cache type `distributed` vs
//!   `process`, on the cluster;
//! - the hit-path cost of a tenant spread over shards (design 0024): a hit of a tenant on 64 shards vs a hit of
//!   tenants on one hash tag, through one store, keys on every primary (goal ≥ 0.95×);
//! - cross-process single-flight: 8 processes of the `fernando-cache` binary (`cache probe`, path in
//!   `FERNANDO_CACHE_BIN`, set by `cargo xtask bench cluster`) × 64 callers on one cold key with a 300 ms
//!   computation: computations in all, and how long callers waited past the computation (p50 / p99);
//! - isolation strategies (design 0023), on one server, in one store: an `acl` tenant's hit (its own Redis
//!   user, no tracking: the generations are read with every hit) vs a `namespace` tenant's (goal ≥ 0.95×), and
//!   what routing costs a `namespace` tenant's hit: a store with `acl` tenants vs one without.
//!
//! Pairs are measured in short alternating windows and judged by the median of per-window ratios
//! (`BENCH_SECS`, `BENCH_REPEATS`, see the testkit's `bench` module). `BENCH_ONLY` (comma-separated: `cluster`,
//! `mget`, `single`, `flight`, `shards`, `sweep`, `erase`, `processes`, `acl`) runs only those sections; `BENCH_CONNECTIONS` sets
//! `redis.multiplexed_connections` of both stores (default 4, the production profile's). A smoke run
//! (`BENCH_SMOKE`) sweeps 8 tenants of 50 entries and starts 2 processes.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::Arc,
};

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::{InvalidationStrategy, Store, Target};
use fernando_cache_testkit::{
    RedisCluster, RedisServer,
    bench::{pair, scaled},
};

const TASKS: usize = 64;
const TENANTS: usize = 32;
const SIZES: [(usize, &str); 2] = [(100, "100 B"), (4096, "4 KB")];

fn settings(overrides: Vec<(&'static str, String)>, extra: &[(&str, &str)]) -> Settings {
    Settings::load(
        LoadOptions::isolated(Environment::Production)
            .set_all([fernando_cache_testkit::bench::sealing_keys()])
            .set_all(overrides)
            .set_all(extra.iter().copied()),
    )
    .expect("bench settings")
}

fn tenants() -> Arc<Vec<TenantId>> {
    Arc::new(
        (0..TENANTS)
            .map(|i| TenantId::new(format!("bench-{i}")).unwrap())
            .collect(),
    )
}

/// Store hit vs raw `GET` through `raw` (a connection of the same topology), keys spread over tenants.
async fn hit_pair<C>(label: &str, store: Store, raw: C)
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    let tenants = tenants();
    for (size, size_label) in SIZES {
        let value = "x".repeat(size);
        let mut raw_keys = Vec::new();
        for (i, t) in tenants.iter().enumerate() {
            let _ = store
                .set(t, &CacheType::OCR_RESULT, "hot", &value)
                .await
                .unwrap();
            let key = format!("bench-raw:{i}");
            let mut c = raw.clone();
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .query_async(&mut c)
                .await
                .unwrap();
            raw_keys.push(key);
        }
        let raw_keys = Arc::new(raw_keys);
        let baseline = {
            let raw = raw.clone();
            move |i: usize| {
                let (mut c, keys) = (raw.clone(), raw_keys.clone());
                async move {
                    let v: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&keys[i % TENANTS])
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    assert!(v.is_some());
                }
            }
        };
        let subject = {
            let (store, tenants) = (store.clone(), tenants.clone());
            move |i: usize| {
                let (store, tenants) = (store.clone(), tenants.clone());
                async move {
                    let v: Option<String> = store
                        .get(&tenants[i % TENANTS], &CacheType::OCR_RESULT, "hot")
                        .await
                        .unwrap();
                    assert!(v.is_some());
                }
            }
        };
        let (b, s, ratio) = pair(TASKS, baseline, subject).await;
        println!("| {label} | {size_label} | {TASKS} | {b:>9.0} | {s:>9.0} | {ratio:.2}× |");
    }
}

/// What the hit must send without per-node tracking: a raw `MGET` of three keys of one slot vs a raw `GET`,
/// both by redis-rs's cluster client. The ratio is the ceiling of a tracking-less cluster hit.
async fn mget_pair(raw: redis::cluster_async::ClusterConnection) {
    use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
    let keys: Arc<Vec<[String; 3]>> = Arc::new(
        (0..TENANTS)
            .map(|i| {
                [
                    format!("{{bench-{i}}}:entry"),
                    format!("{{bench-{i}}}:gen"),
                    format!("{{bench-{i}}}:gen:type"),
                ]
            })
            .collect(),
    );
    for k in keys.iter() {
        for key in k {
            let mut c = raw.clone();
            let _: () = redis::cmd("SET")
                .arg(key)
                .arg("x".repeat(100))
                .query_async(&mut c)
                .await
                .unwrap();
        }
    }
    let get = {
        let (raw, keys) = (raw.clone(), keys.clone());
        move |i: usize| {
            let (mut c, keys) = (raw.clone(), keys.clone());
            async move {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&keys[i % TENANTS][0])
                    .query_async(&mut c)
                    .await
                    .unwrap();
                assert!(v.is_some());
            }
        }
    };
    let mget = move |i: usize| {
        let (mut c, keys) = (raw.clone(), keys.clone());
        async move {
            let k = &keys[i % TENANTS];
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                Route::with_key(&k[0], SlotAddr::Master),
            ));
            let mut cmd = redis::cmd("MGET");
            cmd.arg(&k[0]).arg(&k[1]).arg(&k[2]);
            let v = c.route_command(cmd, route).await.unwrap();
            assert!(matches!(v, redis::Value::Array(_)));
        }
    };
    let (b, s, ratio) = pair(TASKS, get, mget).await;
    println!(
        "| raw cluster MGET of 3 keys (entry + 2 generations) vs raw GET | 100 B | {TASKS} | {b:>9.0} | {s:>9.0} | {ratio:.2}× |"
    );
}

/// What a tenant's sweep costs: an eager invalidation of one tenant holding 500 entries among 40 000 entries of 80
/// tenants (8 tenants of 50 entries in a smoke run), on the cluster (SCAN on every primary) and on one server.
async fn sweep_cost(label: &str, store: &Store) {
    let (tenant_count, per_tenant): (usize, usize) = scaled((80, 500), (8, 50));
    let tenants: Arc<Vec<TenantId>> = Arc::new(
        (0..tenant_count)
            .map(|i| TenantId::new(format!("sweep-{i}")).unwrap())
            .collect(),
    );
    let mut fill = tokio::task::JoinSet::new();
    for t in 0..tenant_count {
        let (store, tenants) = (store.clone(), tenants.clone());
        fill.spawn(async move {
            for k in 0..per_tenant {
                let _ = store
                    .set(&tenants[t], &CacheType::SESSION, &format!("k{k}"), &k)
                    .await;
            }
        });
    }
    while fill.join_next().await.is_some() {}
    let mut times = Vec::new();
    let mut deleted = 0;
    for t in 0..5 {
        let start = std::time::Instant::now();
        deleted = store
            .invalidate(
                Target::entries(&tenants[t], None),
                InvalidationStrategy::Eager,
            )
            .await
            .unwrap()
            .deleted;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "| {label}: eager invalidation of one tenant ({per_tenant} of {} entries) | {deleted} deleted | median {:.1} ms |",
        tenant_count * per_tenant,
        times[2]
    );
}

/// A tenant's erasure (issue 31): one tenant of 100 000 entries among 1 000 000 of ten tenants (200 of 2 000 in a
/// smoke run), erased with `Admin::erase_tenant` — every primary scanned for its globs, its keys deleted —
/// timed once, after the other tenants' entries are checked untouched by a count.
async fn erase_cost(label: &str, store: &Store) {
    let (tenant_count, per_tenant): (usize, usize) = scaled((10, 100_000), (10, 200));
    let tenants: Arc<Vec<TenantId>> = Arc::new(
        (0..tenant_count)
            .map(|i| TenantId::new(format!("erase-{i}")).unwrap())
            .collect(),
    );
    let mut fill = tokio::task::JoinSet::new();
    let writers = TASKS;
    for w in 0..writers {
        let (store, tenants) = (store.clone(), tenants.clone());
        fill.spawn(async move {
            let mut i = w;
            while i < tenant_count * per_tenant {
                let (t, k) = (i % tenant_count, i / tenant_count);
                let _ = store
                    .set(&tenants[t], &CacheType::SESSION, &format!("k{k}"), &k)
                    .await;
                i += writers;
            }
        });
    }
    while fill.join_next().await.is_some() {}
    let start = std::time::Instant::now();
    let erased = store.admin().erase_tenant(&tenants[0]).await.unwrap();
    let took = start.elapsed();
    let kept: Option<usize> = store
        .get(&tenants[1], &CacheType::SESSION, "k0")
        .await
        .unwrap();
    assert_eq!(kept, Some(0), "another tenant is untouched");
    println!(
        "| {label}: erasure of one tenant ({per_tenant} of {} entries) | {} entries, {} keys in all | {:.0} ms |",
        tenant_count * per_tenant,
        erased.entries,
        erased.total(),
        took.as_secs_f64() * 1000.0
    );
}

/// `get_or_compute` hits with the type distributed vs process-only, on one cluster.
async fn flight_pair(cluster: &RedisCluster) {
    let process = Store::from_settings(&settings(
        cluster.overrides(),
        &[("types.ocr_result.single_flight", "process")],
    ))
    .unwrap();
    let distributed = Store::from_settings(&settings(
        cluster.overrides(),
        &[("types.ocr_result.single_flight", "distributed")],
    ))
    .unwrap();
    let tenants = tenants();
    for t in tenants.iter() {
        let _ = process
            .set(t, &CacheType::OCR_RESULT, "flight", &"x".repeat(100))
            .await
            .unwrap();
    }
    let side = |store: Store| {
        let tenants = tenants.clone();
        move |i: usize| {
            let (store, tenants) = (store.clone(), tenants.clone());
            async move {
                let v: String = store
                    .get_or_compute(
                        &tenants[i % TENANTS],
                        &CacheType::OCR_RESULT,
                        "flight",
                        || async {
                            Err::<String, _>(std::io::Error::other("a hit never computes"))
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(v.len(), 100);
            }
        }
    };
    let (b, s, ratio) = pair(TASKS, side(process), side(distributed)).await;
    println!(
        "| get_or_compute hit, distributed vs process | 100 B | {TASKS} | {b:>9.0} | {s:>9.0} | {ratio:.2}× |"
    );
}

/// A hit of a tenant spread over 64 shards vs a hit of a tenant on one hash tag, through one store: the sharded
/// side hashes each key to its shard on every read (SHA-256 of the key) and reads its shard's generations; the
/// plain side spreads its keys over 32 tenants, the sharded one over the shards, so both reach every primary.
async fn shard_pair(cluster: &RedisCluster, connections: &str) {
    let store = Store::from_settings(&settings(
        cluster.overrides(),
        &[
            ("tenants.big.shards", "64"),
            ("redis.multiplexed_connections", connections),
        ],
    ))
    .unwrap();
    let plain = tenants();
    let big = Arc::new(TenantId::new("big").unwrap());
    let keys: Arc<Vec<String>> = Arc::new((0..TENANTS).map(|i| format!("hot-{i}")).collect());
    let value = "x".repeat(100);
    for (t, key) in plain.iter().zip(keys.iter()) {
        let _ = store
            .set(t, &CacheType::OCR_RESULT, "hot", &value)
            .await
            .unwrap();
        let _ = store
            .set(&*big, &CacheType::OCR_RESULT, key, &value)
            .await
            .unwrap();
    }
    let baseline = {
        let store = store.clone();
        move |i: usize| {
            let (store, plain) = (store.clone(), plain.clone());
            async move {
                let v: Option<String> = store
                    .get(&plain[i % TENANTS], &CacheType::OCR_RESULT, "hot")
                    .await
                    .unwrap();
                assert!(v.is_some());
            }
        }
    };
    let subject = move |i: usize| {
        let (store, big, keys) = (store.clone(), big.clone(), keys.clone());
        async move {
            let v: Option<String> = store
                .get(&*big, &CacheType::OCR_RESULT, &keys[i % TENANTS])
                .await
                .unwrap();
            assert!(v.is_some());
        }
    };
    let (b, s, ratio) = pair(TASKS, baseline, subject).await;
    println!(
        "| sharded tenant (64 shards) hit vs plain tenant hit | 100 B | {TASKS} | {b:>9.0} | {s:>9.0} | {ratio:.2}× |"
    );
}

/// An `acl` tenant's hit vs a `namespace` tenant's in one store on `server` (their users made by
/// `Admin::apply_acl`), and a `namespace` hit in that store (which routes) vs in a store without plans.
async fn isolation_pairs(server: &RedisServer) {
    let password = tempfile::NamedTempFile::new().expect("a password file");
    std::fs::write(password.path(), "bench-acl-password\n").unwrap();
    let path = password.path().display().to_string();
    let mut plans: Vec<(String, String)> = Vec::new();
    for i in 0..TENANTS {
        plans.push((format!("tenants.acl{i}.isolation"), "acl".to_owned()));
        plans.push((format!("tenants.acl{i}.acl_password_file"), path.clone()));
    }
    let conns = std::env::var("BENCH_CONNECTIONS").unwrap_or_else(|_| "4".into());
    let load = |with_plans: bool| {
        let mut options = LoadOptions::isolated(Environment::Production)
            .set_all([fernando_cache_testkit::bench::sealing_keys()])
            .set_all(server.overrides())
            .set("redis.multiplexed_connections", conns.as_str());
        if with_plans {
            options = options.set_all(plans.iter().cloned());
        }
        Store::from_settings(&Settings::load(options).expect("bench settings")).unwrap()
    };
    let (routed, plain) = (load(true), load(false));
    let acl: Arc<Vec<TenantId>> = Arc::new(
        (0..TENANTS)
            .map(|i| TenantId::new(format!("acl{i}")).unwrap())
            .collect(),
    );
    let namespace = tenants();
    for t in acl.iter() {
        let (user, source) = routed.admin().acl_user(t).expect("an acl tenant");
        routed.admin().apply_acl(t, &user, &source).await.unwrap();
    }
    let value = "x".repeat(100);
    for t in acl.iter().chain(namespace.iter()) {
        let outcome = routed
            .set(t, &CacheType::OCR_RESULT, "hot", &value)
            .await
            .unwrap();
        assert_eq!(outcome, fernando_cache_store::WriteOutcome::Stored);
    }
    let hits = |store: Store, tenants: Arc<Vec<TenantId>>| {
        move |i: usize| {
            let (store, tenants) = (store.clone(), tenants.clone());
            async move {
                let v: Option<String> = store
                    .get(&tenants[i % tenants.len()], &CacheType::OCR_RESULT, "hot")
                    .await
                    .unwrap();
                assert!(v.is_some());
            }
        }
    };
    // One busy tenant each: what the strategy costs a hit (the same connections on both sides).
    let (b, s, ratio) = pair(
        TASKS,
        hits(routed.clone(), Arc::new(vec![namespace[0].clone()])),
        hits(routed.clone(), Arc::new(vec![acl[0].clone()])),
    )
    .await;
    println!(
        "| one server: one busy acl tenant's hit vs one busy namespace tenant's (goal ≥ 0.95×) | 100 B | {TASKS} | {b:>9.0} | {s:>9.0} | {ratio:.2}× |"
    );
    // 32 tenants each: the acl side holds a connection per tenant, the namespace side shares the store's.
    let (b, s, ratio) = pair(
        TASKS,
        hits(routed.clone(), namespace.clone()),
        hits(routed.clone(), acl),
    )
    .await;
    println!(
        "| one server: {TENANTS} acl tenants' hits vs {TENANTS} namespace tenants' | 100 B | {TASKS} | {b:>9.0} | {s:>9.0} | {ratio:.2}× |"
    );
    let (b, s, ratio) = pair(
        TASKS,
        hits(plain, namespace.clone()),
        hits(routed, namespace),
    )
    .await;
    println!(
        "| one server: namespace tenant hit, store with acl tenants vs without | 100 B | {TASKS} | {b:>9.0} | {s:>9.0} | {ratio:.2}× |"
    );
}

/// 8 processes (2 in a smoke run) × 64 callers on one cold key, computation 300 ms.
fn cross_process(cluster: &RedisCluster) {
    let processes: usize = scaled(8, 2);
    let Ok(bin) = std::env::var("FERNANDO_CACHE_BIN") else {
        println!(
            "\ncross-process single-flight: not measured — run through `cargo xtask bench cluster`, which builds \
             the binary and sets FERNANDO_CACHE_BIN"
        );
        return;
    };
    let urls = cluster.urls();
    let nodes = urls[1..].join(",");
    let mut children = Vec::new();
    for _ in 0..processes {
        let mut child = Command::new(&bin)
            .args(["--env", "production", "--redis-url", &urls[0]])
            .args([
                "cache",
                "probe",
                "--tenant",
                "bench",
                "--type",
                "ocr_result",
            ])
            .args(["--key", "cold", "--callers", "64", "--work", "300ms"])
            .env("FERNANDO_CACHE__REDIS__MODE", "cluster")
            .env(
                "FERNANDO_CACHE__ENCRYPTION__KEYS_FILE",
                fernando_cache_testkit::bench::sealing_keys().1,
            )
            .env("FERNANDO_CACHE__REDIS__NODES", &nodes)
            .env("FERNANDO_CACHE__STATISTICS__ENABLED", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run fernando-cache");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        children.push((child, out));
    }
    for (child, _) in &mut children {
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    let (mut computed, mut p50, mut p99) = (0, Vec::new(), Vec::new());
    for (mut child, out) in children {
        for line in out.lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                computed += v["computed"].as_u64().unwrap();
                p50.push(v["wait_ms"]["p50"].as_f64().unwrap() - 300.0);
                p99.push(v["wait_ms"]["p99"].as_f64().unwrap() - 300.0);
            }
        }
        child.wait().unwrap();
    }
    p50.sort_by(f64::total_cmp);
    p99.sort_by(f64::total_cmp);
    println!(
        "\ncross-process single-flight, {processes} processes × 64 callers, one cold key, 300 ms computation: \
         {computed} computation(s); callers waited past the computation: p50 {:.1} ms (median over processes), \
         p99 {:.1} ms (worst process)",
        p50[p50.len() / 2],
        p99[p99.len() - 1]
    );
}

fn enabled(section: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = RedisCluster::start_with(3, 0);
    let single = RedisServer::start();
    runtime.block_on(async {
        println!("| what | value | tasks | baseline ops/s | store ops/s | ratio |");
        println!("|---|---|---|---|---|---|");
        let raw_cluster = redis::cluster::ClusterClient::new(cluster.urls())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap();
        if enabled("cluster") {
            let conns = std::env::var("BENCH_CONNECTIONS").unwrap_or_else(|_| "4".into());
            let cluster_store = Store::from_settings(&settings(
                cluster.overrides(),
                &[("redis.multiplexed_connections", conns.as_str())],
            ))
            .unwrap();
            hit_pair(
                "cluster: store hit vs raw cluster GET",
                cluster_store,
                raw_cluster.clone(),
            )
            .await;
        }
        if enabled("mget") {
            mget_pair(raw_cluster).await;
        }
        if enabled("single") {
            let conns = std::env::var("BENCH_CONNECTIONS").unwrap_or_else(|_| "4".into());
            let single_store = Store::from_settings(&settings(
                single.overrides(),
                &[("redis.multiplexed_connections", conns.as_str())],
            ))
            .unwrap();
            let raw_single = redis::Client::open(single.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            hit_pair("one server: store hit vs raw GET", single_store, raw_single).await;
        }
        if enabled("flight") {
            flight_pair(&cluster).await;
        }
        if enabled("shards") {
            let conns = std::env::var("BENCH_CONNECTIONS").unwrap_or_else(|_| "4".into());
            shard_pair(&cluster, &conns).await;
        }
        if enabled("acl") {
            isolation_pairs(&single).await;
        }
        if enabled("sweep") {
            println!("\n| sweep | result | time (5 runs) |");
            println!("|---|---|---|");
            let cluster_store = Store::from_settings(&settings(cluster.overrides(), &[])).unwrap();
            sweep_cost("cluster, 3 primaries", &cluster_store).await;
            let single_store = Store::from_settings(&settings(single.overrides(), &[])).unwrap();
            sweep_cost("one server", &single_store).await;
        }
        if enabled("erase") {
            println!("\n| erasure | removed | time |");
            println!("|---|---|---|");
            let cluster_store = Store::from_settings(&settings(cluster.overrides(), &[])).unwrap();
            erase_cost("cluster, 3 primaries", &cluster_store).await;
            let single_store = Store::from_settings(&settings(single.overrides(), &[])).unwrap();
            erase_cost("one server", &single_store).await;
        }
    });
    if enabled("processes") {
        cross_process(&cluster);
    }
}
