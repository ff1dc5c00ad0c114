//! Eager, lazy and hybrid invalidation, scope-wide and per type, across two store instances.

use crate::support::{Deployment, contract, redis_store, tenant};
use fernando_cache_config::CacheType;
use fernando_cache_store::{InvalidationStrategy, Store, Target};

async fn fill(store: &Store, n: usize) {
    for ty in [CacheType::SESSION, CacheType::BILLING] {
        for i in 0..n {
            let _ = store
                .set(&tenant("acme"), &ty, &format!("k{i}"), &i)
                .await
                .unwrap();
        }
    }
}

async fn visible(store: &Store, ty: &CacheType, n: usize) -> usize {
    let mut hits = 0;
    for i in 0..n {
        if store
            .get::<usize>(&tenant("acme"), ty, &format!("k{i}"))
            .await
            .unwrap()
            .is_some()
        {
            hits += 1;
        }
    }
    hits
}

/// The tenant's keys of a type the servers hold, under every pattern its entries match (two for a tenant
/// spread over shards).
fn stored_keys(d: &Deployment, store: &Store, ty: &CacheType) -> usize {
    let patterns = store
        .admin()
        .keys()
        .scan_patterns(&tenant("acme").into(), Some(ty));
    patterns
        .iter()
        .map(|p| d.stored(p).expect("a deployment with a server"))
        .sum()
}

contract! {
    async fn eager_deletes_before_returning(d, store) {
        fill(store, 25).await;
        let r = store
            .invalidate(Target::entries(&tenant("acme"), &CacheType::SESSION), InvalidationStrategy::Eager)
            .await
            .unwrap();
        assert_eq!(r.deleted, 25);
        assert_eq!(stored_keys(d, store, &CacheType::SESSION), 0);
        assert_eq!(
            stored_keys(d, store, &CacheType::BILLING),
            25,
            "other types untouched"
        );
        assert_eq!(visible(store, &CacheType::BILLING, 25).await, 25);
    }
    on [disk, standalone, cluster, standalone_sharded, cluster_sharded, acl, dedicated]
}

contract! {
    async fn lazy_hides_at_once_keeps_storage_and_accepts_new_writes(d, store) {
        // A second store on the same Redis stands for another process.
        let other = d.store();
        fill(store, 10).await;
        assert_eq!(visible(&other, &CacheType::SESSION, 10).await, 10);

        let r = other
            .invalidate(Target::entries(&tenant("acme"), &CacheType::SESSION), InvalidationStrategy::Lazy)
            .await
            .unwrap();
        assert_eq!(r.deleted, 0, "lazy deletes nothing on the write side");
        assert!(r.sweep.is_none());
        assert_eq!(
            visible(store, &CacheType::SESSION, 10).await,
            0,
            "hidden from every process at once"
        );
        assert_eq!(
            stored_keys(d, store, &CacheType::SESSION),
            10,
            "storage reclaimed later, by TTL"
        );
        assert_eq!(
            visible(store, &CacheType::BILLING, 10).await,
            10,
            "other types untouched"
        );
        assert!(store.metrics().totals().stale >= 10);

        // The first store still guesses the old generation; its write corrects itself in the same call.
        let _ = store
            .set(&tenant("acme"), &CacheType::SESSION, "k0", &100usize)
            .await
            .unwrap();
        assert_eq!(
            store
                .get::<usize>(&tenant("acme"), &CacheType::SESSION, "k0")
                .await
                .unwrap(),
            Some(100)
        );
        assert_eq!(
            other
                .get::<usize>(&tenant("acme"), &CacheType::SESSION, "k0")
                .await
                .unwrap(),
            Some(100)
        );

        // Scope-wide lazy invalidation hides every type.
        let _ = store
            .invalidate(Target::entries(&tenant("acme"), None), InvalidationStrategy::Lazy)
            .await
            .unwrap();
        assert_eq!(visible(&other, &CacheType::BILLING, 10).await, 0);
        assert_eq!(
            other
                .get::<usize>(&tenant("acme"), &CacheType::SESSION, "k0")
                .await
                .unwrap(),
            None
        );
    }
    on [disk, standalone, cluster, standalone_sharded, cluster_sharded, acl, dedicated]
}

contract! {
    async fn hybrid_hides_at_once_then_sweeps_in_the_background(d, store) {
        fill(store, 30).await;
        let r = store
            .invalidate(Target::entries(&tenant("acme"), None), InvalidationStrategy::Hybrid)
            .await
            .unwrap();
        assert_eq!(visible(store, &CacheType::SESSION, 30).await, 0);
        assert_eq!(visible(store, &CacheType::BILLING, 30).await, 0);
        let swept = r.sweep.expect("hybrid has a sweep").await.unwrap().unwrap();
        assert_eq!(swept, 60);
        assert_eq!(stored_keys(d, store, &CacheType::SESSION), 0);
        assert_eq!(stored_keys(d, store, &CacheType::BILLING), 0);
    }
    on [disk, standalone, cluster, sentinel, standalone_sharded, cluster_sharded, acl, dedicated]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_fails_loudly_when_redis_is_down() {
    let (mut server, store) = redis_store();
    server.kill();
    for strategy in [
        InvalidationStrategy::Eager,
        InvalidationStrategy::Lazy,
        InvalidationStrategy::Hybrid,
    ] {
        let err = store
            .invalidate(Target::entries(&tenant("acme"), None), strategy)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("unavailable"), "{strategy:?}: {err}");
    }
}

contract! {
    async fn a_tenant_wide_hybrid_invalidation_hides_every_type_now_and_sweeps_later(d, store) {
        fill(store, 5).await;
        let other = tenant("globex");
        let _ = store
            .set(&other, &CacheType::SESSION, "k0", &1usize)
            .await
            .unwrap();

        // The seed's `invalidate_user_cache`: a hybrid invalidation of every type of the tenant.
        let inv = store
            .invalidate(Target::entries(&tenant("acme"), None), InvalidationStrategy::Hybrid)
            .await
            .unwrap();
        assert_eq!(inv.strategy, InvalidationStrategy::Hybrid);
        assert_eq!(visible(store, &CacheType::SESSION, 5).await, 0);
        assert_eq!(visible(store, &CacheType::BILLING, 5).await, 0);
        assert_eq!(
            store
                .get::<usize>(&other, &CacheType::SESSION, "k0")
                .await
                .unwrap(),
            Some(1),
            "another tenant keeps its entries"
        );
        let swept = inv.sweep.expect("hybrid sweeps").await.unwrap().unwrap();
        assert_eq!(swept, 10);
        assert_eq!(stored_keys(d, store, &CacheType::SESSION), 0);
    }
    on [disk, standalone, cluster, standalone_sharded, cluster_sharded, acl, dedicated]
}
