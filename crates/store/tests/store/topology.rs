//! Topologies in motion: slots migrating between cluster primaries under load, a cluster primary and a
//! Sentinel master SIGKILLed under load and replaced. Callers see only degraded misses and dropped writes while a slot has
//! no primary; no call errors, blocks past its bound or reads another key's value; hits resume by themselves.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_store::{InvalidationStrategy, Store, Target, WriteOutcome};
use fernando_cache_testkit::{FAST_FAILURE, RedisCluster, SentinelGroup};

use crate::support::{Servers, tenant, until_tracked};

/// A call may take its command timeout plus scheduling noise, never more than this.
const CALL_BOUND: Duration = Duration::from_secs(2);
const TASKS: usize = 64;

fn store_on(overrides: Vec<(&'static str, String)>) -> Store {
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(overrides)
            .set_all(FAST_FAILURE.iter().copied()),
    )
    .expect("settings");
    Store::from_settings(&settings).expect("store")
}

/// What the load saw.
#[derive(Default)]
struct Load {
    calls: AtomicU64,
    hits: AtomicU64,
    slowest_ms: AtomicU64,
}

/// `TASKS` tasks, each with its own tenant (so its own slot), writing and reading their keys until `stop`;
/// every value read must be the task's own. Panics (failing the test) on an error or a foreign value.
fn load(
    store: &Store,
    stop: &Arc<AtomicBool>,
    seen: &Arc<Load>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..TASKS)
        .map(|i| {
            let (store, stop, seen) = (store.clone(), stop.clone(), seen.clone());
            tokio::spawn(async move {
                let t = tenant(&format!("tenant-{i}"));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k{}", n % 16);
                    let value = format!("tenant-{i}/{key}");
                    let start = Instant::now();
                    let _ = store
                        .set(&t, &CacheType::SESSION, &key, &value)
                        .await
                        .expect("a write never errors; it is stored or dropped");
                    let got = store
                        .get::<String>(&t, &CacheType::SESSION, &key)
                        .await
                        .expect("a read never errors; it hits or misses");
                    let took = start.elapsed();
                    assert!(took < CALL_BOUND * 2, "a set+get took {took:?}");
                    seen.slowest_ms
                        .fetch_max(took.as_millis() as u64, Ordering::Relaxed);
                    seen.calls.fetch_add(1, Ordering::Relaxed);
                    if let Some(got) = got {
                        assert_eq!(got, value, "a read returned another key's value");
                        seen.hits.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                    // A load, not a spin: while the breaker is open a call returns at once.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect()
}

/// Every task's tenant writes and reads back a fresh value within 15 s.
async fn hits_resume(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0..TASKS {
        let t = tenant(&format!("tenant-{i}"));
        loop {
            let stored = store
                .set(&t, &CacheType::SESSION, "after", &i)
                .await
                .unwrap();
            if stored == WriteOutcome::Stored
                && store
                    .get::<usize>(&t, &CacheType::SESSION, "after")
                    .await
                    .unwrap()
                    == Some(i)
            {
                break;
            }
            if Instant::now() >= deadline {
                let ping = store
                    .admin()
                    .ping()
                    .await
                    .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)));
                panic!(
                    "tenant-{i} has no hits 15 s after the change; ping: {ping:?}; {:?}",
                    store.metrics().totals()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// After a topology change, with the load stopped: every task's tenant is hit with one `GET` again (tracking
/// re-armed on the new node connections), and a lazy invalidation by another process is seen by the very next
/// read.
async fn tracking_resumes(servers: &impl Servers, store: &Store, other: &Store) {
    for i in 0..TASKS {
        let t = tenant(&format!("tenant-{i}"));
        let _ = other
            .set(&t, &CacheType::SESSION, "tracked", &(i as u64))
            .await
            .unwrap();
        until_tracked(servers, store, &t, &CacheType::SESSION, "tracked").await;
        let _ = other
            .invalidate(
                Target::entries(&t, &CacheType::SESSION),
                InvalidationStrategy::Lazy,
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .get::<u64>(&t, &CacheType::SESSION, "tracked")
                .await
                .unwrap(),
            None,
            "tenant-{i}: a read after another process's invalidation must miss"
        );
    }
}

async fn finish(stop: Arc<AtomicBool>, tasks: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a load task failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_range_migrating_under_64_tasks_surfaces_no_error_and_no_foreign_value() {
    let cluster = Arc::new(RedisCluster::start_with(3, 0));
    let store = store_on(cluster.overrides());
    let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Load::default()));
    let tasks = load(&store, &stop, &seen);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Every slot of the first primary that holds a tenant of the load moves to the second while it runs.
    let c = cluster.clone();
    let moved = tokio::task::spawn_blocking(move || {
        let (from, to) = (c.primaries()[0], c.primaries()[1]);
        let mut moved = 0;
        for i in 0..TASKS {
            let slot = c.slot_of(&format!("{{tenant_tenant-{i}}}"));
            if c.primary_of_slot(slot) == from {
                c.migrate_slots(slot..slot + 1, from, to);
                moved += 1;
            }
        }
        moved
    })
    .await
    .unwrap();
    assert!(moved >= 5, "only {moved} tenants' slots moved");
    tokio::time::sleep(Duration::from_millis(300)).await;
    finish(stop, tasks).await;
    assert!(seen.hits.load(Ordering::Relaxed) > 0);
    hits_resume(&store).await;
    tracking_resumes(cluster.as_ref(), &store, &store_on(cluster.overrides())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_primary_killed_under_load_is_replaced_and_hits_resume() {
    let cluster = Arc::new(std::sync::Mutex::new(RedisCluster::start()));
    let overrides = cluster.lock().unwrap().overrides();
    let store = store_on(overrides);
    let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Load::default()));
    let tasks = load(&store, &stop, &seen);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = c.lock().unwrap();
        let victim = c.primaries()[0];
        c.kill(victim);
        c.wait_for_promotion(victim);
    })
    .await
    .unwrap();
    hits_resume(&store).await;
    finish(stop, tasks).await;
    let m = store.metrics().totals();
    assert!(
        m.degraded > 0,
        "the switch was seen as degraded calls: {m:?}"
    );
    let Ok(cluster) = Arc::try_unwrap(cluster) else {
        panic!("the failover task still holds the cluster");
    };
    let cluster = cluster.into_inner().unwrap();
    tracking_resumes(&cluster, &store, &store_on(cluster.overrides())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_master_killed_under_load_is_followed_to_the_promoted_replica() {
    let group = Arc::new(std::sync::Mutex::new(SentinelGroup::start()));
    let overrides = group.lock().unwrap().overrides();
    let store = store_on(overrides);
    hits_resume(&store).await;
    let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Load::default()));
    let tasks = load(&store, &stop, &seen);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let g = group.clone();
    tokio::task::spawn_blocking(move || g.lock().unwrap().kill_master_and_wait_for_failover())
        .await
        .unwrap();
    hits_resume(&store).await;
    finish(stop, tasks).await;
    let group = group.lock().unwrap();
    let (_, promoted) = group.servers();
    let role = promoted.command(&["ROLE"]).unwrap();
    assert!(role.contains("master"), "{role}");
    let keys = promoted.command(&["DBSIZE"]).unwrap();
    assert_ne!(keys.trim(), "0", "the store writes to the promoted replica");
}
