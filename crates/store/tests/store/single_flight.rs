//! Concurrent misses on one key compute once; errors are shared and not cached.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use fernando_cache_config::CacheType;
use fernando_cache_store::{ComputeError, Store};

use crate::support::{contract, memory_store, tenant};

async fn five_hundred_callers_compute_once(store: &Store) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let store = store.clone();
        let runs = runs.clone();
        tasks.push(tokio::spawn(async move {
            store
                .get_or_compute(
                    &tenant("acme"),
                    &CacheType::OCR_RESULT,
                    "cold",
                    || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, std::io::Error>("expensive OCR text".to_owned())
                    },
                )
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "expensive OCR text");
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the computation ran more than once"
    );
}

contract! {
    async fn five_hundred_concurrent_callers(d, store) {
        five_hundred_callers_compute_once(store).await;
        let c = store.metrics().totals();
        assert_eq!(c.sets, 1, "{c:?}");
    }
    on [memory, storage_only, disk, standalone, cluster, standalone_sharded, cluster_sharded, acl, dedicated]
}

#[derive(Debug, PartialEq)]
struct OcrFailed(&'static str);

contract! {
    async fn an_error_reaches_every_waiter_and_is_not_cached(d, store) {
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let store = store.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .get_or_compute(
                        &tenant("acme"),
                        &CacheType::OCR_RESULT,
                        "bad",
                        || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err::<String, _>(OcrFailed("engine crashed"))
                        },
                    )
                    .await
            }));
        }
        for task in tasks {
            match task.await.unwrap() {
                Err(ComputeError::Compute(e)) => assert_eq!(*e, OcrFailed("engine crashed")),
                other => panic!("expected the shared error, got {other:?}"),
            }
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let v = store
            .get_or_compute(&tenant("acme"), &CacheType::OCR_RESULT, "bad", || async {
                Ok::<_, OcrFailed>("recovered".to_owned())
            })
            .await
            .unwrap();
        assert_eq!(v, "recovered", "the error was not cached");
    }
    on [memory, storage_only, disk, standalone, cluster, standalone_sharded, cluster_sharded, acl, dedicated]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_hands_over_to_a_waiter() {
    let store = memory_store();
    let runs = Arc::new(AtomicUsize::new(0));
    let leader = {
        let store = store.clone();
        let runs = runs.clone();
        tokio::spawn(async move {
            store
                .get_or_compute(&tenant("acme"), &CacheType::SESSION, "k", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, std::io::Error>(1u32)
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let follower = {
        let store = store.clone();
        let runs = runs.clone();
        tokio::spawn(async move {
            store
                .get_or_compute(&tenant("acme"), &CacheType::SESSION, "k", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(2u32)
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let v = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the follower is not stranded")
        .unwrap()
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

contract! {
    /// A refresh claim (one background refresh of an entry) binds every store on a Redis backend while it is
    /// held — two stores stand for two processes — and passes on when released. The in-process and disk
    /// backends share no leases, and a backend without coordination has none: their claims bind the caller
    /// alone, and say so.
    async fn a_refresh_claim_binds_every_store_on_the_backend_until_released(d, a) {
        use crate::support::Deployment;
        let shared = !matches!(d, Deployment::Memory | Deployment::StorageOnly | Deployment::Disk(_));
        let b = d.store();
        let (t, ty, ttl) = (tenant("acme"), CacheType::API_RESPONSE, Duration::from_secs(10));
        let first = a.coordinator().claim_refresh(&t, &ty, "k", ttl).await.unwrap().expect("the first claim");
        assert_eq!(first.is_shared(), shared);
        let meanwhile = b.coordinator().claim_refresh(&t, &ty, "k", ttl).await.unwrap();
        if shared {
            assert!(meanwhile.is_none(), "held by the other store");
            let other = b.coordinator().claim_refresh(&t, &ty, "other", ttl).await.unwrap().expect("another entry");
            let other_tenant = b.coordinator().claim_refresh(&tenant("globex"), &ty, "k", ttl).await.unwrap();
            assert!(other_tenant.is_some(), "another tenant's entry of the same name");
            other.release().await;
            other_tenant.unwrap().release().await;
        } else {
            assert!(meanwhile.is_some_and(|c| !c.is_shared()), "a claim of its own");
        }
        first.release().await;
        let next = b.coordinator().claim_refresh(&t, &ty, "k", ttl).await.unwrap().expect("released, so free");
        assert_eq!(next.is_shared(), shared);
        next.release().await;
    }
    on [memory, storage_only, disk, standalone, cluster, sentinel, acl, dedicated]
}
