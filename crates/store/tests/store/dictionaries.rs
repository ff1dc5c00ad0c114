//! Compression dictionaries (issue 32, item 3; design 0025) through the behaviour suite: a group's small values
//! are compressed with the dictionary trained from them once enough were written, and every store reads them —
//! the values written before it too; a dictionary that is gone, or a value naming another type's, is a counted
//! miss; a rotated dictionary leaves the values of both readable; two stores training at once each read the
//! other's values.

use fernando_cache_config::CacheType;
use fernando_cache_store::Store;
use serde::{Deserialize, Serialize};

use crate::support::{Deployment, contract, tenant};

/// Values a group writes before its dictionary is trained (the store's threshold, with room).
const ENOUGH: u64 = 1_100;

/// What an `api_response` entry holds: a few hundred bytes, each like the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Answer {
    status: u16,
    request_id: String,
    customer: String,
    items: Vec<(String, u32)>,
    total_cents: u64,
    note: String,
}

fn answer(i: u64) -> Answer {
    Answer {
        status: 200,
        request_id: format!("req-{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        customer: format!("ACME Office Supplies GmbH, branch {}", i % 17),
        items: (0..(i % 4 + 1))
            .map(|n| {
                (
                    format!("Druckerpapier A4, Karton {n}"),
                    (i * 7 + n) as u32 % 500,
                )
            })
            .collect(),
        total_cents: i * 1_337 % 100_000,
        note: format!(
            "Zahlbar innerhalb von 14 Tagen ohne Abzug. Rechnung RE-2026-{i:06}, Kunde K-{}",
            i % 977
        ),
    }
}

/// The full key of `name` (acme, `ty`); the store's own names (which callers may not use) as the store builds
/// them, beside the group's entries.
fn full_key(store: &Store, ty: &CacheType, name: &str) -> String {
    let keys = store.admin().keys();
    if name.starts_with(fernando_cache_store::keys::RESERVED_KEY_PREFIX) {
        return keys
            .key(&tenant("acme"), ty, "x")
            .unwrap()
            .sibling(name)
            .into_string();
    }
    keys.key(&tenant("acme"), ty, name).unwrap().into_string()
}

/// The dictionary an entry as stored was compressed with, by its envelope (flags, then the frame's id).
fn dictionary_of(d: &Deployment, key: &str) -> Option<u32> {
    let raw = d.get_raw(key)?;
    // Flag bit 4: a dictionary's frame; the 49-byte header of an untagged, unsealed envelope precedes it.
    if raw[4] & 0b0001_0000 == 0 {
        return None;
    }
    // The frame is stored without zstd's magic (design 0025): its header starts with the descriptor byte, then
    // the window byte unless it is a single segment, then the dictionary id (RFC 8878, 3.1.1.1).
    let frame = &raw[49..];
    let descriptor = frame[0];
    let id_len = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
    let at = if descriptor & 0x20 != 0 { 1 } else { 2 };
    let mut id = [0u8; 4];
    id[..id_len].copy_from_slice(&frame[at..at + id_len]);
    Some(u32::from_le_bytes(id)).filter(|id| *id != 0)
}

/// Writes answers `range` as `a-<i>` of acme's `api_response`.
async fn write(store: &Store, range: std::ops::Range<u64>, prefix: &str) {
    let ty = CacheType::API_RESPONSE;
    for i in range {
        let _ = store
            .set(&tenant("acme"), &ty, &format!("{prefix}-{i}"), &answer(i))
            .await
            .unwrap();
    }
}

/// Writes answers `0..n` as `a-<i>` of acme's `api_response`, each with `text` in its note: values an erasure is
/// to remove, whose text no dictionary may keep.
async fn write_marked(store: &Store, n: u64, text: &str) {
    let ty = CacheType::API_RESPONSE;
    for i in 0..n {
        let mut value = answer(i);
        value.note = format!("{text} ({i})");
        let _ = store
            .set(&tenant("acme"), &ty, &format!("a-{i}"), &value)
            .await
            .unwrap();
    }
}

/// Most of the samples `store` needs, of values with `text` that another store then erases; `after_erasure`
/// runs; then what completes the samples is written: no dictionary of the group may be trained.
async fn samples_across_an_erasure_train_nothing(
    d: &Deployment,
    store: &Store,
    text: &str,
    after_erasure: impl FnOnce(),
) {
    let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
    write_marked(store, ENOUGH - 150, text).await;
    let _ = d.store().admin().erase_tenant(&acme).await.unwrap();
    after_erasure();
    write(store, 10_000..10_200, "b").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let pattern = full_key(store, &ty, "fc.dictionary.*");
    assert_eq!(
        d.stored(&pattern),
        Some(0),
        "a dictionary was trained on the erased tenant's values"
    );
}

/// Writes `probe-<n>` values until one is stored compressed with a dictionary (training runs in the
/// background); its key and the dictionary's id.
async fn until_compressed_with_a_dictionary(
    d: &Deployment,
    store: &Store,
    from: u64,
) -> (String, u32) {
    let ty = CacheType::API_RESPONSE;
    for n in from..from + 300 {
        let name = format!("probe-{n}");
        let _ = store
            .set(&tenant("acme"), &ty, &name, &answer(50_000 + n))
            .await
            .unwrap();
        let key = full_key(store, &ty, &name);
        if let Some(id) = dictionary_of(d, &key) {
            return (name, id);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no value was compressed with a dictionary after {ENOUGH} values and 15 s");
}

contract! {
    async fn a_groups_small_values_are_compressed_with_its_dictionary_and_read_by_every_store(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        write(store, 0..ENOUGH, "a").await;
        let before = full_key(store, &ty, "a-5");
        assert_eq!(dictionary_of(d, &before), None, "written before any dictionary");
        let (probe, _) = until_compressed_with_a_dictionary(d, store, 0).await;
        let (old_len, new_len) = (
            d.get_raw(&before).unwrap().len(),
            d.get_raw(&full_key(store, &ty, &probe)).unwrap().len(),
        );
        assert!(new_len * 2 <= old_len, "{new_len} bytes with the dictionary, {old_len} without");

        // Another store (another process) reads both, alone and in a batch, each a counted hit.
        let other = d.store();
        let totals = other.metrics().totals();
        let n: u64 = probe.trim_start_matches("probe-").parse().unwrap();
        assert_eq!(other.get::<Answer>(&acme, &ty, "a-5").await.unwrap(), Some(answer(5)));
        assert_eq!(other.get::<Answer>(&acme, &ty, &probe).await.unwrap(), Some(answer(50_000 + n)));
        let both: Vec<Option<Answer>> = other.get_many(&acme, &ty, &[&probe, "a-7"]).await.unwrap();
        assert_eq!(both, vec![Some(answer(50_000 + n)), Some(answer(7))]);
        let seen = other.metrics().totals().since(&totals);
        assert_eq!((seen.hits, seen.misses, seen.corrupt), (4, 0, 0), "{seen:?}");
    }
    on [disk, standalone, cluster, acl, dedicated]
}

contract! {
    async fn a_lost_dictionary_or_another_types_is_a_counted_miss_never_an_error(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        write(store, 0..ENOUGH, "a").await;
        let (probe, id) = until_compressed_with_a_dictionary(d, store, 0).await;
        let probe_key = full_key(store, &ty, &probe);
        let raw = d.get_raw(&probe_key).unwrap();

        // The same bytes under another cache type: that group has no dictionary of this id.
        let session = CacheType::SESSION;
        d.put_raw(&full_key(store, &session, "copied"), &raw);
        let other = d.store();
        let totals = other.metrics().totals();
        assert_eq!(other.get::<Answer>(&acme, &session, "copied").await.unwrap(), None);
        let seen = other.metrics().totals().since(&totals);
        assert_eq!((seen.misses, seen.corrupt), (1, 1), "{seen:?}");

        // The dictionary gone (overwritten with what is no dictionary): its values are counted misses, removed;
        // values written without one still read.
        d.put_raw(&full_key(store, &ty, &format!("fc.dictionary.{id}")), b"not a dictionary");
        let fresh = d.store();
        let totals = fresh.metrics().totals();
        assert_eq!(fresh.get::<Answer>(&acme, &ty, &probe).await.unwrap(), None);
        assert_eq!(fresh.get::<Answer>(&acme, &ty, "a-3").await.unwrap(), Some(answer(3)));
        let seen = fresh.metrics().totals().since(&totals);
        assert_eq!((seen.hits, seen.misses, seen.corrupt), (1, 1, 1), "{seen:?}");
        assert!(!d.exists_raw(&probe_key), "the unreadable value is removed");
        // Gone for the store that made it too, which still has the dictionary loaded.
        assert_eq!(store.get::<Answer>(&acme, &ty, &probe).await.unwrap(), None);
    }
    on [disk, standalone, cluster]
}

contract! {
    async fn a_rotated_dictionary_leaves_the_values_of_both_readable(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        write(store, 0..ENOUGH, "a").await;
        let (first, first_id) = until_compressed_with_a_dictionary(d, store, 0).await;
        // More values, then an operator's training over all of them: a new dictionary, current at once.
        write(store, ENOUGH..ENOUGH + 600, "b").await;
        let trained = store.admin().train_dictionary(&acme, &ty).await.unwrap();
        assert_ne!(trained.id, first_id);
        assert!(trained.samples >= 1_000, "{trained:?}");
        assert!(trained.dictionary_bytes * 2 <= trained.plain_bytes, "{trained:?}");
        let (second, second_id) = until_compressed_with_a_dictionary(d, store, 1_000).await;
        assert_eq!(second_id, trained.id);

        let other = d.store();
        for name in [&first, &second] {
            let n: u64 = name.trim_start_matches("probe-").parse().unwrap();
            assert_eq!(other.get::<Answer>(&acme, &ty, name).await.unwrap(), Some(answer(50_000 + n)), "{name}");
        }
        assert_eq!(other.get::<Answer>(&acme, &ty, "b-1200").await.unwrap(), Some(answer(1200)));
    }
    on [disk, standalone, cluster]
}

contract! {
    async fn two_stores_training_at_once_each_read_the_others_values(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        let other = d.store();
        // Each writes its own values: both train, both store a dictionary, the last made current wins.
        tokio::join!(write(store, 0..ENOUGH, "x"), write(&other, 10_000..10_000 + ENOUGH, "y"));
        let (mine, _) = until_compressed_with_a_dictionary(d, store, 0).await;
        let (theirs, _) = until_compressed_with_a_dictionary(d, &other, 1_000).await;
        let third = d.store();
        for name in [&mine, &theirs] {
            let n: u64 = name.trim_start_matches("probe-").parse().unwrap();
            assert_eq!(third.get::<Answer>(&acme, &ty, name).await.unwrap(), Some(answer(50_000 + n)), "{name}");
            assert_eq!(store.get::<Answer>(&acme, &ty, name).await.unwrap(), Some(answer(50_000 + n)), "{name}");
            assert_eq!(other.get::<Answer>(&acme, &ty, name).await.unwrap(), Some(answer(50_000 + n)), "{name}");
        }
    }
    on [standalone, cluster]
}

/// With `compression.dictionaries = false` nothing is sampled or trained; values written with one by another
/// store are still read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dictionaries_nothing_is_trained_and_dictionary_values_still_read() {
    let d = Deployment::standalone();
    let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
    let off = d.store_with(&[("compression.dictionaries", "false")]);
    write(&off, 0..ENOUGH, "a").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let _ = off.set(&acme, &ty, "late", &answer(1)).await.unwrap();
    assert_eq!(dictionary_of(&d, &full_key(&off, &ty, "late")), None);

    let on = d.store();
    write(&on, 0..ENOUGH, "b").await;
    let (probe, _) = until_compressed_with_a_dictionary(&d, &on, 0).await;
    let n: u64 = probe.trim_start_matches("probe-").parse().unwrap();
    assert_eq!(
        off.get::<Answer>(&acme, &ty, &probe).await.unwrap(),
        Some(answer(50_000 + n))
    );
}

/// A sealed type's dictionary is a copy of its values, so it is sealed too (design 0018's promise: sealed
/// wherever a copy lands); its values, compressed then sealed, read in another store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_types_dictionary_is_sealed_and_its_values_read_elsewhere() {
    use std::io::Write as _;
    let d = Deployment::standalone();
    let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
    let mut keys = tempfile::NamedTempFile::new().unwrap();
    keys.write_all(b"k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .unwrap();
    let path = keys.path().display().to_string();
    let sealed = [
        ("types.api_response.sealed", "true"),
        ("encryption.keys_file", path.as_str()),
    ];
    let store = d.store_with(&sealed);
    write(&store, 0..ENOUGH, "a").await;
    let current = full_key(&store, &ty, "fc.dictionary.current");
    let mut waited = 0;
    while !d.exists_raw(&current) {
        assert!(
            waited < 300,
            "no dictionary was stored after {ENOUGH} values and 15 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    let trained = store.admin().train_dictionary(&acme, &ty).await.unwrap();
    let dictionary = d
        .get_raw(&full_key(
            &store,
            &ty,
            &format!("fc.dictionary.{}", trained.id),
        ))
        .expect("the dictionary is stored beside the values");
    assert_ne!(dictionary[4] & 0b0000_1000, 0, "sealed");
    assert!(
        !dictionary
            .windows("Druckerpapier".len())
            .any(|w| w == b"Druckerpapier"),
        "no value's text in clear"
    );
    let _ = store.set(&acme, &ty, "after", &answer(77)).await.unwrap();
    let raw = d.get_raw(&full_key(&store, &ty, "after")).unwrap();
    assert_ne!(raw[4] & 0b0000_1000, 0, "the value is sealed");
    let before = d.get_raw(&full_key(&store, &ty, "a-77")).unwrap();
    assert!(
        raw.len() < before.len() * 3 / 4,
        "compressed with the dictionary before it was sealed: {} bytes, {} before any dictionary",
        raw.len(),
        before.len()
    );
    let other = d.store_with(&sealed);
    assert_eq!(
        other.get::<Answer>(&acme, &ty, "after").await.unwrap(),
        Some(answer(77))
    );
    assert_eq!(
        other.get::<Answer>(&acme, &ty, "a-9").await.unwrap(),
        Some(answer(9))
    );
}

contract! {
    /// A dictionary is made of its tenant's values: an erasure removes it from the backend and from the process,
    /// and the tenant's next values are written without it.
    async fn an_erased_tenants_dictionaries_are_gone_everywhere(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        write(store, 0..ENOUGH, "a").await;
        let (_, id) = until_compressed_with_a_dictionary(d, store, 0).await;
        let stored = full_key(store, &ty, &format!("fc.dictionary.{id}"));
        assert!(d.exists_raw(&stored));
        let _ = store.admin().erase_tenant(&acme).await.unwrap();
        assert!(!d.exists_raw(&stored), "the stored dictionary is erased");
        assert!(!d.exists_raw(&full_key(store, &ty, "fc.dictionary.current")));
        let _ = store.set(&acme, &ty, "next", &answer(3)).await.unwrap();
        assert_eq!(
            dictionary_of(d, &full_key(store, &ty, "next")),
            None,
            "this process no longer compresses with the erased tenant's dictionary"
        );
        assert_eq!(store.get::<Answer>(&acme, &ty, "next").await.unwrap(), Some(answer(3)));
    }
    on [disk, standalone, cluster]
}

contract! {
    /// An invalidation hides a group's dictionary with its values; the process that invalidated writes its
    /// next values without it, so that every process can read them.
    async fn after_an_invalidation_values_are_written_without_the_hidden_dictionary(d, store) {
        use fernando_cache_store::{InvalidationStrategy, Target};
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        write(store, 0..ENOUGH, "a").await;
        let _ = until_compressed_with_a_dictionary(d, store, 0).await;
        let _ = store
            .invalidate(Target::entries(&acme, &ty), InvalidationStrategy::Lazy)
            .await
            .unwrap();
        let _ = store.set(&acme, &ty, "next", &answer(4)).await.unwrap();
        assert_eq!(dictionary_of(d, &full_key(store, &ty, "next")), None);
        assert_eq!(d.store().get::<Answer>(&acme, &ty, "next").await.unwrap(), Some(answer(4)));
    }
    on [standalone, cluster]
}

contract! {
    /// Found in an outside attack: a value planted over a dictionary's own key, itself compressed with that
    /// dictionary, made every read of the group load the dictionary with itself until the stack overflowed and the
    /// process aborted. Such an entry is refused (a counted miss), and so is a planted "dictionary" of 20 MiB;
    /// callers cannot write the store's own names at all.
    async fn a_planted_dictionary_that_names_itself_or_is_huge_is_a_miss_not_a_crash(d, store) {
        use fernando_cache_store::Write;
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        write(store, 0..ENOUGH, "a").await;
        let (probe, id) = until_compressed_with_a_dictionary(d, store, 0).await;
        let dictionary_key = full_key(store, &ty, &format!("fc.dictionary.{id}"));
        // The stored dictionary: a 49-byte header, then the dictionary as it is; padded to 20 MiB and stored
        // through the store (so it is a well-formed entry), then put in the dictionary's place.
        let mut huge = d.get_raw(&dictionary_key).unwrap()[49..].to_vec();
        huge.resize(20 << 20, 0);
        let _ = store.set_bytes(&acme, &ty, "huge", &huge, Write::default()).await.unwrap();
        d.put_raw(&dictionary_key, &d.get_raw(&full_key(store, &ty, "huge")).unwrap());
        let fresh = d.store();
        assert_eq!(fresh.get::<Answer>(&acme, &ty, &probe).await.unwrap(), None);

        let (probe, _) = until_compressed_with_a_dictionary(d, store, 400).await;
        let compressed = d.get_raw(&full_key(store, &ty, &probe)).unwrap();
        d.put_raw(&dictionary_key, &compressed);
        let fresh = d.store();
        assert_eq!(fresh.get::<Answer>(&acme, &ty, &probe).await.unwrap(), None);
        assert!(fresh.metrics().totals().corrupt >= 1);

        // The store's own names are not the callers' — nor their subjects (a second outside attack deleted a
        // group's dictionaries with the event subject `fc.dictionary.current`).
        for reserved in ["fc.dictionary.current", "fc.dictionary.7"] {
            let e = store.set(&acme, &ty, reserved, &1u8).await.unwrap_err();
            assert!(e.to_string().contains("reserved"), "{e}");
            assert!(store.get::<u8>(&acme, &ty, reserved).await.is_err());
            let e = store
                .invalidate(
                    fernando_cache_store::Target::subject(&acme, None, reserved),
                    fernando_cache_store::InvalidationStrategy::Eager,
                )
                .await
                .unwrap_err();
            assert!(e.to_string().contains("reserved"), "{e}");
        }
        assert!(d.exists_raw(&full_key(store, &ty, "fc.dictionary.current")));
    }
    on [disk, standalone]
}

contract! {
    /// Found in an outside attack: a dictionary still being trained when its tenant was erased — by this store
    /// or by another process — was stored afterwards, made current, and carried the erased text for weeks. It is
    /// stored under the generations of the values it was made from or not at all: after the erasure no
    /// dictionary of the tenant remains, and its next values are written without one.
    async fn a_dictionary_trained_across_an_erasure_is_not_kept(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        for (round, eraser) in [store.clone(), d.store()].into_iter().enumerate() {
            // The write that completes the samples starts the training in the background; the erasure follows
            // at once, while it runs.
            write(store, 0..ENOUGH, "a").await;
            let _ = eraser.admin().erase_tenant(&acme).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let pattern = full_key(store, &ty, "fc.dictionary.*");
            assert_eq!(d.stored(&pattern), Some(0), "round {round}: a dictionary of the erased tenant remains");
            let _ = store.set(&acme, &ty, "next", &answer(5)).await.unwrap();
            assert_eq!(dictionary_of(d, &full_key(store, &ty, "next")), None);
            assert_eq!(d.store().get::<Answer>(&acme, &ty, "next").await.unwrap(), Some(answer(5)));
            let _ = eraser.admin().erase_tenant(&acme).await.unwrap();
        }
    }
    on [standalone, cluster]
}

contract! {
    /// Found in an outside attack: a value kept far longer than its type's TTL was compressed with the group's
    /// dictionary, which lives twice the type's TTL — gone before the value, it made the value a miss. Such a
    /// value is written without a dictionary; one kept the type's TTL still uses it.
    async fn a_value_kept_longer_than_its_dictionary_is_written_without_it(d, store) {
        use fernando_cache_store::Write;
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        write(store, 0..ENOUGH, "a").await;
        let _ = until_compressed_with_a_dictionary(d, store, 0).await;
        let long = std::time::Duration::from_secs(300 * 24 * 3600);
        let _ = store
            .set_with(&acme, &ty, "long", &answer(6), Write::default().ttl(long))
            .await
            .unwrap();
        assert_eq!(dictionary_of(d, &full_key(store, &ty, "long")), None);
        assert_eq!(d.store().get::<Answer>(&acme, &ty, "long").await.unwrap(), Some(answer(6)));
        let _ = store.set(&acme, &ty, "usual", &answer(7)).await.unwrap();
        assert!(dictionary_of(d, &full_key(store, &ty, "usual")).is_some());
    }
    on [standalone]
}

contract! {
    /// Found in outside attacks (Redis, then the disk file two processes share): samples a process held when
    /// another process erased their tenant completed later and made a dictionary of the erased text, current for
    /// weeks — the erasure deletes the generations too, so they read as never bumped. Samples are kept only after
    /// the deployment's erasures are counted, and trained on only while the count holds; the group is sampled
    /// again, from what is written after the erasure.
    async fn samples_taken_before_another_stores_erasure_make_no_dictionary(d, store) {
        let ty = CacheType::API_RESPONSE;
        let erased_text = "Erika Mustermann, Geheimweg 7, IBAN DE02120300000000202051";
        samples_across_an_erasure_train_nothing(d, store, erased_text, || {}).await;

        // The group is sampled again: its dictionary comes from the values written since, without the text.
        write(store, 20_000..20_000 + ENOUGH, "c").await;
        let (_, id) = until_compressed_with_a_dictionary(d, store, 0).await;
        let stored = d.get_raw(&full_key(store, &ty, &format!("fc.dictionary.{id}"))).unwrap();
        let needle = &erased_text.as_bytes()[..16];
        assert!(!stored.windows(needle.len()).any(|w| w == needle), "the erased text is in the dictionary");
    }
    on [disk, standalone, cluster]
}

contract! {
    /// Found in an outside attack: the erasure count that guards held samples went missing (its TTL, an
    /// eviction, a deletion) after an erasure, read as 0 again — the count the samples were taken under, on a
    /// deployment that had none — and the erased text was trained. A count is made where there is none before
    /// any sample is kept, so it is never 0, and a missing one refuses the samples.
    async fn a_lost_erasure_count_refuses_the_samples_it_guarded(d, store) {
        let erased_text = "Max Mustermann, Verlorene Zaehlung 9, IBAN DE89370400440532013000";
        let count = store.admin().keys().erasures_key();
        samples_across_an_erasure_train_nothing(d, store, erased_text, || d.delete_raw(&count)).await;
    }
    on [disk, standalone, cluster]
}

contract! {
    /// Found in an outside attack: an operator's training that overlapped another process's erasure of the
    /// tenant stored a dictionary of the erased values on the disk file, which has no lease to fence the write
    /// (and the erasure leaves the generations reading as before). The operator's training counts the
    /// deployment's erasures first and takes back what it stored if an erasure moved the count.
    async fn an_operators_training_across_an_erasure_keeps_nothing_of_it(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        let erased_text = "Lieschen Mueller, Operatorweg 3, IBAN DE44500105175407324931";
        let eraser = d.store();
        let pattern = full_key(store, &ty, "fc.dictionary.*");
        for delay_ms in [0u64, 2, 5, 10, 20, 40] {
            write_marked(store, ENOUGH - 150, erased_text).await;
            let training = store.admin().train_dictionary(&acme, &ty);
            let erasure = async {
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                eraser.admin().erase_tenant(&acme).await.unwrap()
            };
            let (trained, _) = tokio::join!(training, erasure);
            // Trained or refused, what is left holds nothing of the erased values.
            assert_eq!(
                d.stored(&pattern),
                Some(0),
                "after {delay_ms} ms: a dictionary of the erased tenant remains ({trained:?})"
            );
        }
    }
    on [disk, standalone]
}

contract! {
    /// Found in an outside attack (with write access to Redis): an erasure count set to 0 by hand kept every
    /// group of the deployment from sampling until the next erasure. A count of 0 is made anew like a missing
    /// one, and groups train.
    async fn an_erasure_count_of_zero_is_made_anew(d, store) {
        d.put_raw(&store.admin().keys().erasures_key(), b"0");
        write(store, 0..ENOUGH + 100, "a").await;
        let _ = until_compressed_with_a_dictionary(d, store, 0).await;
    }
    on [standalone, cluster]
}

contract! {
    /// Found in an outside attack: a dictionary lived twice its type's TTL and max_stale — 10 s for a 5-s type —
    /// while a process goes on compressing with the current dictionary it read for 30 s; values written late in
    /// that window named a dictionary already gone. It lives twice (TTL + max_stale + those 30 s).
    async fn a_short_lived_types_dictionary_outlives_the_window_it_is_used_in(d, _default) {
        let store = d.store_with(&[("types.api_response.ttl", "5s"), ("types.api_response.max_stale", "0s")]);
        write(&store, 0..ENOUGH, "a").await;
        let (_, id) = until_compressed_with_a_dictionary(d, &store, 0).await;
        let left = d.ttl_raw(&full_key(&store, &CacheType::API_RESPONSE, &format!("fc.dictionary.{id}")));
        // 2 × (5 s + 0 s + 30 s), less the seconds the test took since it was stored.
        assert!(left.is_some_and(|t| t > std::time::Duration::from_secs(60)), "{left:?}");
    }
    on [standalone]
}

contract! {
    /// Found in an outside attack: the operator's training left its groups' training leases to lapse whatever
    /// ended it, and a second run waited for them. Trained or refused, it releases them.
    async fn an_operators_training_releases_its_leases_however_it_ends(d, store) {
        let (acme, ty) = (tenant("acme"), CacheType::API_RESPONSE);
        let keys = store.admin().keys();
        let lease = keys.lease_key(&keys.key(&acme, &ty, "x").unwrap().sibling("fc.dictionary.current"));
        // Too few values to make a dictionary: refused.
        write(store, 0..5, "a").await;
        assert!(store.admin().train_dictionary(&acme, &ty).await.is_err());
        assert!(!d.exists_raw(&lease), "a refused training left its lease");
        write(store, 5..ENOUGH, "a").await;
        let _ = store.admin().train_dictionary(&acme, &ty).await.unwrap();
        assert!(!d.exists_raw(&lease), "a training left its lease");
    }
    on [standalone, cluster]
}
