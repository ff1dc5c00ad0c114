//! Tenants `a`, `a:b`, `*` and `a%3Ab` never see or delete each other's keys, through every API.

use fernando_cache_config::CacheType;
use fernando_cache_store::{InvalidationStrategy, Store, Target};

use crate::support::{contract, memory_store, tenant};

const TENANTS: [&str; 4] = ["a", "a:b", "*", "a%3Ab"];

async fn fill(store: &Store) {
    for t in TENANTS {
        for ty in [CacheType::SESSION, CacheType::BILLING] {
            for key in ["k", "k:1", "*"] {
                let _ = store
                    .set(&tenant(t), &ty, key, &format!("{t}/{ty}/{key}"))
                    .await
                    .unwrap();
            }
        }
    }
}

async fn visible(store: &Store, t: &str) -> usize {
    let mut n = 0;
    for ty in [CacheType::SESSION, CacheType::BILLING] {
        for key in ["k", "k:1", "*"] {
            if let Some(v) = store.get::<String>(&tenant(t), &ty, key).await.unwrap() {
                assert_eq!(
                    v,
                    format!("{t}/{ty}/{key}"),
                    "tenant {t} read another tenant's value"
                );
                n += 1;
            }
        }
    }
    n
}

async fn isolation(store: &Store) {
    fill(store).await;
    for t in TENANTS {
        assert_eq!(visible(store, t).await, 6, "{t}");
    }
    // Each destructive API, aimed at one tenant, leaves every other tenant whole.
    for (i, victim) in TENANTS.iter().enumerate() {
        let v = tenant(victim);
        match i {
            0 => {
                assert!(store.delete(&v, &CacheType::SESSION, "k").await.unwrap());
                let all = Target::pattern(&v, None, "*");
                assert_eq!(
                    store
                        .invalidate(all, InvalidationStrategy::Eager)
                        .await
                        .unwrap()
                        .deleted,
                    5
                );
            }
            1 => {
                let all = Target::entries(&v, None);
                assert_eq!(
                    store
                        .invalidate(all, InvalidationStrategy::Eager)
                        .await
                        .unwrap()
                        .deleted,
                    6
                );
            }
            2 => {
                let _ = store
                    .invalidate(Target::entries(&v, None), InvalidationStrategy::Lazy)
                    .await
                    .unwrap();
            }
            _ => {
                let r = store
                    .invalidate(Target::entries(&v, None), InvalidationStrategy::Hybrid)
                    .await
                    .unwrap();
                assert_eq!(r.sweep.unwrap().await.unwrap().unwrap(), 6);
            }
        }
        assert_eq!(visible(store, victim).await, 0, "{victim} was not cleared");
        for other in &TENANTS[i + 1..] {
            assert_eq!(
                visible(store, other).await,
                6,
                "clearing {victim} touched {other}"
            );
        }
    }
}

contract! {
    async fn hostile_tenant_names_are_isolated(d, store) {
        isolation(store).await;
    }
    on [memory, storage_only, disk, standalone, cluster, sentinel, standalone_sharded, cluster_sharded, acl, dedicated]
}

contract! {
    async fn a_key_glob_cannot_escape_its_scope_or_type(d, store) {
        fill(store).await;
        let a = tenant("a");
        // `k*` within tenant `a`, type session: matches "k" and "k:1" only.
        assert_eq!(
            store
                .invalidate(Target::pattern(&a, &CacheType::SESSION, "k*"), InvalidationStrategy::Eager)
                .await
                .unwrap()
                .deleted,
            2
        );
        assert_eq!(visible(store, "a").await, 4);
        for other in &TENANTS[1..] {
            assert_eq!(visible(store, other).await, 6);
        }
    }
    on [memory, storage_only, disk, standalone, cluster, standalone_sharded, cluster_sharded, acl, dedicated]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tenants_are_clear_errors() {
    let err = fernando_cache_keys::TenantId::new("")
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    let err = fernando_cache_keys::TenantId::new("a\u{7}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("control"), "{err}");
    // Longer than the configured tenancy.max_tenant_id_len (128).
    let store = memory_store();
    let long = tenant(&"x".repeat(200));
    let err = store
        .get::<u8>(&long, &CacheType::SESSION, "k")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 128"), "{err}");
}
