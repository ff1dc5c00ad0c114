//! `cargo xtask bench store`: the store's overhead against the work it cannot avoid, in one run, against a
//! private redis-server.
//!
//! Every pair is measured in many short alternating windows (AB, BA, AB, …); the ratio reported is the median
//! of the per-window ratios, because on a 2-core machine shared by client and server the absolute figures drift
//! by 10–30 % within a run. Pairs:
//!
//! - store `get` hit vs a raw redis-rs multiplexed `GET` of the same value uncompressed (100 B, 4 KB, 64 KB);
//! - for compressed values, store `get` hit vs a raw `GET` of the very bytes the store wrote plus a bare zstd
//!   decompress with a reused context — the work the layer cannot avoid;
//! - store `set` vs a raw `SET … PX` of the bytes the store writes: for a value the store compresses, a bare
//!   zstd compress (reused context, the configured level) and a `SET … PX` of the result;
//! - the peer: the `cached` crate's `AsyncRedisCache` get and set on the same values;
//! - the memory backend's hit vs a bare moka `get`;
//! - `get_many` of 100 hits vs a raw redis-rs pipeline of the same 100 `GET`s, and vs a raw `MGET` of them (with
//!   the bare zstd decompress of each value the store compressed), and vs that `MGET` decoding each value into
//!   a `String` as a typed read must (the floor of a typed batch read; informative, the goal is the bare `MGET`),
//!   and that floor itself against the bare `MGET` (no store on either side: what decoding alone costs);
//! - compression dictionaries (`dictionary`, design 0025): small values of three kinds stored by a store without
//!   dictionaries (today) and by one whose group trained its dictionary — stored bytes, hits and writes.
//!
//! The store is the production profile's with sealing off (`encryption.document_data = false`): the baselines
//! read the stored bytes raw and decompress them, which ciphertext cannot be, and what sealing costs is measured
//! on its own (`cargo xtask bench http`, the edge bench's section 3).
//!
//! Environment: `BENCH_SECS` (per window, default 0.3), `BENCH_REPEATS` (window pairs, default 10), `BENCH_ONLY` (a comma
//! list of `get,many,compressed,set,peer,memory,dictionary`; default all), `BENCH_SIZES` / `BENCH_TASKS` (comma lists),
//! `BENCH_CONNECTIONS` (multiplexed connections, the same on both sides; default 2), `BENCH_AUTO_PIPELINE`
//! (the store's `redis.auto_pipeline`; default true), `BENCH_SMOKE` (see the testkit's `bench` module).

// The allocator the `fernando-cache` binary ships with, under both sides of every pair (see
// docs/benchmarks.md for the same table under glibc malloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    cell::RefCell,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use cached::ConcurrentCachedAsync;
use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::Store;
use fernando_cache_testkit::{
    RedisServer,
    bench::{pair, repeats, secs, smoke},
};
use redis::aio::MultiplexedConnection;

#[path = "store/dictionaries.rs"]
mod dictionaries;

const SIZES: [(usize, &str); 3] = [(100, "100 B"), (4096, "4 KB"), (65536, "64 KB")];
const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// Keys of a `get_many` batch.
const BATCH: usize = 100;

/// OCR-like text: invoice lines with varying numbers, compressing about 3× with zstd level 3.
fn ocr_text(len: usize) -> String {
    let mut s = String::with_capacity(len + 64);
    let mut i = 0u64;
    while s.len() < len {
        i += 1;
        let n = i.wrapping_mul(2_654_435_761) % 10_000;
        s.push_str(&format!(
            "Pos {i:>3}  Artikel {n:04}  Menge {}  Einzelpreis {}.{:02} EUR  Summe {}.{:02} EUR\n",
            n % 7 + 1,
            n % 500,
            n % 100,
            (n % 500) * (n % 7 + 1),
            (n * 3) % 100
        ));
    }
    s.truncate(len);
    s
}

fn enabled(section: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

fn list_filter<T: Copy + ToString>(var: &str, all: &[T], name: impl Fn(T) -> String) -> Vec<T> {
    match std::env::var(var) {
        Ok(only) => all
            .iter()
            .copied()
            .filter(|x| only.split(',').any(|s| s.trim() == name(*x)))
            .collect(),
        Err(_) => all.to_vec(),
    }
}

struct Row {
    what: String,
    size: &'static str,
    concurrency: usize,
    baseline: f64,
    subject: f64,
    ratio: f64,
}

fn print_rows(title: &str, baseline: &str, subject: &str, rows: &[Row]) {
    println!("\n### {title}\n");
    println!(
        "| case | size | tasks | {baseline} ops/s | {subject} ops/s | ratio (median of windows) |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2}× |",
            r.what, r.size, r.concurrency, r.baseline, r.subject, r.ratio
        );
    }
}

thread_local! {
    static DCTX: RefCell<zstd::bulk::Decompressor<'static>> =
        RefCell::new(zstd::bulk::Decompressor::new().expect("zstd context"));
    static CCTX: RefCell<zstd::bulk::Compressor<'static>> =
        RefCell::new(zstd::bulk::Compressor::new(3).expect("zstd context"));
}

#[derive(Clone)]
struct Raw {
    conns: Arc<Vec<MultiplexedConnection>>,
    next: Arc<AtomicU64>,
}

impl Raw {
    async fn connect(url: &str, n: usize) -> Raw {
        let client = redis::Client::open(url).unwrap();
        let mut conns = Vec::new();
        for _ in 0..n {
            conns.push(client.get_multiplexed_async_connection().await.unwrap());
        }
        Raw {
            conns: Arc::new(conns),
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    fn conn(&self) -> MultiplexedConnection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.conns.len();
        self.conns[i].clone()
    }

    /// A batch of `keys` read raw: one `MGET`, or a pipeline of `GET`s; each value's payload decompressed
    /// when `compressed` (a bare zstd decompress, reused context), and decoded into a `String` when `decoded`
    /// (what a typed read must do with each value at least).
    async fn batch(&self, keys: &[String], mget: bool, decoded: bool, compressed: bool) {
        let mut conn = self.conn();
        let values: Vec<Vec<u8>> = if mget {
            redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap()
        } else {
            let mut p = redis::pipe();
            for k in keys {
                p.cmd("GET").arg(k);
            }
            p.query_async(&mut conn).await.unwrap()
        };
        for bytes in &values {
            let payload = if compressed {
                let len = u32::from_le_bytes(bytes[29..33].try_into().unwrap()) as usize;
                std::borrow::Cow::Owned(
                    DCTX.with(|d| d.borrow_mut().decompress(&bytes[49..], len).unwrap()),
                )
            } else {
                std::borrow::Cow::Borrowed(&bytes[49..])
            };
            if decoded {
                let (text, _): (String, usize) =
                    bincode::serde::decode_from_slice(&payload, bincode::config::standard())
                        .unwrap();
                std::hint::black_box(text);
            } else {
                std::hint::black_box(payload);
            }
        }
        std::hint::black_box(values);
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .unwrap()
    }

    async fn set(&self, key: &str, value: &[u8]) {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(600_000)
            .exec_async(&mut self.conn())
            .await
            .unwrap();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = RedisServer::start();
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Production)
            // The raw baselines read what the store wrote: it must be the envelope in clear.
            .set("encryption.document_data", "false")
            // The baselines decompress what the store wrote with a bare zstd context: no dictionary (the
            // `dictionary` section measures those on stores of their own).
            .set("compression.dictionaries", "false")
            .set_all(server.overrides())
            .set(
                "redis.multiplexed_connections",
                std::env::var("BENCH_CONNECTIONS").unwrap_or_else(|_| "2".into()),
            )
            .set(
                "redis.auto_pipeline",
                std::env::var("BENCH_AUTO_PIPELINE").unwrap_or_else(|_| "true".into()),
            ),
    )
    .unwrap();
    let connections = settings.redis.multiplexed_connections;
    let store = Store::from_settings(&settings).unwrap();
    let raw = Raw::connect(&server.url(), connections).await;
    let tenant = TenantId::new("bench").unwrap();
    let ty = CacheType::OCR_RESULT;
    println!(
        "fernando-cache store benchmark — redis-server on 127.0.0.1:{}, {} multiplexed connections on both sides, \
         {}s windows × {} alternating pairs, median ratios",
        server.port(),
        connections,
        secs().as_secs_f64(),
        repeats()
    );

    let mut get_rows = Vec::new();
    let mut many_rows = Vec::new();
    let mut compressed_rows = Vec::new();
    let mut set_rows = Vec::new();
    let mut peer_rows = Vec::new();
    let peer: cached::AsyncRedisCache<String, String> = cached::AsyncRedisCache::builder("peer")
        .ttl(Duration::from_secs(600))
        .connection_string(&server.url())
        .build()
        .await
        .unwrap();

    let sizes = list_filter("BENCH_SIZES", &SIZES.map(|(n, _)| n), |n| n.to_string());
    let tasks = list_filter("BENCH_TASKS", &CONCURRENCY, |n| n.to_string());
    for (size, label) in SIZES.into_iter().filter(|(n, _)| sizes.contains(n)) {
        let text = ocr_text(size);
        let key = format!("v{size}");
        let _ = store.set(&tenant, &ty, &key, &text).await.unwrap();
        let raw_key = format!("raw:{size}");
        raw.set(&raw_key, text.as_bytes()).await;
        let stored_key = store
            .admin()
            .keys()
            .key(&tenant, &ty, &key)
            .unwrap()
            .into_string();
        let stored = raw.get(&stored_key).await;
        // The flags byte of the envelope's header (codec/header.rs): zstd, and sealed, which the raw baselines
        // cannot read.
        assert_eq!(
            stored[4] & 0b1000,
            0,
            "the stored value is sealed; the baselines need it in clear"
        );
        let compressed = stored[4] & 1 == 1;
        peer.async_cache_set(key.clone(), text.clone())
            .await
            .unwrap();
        println!(
            "- {label}: stored envelope {} bytes ({}compressed)",
            stored.len(),
            if compressed { "" } else { "not " }
        );
        // A batch of 100 entries of this size, for `get_many` against a raw pipeline and a raw MGET.
        let batch: Arc<Vec<String>> =
            Arc::new((0..BATCH).map(|i| format!("m{size}:{i}")).collect());
        let batch_stored: Arc<Vec<String>> = Arc::new(
            batch
                .iter()
                .map(|k| {
                    store
                        .admin()
                        .keys()
                        .key(&tenant, &ty, k)
                        .unwrap()
                        .into_string()
                })
                .collect(),
        );
        if enabled("many") {
            let entries: Vec<(&str, &String)> = batch.iter().map(|k| (k.as_str(), &text)).collect();
            let outcomes = store.set_many(&tenant, &ty, &entries).await.unwrap();
            assert!(
                outcomes
                    .iter()
                    .all(|o| *o == fernando_cache_store::WriteOutcome::Stored),
                "the batch was not stored whole: {outcomes:?}"
            );
        }

        for c in tasks.iter().copied() {
            if enabled("get") {
                let (r, k) = (raw.clone(), raw_key.clone());
                let (s, t, key2) = (store.clone(), tenant.clone(), key.clone());
                let ty2 = ty.clone();
                let (b, x, ratio) = pair(
                    c,
                    move |_| {
                        let (r, k) = (r.clone(), k.clone());
                        async move {
                            std::hint::black_box(r.get(&k).await);
                        }
                    },
                    move |_| {
                        let (s, t, key, ty) = (s.clone(), t.clone(), key2.clone(), ty2.clone());
                        async move {
                            let v: Option<String> = s.get(&t, &ty, &key).await.unwrap();
                            assert!(v.is_some(), "benchmark value expired");
                        }
                    },
                )
                .await;
                get_rows.push(Row {
                    what: "get hit vs raw GET (uncompressed value)".into(),
                    size: label,
                    concurrency: c,
                    baseline: b,
                    subject: x,
                    ratio,
                });
            }

            // A smoke run (a debug build) exercises the batch rows with one task: at 64 its pipelines of 100
            // commands pass the client's response timeout, the raw side's included.
            if enabled("many") && (!smoke() || c == 1) {
                for (what, mget, decoded) in [
                    (
                        "get_many of 100 hits vs raw pipeline of 100 GETs (+ zstd if compressed)",
                        false,
                        false,
                    ),
                    (
                        "get_many of 100 hits vs raw MGET of 100 (+ zstd if compressed)",
                        true,
                        false,
                    ),
                    (
                        "get_many of 100 hits vs raw MGET of 100, each value decoded to a String",
                        true,
                        true,
                    ),
                ] {
                    let (r, keys) = (raw.clone(), batch_stored.clone());
                    let (s, t, names, ty2) =
                        (store.clone(), tenant.clone(), batch.clone(), ty.clone());
                    let (b, x, ratio) = pair(
                        c,
                        move |_| {
                            let (r, keys) = (r.clone(), keys.clone());
                            async move { r.batch(&keys, mget, decoded, compressed).await }
                        },
                        move |_| {
                            let (s, t, names, ty) =
                                (s.clone(), t.clone(), names.clone(), ty2.clone());
                            async move {
                                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                                let v: Vec<Option<String>> =
                                    s.get_many(&t, &ty, &refs).await.unwrap();
                                assert!(v.iter().all(Option::is_some), "benchmark values expired");
                            }
                        },
                    )
                    .await;
                    many_rows.push(Row {
                        what: what.into(),
                        size: label,
                        concurrency: c,
                        baseline: b,
                        subject: x,
                        ratio,
                    });
                }
                // The floor of any typed batch read against the bare MGET the goal names: what decoding each
                // value into the caller's own `String` costs by itself, with no store at all.
                let (r, keys) = (raw.clone(), batch_stored.clone());
                let (r2, keys2) = (raw.clone(), batch_stored.clone());
                let (b, x, ratio) = pair(
                    c,
                    move |_| {
                        let (r, keys) = (r.clone(), keys.clone());
                        async move { r.batch(&keys, true, false, compressed).await }
                    },
                    move |_| {
                        let (r, keys) = (r2.clone(), keys2.clone());
                        async move { r.batch(&keys, true, true, compressed).await }
                    },
                )
                .await;
                many_rows.push(Row {
                    what: "(floor) raw MGET decoding each value to a String vs raw MGET of 100"
                        .into(),
                    size: label,
                    concurrency: c,
                    baseline: b,
                    subject: x,
                    ratio,
                });
            }

            if compressed && enabled("compressed") {
                let (r, k) = (raw.clone(), stored_key.clone());
                let (s, t, key2, ty2) = (store.clone(), tenant.clone(), key.clone(), ty.clone());
                let (b, x, ratio) = pair(
                    c,
                    move |_| {
                        let (r, k) = (r.clone(), k.clone());
                        async move {
                            let bytes = r.get(&k).await;
                            let len =
                                u32::from_le_bytes(bytes[29..33].try_into().unwrap()) as usize;
                            let out = DCTX
                                .with(|d| d.borrow_mut().decompress(&bytes[49..], len).unwrap());
                            std::hint::black_box(out);
                        }
                    },
                    move |_| {
                        let (s, t, key, ty) = (s.clone(), t.clone(), key2.clone(), ty2.clone());
                        async move {
                            let v: Option<String> = s.get(&t, &ty, &key).await.unwrap();
                            assert!(v.is_some());
                        }
                    },
                )
                .await;
                compressed_rows.push(Row {
                    what: "get hit vs raw GET of stored bytes + zstd decompress".into(),
                    size: label,
                    concurrency: c,
                    baseline: b,
                    subject: x,
                    ratio,
                });
            }

            if enabled("set") {
                let (r, v) = (raw.clone(), Arc::new(text.clone()));
                let zstd_first = compressed;
                let (s, t, v2, ty2) = (
                    store.clone(),
                    tenant.clone(),
                    Arc::new(text.clone()),
                    ty.clone(),
                );
                let (b, x, ratio) = pair(
                    c,
                    move |i| {
                        let (r, v) = (r.clone(), v.clone());
                        async move {
                            if zstd_first {
                                let packed =
                                    CCTX.with(|c| c.borrow_mut().compress(v.as_bytes()).unwrap());
                                r.set(&format!("rawset:{i}"), &packed).await;
                            } else {
                                r.set(&format!("rawset:{i}"), v.as_bytes()).await;
                            }
                        }
                    },
                    move |i| {
                        let (s, t, v, ty) = (s.clone(), t.clone(), v2.clone(), ty2.clone());
                        async move {
                            let _ = s.set(&t, &ty, &format!("set:{i}"), &*v).await.unwrap();
                        }
                    },
                )
                .await;
                set_rows.push(Row {
                    what: if compressed {
                        "set vs zstd compress + raw SET PX".into()
                    } else {
                        "set vs raw SET PX".into()
                    },
                    size: label,
                    concurrency: c,
                    baseline: b,
                    subject: x,
                    ratio,
                });
            }

            if c == 64 && enabled("peer") {
                let (p, k) = (peer.clone(), key.clone());
                let (s, t, key2, ty2) = (store.clone(), tenant.clone(), key.clone(), ty.clone());
                let (b, x, ratio) = pair(
                    c,
                    move |_| {
                        let (p, k) = (p.clone(), k.clone());
                        async move {
                            assert!(p.async_cache_get(&k).await.unwrap().is_some());
                        }
                    },
                    move |_| {
                        let (s, t, key, ty) = (s.clone(), t.clone(), key2.clone(), ty2.clone());
                        async move {
                            assert!(s.get::<String>(&t, &ty, &key).await.unwrap().is_some());
                        }
                    },
                )
                .await;
                peer_rows.push(Row {
                    what: "get hit: cached::AsyncRedisCache vs store".into(),
                    size: label,
                    concurrency: c,
                    baseline: b,
                    subject: x,
                    ratio,
                });
                let (p, v) = (peer.clone(), text.clone());
                let (s, t, v2, ty2) = (
                    store.clone(),
                    tenant.clone(),
                    Arc::new(text.clone()),
                    ty.clone(),
                );
                let (b, x, ratio) = pair(
                    c,
                    move |i| {
                        let (p, v) = (p.clone(), v.clone());
                        async move {
                            p.async_cache_set(format!("pset:{i}"), v).await.unwrap();
                        }
                    },
                    move |i| {
                        let (s, t, v, ty) = (s.clone(), t.clone(), v2.clone(), ty2.clone());
                        async move {
                            let _ = s.set(&t, &ty, &format!("set:{i}"), &*v).await.unwrap();
                        }
                    },
                )
                .await;
                peer_rows.push(Row {
                    what: "set: cached::AsyncRedisCache vs store".into(),
                    size: label,
                    concurrency: c,
                    baseline: b,
                    subject: x,
                    ratio,
                });
            }
        }
    }

    let dictionary_rows = if enabled("dictionary") {
        dictionaries::run(&server, &raw).await
    } else {
        Vec::new()
    };

    // In-process: the memory backend vs a bare moka cache holding the same strings.
    let mem_settings = Settings::embedded(Environment::Test).unwrap();
    let mem = Store::from_settings(&mem_settings).unwrap();
    let moka: moka::future::Cache<String, Arc<String>> = moka::future::Cache::new(10_000);
    let mut mem_rows = Vec::new();
    let text = ocr_text(100);
    let _ = mem.set(&tenant, &ty, "m", &text).await.unwrap();
    moka.insert("m".to_owned(), Arc::new(text.clone())).await;
    for c in tasks.iter().copied().filter(|_| enabled("memory")) {
        let m = moka.clone();
        let (s, t, ty2) = (mem.clone(), tenant.clone(), ty.clone());
        let (b, x, ratio) = pair(
            c,
            move |_| {
                let m = m.clone();
                async move {
                    std::hint::black_box(m.get("m").await.unwrap());
                }
            },
            move |_| {
                let (s, t, ty) = (s.clone(), t.clone(), ty2.clone());
                async move {
                    std::hint::black_box(s.get::<String>(&t, &ty, "m").await.unwrap().unwrap());
                }
            },
        )
        .await;
        mem_rows.push(Row {
            what: "memory backend hit vs bare moka get".into(),
            size: "100 B",
            concurrency: c,
            baseline: b,
            subject: x,
            ratio,
        });
    }

    print_rows(
        "Reads: store get (hit) vs raw redis-rs GET of the uncompressed value",
        "raw GET",
        "store get",
        &get_rows,
    );
    print_rows(
        "Batches (goal ≥ 0.90×): store get_many of 100 hits vs a raw pipeline of the same 100 GETs, and vs a raw MGET \
         (the (floor) rows: no store, a raw MGET decoding each value vs the bare one)",
        "raw batch",
        "get_many (floor: decoding MGET)",
        &many_rows,
    );
    print_rows(
        "Reads of compressed values: store get vs raw GET of the stored bytes + bare zstd decompress",
        "GET+zstd",
        "store get",
        &compressed_rows,
    );
    print_rows(
        "Writes: store set vs raw SET PX",
        "raw SET",
        "store set",
        &set_rows,
    );
    print_rows(
        "Peer: the cached crate's AsyncRedisCache (4.1) vs store, 64 tasks",
        "cached",
        "store",
        &peer_rows,
    );
    print_rows(
        "In process: memory backend vs bare moka",
        "moka get",
        "store get",
        &mem_rows,
    );
    print_rows(
        "Compression dictionaries: small values with their group's trained dictionary vs without (today)",
        "today",
        "dictionary",
        &dictionary_rows,
    );
}
