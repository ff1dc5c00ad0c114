//! `cargo xtask bench tiers`: the embedded and Redis tiers side by side, in one run (issue 13's benchmark, as far
//! as the tiers exist).
//!
//! - the disk backend's hit vs a raw read of the same engine: a prepared `SELECT value FROM entries WHERE key = ?`
//!   on a pooled SQLite connection, run on a blocking thread as the backend runs it — what the store adds is the
//!   generation reads, the envelope and the bookkeeping;
//! - the disk backend's hit rate beside the Redis backend's (one `redis-server`, the production profile) and a
//!   raw redis-rs `GET`, at 100 B and 4 KB with 64 tasks.
//!
//! - the in-process tier (L1, over the same Redis) vs a bare moka `get` of the same value and vs a raw redis-rs
//!   `GET`;
//! - the staleness window of an L1 copy: from a writer's acknowledged `set` to a reader with L1 (its own
//!   connections, as another process would have) first reading the new value.
//!
//! Every store is the production profile's with sealing off (`encryption.document_data = false`): the disk
//! baselines read the stored row raw and decompress it, which ciphertext cannot be, and what sealing costs is
//! measured on its own (`cargo xtask bench http`, the edge bench's section 3).
//!
//! Pairs are measured in alternating windows and judged by the median of per-window ratios (`BENCH_SECS`,
//! `BENCH_REPEATS`, `BENCH_SMOKE`, see the testkit's `bench` module).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::Store;
use fernando_cache_testkit::{
    RedisServer,
    bench::{pair, scaled},
};

const TASKS: usize = 64;

thread_local! {
    static DCTX: std::cell::RefCell<zstd::bulk::Decompressor<'static>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new().expect("zstd context"));
}
const SIZES: [(usize, &str); 2] = [(100, "100 B"), (4096, "4 KB")];

fn store(overrides: Vec<(&'static str, String)>) -> Store {
    Store::from_settings(
        &Settings::load(
            LoadOptions::isolated(Environment::Production)
                // The raw baselines read what the store wrote: it must be the envelope in clear.
                .set("encryption.document_data", "false")
                // The baselines decompress with a bare zstd context: no dictionary.
                .set("compression.dictionaries", "false")
                .set_all(overrides),
        )
        .expect("bench settings"),
    )
    .expect("store")
}

/// Raw reads of the cache file: a small pool of connections, each read on a blocking thread.
#[derive(Clone)]
struct RawDisk {
    path: PathBuf,
    idle: Arc<Mutex<Vec<rusqlite::Connection>>>,
}

impl RawDisk {
    async fn get(&self, key: String) -> Option<Vec<u8>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.idle.lock().unwrap().pop();
            let conn = conn.unwrap_or_else(|| rusqlite::Connection::open(&this.path).unwrap());
            let value = conn
                .prepare_cached("SELECT value FROM entries WHERE key = ?1")
                .unwrap()
                .query_row([&key], |r| r.get::<_, Vec<u8>>(0))
                .ok();
            this.idle.lock().unwrap().push(conn);
            value
        })
        .await
        .unwrap()
    }
}

fn text(size: usize) -> String {
    "Invoice 4711, total 1 234,50 EUR, due 2026-12-31. "
        .repeat(size / 50 + 1)
        .chars()
        .take(size)
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite3");
    let disk = store(vec![
        ("backend", "disk".to_owned()),
        ("disk.path", path.display().to_string()),
    ]);
    let server = RedisServer::start();
    let redis = store(server.overrides());
    let raw_redis = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let raw_disk = RawDisk {
        path: path.clone(),
        idle: Arc::default(),
    };
    let tenant = TenantId::new("bench").unwrap();
    let ty = CacheType::OCR_RESULT;
    let mut l1_settings = server.overrides();
    l1_settings.push(("types.ocr_result.l1", "true".to_owned()));
    let l1 = store(l1_settings);

    println!("| what | size | tasks | baseline ops/s | subject ops/s | ratio |");
    println!("|---|---|---|---|---|---|");
    for (size, label) in SIZES {
        let value = text(size);
        let key = format!("v{size}");
        let _ = disk.set(&tenant, &ty, &key, &value).await.unwrap();
        let _ = redis.set(&tenant, &ty, &key, &value).await.unwrap();
        let raw_key = format!("raw:{size}");
        let mut c = raw_redis.clone();
        let _: () = redis::cmd("SET")
            .arg(&raw_key)
            .arg(&value)
            .query_async(&mut c)
            .await
            .unwrap();
        let stored_key = disk
            .admin()
            .keys()
            .key(&tenant, &ty, &key)
            .unwrap()
            .into_string();

        let hit = |s: &Store| {
            let (s, t, k, ty) = (s.clone(), tenant.clone(), key.clone(), ty.clone());
            move |_| {
                let (s, t, k, ty) = (s.clone(), t.clone(), k.clone(), ty.clone());
                async move {
                    let v: Option<String> = s.get(&t, &ty, &k).await.unwrap();
                    assert!(v.is_some(), "benchmark value missing");
                }
            }
        };
        let raw_read = {
            let (r, k) = (raw_disk.clone(), stored_key.clone());
            move |_| {
                let (r, k) = (r.clone(), k.clone());
                async move {
                    assert!(r.get(k).await.is_some());
                }
            }
        };
        let (b, x, ratio) = pair(TASKS, raw_read, hit(&disk)).await;
        println!(
            "| disk hit vs raw SQLite read of the same row | {label} | {TASKS} | {b:.0} | {x:.0} | {ratio:.2}× |"
        );
        // A compressed entry: the engine read plus a bare zstd decompress with a reused context, the baseline
        // the store bench uses for compressed values.
        let stored = raw_disk.get(stored_key.clone()).await.unwrap();
        // The flags byte of the envelope's header (codec/header.rs): zstd, and sealed, which a bare decompress
        // cannot read.
        assert_eq!(
            stored[4] & 0b1000,
            0,
            "the stored value is sealed; the baseline needs it in clear"
        );
        if stored[4] & 1 != 0 {
            let raw_read_decompressed = {
                let (r, k) = (raw_disk.clone(), stored_key.clone());
                move |_| {
                    let (r, k) = (r.clone(), k.clone());
                    async move {
                        let bytes = r.get(k).await.unwrap();
                        let len = u32::from_le_bytes(bytes[29..33].try_into().unwrap()) as usize;
                        let out =
                            DCTX.with(|d| d.borrow_mut().decompress(&bytes[49..], len).unwrap());
                        std::hint::black_box(out);
                    }
                }
            };
            let (b, x, ratio) = pair(TASKS, raw_read_decompressed, hit(&disk)).await;
            println!(
                "| disk hit vs raw SQLite read + bare zstd decompress | {label} | {TASKS} | {b:.0} | {x:.0} | {ratio:.2}× |"
            );
        }
        let (b, x, ratio) = pair(TASKS, hit(&redis), hit(&disk)).await;
        println!(
            "| disk hit vs Redis backend hit (one redis-server) | {label} | {TASKS} | {b:.0} | {x:.0} | {ratio:.2}× |"
        );
        let raw_get = {
            let (r, k) = (raw_redis.clone(), raw_key.clone());
            move |_| {
                let (mut r, k) = (r.clone(), k.clone());
                async move {
                    let v: Option<Vec<u8>> =
                        redis::cmd("GET").arg(&k).query_async(&mut r).await.unwrap();
                    assert!(v.is_some());
                }
            }
        };
        let (b, x, ratio) = pair(TASKS, raw_get.clone(), hit(&disk)).await;
        println!(
            "| disk hit vs raw redis-rs GET | {label} | {TASKS} | {b:.0} | {x:.0} | {ratio:.2}× |"
        );

        // L1 over the Redis store's entry: held once tracking has started.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let before = l1_hits(&l1);
            let _: Option<String> = l1.get(&tenant, &ty, &key).await.unwrap();
            if l1_hits(&l1) > before {
                break;
            }
            assert!(Instant::now() < deadline, "L1 never held the value");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let moka = moka::sync::Cache::<String, String>::new(10_000);
        moka.insert(key.clone(), value.clone());
        let bare_moka = {
            let (m, k) = (moka.clone(), key.clone());
            move |_| {
                let (m, k) = (m.clone(), k.clone());
                async move {
                    assert!(m.get(&k).is_some());
                }
            }
        };
        let hits_before = l1_hits(&l1);
        let (b, x, ratio) = pair(TASKS, bare_moka, hit(&l1)).await;
        println!(
            "| L1 hit vs bare moka get of the same value | {label} | {TASKS} | {b:.0} | {x:.0} | {ratio:.2}× |"
        );
        let (b, x, ratio) = pair(TASKS, raw_get, hit(&l1)).await;
        println!(
            "| L1 hit vs raw redis-rs GET | {label} | {TASKS} | {b:.0} | {x:.0} | {ratio:.2}× |"
        );
        let (answered, total) = (l1_hits(&l1) - hits_before, reads(&l1) - hits_before);
        println!(
            "| (L1 answered {answered} of the {total} L1-store reads above) | {label} | | | | |"
        );
    }
    staleness(&redis, &l1, &tenant).await;
}

fn series_counters(s: &Store) -> fernando_cache_store::Counters {
    let mut all = fernando_cache_store::Counters::default();
    for series in s.metrics().series {
        all.add(&series.counters);
    }
    all
}

fn l1_hits(s: &Store) -> u64 {
    series_counters(s).l1_hits
}

fn reads(s: &Store) -> u64 {
    let c = series_counters(s);
    c.hits + c.misses
}

/// A writer sets a key 2 000 times (20 in a smoke run); a reader holding it in L1 reads it every ~10 µs on a
/// thread of its own (sleeping between reads, so that it leaves the cores to Redis and to the connection that
/// delivers the announcement). The window is from the writer's acknowledgement to the reader's first read of the new value;
/// its resolution is the reader's period (≈ 60–100 µs with the kernel's timer slack).
async fn staleness(writer: &Store, reader: &Store, tenant: &TenantId) {
    let changes: u64 = scaled(2_000, 20);
    let ty = CacheType::OCR_RESULT;
    let _ = writer.set(tenant, &ty, "w", &0u64).await.unwrap();
    let (seen_tx, mut seen) = tokio::sync::watch::channel((0u64, Instant::now()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread = {
        let (reader, tenant, stop) = (reader.clone(), tenant.clone(), stop.clone());
        let runtime = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            let mut last = u64::MAX;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let v: Option<u64> = runtime
                    .block_on(reader.get(&tenant, &CacheType::OCR_RESULT, "w"))
                    .unwrap();
                if let Some(v) = v
                    && v != last
                {
                    let _ = seen_tx.send((v, Instant::now()));
                    last = v;
                }
                std::thread::sleep(Duration::from_micros(10));
            }
        })
    };
    let hits_before = l1_hits(reader);
    let mut windows = Vec::with_capacity(changes as usize);
    for i in 1..=changes {
        let _ = writer.set(tenant, &ty, "w", &i).await.unwrap();
        let acked = Instant::now();
        let (_, at) =
            *tokio::time::timeout(Duration::from_secs(5), seen.wait_for(|(v, _)| *v == i))
                .await
                .unwrap_or_else(|_| panic!("the reader never read {i}"))
                .unwrap();
        windows.push(at.saturating_duration_since(acked));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    thread.join().unwrap();
    windows.sort_unstable();
    let q = |p: f64| windows[((windows.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
    println!();
    println!(
        "| L1 staleness window (writer's ack → reader's first read of the new value) | changes | p50 µs | p99 µs | p99.9 µs | max µs | reader's L1 hits |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| two stores, own connections, one redis-server | {changes} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0),
        l1_hits(reader) - hits_before
    );
}
