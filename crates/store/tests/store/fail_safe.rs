//! Fail-safe and eager refresh (design 0014): an expired value kept `max_stale` is served, marked stale, when
//! its computation fails or outlives its timeouts; the failure is not retried within the throttle period; a
//! slow computation completes in the background; with no stale value the error (or the timeout) reaches the
//! caller; an entry past `refresh_ahead` is refreshed once in the background under concurrent hits; `store_if`
//! decides which values are stored, in either mode.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fernando_cache_config::CacheType;
use fernando_cache_store::{Compute, ComputeError, Served, Store};

use crate::support::{contract, tenant};

type Failed = std::io::Error;

fn down() -> Failed {
    std::io::Error::other("the extractor is down")
}

/// A store whose `session` entries are fresh 300 ms and kept an hour past that.
fn fail_safe_store(d: &crate::support::Deployment, extra: &[(&str, &str)]) -> Store {
    let mut overrides = vec![
        ("types.session.ttl", "300ms"),
        ("types.session.max_stale", "1h"),
        ("types.session.fail_safe_throttle", "1s"),
    ];
    overrides.extend_from_slice(extra);
    Store::from_settings(&d.settings_with(&overrides)).unwrap()
}

fn counter(store: &Store, which: fn(&fernando_cache_store::Counters) -> u64) -> u64 {
    store
        .metrics()
        .series
        .iter()
        .filter(|s| s.tenant == "acme")
        .map(|s| which(&s.counters))
        .sum()
}

fn served<T>(value: T, stale: bool) -> impl Fn(&Served<T>) -> bool
where
    T: PartialEq,
{
    move |s| s.value == value && s.stale == stale
}

contract! {
    async fn a_failing_computation_serves_the_stale_value_and_is_not_retried_within_the_throttle(d, _store) {
        let store = fail_safe_store(d, &[]);
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let first = store
            .get_or_compute_with(&acme, &ty, "k", Compute::default(), || async { Ok::<_, Failed>(1u64) })
            .await
            .unwrap();
        assert!(served(1, false)(&first));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(store.get::<u64>(&acme, &ty, "k").await.unwrap(), None, "expired: a plain read misses");

        let calls = Arc::new(AtomicUsize::new(0));
        let failing = |calls: Arc<AtomicUsize>| move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<u64, _>(down())
        };
        let got = store.get_or_compute_with(&acme, &ty, "k", Compute::default(), failing(calls.clone())).await.unwrap();
        assert!(served(1, true)(&got), "the stale value, marked stale");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(counter(&store, |c| c.stale_served), 1);

        // Within the throttle period the computation is not tried again, by this store or another sharing the
        // backend (in memory, another store has entries of its own).
        let other = fail_safe_store(d, &[]);
        let shared = !matches!(d, crate::support::Deployment::Memory);
        for s in std::iter::once(&store).chain(shared.then_some(&other)) {
            let got = s.get_or_compute_with(&acme, &ty, "k", Compute::default(), failing(calls.clone())).await.unwrap();
            assert!(served(1, true)(&got));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no retry within the throttle");

        // After it, a computation that works again replaces the stale value.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let got = store
            .get_or_compute_with(&acme, &ty, "k", Compute::default(), || async { Ok::<_, Failed>(2u64) })
            .await
            .unwrap();
        assert!(served(2, false)(&got));
        assert_eq!(store.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(2));

        // Nothing kept: the error reaches the caller.
        let err = store
            .get_or_compute_with(&acme, &ty, "never", Compute::default(), failing(calls.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, ComputeError::Compute(_)), "{err:?}");
    }
    on [memory, disk, standalone, cluster, standalone_sharded, cluster_sharded, acl, dedicated]
}

contract! {
    async fn a_hard_timeout_bounds_the_wait(d, _store) {
        let store = fail_safe_store(d, &[("types.session.hard_timeout", "200ms")]);
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let slow = |v: u64| move || async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, Failed>(v)
        };
        let err = store.get_or_compute_with(&acme, &ty, "k", Compute::default(), slow(9)).await.unwrap_err();
        assert!(
            matches!(err, ComputeError::TimedOut(t) if t == Duration::from_millis(200)),
            "no stale value: the timeout reaches the caller ({err:?})"
        );
        let _ = store
            .get_or_compute_with(&acme, &ty, "k", Compute::default(), || async { Ok::<_, Failed>(1u64) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let got = store.get_or_compute_with(&acme, &ty, "k", Compute::default(), slow(9)).await.unwrap();
        assert!(served(1, true)(&got), "past the hard timeout the stale value is served");
    }
    on [memory, standalone]
}

contract! {
    async fn past_the_soft_timeout_the_stale_value_is_served_and_the_fresh_one_lands_later(d, _store) {
        let store = fail_safe_store(d, &[("types.session.soft_timeout", "100ms")]);
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let first = store
            .get_or_compute_with(&acme, &ty, "k", Compute::default().detached(), || async { Ok::<_, Failed>(1u64) })
            .await
            .unwrap();
        assert!(served(1, false)(&first));
        tokio::time::sleep(Duration::from_millis(400)).await;

        let got = store
            .get_or_compute_with(&acme, &ty, "k", Compute::default().detached(), || async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok::<_, Failed>(2u64)
            })
            .await
            .unwrap();
        assert!(served(1, true)(&got), "stale now");
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.get::<u64>(&acme, &ty, "k").await.unwrap() != Some(2) {
            assert!(Instant::now() < deadline, "the slow computation never updated the cache");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // With nothing stale the soft timeout does not apply: the caller waits for the value.
        let got = store
            .get_or_compute_with(&acme, &ty, "new", Compute::default().detached(), || async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, Failed>(3u64)
            })
            .await
            .unwrap();
        assert!(served(3, false)(&got));
    }
    on [disk, standalone]
}

contract! {
    async fn eager_refresh_runs_once_under_concurrent_hits(d, _store) {
        let store = Store::from_settings(&d.settings_with(&[
            ("types.session.ttl", "4s"),
            ("types.session.refresh_ahead", "0.5"),
        ]))
        .unwrap();
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let _ = store
            .get_or_compute_with(&acme, &ty, "k", Compute::default().detached(), || async { Ok::<_, Failed>(1u64) })
            .await
            .unwrap();
        // Before the refresh point a hit refreshes nothing.
        let runs = Arc::new(AtomicUsize::new(0));
        let refresh = |runs: Arc<AtomicUsize>| move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            // Long enough that all 64 hits below are answered before the refreshed value lands.
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Failed>(2u64)
        };
        let got = store.get_or_compute_with(&acme, &ty, "k", Compute::default().detached(), refresh(runs.clone())).await.unwrap();
        assert!(served(1, false)(&got));
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0);

        // 64 concurrent hits past it: all answered at once with the current value, one refresh.
        let hits = (0..64).map(|_| {
            let (store, acme, ty, runs) = (store.clone(), acme.clone(), ty.clone(), runs.clone());
            tokio::spawn(async move {
                store.get_or_compute_with(&acme, &ty, "k", Compute::default().detached(), refresh(runs)).await.unwrap()
            })
        });
        for hit in hits.collect::<Vec<_>>() {
            assert!(served(1, false)(&hit.await.unwrap()));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.get::<u64>(&acme, &ty, "k").await.unwrap() != Some(2) {
            assert!(Instant::now() < deadline, "the refresh never landed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one refresh for 64 hits");
        assert_eq!(counter(&store, |c| c.refreshes), 1);
    }
    on [memory, standalone]
}

contract! {
    /// `Compute::store_if` decides which computed values are stored, in either mode; a refused value is still
    /// returned.
    async fn store_if_decides_which_values_are_stored_in_either_mode(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let complete = Compute::default().store_if(|v: &u64| *v != 0);
        let got = store.get_or_compute_with(&acme, &ty, "a", complete, || async { Ok::<_, Failed>(0u64) }).await.unwrap();
        assert!(served(0, false)(&got), "refused: returned");
        assert_eq!(store.get::<u64>(&acme, &ty, "a").await.unwrap(), None, "refused: not stored");
        let got = store.get_or_compute_with(&acme, &ty, "a", complete, || async { Ok::<_, Failed>(1u64) }).await.unwrap();
        assert!(served(1, false)(&got));
        assert_eq!(store.get::<u64>(&acme, &ty, "a").await.unwrap(), Some(1));

        let detached = complete.detached();
        let got = store.get_or_compute_with(&acme, &ty, "d", detached, || async { Ok::<_, Failed>(0u64) }).await.unwrap();
        assert!(served(0, false)(&got));
        assert_eq!(store.get::<u64>(&acme, &ty, "d").await.unwrap(), None, "detached: refused too");
        let got = store.get_or_compute_with(&acme, &ty, "d", detached, || async { Ok::<_, Failed>(2u64) }).await.unwrap();
        assert!(served(2, false)(&got));
        assert_eq!(store.get::<u64>(&acme, &ty, "d").await.unwrap(), Some(2));
    }
    on [memory, standalone]
}
