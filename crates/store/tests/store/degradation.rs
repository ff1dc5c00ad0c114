//! Redis killed, frozen or absent: calls stay within their timeout, the breaker opens and closes, and the store
//! recovers by itself.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fernando_cache_config::CacheType;
use fernando_cache_store::{BreakerState, Store, WriteOutcome};
use fernando_cache_testkit::RedisServer;

use crate::support::{COMMAND_TIMEOUT, redis_settings, redis_store, tenant};

/// A call may take its command timeout plus scheduling noise, never more than this.
const CALL_BOUND: Duration = Duration::from_secs(2);

async fn wait_for_hits(store: &Store) {
    let t = tenant("acme");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if store
            .set(&t, &CacheType::SESSION, "probe", &1u8)
            .await
            .unwrap()
            == WriteOutcome::Stored
            && store
                .get::<u8>(&t, &CacheType::SESSION, "probe")
                .await
                .unwrap()
                == Some(1)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not recover: {:?}",
            store.metrics().breaker
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_64_concurrent_computations_then_recovery_without_a_new_store() {
    let (mut server, store) = redis_store();
    wait_for_hits(&store).await;
    let computed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let store = store.clone();
        let computed = computed.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let v = store
                .get_or_compute(
                    &tenant("acme"),
                    &CacheType::LLM_EXTRACTION,
                    &format!("doc{i}"),
                    || async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        computed.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, std::io::Error>(i * 10)
                    },
                )
                .await
                .expect("computation succeeds even with Redis gone");
            (i, v, start.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill();
    for task in tasks {
        let (i, v, took) = task.await.unwrap();
        assert_eq!(v, i * 10);
        assert!(
            took < Duration::from_millis(300) + CALL_BOUND * 2,
            "call {i} took {took:?}"
        );
    }
    assert_eq!(computed.load(Ordering::SeqCst), 64);
    let m = store.metrics().totals();
    assert!(m.dropped_sets > 0 || m.degraded > 0, "{m:?}");

    // Same port, same store object: hits resume.
    server.restart();
    wait_for_hits(&store).await;
    let v = store
        .get_or_compute(
            &tenant("acme"),
            &CacheType::LLM_EXTRACTION,
            "after",
            || async { Ok::<_, std::io::Error>(7u64) },
        )
        .await
        .unwrap();
    assert_eq!(v, 7);
    let again: Option<u64> = store
        .get(&tenant("acme"), &CacheType::LLM_EXTRACTION, "after")
        .await
        .unwrap();
    assert_eq!(again, Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_never_blocks_past_the_timeout_and_the_breaker_opens_then_closes() {
    let (server, store) = redis_store();
    let t = tenant("acme");
    wait_for_hits(&store).await;
    server.pause();
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let start = Instant::now();
        assert_eq!(
            store
                .get::<u8>(&t, &CacheType::SESSION, "probe")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .set(&t, &CacheType::SESSION, &format!("k{i}"), &1u8)
                .await
                .unwrap(),
            WriteOutcome::Dropped
        );
        slowest = slowest.max(start.elapsed());
    }
    assert!(
        slowest < COMMAND_TIMEOUT * 2 + CALL_BOUND,
        "a call blocked for {slowest:?}"
    );
    let m = store.metrics();
    assert_eq!(m.breaker, BreakerState::Open);
    assert!(m.breaker_opened >= 1);
    let c = m.totals();
    assert!(c.degraded >= 40 && c.dropped_sets >= 20, "{c:?}");
    // While open, calls do not even wait for the timeout.
    let start = Instant::now();
    let _ = store
        .get::<u8>(&t, &CacheType::SESSION, "probe")
        .await
        .unwrap();
    assert!(
        start.elapsed() < COMMAND_TIMEOUT,
        "an open breaker answered in {:?}",
        start.elapsed()
    );

    server.resume();
    wait_for_hits(&store).await;
    assert_eq!(store.metrics().breaker, BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_started_while_redis_is_down_works_degraded_and_recovers() {
    let mut server = RedisServer::start();
    let settings = redis_settings(&server);
    server.kill();
    let store = Store::from_settings(&settings).expect("creating the store does not need Redis");
    let t = tenant("acme");
    assert_eq!(
        store.get::<u8>(&t, &CacheType::SESSION, "k").await.unwrap(),
        None
    );
    assert_eq!(
        store.set(&t, &CacheType::SESSION, "k", &1u8).await.unwrap(),
        WriteOutcome::Dropped
    );
    let v = store
        .get_or_compute(&t, &CacheType::SESSION, "c", || async {
            Ok::<_, std::io::Error>(5u8)
        })
        .await
        .unwrap();
    assert_eq!(v, 5);
    assert!(store.admin().ping().await.is_err());
    let err = store
        .delete(&t, &CacheType::SESSION, "k")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unavailable during delete"), "{err}");
    server.restart();
    wait_for_hits(&store).await;
    assert!(store.admin().ping().await.is_ok());
}
