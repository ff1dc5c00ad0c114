//! Erasing a tenant (issue 31, item 4) on every deployment: afterwards no key of the tenant is left on any
//! primary or in the file (entries of every type, generations of its types and tags, its lease, its ledger
//! and request counter), its quota use is zero, a second process sharing the backend — its in-process tier
//! included — misses, another tenant is untouched, and a second erasure finds nothing. And a tenant's export:
//! what it holds, a page at a time, with sealed envelopes exported as stored.

use std::{
    collections::BTreeMap,
    io::Write as _,
    time::{Duration, Instant},
};

use fernando_cache_config::CacheType;
use fernando_cache_keys::TenantId;
use fernando_cache_store::{
    Erasure, ExportCursor, HeldEntry, InvalidationStrategy, RefreshClaim, RequestQuota, Store,
    Target, Write, WriteOutcome,
};

use crate::support::{Deployment, contract, tenant};

/// Sessions kept in process (L1), byte and request quotas on (so there are ledgers), and copies short-lived
/// where the backend announces nothing.
const OVERRIDES: [(&str, &str); 5] = [
    ("types.session.l1", "true"),
    ("quotas.tenant_bytes", "1000000"),
    ("quotas.shared_requests", "100"),
    ("quotas.shared_window", "1h"),
    ("l1.untracked_ttl", "200ms"),
];

/// Writes keys of every kind for `t`: seven entries of three types (one tagged), a type's and a tag's
/// generation, charged bytes, a counted request, and the lease of a refresh claim where the backend shares
/// leases (the claim is returned, to be held).
async fn fill(store: &Store, t: &TenantId) -> Option<RefreshClaim> {
    for i in 0..5u64 {
        let stored = store
            .set(t, &CacheType::SESSION, &format!("s{i}"), &i)
            .await
            .unwrap();
        assert_eq!(stored, WriteOutcome::Stored);
    }
    let _ = store
        .set(t, &CacheType::OCR_RESULT, "doc/page:1", "text")
        .await
        .unwrap();
    let _ = store
        .set_with(
            t,
            &CacheType::BILLING,
            "b",
            &2u64,
            Write::default().tags(&["customer:1"]),
        )
        .await
        .unwrap();
    let _ = store
        .invalidate(
            Target::entries(t, &CacheType::DASHBOARD),
            InvalidationStrategy::Lazy,
        )
        .await
        .unwrap();
    let _ = store
        .invalidate(Target::tag(t, "customer:9"), InvalidationStrategy::Lazy)
        .await
        .unwrap();
    assert_eq!(
        store.coordinator().count_request(t).await,
        RequestQuota::Allowed
    );
    store
        .coordinator()
        .claim_refresh(t, &CacheType::SESSION, "s0", Duration::from_secs(60))
        .await
        .unwrap()
}

/// Keys of `t` on every primary, or in the file; `None` in memory, which has no server to ask.
fn held(d: &Deployment, store: &Store, t: &TenantId) -> Option<usize> {
    store
        .admin()
        .keys()
        .tenant_globs(t)
        .iter()
        .map(|g| d.stored(g))
        .sum()
}

/// Reads `key` until a read is answered in process.
async fn until_held(store: &Store, t: &TenantId, key: &str) {
    let l1_hits = || {
        store
            .metrics()
            .series(t.as_str(), "session")
            .map_or(0, |s| s.counters.l1_hits)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = l1_hits();
        for _ in 0..2 {
            let _ = store.get::<u64>(t, &CacheType::SESSION, key).await.unwrap();
        }
        if l1_hits() > before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no read was answered in process after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

contract! {
    async fn erasing_a_tenant_leaves_nothing_of_it_and_another_untouched(d, _default) {
        let store = d.store_with(&OVERRIDES);
        let (gone, kept) = (tenant("gone"), tenant("kept"));
        let _claims = (fill(&store, &gone).await, fill(&store, &kept).await);
        let kept_keys = held(d, &store, &kept);
        if let Some(n) = held(d, &store, &gone) {
            assert!(n >= 10, "{n}: keys of every kind were written");
        }
        // A second process on the same backend holds the tenant's session in its in-process tier (in memory a
        // store is its own backend: the first stands for both).
        let second = if matches!(d, Deployment::Memory) {
            store.clone()
        } else {
            d.store_with(&OVERRIDES)
        };
        until_held(&second, &gone, "s1").await;

        let erased = store.admin().erase_tenant(&gone).await.unwrap();
        let shares_leases = matches!(
            d,
            Deployment::Standalone(_) | Deployment::Cluster(_) | Deployment::Sentinel(_)
        );
        assert_eq!(erased.entries, 7, "{erased:?}");
        assert_eq!(erased.generations, 2, "the type's and the tag's: {erased:?}");
        assert_eq!(erased.leases, u64::from(shares_leases), "{erased:?}");
        // The byte ledger and the request counter: two keys, or three where the ledger is two Redis keys.
        assert!(erased.quota >= 2, "{erased:?}");

        // Nothing of it is left on any primary, nor in the file; its ledgers are empty.
        if let Some(n) = held(d, &store, &gone) {
            assert_eq!(n, 0, "keys of the erased tenant are left");
        }
        let usage = store.admin().quota_usage(&gone).await.unwrap();
        assert_eq!((usage.stored_bytes, usage.requests), (0, 0));
        for i in 0..5u64 {
            let got = store.get::<u64>(&gone, &CacheType::SESSION, &format!("s{i}")).await.unwrap();
            assert_eq!(got, None, "s{i}");
        }

        // The second process misses too, from its in-process tier as well: as soon as Redis announces the
        // erasure, or once an unannounced copy's short life is over.
        let erased_at = Instant::now();
        loop {
            let got = second.get::<u64>(&gone, &CacheType::SESSION, "s1").await.unwrap();
            if got.is_none() {
                break;
            }
            assert!(erased_at.elapsed() < Duration::from_secs(2), "the second process still serves the tenant");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!("the second process missed {:?} after the erasure", erased_at.elapsed());
        for key in ["s0", "s2", "s3", "s4"] {
            assert_eq!(second.get::<u64>(&gone, &CacheType::SESSION, key).await.unwrap(), None, "{key}");
        }

        // Another tenant is untouched: its keys, values and quota use.
        assert_eq!(held(d, &store, &kept), kept_keys);
        for i in 0..5u64 {
            let got = store.get::<u64>(&kept, &CacheType::SESSION, &format!("s{i}")).await.unwrap();
            assert_eq!(got, Some(i), "kept s{i}");
        }
        let got = store.get::<u64>(&kept, &CacheType::BILLING, "b").await.unwrap();
        assert_eq!(got, Some(2));
        let usage = store.admin().quota_usage(&kept).await.unwrap();
        assert!(usage.stored_bytes > 0 && usage.requests == 1, "{usage:?}");

        // Erasing again finds nothing, and succeeds; the tenant may come back and write again.
        assert_eq!(store.admin().erase_tenant(&gone).await.unwrap(), Erasure::default());
        if let Some(n) = held(d, &store, &gone) {
            assert_eq!(n, 0, "the second erasure leaves nothing either");
        }
        let _ = store.set(&gone, &CacheType::SESSION, "s1", &9u64).await.unwrap();
        assert_eq!(store.get::<u64>(&gone, &CacheType::SESSION, "s1").await.unwrap(), Some(9));
    }
    on [memory, disk, standalone, cluster, sentinel]
}

contract! {
    /// The erasure's count of generation keys includes the tenant's own scope generation, which an invalidation
    /// of the whole tenant wrote before — the erasure's bump over it is not a key of its own.
    async fn an_erasure_counts_the_scope_generation_a_past_invalidation_left(d, store) {
        let t = tenant("cleared");
        let _ = store.set(&t, &CacheType::SESSION, "k", &1u64).await.unwrap();
        let done = store.invalidate(Target::entries(&t, None), InvalidationStrategy::Lazy).await.unwrap();
        assert!(done.hidden());
        let erased = store.admin().erase_tenant(&t).await.unwrap();
        assert_eq!((erased.entries, erased.generations), (1, 1), "{erased:?}");
        assert_eq!(store.admin().erase_tenant(&t).await.unwrap(), Erasure::default());
    }
    on [memory, disk, standalone, cluster]
}

/// Every page of `tenant`'s export, `count` at a time, by (type, key): a key listed twice (Redis `SCAN` may)
/// is kept once.
async fn export_all(
    store: &Store,
    t: &TenantId,
    count: usize,
    values: bool,
) -> (BTreeMap<(String, String), HeldEntry>, usize) {
    let mut all = BTreeMap::new();
    let mut from = ExportCursor::default();
    let mut pages = 0;
    loop {
        let page = store
            .admin()
            .export_tenant(t, &from, count, values)
            .await
            .unwrap();
        pages += 1;
        for e in page.entries {
            all.insert((e.cache_type.clone(), e.key.clone()), e);
        }
        match page.next {
            Some(next) => from = next,
            None => return (all, pages),
        }
        assert!(pages < 10_000, "the export never ended");
    }
}

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SECRET: &str = "IBAN DE89 3704 0044 0532 0130 00";

contract! {
    async fn an_export_lists_what_a_tenant_holds_and_keeps_sealed_values_sealed(d, _default) {
        let mut keys = tempfile::NamedTempFile::new().unwrap();
        keys.write_all(format!("k1:{KEY}").as_bytes()).unwrap();
        let path = keys.path().display().to_string();
        let store = Store::from_settings(&d.settings_with(&[
            ("types.ocr_result.sealed", "true"),
            ("encryption.keys_file", &path),
        ]))
        .unwrap();
        let acme = tenant("acme");
        for i in 0..25u64 {
            let _ = store.set(&acme, &CacheType::SESSION, &format!("user:{i}"), &i).await.unwrap();
        }
        let _ = store.set(&acme, &CacheType::OCR_RESULT, "doc/50%", SECRET).await.unwrap();
        let _ = store.set(&tenant("acme2"), &CacheType::SESSION, "user:0", &0u64).await.unwrap();

        // A page at a time: every entry once, each told by its type and its key as written.
        let (all, pages) = export_all(&store, &acme, 4, false).await;
        assert_eq!(all.len(), 26, "{:?}", all.keys().collect::<Vec<_>>());
        assert!(pages >= 2, "{pages} pages of at most about 4");
        let session = &all[&("session".to_owned(), "user:7".to_owned())];
        assert!(session.size.is_some_and(|s| s > 0), "{session:?}");
        assert!(session.age.is_some_and(|a| a < Duration::from_secs(60)), "{session:?}");
        assert!(session.expires_in.is_some_and(|e| e <= Duration::from_secs(600)), "{session:?}");
        assert!(!session.sealed && session.envelope.is_none(), "{session:?}");
        let doc = &all[&("ocr_result".to_owned(), "doc/50%".to_owned())];
        assert!(doc.sealed, "{doc:?}");

        // With values: the envelope as stored, so a sealed one holds no plaintext.
        let (with_values, _) = export_all(&store, &acme, 100, true).await;
        let doc = &with_values[&("ocr_result".to_owned(), "doc/50%".to_owned())];
        let envelope = doc.envelope.as_ref().expect("the envelope");
        assert_eq!(Some(envelope.len() as u64), doc.size);
        assert!(!envelope.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "decrypted");
        if !matches!(d, Deployment::Memory) {
            let full = store.admin().keys().key(&acme, &CacheType::OCR_RESULT, "doc/50%").unwrap();
            assert_eq!(d.get_raw(full.as_str()).as_deref(), Some(&envelope[..]));
        }

        // After an erasure there is nothing to export.
        let _ = store.admin().erase_tenant(&acme).await.unwrap();
        assert!(export_all(&store, &acme, 10, false).await.0.is_empty());
    }
    on [memory, disk, standalone, cluster]
}
