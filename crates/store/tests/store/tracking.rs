//! Generation tracking (`redis.track_generations`, design 0007): hits are one `GET`, writes one `SET`, and a
//! lazy invalidation by another process is still seen by the very next read — including across a lost
//! connection. One contract for one server, for a cluster, where each primary's hot connections track their own
//! node, and for an `acl` tenant, whose one hot connection tracks in OPTIN mode before it becomes the tenant's
//! Redis user (design 0023).

use std::time::{Duration, Instant};

use fernando_cache_config::CacheType;
use fernando_cache_store::{InvalidationStrategy, Store, Target};

use crate::support::{calls, contract, tenant, until_tracked};

contract! {
    async fn tracked_hits_are_one_get_and_see_every_invalidation_at_once(server, reader) {
        // Another process: its own connections.
        let writer = server.store();
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let _ = writer.set(&acme, &ty, "k", &0u64).await.unwrap();
        until_tracked(server, reader, &acme, &ty, "k").await;

        let (gets, mgets) = (calls(server, "get"), calls(server, "mget"));
        for _ in 0..100 {
            assert_eq!(reader.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(0));
        }
        assert_eq!(calls(server, "mget"), mgets, "no generation reads on hits");
        assert!(calls(server, "get") >= gets + 100, "each hit is one GET");

        // Each round: a value, a hit, a lazy invalidation elsewhere, and the next read must already miss.
        for round in 1..=200u64 {
            let _ = writer.set(&acme, &ty, "k", &round).await.unwrap();
            assert_eq!(
                reader.get::<u64>(&acme, &ty, "k").await.unwrap(),
                Some(round),
                "round {round}: the fresh value"
            );
            let strategy = if round % 2 == 0 {
                writer
                    .invalidate(Target::entries(&acme, &ty), InvalidationStrategy::Lazy)
                    .await
            } else {
                writer
                    .invalidate(Target::entries(&acme, None), InvalidationStrategy::Lazy)
                    .await
            };
            let _ = strategy.unwrap();
            assert_eq!(
                reader.get::<u64>(&acme, &ty, "k").await.unwrap(),
                None,
                "round {round}: a read after the invalidation returned must miss"
            );
        }
}
    on [standalone, cluster, standalone_sharded, cluster_sharded, acl]
}

contract! {
    async fn a_lost_connection_forgets_what_it_remembered(server, reader) {
        let writer = server.store();
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let _ = writer.set(&acme, &ty, "k", &1u64).await.unwrap();
        until_tracked(server, reader, &acme, &ty, "k").await;

        // Every client's connection is cut; the invalidation happens while the reader is not tracking.
        server.kill_clients();
        let deadline = Instant::now() + Duration::from_secs(5);
        while writer
            .invalidate(Target::entries(&acme, &ty), InvalidationStrategy::Lazy)
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the writer never reconnected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            reader.get::<u64>(&acme, &ty, "k").await.unwrap(),
            None,
            "generations remembered before the connection was lost are not trusted"
        );
        // And tracking resumes on the new connections.
        let _ = writer.set(&acme, &ty, "k", &2u64).await.unwrap();
        until_tracked(server, reader, &acme, &ty, "k").await;
        let _ = writer
            .invalidate(Target::entries(&acme, None), InvalidationStrategy::Lazy)
            .await
            .unwrap();
        assert_eq!(reader.get::<u64>(&acme, &ty, "k").await.unwrap(), None);
}
    on [standalone, cluster, standalone_sharded, cluster_sharded, acl]
}

contract! {
    async fn without_tracking_every_hit_reads_the_generations(server, store) {
        let settings = server.settings_with(&[("redis.track_generations", "false")]);
        let store = Store::from_settings(&settings).unwrap();
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let _ = store.set(&acme, &ty, "k", &7u64).await.unwrap();
        let mgets = calls(server, "mget");
        for _ in 0..10 {
            assert_eq!(store.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(7));
        }
        assert_eq!(calls(server, "mget"), mgets + 10, "one MGET per hit");
        assert_eq!(
            calls(server, "client|tracking"),
            0,
            "no tracking asked for"
        );
        let _ = store
            .invalidate(Target::entries(&acme, None), InvalidationStrategy::Lazy)
            .await
            .unwrap();
        assert_eq!(store.get::<u64>(&acme, &ty, "k").await.unwrap(), None);
}
    on [standalone, cluster, standalone_sharded, cluster_sharded, acl]
}

contract! {
    async fn a_write_whose_generations_are_tracked_is_one_set(server, writer) {
        let reader = server.store();
        let (acme, ty) = (tenant("acme"), CacheType::SESSION);
        let _ = writer.set(&acme, &ty, "k", &0u64).await.unwrap();
        // A store that only writes arms tracking too, and its writes become one SET each: no generation read
        // (MGET, or the cluster's script) rides along.
        // Bounded, not timed: arming waits on the server answering CLIENT TRACKING, which a loaded CI machine can
        // take seconds to do (one run of 847 tests missed 5 s).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut round = 0u64;
        loop {
            let before = (
                calls(server, "mget") + calls(server, "evalsha"),
                calls(server, "set"),
            );
            for _ in 0..20 {
                round += 1;
                let _ = writer.set(&acme, &ty, "k", &round).await.unwrap();
            }
            let after = (
                calls(server, "mget") + calls(server, "evalsha"),
                calls(server, "set"),
            );
            if after.0 == before.0 && after.1 == before.1 + 20 {
                break;
            }
            assert!(Instant::now() < deadline, "writes still read the generations after 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(reader.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(round));

        // Another process invalidates: the next write is stamped with the new generations, so it is visible.
        let _ = reader
            .invalidate(Target::entries(&acme, &ty), InvalidationStrategy::Lazy)
            .await
            .unwrap();
        let _ = writer.set(&acme, &ty, "k", &7u64).await.unwrap();
        assert_eq!(reader.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(7));
        assert_eq!(writer.get::<u64>(&acme, &ty, "k").await.unwrap(), Some(7));
    }
    on [standalone, cluster, standalone_sharded, cluster_sharded, acl]
}
