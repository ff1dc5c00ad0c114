//! Tenants spread over several hash tags (design 0024): a tenant ten times bigger than the others spreads over
//! every primary of a cluster, one lazy invalidation hides all its entries at once with one write per shard,
//! and its byte quota holds shard by shard while its use is the sum. The rest of the behaviour suite runs on
//! sharded deployments too (`standalone_sharded`, `cluster_sharded` in the `contract!` lists).

use std::collections::BTreeSet;

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::{InvalidationStrategy, Store, Target, Write, WriteOutcome};
use fernando_cache_testkit::{FAST_FAILURE, RedisCluster, bench::noise};

use crate::support::{calls, contract, tenant};

/// Entries of each small tenant; the big tenant holds ten times as many.
const SMALL: usize = 100;
/// The big tenant's shards. Where its shards' tags hash decides how evenly it spreads: with 64 (the most) a
/// tenant of any name lands within the goal nearly always, with 8 one primary holds about half of it (design
/// 0024, "How evenly").
const BIG_SHARDS: &str = "64";

fn store_on(cluster: &RedisCluster, extra: &[(&str, &str)]) -> Store {
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(cluster.overrides())
            .set_all(FAST_FAILURE.iter().copied())
            .set_all(extra.iter().copied()),
    )
    .expect("test settings load");
    Store::from_settings(&settings).expect("store")
}

/// The primary (an index into the cluster's nodes) that holds `key` of `t` as `store` writes it.
fn primary_of(cluster: &RedisCluster, store: &Store, t: &TenantId, key: &str) -> usize {
    let full = store
        .admin()
        .keys()
        .key(t, &CacheType::SESSION, key)
        .expect("a valid key");
    cluster.primary_of_slot(cluster.slot_of(full.as_str()))
}

/// Two small tenants on each primary, chosen by where their tag hashes: the test measures how the big tenant
/// spreads, not where six names happen to land.
fn small_tenants(cluster: &RedisCluster, store: &Store) -> Vec<TenantId> {
    let primaries = cluster.primaries();
    let mut on: Vec<Vec<TenantId>> = vec![Vec::new(); primaries.len()];
    for i in 0..1000 {
        let t = tenant(&format!("small-{i}"));
        let p = primary_of(cluster, store, &t, "doc-0");
        let at = primaries
            .iter()
            .position(|&q| q == p)
            .expect("a live primary");
        if on[at].len() < 2 {
            on[at].push(t);
        }
        if on.iter().all(|ts| ts.len() == 2) {
            return on.concat();
        }
    }
    panic!("no two tenants of 1000 on every primary: {on:?}");
}

/// The keys one node holds.
fn keys_on(cluster: &RedisCluster, node: usize) -> u64 {
    let reply = cluster.nodes()[node].command(&["DBSIZE"]).expect("DBSIZE");
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .expect("a count")
}

/// Issue 31's goal: a tenant with ten times the entries of the others, on three primaries, leaves the largest
/// primary holding at most 1.3× the smallest one's keys — where on one hash tag it sits on one primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_ten_times_bigger_spreads_over_every_primary() {
    let cluster = RedisCluster::start_with(3, 0);
    let store = store_on(&cluster, &[("tenants.big.shards", BIG_SHARDS)]);
    let (big, ty) = (tenant("big"), CacheType::SESSION);
    assert_eq!(store.admin().keys().shards(&big), 64);
    let small = small_tenants(&cluster, &store);
    for t in &small {
        for i in 0..SMALL {
            let stored = store.set(t, &ty, &format!("doc-{i}"), &i).await.unwrap();
            assert_eq!(stored, WriteOutcome::Stored);
        }
    }
    for i in 0..10 * SMALL {
        let stored = store.set(&big, &ty, &format!("doc-{i}"), &i).await.unwrap();
        assert_eq!(stored, WriteOutcome::Stored);
    }

    let counts: Vec<u64> = cluster
        .primaries()
        .into_iter()
        .map(|p| keys_on(&cluster, p))
        .collect();
    println!("keys per primary: {counts:?}");
    let entries = (small.len() * SMALL + 10 * SMALL) as u64;
    assert_eq!(
        counts.iter().sum::<u64>(),
        entries,
        "nothing but the entries"
    );
    let (least, most) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    assert!(
        most as f64 <= 1.3 * least as f64,
        "the largest primary holds {most} keys, the smallest {least}: {counts:?}"
    );

    // The same tenant on one hash tag, as before design 0024: every entry on one primary.
    let plain = store_on(&cluster, &[]);
    let primaries = |s: &Store| -> BTreeSet<usize> {
        (0..20)
            .map(|i| primary_of(&cluster, s, &big, &format!("doc-{i}")))
            .collect()
    };
    assert_eq!(primaries(&plain).len(), 1);
    assert_eq!(primaries(&store).len(), 3);
}

/// Writes the big tenant's entries, each tagged `customer:42`.
async fn fill(writer: &Store, big: &TenantId) {
    for i in 0..10 * SMALL {
        let options = Write::default().tags(&["customer:42"]);
        let stored = writer
            .set_with(big, &CacheType::SESSION, &format!("doc-{i}"), &i, options)
            .await
            .unwrap();
        assert_eq!(stored, WriteOutcome::Stored);
    }
}

/// How many of the big tenant's entries `reader` sees.
async fn visible(reader: &Store, big: &TenantId) -> usize {
    let mut n = 0;
    for i in 0..10 * SMALL {
        let got = reader
            .get::<usize>(big, &CacheType::SESSION, &format!("doc-{i}"))
            .await
            .unwrap();
        if let Some(v) = got {
            assert_eq!(v, i);
            n += 1;
        }
    }
    n
}

/// What a sweep would send: SCAN, UNLINK, DEL calls so far.
fn sweep_calls(cluster: &RedisCluster) -> [u64; 3] {
    ["scan", "unlink", "del"].map(|c| calls(cluster, c))
}

/// A lazy invalidation of the big tenant — of all of it, of one type, of a tag — hides every entry from another
/// process at once, with one generation write per shard: O(shards), not O(entries), and no key deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lazy_invalidation_hides_a_big_tenant_at_once_with_one_write_per_shard() {
    let cluster = RedisCluster::start_with(3, 0);
    let overrides = [("tenants.big.shards", BIG_SHARDS)];
    let (writer, reader) = (
        store_on(&cluster, &overrides),
        store_on(&cluster, &overrides),
    );
    let (big, other, ty) = (tenant("big"), tenant("other"), CacheType::SESSION);
    let _ = writer.set(&other, &ty, "doc-0", &0usize).await.unwrap();
    for target in [
        Target::entries(&big, None),
        Target::entries(&big, &ty),
        Target::tag(&big, "customer:42"),
    ] {
        fill(&writer, &big).await;
        assert_eq!(
            visible(&reader, &big).await,
            10 * SMALL,
            "{target:?}: every entry, before"
        );
        let (sets, sweeps) = (calls(&cluster, "set"), sweep_calls(&cluster));
        let done = writer
            .invalidate(target, InvalidationStrategy::Lazy)
            .await
            .unwrap();
        assert!(done.hidden() && done.deleted == 0, "{target:?}: {done:?}");
        assert_eq!(
            calls(&cluster, "set") - sets,
            65,
            "{target:?}: one generation write per shard (and one for the tag the tenant had before it was \
             sharded), whatever the tenant holds"
        );
        assert_eq!(
            sweep_calls(&cluster),
            sweeps,
            "{target:?}: no key looked for or deleted"
        );
        assert_eq!(
            visible(&reader, &big).await,
            0,
            "{target:?}: every entry hidden at once"
        );
        assert_eq!(
            reader.get::<usize>(&other, &ty, "doc-0").await.unwrap(),
            Some(0),
            "another tenant untouched"
        );
    }
}

/// Four shards share 352 000 bytes: room for two values and their envelopes per shard, not three (and each
/// shard's share above the 64 KiB the settings ask of one).
const LIMIT: &str = "352000";
const VALUE: usize = 40_000;

contract! {
    /// A sharded tenant's byte quota is kept per shard (the limit divided by the shard count): a shard refuses
    /// past its share while another shard of the same tenant still takes writes; the tenant's use is the sum of
    /// its shards'; a delete and every kind of sweep give each shard back what they delete.
    async fn a_sharded_tenants_byte_quota_holds_per_shard_and_its_use_is_the_sum(d, _default) {
        let store = d.store_with(&[("quotas.tenant_bytes", LIMIT)]);
        let (a, ty) = (tenant("a"), CacheType::SESSION);
        let keys = store.admin().keys();
        assert_eq!(keys.shards(&a), 4);
        let shard_of = |k: &str| -> String {
            let key = keys.key(&a, &ty, k).unwrap().into_string();
            let mark = key.split("%s").nth(1).expect("a sharded key");
            mark.split('}').next().unwrap_or_default().to_owned()
        };
        let home = shard_of("k0");
        let same: Vec<String> = (1..200).map(|i| format!("k{i}")).filter(|k| shard_of(k) == home).take(2).collect();
        let elsewhere = (1..200).map(|i| format!("k{i}")).find(|k| shard_of(k) != home).unwrap();
        let put = |key: String, seed: u64| {
            let store = store.clone();
            async move {
                store.set_bytes(&tenant("a"), &CacheType::SESSION, &key, &noise(seed, VALUE), Write::default()).await.unwrap()
            }
        };
        let used = || {
            let store = store.clone();
            async move { store.admin().quota_usage(&tenant("a")).await.unwrap() }
        };

        assert_eq!(put("k0".into(), 0).await, WriteOutcome::Stored);
        assert_eq!(put(same[0].clone(), 1).await, WriteOutcome::Stored);
        assert_eq!(put(same[1].clone(), 2).await, WriteOutcome::OverQuota, "a third value in one shard");
        assert_eq!(put(elsewhere.clone(), 3).await, WriteOutcome::Stored, "another shard has room");
        let usage = used().await;
        assert_eq!(usage.byte_limit, 352_000, "the tenant's limit, not a shard's");
        assert!(
            usage.stored_bytes > 3 * VALUE as u64 && usage.stored_bytes <= 3 * 88_000,
            "the sum of the shards: {usage:?}"
        );

        // A delete gives its shard room at once.
        assert!(store.delete(&a, &ty, &same[0]).await.unwrap());
        assert_eq!(put(same[1].clone(), 2).await, WriteOutcome::Stored);

        // A pattern sweep and an eager invalidation give every shard back what they delete.
        let swept = store.invalidate(Target::pattern(&a, &ty, "k*"), InvalidationStrategy::Eager).await.unwrap();
        assert_eq!(swept.deleted, 3);
        assert_eq!(used().await.stored_bytes, 0);
        for (i, key) in ["k0".to_owned(), same[0].clone(), elsewhere.clone()].into_iter().enumerate() {
            assert_eq!(put(key, 10 + i as u64).await, WriteOutcome::Stored);
        }
        let cleared = store.invalidate(Target::entries(&a, None), InvalidationStrategy::Eager).await.unwrap();
        assert_eq!(cleared.deleted, 3);
        assert_eq!(used().await.stored_bytes, 0);
    }
    on [memory_sharded, disk_sharded, standalone_sharded, cluster_sharded]
}

contract! {
    /// Everything about a subject (a document: its entries of every type, and every key under `{subject}/`) is
    /// swept from every shard of a sharded tenant — and so is what the tenant wrote before it was sharded —
    /// while its other entries and another tenant's entries about the same subject stay.
    async fn a_subject_is_swept_from_every_shard(d, store) {
        let (a, b) = (tenant("a"), tenant("b"));
        let doc = "9f86d081";
        let about: Vec<String> = std::iter::once(doc.to_owned())
            .chain((0..20).map(|i| format!("{doc}/stage-{i}")))
            .collect();
        let types = [CacheType::OCR_RESULT, CacheType::LLM_EXTRACTION];
        for ty in &types {
            for key in &about {
                let _ = store.set(&a, ty, key, &1u8).await.unwrap();
            }
            let _ = store.set(&a, ty, "another-doc", &2u8).await.unwrap();
            let _ = store.set(&b, ty, doc, &3u8).await.unwrap();
        }
        // Written on one hash tag, before the tenant was sharded (in memory, a store is a backend of its own).
        let shared = d.stored("*").is_some();
        if shared {
            let before = d.store_with(&[("tenants.default.shards", "1")]);
            let _ = before.set(&a, &types[0], &format!("{doc}/old"), &4u8).await.unwrap();
        }

        let swept = store.invalidate(Target::subject(&a, None, doc), InvalidationStrategy::Eager).await.unwrap();
        assert_eq!(swept.deleted, 2 * about.len() as u64 + u64::from(shared));
        for ty in &types {
            for key in &about {
                assert_eq!(store.get::<u8>(&a, ty, key).await.unwrap(), None, "{ty} {key}");
            }
            assert_eq!(store.get::<u8>(&a, ty, "another-doc").await.unwrap(), Some(2));
            assert_eq!(store.get::<u8>(&b, ty, doc).await.unwrap(), Some(3));
        }
    }
    on [memory_sharded, disk_sharded, standalone_sharded, cluster_sharded]
}

contract! {
    /// What a tenant wrote before it was sharded stays hidden by an invalidation made while it is sharded — also
    /// once it goes back to one hash tag (the invalidation bumps the one tag's generations too).
    async fn an_invalidation_while_sharded_hides_what_one_tag_holds(d, sharded) {
        let plain = d.store_with(&[("tenants.default.shards", "1")]);
        let (a, ty) = (tenant("a"), CacheType::SESSION);
        let _ = plain.set(&a, &ty, "k1", &"old").await.unwrap();
        let _ = plain.set_with(&a, &ty, "k2", &"tagged", Write::default().tags(&["t"])).await.unwrap();
        for target in [Target::entries(&a, None), Target::entries(&a, &ty), Target::tag(&a, "t")] {
            let done = sharded.invalidate(target, InvalidationStrategy::Lazy).await.unwrap();
            assert!(done.hidden(), "{done:?}");
        }
        assert_eq!(plain.get::<String>(&a, &ty, "k1").await.unwrap(), None, "hidden on the one tag");
        assert_eq!(plain.get::<String>(&a, &ty, "k2").await.unwrap(), None, "its tag too");
    }
    on [standalone_sharded, cluster_sharded]
}
