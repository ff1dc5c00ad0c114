//! Per-tenant quotas on every backend (design 0017): a tenant's stored bytes are bounded across replicas, a
//! write past the bound is refused and counted while another tenant writes on, deletes and expiry make room,
//! and the request quota refuses past its window's count. On a backend without coordination (design 0022),
//! quotas fall back as they do when the ledgers cannot be reached.

use std::time::Duration;

use fernando_cache_config::CacheType;
use fernando_cache_store::{
    InvalidationStrategy, RequestQuota, Store, Target, Write, WriteOutcome,
};

use fernando_cache_testkit::bench::noise;

use crate::support::{Deployment, contract, tenant};

const VALUE: usize = 1000;
/// Room for four values and their envelopes, not five.
const LIMIT: &str = "4400";

fn quota_store(d: &Deployment) -> Store {
    d.store_with(&[
        ("quotas.tenant_bytes", LIMIT),
        ("quotas.shared_requests", "3"),
        ("quotas.shared_window", "1h"),
    ])
}

/// A store with the request quota alone: the same bounds for every deployment, sharded ones included (whose
/// byte quota would be split over their shards).
fn request_quota_store(d: &Deployment) -> Store {
    d.store_with(&[
        ("quotas.shared_requests", "3"),
        ("quotas.shared_window", "1h"),
    ])
}

async fn put(store: &Store, t: &str, key: &str, seed: u64, ttl: Option<Duration>) -> WriteOutcome {
    store
        .set_bytes(
            &tenant(t),
            &CacheType::SESSION,
            key,
            &noise(seed, VALUE),
            Write::default().ttl(ttl),
        )
        .await
        .expect("a valid write")
}

contract! {
    async fn a_tenant_past_its_byte_quota_is_refused_and_another_is_not(d, _default) {
        let store = quota_store(d);
        let limit: u64 = LIMIT.parse().unwrap();
        for i in 0..4 {
            assert_eq!(put(&store, "a", &format!("k{i}"), i, None).await, WriteOutcome::Stored, "entry {i}");
        }
        assert_eq!(put(&store, "a", "k4", 4, None).await, WriteOutcome::OverQuota);
        let refused = store.metrics().series("a", "session").map(|s| s.counters.quota_refused);
        assert_eq!(refused, Some(1));
        assert_eq!(store.get_bytes(&tenant("a"), &CacheType::SESSION, "k4").await.unwrap(), None);
        let usage = store.admin().quota_usage(&tenant("a")).await.unwrap();
        assert!(
            usage.stored_bytes > 4 * VALUE as u64 && usage.stored_bytes <= limit,
            "{usage:?}"
        );
        assert_eq!(usage.byte_limit, limit);

        // Another tenant is unaffected, and an entry rewritten at its size still fits.
        assert_eq!(put(&store, "b", "k0", 10, None).await, WriteOutcome::Stored);
        assert_eq!(put(&store, "a", "k0", 20, None).await, WriteOutcome::Stored);

        // A replica sharing the backend shares the bound (in memory, a store is its own backend).
        if !matches!(d, Deployment::Memory) {
            let replica = quota_store(d);
            assert_eq!(put(&replica, "a", "k5", 5, None).await, WriteOutcome::OverQuota);
            assert_eq!(replica.admin().quota_usage(&tenant("a")).await.unwrap().stored_bytes, usage.stored_bytes);
        }

        // A delete makes room at once.
        assert!(store.delete(&tenant("a"), &CacheType::SESSION, "k1").await.unwrap());
        assert_eq!(put(&store, "a", "k4", 4, None).await, WriteOutcome::Stored);
        assert!(store.get_bytes(&tenant("a"), &CacheType::SESSION, "k4").await.unwrap().is_some());

        // Expiry makes room: a short-lived entry fills the quota, then lapses.
        let store_c = &store;
        for i in 0..4 {
            let ttl = Some(Duration::from_secs(if i == 3 { 1 } else { 600 }));
            assert_eq!(put(store_c, "c", &format!("k{i}"), i, ttl).await, WriteOutcome::Stored);
        }
        assert_eq!(put(store_c, "c", "k4", 4, None).await, WriteOutcome::OverQuota);
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(put(store_c, "c", "k4", 4, None).await, WriteOutcome::Stored);
    }
    on [memory, disk, standalone, cluster, sentinel, acl, dedicated]
}

contract! {
    async fn a_tenant_past_its_request_quota_is_refused_until_the_window_ends(d, _default) {
        let store = request_quota_store(d);
        for _ in 0..3 {
            assert_eq!(store.coordinator().count_request(&tenant("a")).await, RequestQuota::Allowed);
        }
        let RequestQuota::Refused { retry_after } = store.coordinator().count_request(&tenant("a")).await else {
            panic!("the fourth request in the window passed");
        };
        assert!(retry_after > Duration::from_secs(3500) && retry_after <= Duration::from_secs(3600));
        assert_eq!(store.coordinator().count_request(&tenant("b")).await, RequestQuota::Allowed);
        let usage = store.admin().quota_usage(&tenant("a")).await.unwrap();
        assert_eq!((usage.requests, usage.request_limit), (4, 3));
        let refused = store.metrics().series("a", "_all").map(|s| s.counters.requests_refused);
        assert_eq!(refused, Some(1));
        if !matches!(d, Deployment::Memory) {
            let replica = request_quota_store(d);
            assert!(matches!(replica.coordinator().count_request(&tenant("a")).await, RequestQuota::Refused { .. }));
        }
    }
    on [memory, disk, standalone, cluster, sentinel, standalone_sharded, cluster_sharded, acl, dedicated]
}

contract! {
    async fn sweeps_give_the_bytes_they_delete_back_to_the_tenants_quota(d, _default) {
        let store = quota_store(d);
        let a = tenant("a");
        let usage = |t: &'static str| {
            let store = store.clone();
            async move { store.admin().quota_usage(&tenant(t)).await.unwrap().stored_bytes }
        };
        assert_eq!(put(&store, "b", "k0", 10, None).await, WriteOutcome::Stored);
        let b_before = usage("b").await;
        for i in 0..4 {
            assert_eq!(put(&store, "a", &format!("k{i}"), i, None).await, WriteOutcome::Stored, "entry {i}");
        }
        let full = usage("a").await;
        assert_eq!(put(&store, "a", "k4", 4, None).await, WriteOutcome::OverQuota);

        // A pattern sweep releases exactly what it deleted: half the bytes, and two writes fit again.
        let pattern = Target::pattern(&a, &CacheType::SESSION, "k[01]");
        let swept = store.invalidate(pattern, InvalidationStrategy::Eager).await.unwrap().deleted;
        assert_eq!(swept, 2);
        assert_eq!(usage("a").await, full / 2, "every entry has the same size");
        for key in ["k4", "k5"] {
            assert_eq!(put(&store, "a", key, 4, None).await, WriteOutcome::Stored, "{key}");
        }
        assert_eq!(put(&store, "a", "k6", 6, None).await, WriteOutcome::OverQuota);

        // Clearing the type, then the whole tenant (eager invalidation), leaves nothing counted.
        let sessions = Target::entries(&a, &CacheType::SESSION);
        assert_eq!(store.invalidate(sessions, InvalidationStrategy::Eager).await.unwrap().deleted, 4);
        assert_eq!(usage("a").await, 0);
        assert_eq!(put(&store, "a", "k0", 0, None).await, WriteOutcome::Stored);
        let everything = Target::entries(&a, None);
        assert!(store.invalidate(everything, InvalidationStrategy::Eager).await.unwrap().deleted >= 1);
        assert_eq!(usage("a").await, 0);

        // Another tenant's ledger is untouched by all of it.
        assert_eq!(usage("b").await, b_before);
    }
    on [memory, disk, standalone, cluster, sentinel, acl, dedicated]
}

contract! {
    /// A backend without coordination (a user's `Storage` alone) keeps no ledgers, counters or bounded sets:
    /// the store falls back as when they cannot be reached — a write under a byte quota is dropped (a quota
    /// that cannot be checked is not waived), a request passes and is counted as degraded, quota usage and
    /// `admit` are unavailable — while a store without quotas writes and reads on the same backend.
    async fn without_coordination_quotas_fall_back_as_when_unreachable(d, plain) {
        let store = quota_store(d);
        let (a, s) = (tenant("a"), CacheType::SESSION);
        assert_eq!(put(&store, "a", "k0", 0, None).await, WriteOutcome::Dropped);
        assert_eq!(store.get_bytes(&a, &s, "k0").await.unwrap(), None);
        let counted = store.metrics().series("a", "session").map(|x| x.counters);
        let counted = counted.map(|c| (c.dropped_sets, c.degraded));
        assert_eq!(counted, Some((1, 1)));

        assert_eq!(store.coordinator().count_request(&a).await, RequestQuota::Allowed);
        assert_eq!(store.metrics().series("a", "_all").map(|x| x.counters.degraded), Some(1));

        let err = store.admin().quota_usage(&a).await.unwrap_err().to_string();
        assert!(err.contains("keeps no quota ledgers"), "{err}");
        let admitted = plain.coordinator().admit(&a, &s, "variants", b"v1", 4, Duration::from_secs(60)).await;
        assert!(admitted.is_err(), "{admitted:?}");

        assert_eq!(put(plain, "a", "k0", 0, None).await, WriteOutcome::Stored);
        assert!(plain.get_bytes(&a, &s, "k0").await.unwrap().is_some());
    }
    on [storage_only]
}
