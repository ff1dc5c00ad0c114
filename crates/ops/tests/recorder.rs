//! The statistics recorder against real Redis, real PostgreSQL and real SQLite.

use std::time::Duration;

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_models::{Db, list_events, run_pending, statistics_since};
use fernando_cache_ops::recorder::{Recorder, RecorderOptions};
use fernando_cache_store::{Counters, Store};
use fernando_cache_testkit::{PostgresDb, RedisServer, TcpProxy};

fn store_on(server: &RedisServer) -> Store {
    let settings =
        Settings::load(LoadOptions::isolated(Environment::Test).set_all(server.overrides()))
            .unwrap();
    Store::from_settings(&settings).unwrap()
}

fn migrated(url: &str) -> String {
    run_pending(&mut Db::open(url).unwrap()).unwrap();
    url.to_owned()
}

fn options(url: &str) -> RecorderOptions {
    RecorderOptions::new(url).flush_interval(Duration::from_millis(20))
}

/// `n` mixed operations over three tenants and three types, from 8 tasks.
async fn workload(store: &Store, n: usize, salt: &str) {
    let per_task = n / 8;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = store.clone();
        let salt = salt.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                let tenant = TenantId::new(format!("t{}", i % 3)).unwrap();
                let ty = [
                    CacheType::SESSION,
                    CacheType::OCR_RESULT,
                    CacheType::BILLING,
                ][(i / 3) % 3]
                    .clone();
                let key = format!("{salt}-{task}-{}", i % 50);
                match i % 5 {
                    0 | 1 => {
                        let _ = store.get::<String>(&tenant, &ty, &key).await.unwrap();
                    }
                    2 => {
                        let _ = store
                            .set(&tenant, &ty, &key, &"v".repeat(i % 2000))
                            .await
                            .unwrap();
                    }
                    3 => {
                        let _ = store.delete(&tenant, &ty, &key).await;
                    }
                    _ => {
                        let _ = store
                            .get_or_compute(&tenant, &ty, &key, || async {
                                Ok::<_, std::io::Error>(i.to_string())
                            })
                            .await
                            .unwrap();
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn db_totals(url: &str) -> Counters {
    let mut c = Counters::default();
    for s in statistics_since(
        &mut Db::open(url).unwrap(),
        chrono::DateTime::UNIX_EPOCH.naive_utc(),
    )
    .unwrap()
    {
        c.hits += s.hits as u64;
        c.misses += s.misses as u64;
        c.sets += s.sets as u64;
        c.deletes += s.deletes as u64;
        c.errors += s.errors as u64;
        c.degraded += s.degraded as u64;
        c.raw_bytes += s.raw_bytes as u64;
        c.stored_bytes += s.stored_bytes as u64;
    }
    c
}

fn comparable(c: Counters) -> [u64; 8] {
    [
        c.hits,
        c.misses,
        c.sets,
        c.deletes,
        c.errors,
        c.degraded,
        c.raw_bytes,
        c.stored_bytes,
    ]
}

async fn exactness(url: &str) {
    let server = RedisServer::start();
    let store = store_on(&server);
    let recorder = Recorder::spawn(store.clone(), options(url));
    workload(&store, 10_000, "x").await;
    let report = recorder.shutdown(Duration::from_secs(10)).await;
    let memory = store.metrics().totals();
    // Every operation was counted: reads as a hit or a miss, writes, deletes (get_or_compute reads once or twice).
    assert!(
        memory.hits + memory.misses + memory.sets >= 10_000 * 3 / 5,
        "{memory:?}"
    );
    assert_eq!(comparable(db_totals(url)), comparable(memory), "{report:?}");
    assert!(report.flushes > 1, "{report:?}");
    // Per-operation rows count every read and every write attempt, over all tenants.
    let perf = fernando_cache_models::performance_since(
        &mut Db::open(url).unwrap(),
        chrono::DateTime::UNIX_EPOCH.naive_utc(),
    )
    .unwrap();
    let count = |op: &str| {
        perf.iter()
            .filter(|r| r.operation == op)
            .map(|r| r.count as u64)
            .sum::<u64>()
    };
    assert_eq!(count("get"), memory.hits + memory.misses);
    assert_eq!(count("set"), memory.sets + memory.dropped_sets);
    assert!(
        perf.iter()
            .all(|r| r.p50_us <= r.p99_us && r.p99_us <= r.max_us),
        "{perf:?}"
    );
    assert_eq!(report.rows_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_are_exact_on_postgres() {
    let pg = PostgresDb::create();
    exactness(&migrated(pg.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_are_exact_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exactness(&migrated(&format!(
        "sqlite://{}",
        dir.path().join("s.db").display()
    )))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusing_connections_under_load_loses_nothing() {
    let pg = PostgresDb::create();
    migrated(pg.url());
    let proxy = TcpProxy::start(&pg.host_port());
    let url = pg.url_via(&proxy.addr());
    let server = RedisServer::start();
    let store = store_on(&server);
    let recorder = Recorder::spawn(store.clone(), options(&url));
    workload(&store, 2_000, "before").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.block();
    workload(&store, 4_000, "during").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = recorder.report();
    assert!(
        during.failed_flushes > 0,
        "the outage was not noticed: {during:?}"
    );
    assert!(during.rows_buffered > 0);
    proxy.unblock();
    workload(&store, 2_000, "after").await;
    let report = recorder.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.rows_dropped, 0);
    assert_eq!(
        comparable(db_totals(pg.url())),
        comparable(store.metrics().totals()),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_file_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let url = migrated(&format!("sqlite://{}", path.display()));
    let server = RedisServer::start();
    let store = store_on(&server);
    let recorder = Recorder::spawn(store.clone(), options(&url));
    workload(&store, 2_000, "before").await;
    // Another process-like connection takes the write lock and keeps it past the recorder's busy timeout.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let lock_path = path.clone();
    let holder = std::thread::spawn(move || {
        use diesel::{Connection, connection::SimpleConnection};
        let mut conn = diesel::SqliteConnection::establish(lock_path.to_str().unwrap()).unwrap();
        conn.batch_execute("PRAGMA busy_timeout = 10000; BEGIN EXCLUSIVE; INSERT INTO cache_event_log (occurred_at, event_type, severity, details) VALUES ('2026-01-01 00:00:00', 'lock', 'info', '');").unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        conn.batch_execute("ROLLBACK;").unwrap();
    });
    locked_rx.recv().unwrap();
    workload(&store, 4_000, "during").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let during = recorder.report();
    assert!(
        during.failed_flushes > 0,
        "the lock was not noticed: {during:?}"
    );
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    workload(&store, 2_000, "after").await;
    let report = recorder.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.rows_dropped, 0);
    assert_eq!(
        comparable(db_totals(&url)),
        comparable(store.metrics().totals()),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_recorders_on_one_postgres_database_add_up() {
    let pg = PostgresDb::create();
    let url = migrated(pg.url());
    let (s1, s2) = (RedisServer::start(), RedisServer::start());
    let (a, b) = (store_on(&s1), store_on(&s2));
    let (ra, rb) = (
        Recorder::spawn(a.clone(), options(&url)),
        Recorder::spawn(b.clone(), options(&url)),
    );
    tokio::join!(workload(&a, 4_000, "a"), workload(&b, 4_000, "b"));
    ra.shutdown(Duration::from_secs(10)).await;
    rb.shutdown(Duration::from_secs(10)).await;
    let mut expected = a.metrics().totals();
    expected.add(&b.metrics().totals());
    assert_eq!(comparable(db_totals(&url)), comparable(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_and_counts_and_events_survive_an_outage() {
    let pg = PostgresDb::create();
    migrated(pg.url());
    let proxy = TcpProxy::start(&pg.host_port());
    proxy.block();
    let url = pg.url_via(&proxy.addr());
    let server = RedisServer::start();
    let store = store_on(&server);
    let recorder = Recorder::spawn(store.clone(), options(&url).buffer_max_rows(2));
    recorder.event(
        "invalidation",
        fernando_cache_models::Severity::Info,
        Some("t0"),
        None,
        "during outage",
    );
    workload(&store, 800, "x").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = recorder.report();
    // The buffer holds at most 2 rows, plus at most one failed batch (taken from it) kept for an exact retry.
    assert!(
        during.rows_dropped > 0 && during.rows_buffered <= 2 * 2,
        "{during:?}"
    );
    proxy.unblock();
    let report = recorder.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.events_written, 1, "{report:?}");
    let events = list_events(
        &mut Db::open(pg.url()).unwrap(),
        chrono::DateTime::UNIX_EPOCH.naive_utc(),
        Some("invalidation"),
    )
    .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].details, "during outage");
}
