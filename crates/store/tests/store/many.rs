//! Batches (issue 32, item 1): `get_many` and `set_many` through the behaviour suite — on every backend,
//! topology and isolation strategy, hits, misses, invalidated and corrupt entries in one batch, each answered in
//! its place and counted once, as single reads are; on Redis one `MGET` for a batch whose generations are
//! tracked.

use fernando_cache_config::CacheType;
use fernando_cache_store::{InvalidationStrategy, Target, WriteOutcome};

use crate::support::{Deployment, contract, tenant};

/// The full entry key of `name` (acme, session), as the store builds it.
fn full_key(store: &fernando_cache_store::Store, name: &str) -> String {
    store
        .admin()
        .keys()
        .key(&tenant("acme"), &CacheType::SESSION, name)
        .unwrap()
        .into_string()
}

contract! {
    async fn get_many_answers_each_key_in_its_place_and_counts_it_once(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let written = store
            .set_many(&acme, &ty, &[("a", &1u64), ("b", &2u64), ("c", &3u64), ("d", &4u64)])
            .await
            .unwrap();
        assert_eq!(written, vec![WriteOutcome::Stored; 4]);
        let before = store.metrics().totals();

        let got: Vec<Option<u64>> = store
            .get_many(&acme, &ty, &["a", "missing", "c", "b", "d"])
            .await
            .unwrap();
        assert_eq!(got, vec![Some(1), None, Some(3), Some(2), Some(4)]);
        let after = store.metrics().totals().since(&before);
        assert_eq!((after.hits, after.misses), (4, 1), "{after:?}");

        // An empty batch reads nothing.
        let none: Vec<Option<u64>> = store.get_many(&acme, &ty, &[]).await.unwrap();
        assert!(none.is_empty());

        // Invalidated: every key of the batch misses at once.
        let _ = store
            .invalidate(Target::entries(&acme, &ty), InvalidationStrategy::Lazy)
            .await
            .unwrap();
        let got: Vec<Option<u64>> = store.get_many(&acme, &ty, &["a", "b"]).await.unwrap();
        assert_eq!(got, vec![None, None]);

        // Written again: hits again; another tenant's same keys are not these.
        let _ = store.set_many(&acme, &ty, &[("a", &10u64), ("b", &20u64)]).await.unwrap();
        let got: Vec<Option<u64>> = store.get_many(&acme, &ty, &["a", "b"]).await.unwrap();
        assert_eq!(got, vec![Some(10), Some(20)]);
        let theirs: Vec<Option<u64>> = store
            .get_many(&tenant("globex"), &ty, &["a", "b"])
            .await
            .unwrap();
        assert_eq!(theirs, vec![None, None]);
    }
    on [memory, storage_only, disk, standalone, cluster, sentinel, standalone_sharded, cluster_sharded, acl, dedicated]
}

contract! {
    async fn a_corrupt_entry_in_a_batch_is_a_counted_miss_and_removed(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let _ = store.set_many(&acme, &ty, &[("good", &7u64), ("bad", &8u64)]).await.unwrap();
        d.put_raw(&full_key(store, "bad"), b"not an envelope at all");
        let before = store.metrics().totals();
        let got: Vec<Option<u64>> = store.get_many(&acme, &ty, &["good", "bad"]).await.unwrap();
        assert_eq!(got, vec![Some(7), None]);
        let after = store.metrics().totals().since(&before);
        assert_eq!((after.hits, after.misses, after.corrupt), (1, 1, 1), "{after:?}");
        assert!(!d.exists_raw(&full_key(store, "bad")), "the corrupt entry is removed");
    }
    on [disk, standalone, cluster, standalone_sharded, cluster_sharded, acl, dedicated]
}

/// On Redis with tracked generations a batch of hits is one `MGET` and no generation read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_batch_of_hits_is_one_mget() {
    use crate::support::calls;
    let d = Deployment::standalone();
    let store = d.store();
    let (acme, ty) = (tenant("acme"), CacheType::SESSION);
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, &u64)> = keys.iter().map(|k| (k.as_str(), &5u64)).collect();
    let _ = store.set_many(&acme, &ty, &entries).await.unwrap();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    // Until the generations are remembered on this thread (the first batches read them too).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (mgets, gets) = (calls(&d, "mget"), calls(&d, "get"));
        let got: Vec<Option<u64>> = store.get_many(&acme, &ty, &refs).await.unwrap();
        assert!(got.iter().all(|v| *v == Some(5)));
        if calls(&d, "mget") == mgets + 1 && calls(&d, "get") == gets {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a batch of hits never became one MGET"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

contract! {
    /// A batch of hits, misses and an entry past its TTL, for two tenants, one of them invalidated meanwhile by
    /// another store (another process): each answer is its own key's, judged as a single read judges it.
    async fn a_batch_mixes_hits_misses_and_stale_entries_and_sees_another_stores_invalidation(d, store) {
        use fernando_cache_store::Write;
        let (acme, globex, ty) = (tenant("acme"), tenant("globex"), CacheType::SESSION);
        for t in [&acme, &globex] {
            let _ = store.set_many(t, &ty, &[("a", &1u64), ("b", &2u64)]).await.unwrap();
            let _ = store
                .set_with(t, &ty, "old", &3u64, Write::default().ttl(std::time::Duration::from_millis(5)))
                .await
                .unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let before = store.metrics().totals();
        let got: Vec<Option<u64>> = store.get_many(&acme, &ty, &["a", "old", "none", "b"]).await.unwrap();
        assert_eq!(got, vec![Some(1), None, None, Some(2)], "past its TTL is a miss");
        let seen = store.metrics().totals().since(&before);
        assert_eq!((seen.hits, seen.misses), (2, 2), "{seen:?}");

        let other = d.store();
        let _ = other
            .invalidate(Target::entries(&acme, &ty), InvalidationStrategy::Lazy)
            .await
            .unwrap();
        // Another process's invalidation reaches this one (tracked generations, or read with the batch).
        let mut waited = 0;
        loop {
            let got: Vec<Option<u64>> = store.get_many(&acme, &ty, &["a", "b"]).await.unwrap();
            if got == vec![None, None] {
                break;
            }
            waited += 1;
            assert!(waited < 100, "the invalidation never reached this store: {got:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let theirs: Vec<Option<u64>> = store.get_many(&globex, &ty, &["b", "a"]).await.unwrap();
        assert_eq!(theirs, vec![Some(2), Some(1)], "the other tenant is untouched");
    }
    on [disk, standalone, cluster, sentinel, standalone_sharded, cluster_sharded, acl, dedicated]
}
