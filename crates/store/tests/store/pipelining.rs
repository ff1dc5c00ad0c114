//! Auto-pipelining (`redis.auto_pipeline`, design 0008): hits that are ready together go out as one pipeline per
//! connection, and each caller still gets exactly its own reply — also when a neighbour in the batch fails, and
//! after the runtime that held a batch is gone.

use std::time::{Duration, Instant};

use fernando_cache_config::CacheType;
use fernando_cache_store::{Store, WriteOutcome};
use fernando_cache_testkit::RedisServer;

use crate::support::{calls, redis_settings, redis_settings_with, tenant, until_tracked};

const KEYS: u64 = 200;

fn value_of(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// 64 tasks read 200 keys in overlapping orders; every read must return that key's own value.
async fn every_caller_gets_its_own_value(server: &RedisServer, store: &Store) {
    let (acme, ty) = (tenant("acme"), CacheType::SESSION);
    for i in 0..KEYS {
        let _ = store
            .set(&acme, &ty, &format!("k{i}"), &value_of(i))
            .await
            .unwrap();
    }
    until_tracked(server, store, &acme, &ty, "warm").await;
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            let (store, acme, ty) = (store.clone(), acme.clone(), ty.clone());
            tokio::spawn(async move {
                for round in 0..50u64 {
                    let i = (t * 7 + round * 13) % KEYS;
                    let got = store
                        .get::<u64>(&acme, &ty, &format!("k{i}"))
                        .await
                        .unwrap();
                    assert_eq!(got, Some(value_of(i)), "task {t} round {round} read k{i}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let c = store.metrics().series("acme", "session").unwrap().counters;
    assert_eq!(c.hits, 64 * 50, "{c:?}");
    assert_eq!(c.errors, 0, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hits_on_many_keys_each_get_their_own_value() {
    let server = RedisServer::start();
    let store = Store::from_settings(&redis_settings(&server)).unwrap();
    every_caller_gets_its_own_value(&server, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_pipelining_hits_are_sent_one_by_one_and_still_correct() {
    let server = RedisServer::start();
    let settings = redis_settings_with(&server, &[("redis.auto_pipeline", "false")]);
    assert!(!settings.redis.auto_pipeline);
    let store = Store::from_settings(&settings).unwrap();
    every_caller_gets_its_own_value(&server, &store).await;
}

// One thread: the ten reads run one after another and queue their GETs before the flush task (which yields
// first) cuts the batch, so a single pipeline holds all of them.
#[tokio::test(flavor = "current_thread")]
async fn a_wrongtype_key_in_a_batch_fails_only_its_own_read() {
    let server = RedisServer::start();
    let store = Store::from_settings(&redis_settings(&server)).unwrap();
    let (acme, ty) = (tenant("acme"), CacheType::SESSION);
    for i in 0..10u64 {
        let _ = store.set(&acme, &ty, &format!("k{i}"), &i).await.unwrap();
    }
    until_tracked(&server, &store, &acme, &ty, "warm").await;
    let hash_key = store
        .admin()
        .keys()
        .key(&acme, &ty, "k5")
        .unwrap()
        .into_string();
    server.command(&["DEL", &hash_key]).unwrap();
    server.command(&["HSET", &hash_key, "f", "v"]).unwrap();

    let reads: Vec<_> = (0..10u64)
        .map(|i| {
            let (store, acme, ty) = (store.clone(), acme.clone(), ty.clone());
            tokio::spawn(async move { store.get::<u64>(&acme, &ty, &format!("k{i}")).await })
        })
        .collect();
    for (i, read) in reads.into_iter().enumerate() {
        let expected = (i != 5).then_some(i as u64);
        assert_eq!(read.await.unwrap().unwrap(), expected, "k{i}");
    }
    let c = store.metrics().series("acme", "session").unwrap().counters;
    assert_eq!(c.corrupt, 1, "the hash is counted once: {c:?}");
    assert_eq!(
        server.command(&["EXISTS", &hash_key]).unwrap().trim(),
        ":0",
        "the hash is removed"
    );
}

/// A store shared across runtimes (one per test, say): reads queued when a runtime shuts down are answered
/// (as misses) rather than stranded, and hits resume on the next runtime.
#[test]
fn reads_resume_after_the_runtime_that_held_a_batch_is_gone() {
    let server = RedisServer::start();
    let store = Store::from_settings(&redis_settings(&server)).unwrap();
    let (acme, ty) = (tenant("acme"), CacheType::SESSION);
    for round in 0..3 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // The previous runtime's connections died with it; they are replaced and tracked again (the store
            // retries tracking after a pause), after which every hit goes through the pipelined path.
            let deadline = Instant::now() + Duration::from_secs(10);
            while store.set(&acme, &ty, "k", &7u64).await.unwrap() != WriteOutcome::Stored {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: writes did not resume"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            until_tracked(&server, &store, &acme, &ty, "warm").await;
            let mgets = calls(&server, "mget");
            for i in 0..200 {
                assert_eq!(
                    store.get::<u64>(&acme, &ty, "k").await.unwrap(),
                    Some(7),
                    "round {round}: read {i} after tracking resumed"
                );
            }
            assert_eq!(
                calls(&server, "mget"),
                mgets,
                "round {round}: hits took the tracked path"
            );
        });
        // Leave reads in flight and queued when the runtime goes away.
        for _ in 0..64 {
            let (store, acme, ty) = (store.clone(), acme.clone(), ty.clone());
            rt.spawn(async move {
                loop {
                    let _ = store.get::<u64>(&acme, &ty, "k").await;
                }
            });
        }
        std::thread::sleep(Duration::from_millis(50));
        rt.shutdown_background();
    }
}
