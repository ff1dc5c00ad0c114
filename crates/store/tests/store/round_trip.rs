//! Every cache type round-trips with its profile TTL; compression kicks in exactly above the threshold.

use std::time::Duration;

use fernando_cache_config::CacheType;
use fernando_cache_store::{
    ComputeError, InvalidationStrategy, KeyTtl, Store, StoreError, Target, Write, WriteOutcome,
};
use serde::{Deserialize, Serialize};

use crate::support::{contract, memory_store, redis_store, tenant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Extraction {
    invoice_number: String,
    total_cents: i64,
    lines: Vec<String>,
}

fn sample(n: usize) -> Extraction {
    Extraction {
        invoice_number: format!("INV-{n}"),
        total_cents: 1999 * n as i64,
        lines: (0..n)
            .map(|i| format!("line {i}: widget x{i} @ 19.99 EUR"))
            .collect(),
    }
}

async fn all_types_round_trip(store: &Store) {
    let t = tenant("user123");
    for (i, ty) in CacheType::BUILT_IN.iter().enumerate() {
        let value = sample(i + 1);
        let outcome = store.set(&t, ty, "k", &value).await.unwrap();
        assert_eq!(outcome, WriteOutcome::Stored, "{ty}");
        let back: Extraction = store.get(&t, ty, "k").await.unwrap().expect("hit");
        assert_eq!(back, value, "{ty}");
        let configured = store.admin().configured_ttl(ty).unwrap();
        match store.admin().remaining_ttl(&t, ty, "k").await.unwrap() {
            KeyTtl::Expires(left) => {
                assert!(
                    left <= configured && left + Duration::from_secs(5) >= configured,
                    "{ty}: {left:?}"
                )
            }
            other => panic!("{ty}: expected a TTL, got {other:?}"),
        }
        assert!(store.admin().exists(&t, ty, "k").await.unwrap());
        assert!(store.delete(&t, ty, "k").await.unwrap());
        assert!(!store.admin().exists(&t, ty, "k").await.unwrap());
        assert_eq!(store.get::<Extraction>(&t, ty, "k").await.unwrap(), None);
    }
    let totals = store.metrics().totals();
    assert_eq!(
        (totals.hits, totals.misses, totals.sets, totals.deletes),
        (8, 8, 8, 8)
    );
}

contract! {
    async fn all_eight_types(d, store) {
        all_types_round_trip(store).await;
    }
    on [memory, storage_only, disk, standalone, cluster, sentinel, standalone_sharded, cluster_sharded, acl, dedicated]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_starts_just_above_the_threshold() {
    let (server, store) = redis_store();
    let t = tenant("acme");
    // The raw-bytes codec stores the payload as it is, so the threshold (1024 by default) applies exactly.
    let below = "a".repeat(1024);
    let above = "a".repeat(1025);
    for (key, value) in [("below", &below), ("above", &above)] {
        assert_eq!(
            store
                .set_bytes(
                    &t,
                    &CacheType::OCR_RESULT,
                    key,
                    value.as_bytes(),
                    Write::default()
                )
                .await
                .unwrap(),
            WriteOutcome::Stored
        );
        let back = store
            .get_bytes(&t, &CacheType::OCR_RESULT, key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, value.as_bytes());
    }
    let strlen = |key: &str| {
        let full = store
            .admin()
            .keys()
            .key(&t, &CacheType::OCR_RESULT, key)
            .unwrap();
        let reply = server.command(&["STRLEN", full.as_str()]).unwrap();
        reply
            .trim()
            .trim_start_matches(':')
            .parse::<usize>()
            .unwrap()
    };
    assert_eq!(
        strlen("below"),
        49 + 1024,
        "at the threshold: stored as it is, after the 49-byte envelope header"
    );
    assert!(
        strlen("above") < 100,
        "above the threshold: compressed, got {}",
        strlen("above")
    );
    let m = store.metrics().totals();
    assert_eq!(m.raw_bytes, 2049);
    assert!(m.stored_bytes < m.raw_bytes);
}

contract! {
    async fn explicit_ttls_and_unknown_types(d, store) {
        let t = tenant("acme");
        let _ = store
            .set_with(
                &t,
                &CacheType::SESSION,
                "short",
                &1u8,
                Write::default().ttl(Duration::from_millis(150)),
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .get::<u8>(&t, &CacheType::SESSION, "short")
                .await
                .unwrap(),
            Some(1)
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            store
                .get::<u8>(&t, &CacheType::SESSION, "short")
                .await
                .unwrap(),
            None,
            "expired"
        );

        let custom = CacheType::new("invoice_preview").unwrap();
        let err = store
            .set(&t, &custom, "k", &1u8)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("types.invoice_preview.ttl"), "{err}");
        // get_or_compute learns of the unknown type after its read missed, and refuses before computing.
        let computed = std::sync::atomic::AtomicBool::new(false);
        let err = store
            .get_or_compute(&t, &custom, "k", || async {
                computed.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok::<u8, std::convert::Infallible>(1)
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ComputeError::Store(StoreError::UnknownCacheType(t)) if t == &custom),
            "{err}"
        );
        assert!(!computed.load(std::sync::atomic::Ordering::SeqCst), "nothing was computed");
        let err = store
            .set_with(&t, &CacheType::SESSION, "k", &1u8, Write::default().ttl(Duration::ZERO))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("TTL"), "{err}");
    }
    on [disk, standalone, cluster, standalone_sharded, cluster_sharded]
}

/// One TLS contract for every topology: `tls` puts a store on TLS servers and names the private CA
/// (`redis.tls_ca_file`); with it the store round-trips and sweeps (its SCAN connections speak TLS too); without
/// it the servers are not trusted and the store degrades instead of talking in clear.
async fn tls_with_a_private_ca_round_trips_and_an_untrusted_server_is_refused(
    tls: Vec<(&'static str, String)>,
) {
    use fernando_cache_config::{Environment, LoadOptions, Settings};
    let load = |trust_ca: bool| {
        let options = LoadOptions::isolated(Environment::Test)
            .set_all(
                tls.iter()
                    .filter(|(k, _)| trust_ca || *k != "redis.tls_ca_file")
                    .cloned(),
            )
            // Trusted, a first connection (through the sentinels, then a TLS handshake) may take a while on a
            // loaded machine: the contract is that it works, not how fast. Untrusted, it fails fast.
            .set("command_timeout", if trust_ca { "3s" } else { "500ms" })
            .set(
                "redis.connect_timeout",
                if trust_ca { "3s" } else { "500ms" },
            );
        Store::from_settings(&Settings::load(options).unwrap()).unwrap()
    };
    let trusted = load(true);
    let t = tenant("acme");
    for i in 0..8 {
        let value = sample(i);
        let key = format!("k{i}");
        assert_eq!(
            trusted
                .set(&t, &CacheType::SESSION, &key, &value)
                .await
                .unwrap(),
            WriteOutcome::Stored,
            "{key}"
        );
        assert_eq!(
            trusted
                .get::<Extraction>(&t, &CacheType::SESSION, &key)
                .await
                .unwrap(),
            Some(value),
            "{key}"
        );
    }
    assert_eq!(
        trusted
            .invalidate(Target::pattern(&t, None, "*"), InvalidationStrategy::Eager)
            .await
            .unwrap()
            .deleted,
        8,
        "the SCAN connections speak TLS too"
    );

    let untrusted = load(false);
    assert_eq!(
        untrusted
            .set(&t, &CacheType::SESSION, "k", &1u8)
            .await
            .unwrap(),
        WriteOutcome::Dropped
    );
    assert!(untrusted.admin().ping().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_a_standalone_server() {
    let server = fernando_cache_testkit::RedisServer::start_tls();
    let mut tls = server.overrides();
    tls.push(("redis.url", server.tls_url()));
    tls.push(("redis.tls_ca_file", server.ca_file().display().to_string()));
    tls_with_a_private_ca_round_trips_and_an_untrusted_server_is_refused(tls).await;
}

/// Sentinels and the servers behind them all speak TLS: the private CA is trusted at both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_behind_sentinels() {
    let group = fernando_cache_testkit::SentinelGroup::start_tls();
    tls_with_a_private_ca_round_trips_and_an_untrusted_server_is_refused(group.tls_overrides())
        .await;
}

/// Only the sentinels speak TLS (`rediss://` sentinels, `redis://` in `redis.url`): the CA is read for them
/// alone, and the primary they name is reached in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_at_the_sentinels_only() {
    let group = fernando_cache_testkit::SentinelGroup::start_tls_sentinels();
    tls_with_a_private_ca_round_trips_and_an_untrusted_server_is_refused(group.tls_overrides())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_a_cluster() {
    let cluster = fernando_cache_testkit::RedisCluster::start_tls();
    tls_with_a_private_ca_round_trips_and_an_untrusted_server_is_refused(cluster.tls_overrides())
        .await;
    // Reads reach the slot's primary over the store's own TLS connection (a plain GET) once the store has the
    // slot map, not only through the cluster client's fallback, whose script reads with MGET: the direct path
    // speaks TLS too. (Without it every read falls back, and no GET ever reaches a node.)
    let store = Store::from_settings(
        &fernando_cache_config::Settings::load(
            fernando_cache_config::LoadOptions::isolated(fernando_cache_config::Environment::Test)
                .set_all(cluster.tls_overrides()),
        )
        .unwrap(),
    )
    .unwrap();
    let direct_gets = || {
        cluster
            .nodes()
            .iter()
            .map(|n| n.command(&["INFO", "commandstats"]).unwrap())
            .any(|stats| stats.contains("cmdstat_get:"))
    };
    for _ in 0..100 {
        let _ = store
            .get::<Extraction>(&tenant("acme"), &CacheType::SESSION, "k")
            .await;
        if direct_gets() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no read reached a primary directly within 100 reads over 5 s");
}

/// A bounded set shared by every store on one Redis: members in stay in, new ones only below the limit, per
/// tenant; in process the caller's own bound is the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_to_a_bounded_set_is_shared_and_per_tenant() {
    let (server, a) = redis_store();
    let b = Store::from_settings(&crate::support::redis_settings(&server)).unwrap();
    let ty = CacheType::API_RESPONSE;
    let ttl = Duration::from_secs(60);
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    assert!(
        a.coordinator()
            .admit(&acme, &ty, "budget", b"v1", 2, ttl)
            .await
            .unwrap()
    );
    assert!(
        b.coordinator()
            .admit(&acme, &ty, "budget", b"v2", 2, ttl)
            .await
            .unwrap()
    );
    assert!(
        !a.coordinator()
            .admit(&acme, &ty, "budget", b"v3", 2, ttl)
            .await
            .unwrap(),
        "the bound holds across stores"
    );
    assert!(
        b.coordinator()
            .admit(&acme, &ty, "budget", b"v1", 2, ttl)
            .await
            .unwrap(),
        "a member already in stays in"
    );
    assert!(
        a.coordinator()
            .admit(&globex, &ty, "budget", b"v3", 2, ttl)
            .await
            .unwrap(),
        "another tenant has its own set"
    );
    assert!(
        memory_store()
            .coordinator()
            .admit(&acme, &ty, "budget", b"v9", 0, ttl)
            .await
            .unwrap()
    );
}
