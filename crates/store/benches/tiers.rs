//! `cargo xtask bench tiers`: the embedded and Redis tiers side by side, in one run (issue 13's benchmark, as far
//! as the tiers exist).
//!
//! - the disk backend's hit vs a raw read of the same engine: a prepared `SELECT value FROM entries WHERE key = ?`
//!   on a pooled SQLite connection, run on a blocking thread as the backend runs it — what the store adds is the
//!   generation reads, the envelope and the bookkeeping;
//! - the disk backend's hit rate beside the Redis backend's (one `redis-server`, the production profile) and a
//!   raw redis-rs `GET`, at 100 B and 4 KB with 64 tasks.
//!
//! Pairs are measured in alternating windows and judged by the median of per-window ratios (`BENCH_SECS`,
//! `BENCH_REPEATS`, see the testkit's `bench` module). The in-process tier (L1) rows of issue 13 come with it.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::Store;
use fernando_cache_testkit::{RedisServer, bench::pair};

const TASKS: usize = 64;
const SIZES: [(usize, &str); 2] = [(100, "100 B"), (4096, "4 KB")];

fn store(overrides: Vec<(&'static str, String)>) -> Store {
    Store::from_settings(
        &Settings::load(LoadOptions::isolated(Environment::Production).set_all(overrides))
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
        let stored_key = disk.keys().key(&tenant, &ty, &key).unwrap().into_string();

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
        let (b, x, ratio) = pair(TASKS, raw_get, hit(&disk)).await;
        println!(
            "| disk hit vs raw redis-rs GET | {label} | {TASKS} | {b:.0} | {x:.0} | {ratio:.2}× |"
        );
    }
}
