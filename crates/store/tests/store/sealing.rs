//! Sealed values on every deployment with storage outside the process (design 0018): at rest the backend holds
//! no plaintext, a ciphertext copied under another tenant's key is a counted miss, rotation keeps old entries
//! readable until their key is removed, a plaintext value planted under a sealed type is refused, and so is a
//! ciphertext put back with its clear header edited (issue 28) — with either AEAD, and across a change of
//! `encryption.algorithm`.

use std::io::Write as _;

use fernando_cache_config::CacheType;
use fernando_cache_store::{InvalidationStrategy, Store, Target, WriteOutcome};

use crate::support::{Deployment, contract, tenant};

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=";
const SECRET: &str = "IBAN DE89 3704 0044 0532 0130 00, jane.doe@example.com";

const ALGORITHMS: [&str; 2] = ["aegis-256x4", "aes-256-gcm"];

/// A store sealing `ocr_result` with the keys in `keys` (a secret file's content) and the default AEAD.
fn sealed_store(d: &Deployment, keys: &str) -> (Store, tempfile::NamedTempFile) {
    sealed_store_with(d, keys, ALGORITHMS[0])
}

/// The same with `algorithm` sealing new values.
fn sealed_store_with(
    d: &Deployment,
    keys: &str,
    algorithm: &str,
) -> (Store, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().expect("a key file");
    file.write_all(keys.as_bytes()).expect("write keys");
    let path = file.path().display().to_string();
    let store = Store::from_settings(&d.settings_with(&[
        ("types.ocr_result.sealed", "true"),
        ("encryption.keys_file", &path),
        ("encryption.algorithm", algorithm),
    ]))
    .expect("store");
    (store, file)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn unopened(store: &Store, t: &str) -> u64 {
    store
        .metrics()
        .series(t, "ocr_result")
        .map_or(0, |s| s.counters.unopened)
}

contract! {
    async fn sealed_values_open_only_under_their_own_key(d, _default) {
        for (i, algorithm) in ALGORITHMS.into_iter().enumerate() {
            let (store, _k) = sealed_store_with(d, &format!("k1:{K1}"), algorithm);
            let (a, b, c) = (format!("a{i}"), format!("b{i}"), format!("c{i}"));
            let ocr = CacheType::OCR_RESULT;
            let outcome = store.set(&tenant(&a), &ocr, "doc", SECRET).await.unwrap();
            assert_eq!(outcome, WriteOutcome::Stored);
            let key_a = store.admin().keys().key(&tenant(&a), &ocr, "doc").unwrap();
            let raw = d.get_raw(key_a.as_str()).expect("stored");
            assert!(!contains(&raw, "DE89") && !contains(&raw, "jane.doe"), "{algorithm}: plaintext at rest");
            assert_eq!(
                store.get::<String>(&tenant(&a), &ocr, "doc").await.unwrap().as_deref(),
                Some(SECRET),
                "{algorithm}"
            );

            // Copied under tenant b's key: does not open, counted, removed.
            let key_b = store.admin().keys().key(&tenant(&b), &ocr, "doc").unwrap();
            d.put_raw(key_b.as_str(), &raw);
            assert_eq!(store.get::<String>(&tenant(&b), &ocr, "doc").await.unwrap(), None, "{algorithm}");
            assert_eq!(unopened(&store, &b), 1, "{algorithm}");
            assert!(!d.exists_raw(key_b.as_str()), "{algorithm}: the copy is removed");

            // A plaintext envelope planted under a sealed type is refused too.
            let plain = d.store();
            let _ = plain.set(&tenant(&c), &ocr, "doc", SECRET).await.unwrap();
            assert_eq!(store.get::<String>(&tenant(&c), &ocr, "doc").await.unwrap(), None, "{algorithm}");
            assert_eq!(unopened(&store, &c), 1, "{algorithm}");

            // Unsealed types are stored as they were.
            let _ = store.set(&tenant(&a), &CacheType::SESSION, "s", SECRET).await.unwrap();
            let key_s = store.admin().keys().key(&tenant(&a), &CacheType::SESSION, "s").unwrap();
            assert!(contains(&d.get_raw(key_s.as_str()).unwrap(), "DE89"), "{algorithm}");
        }
    }
    on [disk, standalone, cluster, sentinel]
}

contract! {
    async fn a_rotation_keeps_old_entries_readable_until_their_key_is_removed(d, _default) {
        let ocr = CacheType::OCR_RESULT;
        let (old, _k1) = sealed_store(d, &format!("k1:{K1}"));
        let _ = old.set(&tenant("a"), &ocr, "before", SECRET).await.unwrap();

        // The new key first: it seals; the old one still opens.
        let (rotated, _k2) = sealed_store(d, &format!("k2:{K2}\nk1:{K1}\n"));
        assert_eq!(rotated.get::<String>(&tenant("a"), &ocr, "before").await.unwrap().as_deref(), Some(SECRET));
        let _ = rotated.set(&tenant("a"), &ocr, "after", SECRET).await.unwrap();
        assert_eq!(rotated.get::<String>(&tenant("a"), &ocr, "after").await.unwrap().as_deref(), Some(SECRET));

        // The old key removed: what it sealed no longer opens (a counted miss); the new entries do.
        let (removed, _k3) = sealed_store(d, &format!("k2:{K2}"));
        assert_eq!(removed.get::<String>(&tenant("a"), &ocr, "after").await.unwrap().as_deref(), Some(SECRET));
        assert_eq!(removed.get::<String>(&tenant("a"), &ocr, "before").await.unwrap(), None);
        assert_eq!(unopened(&removed, "a"), 1);

        // The algorithm changed: new values are sealed with AES-256-GCM, and entries of either open in both.
        let (aes, _k4) = sealed_store_with(d, &format!("k2:{K2}"), ALGORITHMS[1]);
        let _ = aes.set(&tenant("a"), &ocr, "aes", SECRET).await.unwrap();
        for store in [&aes, &removed] {
            for doc in ["after", "aes"] {
                assert_eq!(store.get::<String>(&tenant("a"), &ocr, doc).await.unwrap().as_deref(), Some(SECRET), "{doc}");
            }
        }
        assert_eq!(unopened(&aes, "a"), 0);
        // Each entry names its AEAD in the sealed section: `[algorithm][id length][id]`.
        for (doc, section) in [("after", b"\x04\x02k2"), ("aes", b"\x03\x02k2")] {
            let key = aes.admin().keys().key(&tenant("a"), &ocr, doc).unwrap();
            let raw = d.get_raw(key.as_str()).expect("stored");
            assert!(raw.windows(section.len()).any(|w| w == section), "{doc}");
        }
    }
    on [disk, standalone, cluster, sentinel]
}

contract! {
    /// Issue 28, item 12: whoever can write the backend cannot bring back an invalidated value by copying the
    /// current generations into its clear header, nor keep a value fresh by editing its freshness — the header is
    /// authenticated with the key. Either read is a counted miss and the entry is removed; untouched entries of
    /// the same tenant and type still open.
    async fn a_ciphertext_put_back_with_an_edited_header_is_a_counted_miss(d, _default) {
        const GENERATIONS: std::ops::Range<usize> = 13..29;
        const FRESH_FOR: std::ops::Range<usize> = 41..49;
        for (i, algorithm) in ALGORITHMS.into_iter().enumerate() {
            let (store, _k) = sealed_store_with(d, &format!("k1:{K1}"), algorithm);
            let name = format!("h{i}");
            let (t, ocr) = (tenant(&name), CacheType::OCR_RESULT);
            let raw_of = |doc: &str| {
                let key = store.admin().keys().key(&t, &ocr, doc).unwrap();
                (d.get_raw(key.as_str()).expect("stored"), key)
            };
            let _ = store.set(&t, &ocr, "doc", "the old text").await.unwrap();
            let (old, doc_key) = raw_of("doc");

            // Invalidated; a later write shows the current generations in its clear header.
            let _ = store.invalidate(Target::entries(&t, &ocr), InvalidationStrategy::Lazy).await.unwrap();
            let _ = store.set(&t, &ocr, "probe", "the new text").await.unwrap();
            let (probe, _) = raw_of("probe");
            assert_ne!(old[GENERATIONS], probe[GENERATIONS], "{algorithm}: the invalidation bumped them");

            // The old ciphertext put back under its own key, its generations made current.
            let mut replayed = old.clone();
            replayed[GENERATIONS].copy_from_slice(&probe[GENERATIONS]);
            d.put_raw(doc_key.as_str(), &replayed);
            assert_eq!(store.get::<String>(&t, &ocr, "doc").await.unwrap(), None, "{algorithm}");
            assert_eq!(unopened(&store, &name), 1, "{algorithm}");
            assert!(!d.exists_raw(doc_key.as_str()), "{algorithm}: the replay is removed");

            // A value kept fresh for ever by an edit of its freshness: the same.
            let _ = store.set(&t, &ocr, "kept", "the kept text").await.unwrap();
            let (mut kept, kept_key) = raw_of("kept");
            kept[FRESH_FOR].copy_from_slice(&u64::MAX.to_le_bytes());
            d.put_raw(kept_key.as_str(), &kept);
            assert_eq!(store.get::<String>(&t, &ocr, "kept").await.unwrap(), None, "{algorithm}");
            assert_eq!(unopened(&store, &name), 2, "{algorithm}");

            // Untouched, the entry written after the invalidation still opens.
            assert_eq!(
                store.get::<String>(&t, &ocr, "probe").await.unwrap().as_deref(),
                Some("the new text"),
                "{algorithm}"
            );
            assert_eq!(unopened(&store, &name), 2, "{algorithm}");
        }
    }
    on [disk, standalone, cluster, sentinel]
}

#[test]
fn missing_or_malformed_keys_stop_the_store_with_a_message_that_holds_no_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let d = Deployment::memory();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.keys").display().to_string();
    let err = Store::from_settings(&d.settings_with(&[
        ("types.ocr_result.sealed", "true"),
        ("encryption.keys_file", &missing),
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("absent.keys") && err.contains("not found"),
        "{err}"
    );

    let short = format!("k1:{}", &K1[..20]);
    let err = sealed_store_err(&d, &short);
    assert!(err.contains("k1") && !err.contains(&K1[..20]), "{err}");

    let err = Store::from_settings(&d.settings_with(&[
        ("types.ocr_result.sealed", "true"),
        ("encryption.keys_env", "FERNANDO_CACHE_TEST_KEYS_NEVER_SET"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("FERNANDO_CACHE_TEST_KEYS_NEVER_SET") && err.contains("ocr_result"),
        "{err}"
    );
}

fn sealed_store_err(d: &Deployment, keys: &str) -> String {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(keys.as_bytes()).unwrap();
    let path = file.path().display().to_string();
    Store::from_settings(&d.settings_with(&[
        ("types.ocr_result.sealed", "true"),
        ("encryption.keys_file", &path),
    ]))
    .unwrap_err()
    .to_string()
}
