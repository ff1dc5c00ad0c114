//! Tags (design 0014): invalidating a tag (`Target::tag`) hides exactly the scope's entries written with it, of
//! every cache type, in O(1); a lazy invalidation of the scope hides all of it. One contract on every backend.

use std::time::{Duration, Instant};

use fernando_cache_config::CacheType;
use fernando_cache_store::{InvalidationStrategy, Store, Target, Write};

use crate::support::{contract, tenant};

contract! {
    async fn a_tag_invalidation_hides_exactly_its_entries(d, store) {
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        let (s, dash) = (CacheType::SESSION, CacheType::DASHBOARD);
        let _ = store.set_with(&acme, &s, "k1", &1u64, Write::default().tags(&["customer:42", "reports"])).await.unwrap();
        let _ = store.set_with(&acme, &s, "k2", &2u64, Write::default().tags(&["customer:7"])).await.unwrap();
        let _ = store.set(&acme, &s, "k3", &3u64).await.unwrap();
        let _ = store.set_with(&acme, &dash, "k4", &4u64, Write::default().tags(&["customer:42"])).await.unwrap();
        let _ = store.set_with(&globex, &s, "k1", &5u64, Write::default().tags(&["customer:42"])).await.unwrap();
        for (t, ty, k, v) in [(&acme, &s, "k1", 1), (&acme, &s, "k2", 2), (&acme, &s, "k3", 3), (&acme, &dash, "k4", 4), (&globex, &s, "k1", 5)] {
            assert_eq!(store.get::<u64>(t, ty, k).await.unwrap(), Some(v), "{k} before");
        }

        store.invalidate(Target::tag(&acme, "customer:42"), InvalidationStrategy::Lazy).await.unwrap();
        assert_eq!(store.get::<u64>(&acme, &s, "k1").await.unwrap(), None, "tagged: hidden");
        assert_eq!(store.get::<u64>(&acme, &dash, "k4").await.unwrap(), None, "every cache type");
        assert_eq!(store.get::<u64>(&acme, &s, "k2").await.unwrap(), Some(2), "another tag: kept");
        assert_eq!(store.get::<u64>(&acme, &s, "k3").await.unwrap(), Some(3), "untagged: kept");
        assert_eq!(store.get::<u64>(&globex, &s, "k1").await.unwrap(), Some(5), "another tenant: kept");

        // A value written after the invalidation, with the same tag, is visible; the other tag of k1 did not
        // move.
        let _ = store.set_with(&acme, &s, "k1", &6u64, Write::default().tags(&["customer:42", "reports"])).await.unwrap();
        assert_eq!(store.get::<u64>(&acme, &s, "k1").await.unwrap(), Some(6));
        store.invalidate(Target::tag(&acme, "reports"), InvalidationStrategy::Lazy).await.unwrap();
        assert_eq!(store.get::<u64>(&acme, &s, "k1").await.unwrap(), None);

        // Bad tags are errors, not silent writes.
        assert!(store.set_with(&acme, &s, "k5", &1u64, Write::default().tags(&[""])).await.is_err());
        assert!(store.invalidate(Target::tag(&acme, &"x".repeat(200)), InvalidationStrategy::Lazy).await.is_err());

        // The whole tenant, lazily: O(1), another tenant untouched.
        store.invalidate(Target::entries(&acme, None), InvalidationStrategy::Lazy).await.unwrap();
        assert_eq!(store.get::<u64>(&acme, &s, "k2").await.unwrap(), None);
        assert_eq!(store.get::<u64>(&acme, &s, "k3").await.unwrap(), None);
        assert_eq!(store.get::<u64>(&globex, &s, "k1").await.unwrap(), Some(5));
    }
    on [memory, storage_only, disk, standalone, cluster, standalone_sharded, cluster_sharded, acl, dedicated]
}

contract! {
    async fn another_process_tag_invalidation_reaches_copies_in_process(d, _store) {
        let reader = Store::from_settings(&d.settings_with(&[("types.session.l1", "true")])).unwrap();
        let writer = d.store();
        let (acme, s) = (tenant("acme"), CacheType::SESSION);
        let _ = writer.set_with(&acme, &s, "k", &1u64, Write::default().tags(&["customer:42"])).await.unwrap();
        // Held in process once tracking runs.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let before: u64 = reader.metrics().series.iter().map(|x| x.counters.l1_hits).sum();
            assert_eq!(reader.get::<u64>(&acme, &s, "k").await.unwrap(), Some(1));
            let after: u64 = reader.metrics().series.iter().map(|x| x.counters.l1_hits).sum();
            if after > before {
                break;
            }
            assert!(Instant::now() < deadline, "never held in process");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        writer.invalidate(Target::tag(&acme, "customer:42"), InvalidationStrategy::Lazy).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while reader.get::<u64>(&acme, &s, "k").await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "the copy outlived the tag's invalidation");
            tokio::task::yield_now().await;
        }
    }
    on [standalone, cluster, standalone_sharded, cluster_sharded]
}
