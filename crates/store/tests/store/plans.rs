//! Per-tenant plans (issue 31, item 3): two listed tenants and an unlisted one, each refused at its own byte
//! quota and its own request quota (the unlisted one at the deployment-wide default), on every backend that
//! keeps ledgers; and a plan's TTL cap, which shortens every longer TTL the tenant's entries are written with —
//! the type's own, an explicit one, `get_or_compute`'s — while other tenants keep theirs.

use std::time::Duration;

use fernando_cache_config::CacheType;
use fernando_cache_store::{KeyTtl, RequestQuota, Store, Write, WriteOutcome};
use fernando_cache_testkit::bench::noise;

use crate::support::{Deployment, contract, tenant};

/// Bytes of each value; its envelope is a little more, and never more than [`ROOM`].
const VALUE: usize = 1000;
/// Room for one value and its envelope, not two.
const ROOM: u64 = 1100;

/// `gold` holds four values and makes four requests a window, `tin` one and one; everyone else two and two.
fn plan_store(d: &Deployment) -> Store {
    d.store_with(&[
        ("quotas.tenant_bytes", "2200"),
        ("quotas.shared_requests", "2"),
        ("quotas.shared_window", "1h"),
        ("tenants.gold.tenant_bytes", "4400"),
        ("tenants.gold.shared_requests", "4"),
        ("tenants.tin.tenant_bytes", "1100"),
        ("tenants.tin.shared_requests", "1"),
    ])
}

/// The tenants of [`plan_store`] and how many values or requests each may have.
const TENANTS: [(&str, u64); 3] = [("gold", 4), ("tin", 1), ("walk-in", 2)];

async fn put(store: &Store, t: &str, key: &str, seed: u64) -> WriteOutcome {
    store
        .set_bytes(
            &tenant(t),
            &CacheType::SESSION,
            key,
            &noise(seed, VALUE),
            Write::default(),
        )
        .await
        .expect("a valid write")
}

contract! {
    async fn each_tenant_is_refused_at_its_own_byte_quota(d, _default) {
        let store = plan_store(d);
        for (t, room) in TENANTS {
            for i in 0..room {
                assert_eq!(put(&store, t, &format!("k{i}"), i).await, WriteOutcome::Stored, "{t}: entry {i}");
            }
            assert_eq!(put(&store, t, "over", 99).await, WriteOutcome::OverQuota, "{t}: past {room}");
            let usage = store.admin().quota_usage(&tenant(t)).await.unwrap();
            assert_eq!(usage.byte_limit, room * ROOM, "{t}");
            assert!(usage.stored_bytes > room * VALUE as u64 && usage.stored_bytes <= room * ROOM, "{t}: {usage:?}");
        }
        // Each refusal is counted under its own tenant, and each tenant keeps what it stored.
        for (t, room) in TENANTS {
            let refused = store.metrics().series(t, "session").map(|s| s.counters.quota_refused);
            assert_eq!(refused, Some(1), "{t}");
            for i in 0..room {
                let got = store.get_bytes(&tenant(t), &CacheType::SESSION, &format!("k{i}")).await.unwrap();
                assert!(got.is_some(), "{t}: entry {i}");
            }
        }
        // A replica sharing the backend applies the same plans (in memory, a store is its own backend).
        if !matches!(d, Deployment::Memory) {
            let replica = plan_store(d);
            assert_eq!(put(&replica, "tin", "again", 7).await, WriteOutcome::OverQuota);
            assert_eq!(put(&replica, "gold", "k0", 8).await, WriteOutcome::Stored, "a rewrite at its size fits");
        }
    }
    on [memory, disk, standalone, cluster]
}

contract! {
    async fn each_tenant_is_refused_at_its_own_request_quota(d, _default) {
        let store = plan_store(d);
        for (t, quota) in TENANTS {
            for i in 0..quota {
                let counted = store.coordinator().count_request(&tenant(t)).await;
                assert_eq!(counted, RequestQuota::Allowed, "{t}: request {i}");
            }
            let refused = store.coordinator().count_request(&tenant(t)).await;
            assert!(matches!(refused, RequestQuota::Refused { .. }), "{t}: past {quota}: {refused:?}");
            let usage = store.admin().quota_usage(&tenant(t)).await.unwrap();
            assert_eq!((usage.requests, usage.request_limit), (quota + 1, quota), "{t}");
        }
    }
    on [memory, disk, standalone, cluster]
}

/// The fresh life an entry has left, as operators read it.
async fn remaining(store: &Store, t: &str, ty: &CacheType, key: &str) -> Duration {
    match store
        .admin()
        .remaining_ttl(&tenant(t), ty, key)
        .await
        .unwrap()
    {
        KeyTtl::Expires(left) => left,
        other => panic!("{t}/{key}: {other:?}"),
    }
}

contract! {
    async fn a_plans_ttl_cap_shortens_every_longer_ttl_of_its_tenant(d, _default) {
        let store = d.store_with(&[("tenants.brief.max_ttl", "90s")]);
        // The test profile keeps OCR results 10 minutes, with a fail-safe window beyond (not counted here).
        let ty = CacheType::OCR_RESULT;
        let brief = tenant("brief");
        let _ = store.set(&brief, &ty, "typed", &1u64).await.unwrap();
        let _ = store
            .set_with(&brief, &ty, "explicit", &1u64, Write::default().ttl(Duration::from_secs(3600)))
            .await
            .unwrap();
        let computed: u64 = store
            .get_or_compute(&brief, &ty, "computed", || async { Ok::<_, std::io::Error>(1u64) })
            .await
            .unwrap();
        assert_eq!(computed, 1);
        let cap = Duration::from_secs(90);
        for key in ["typed", "explicit", "computed"] {
            let left = remaining(&store, "brief", &ty, key).await;
            assert!(left <= cap && left > cap - Duration::from_secs(10), "{key}: {left:?}");
        }
        // A shorter TTL stays as it was asked for.
        let _ = store
            .set_with(&brief, &ty, "short", &1u64, Write::default().ttl(Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(remaining(&store, "brief", &ty, "short").await <= Duration::from_secs(30));
        // Another tenant keeps the type's TTL.
        let _ = store.set(&tenant("other"), &ty, "typed", &1u64).await.unwrap();
        let configured = store.admin().configured_ttl(&ty).unwrap();
        assert!(configured > cap);
        let left = remaining(&store, "other", &ty, "typed").await;
        assert!(left > cap && left <= configured, "{left:?}");
        assert_eq!(store.admin().plan(&brief).max_ttl, Some(cap));
        assert_eq!(store.admin().plan(&tenant("other")).max_ttl, None);
    }
    on [memory, disk, standalone, cluster]
}
