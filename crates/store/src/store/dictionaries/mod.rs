//! Compression dictionaries of entry groups (design 0025). A group — a scope and a cache type, and for a sharded
//! tenant one shard — has at most one current dictionary, trained from its own small values and stored as an
//! entry of the group beside them (`fc.dictionary.<id>`, and `fc.dictionary.current` naming it): so it is sealed
//! when they are, erased with its tenant, readable by an `acl` tenant's user, in their hash slot, and hidden by
//! an invalidation of the group with the values it compressed.
//!
//! Writes compress a group's small payloads with its current dictionary (looked up once per process and group,
//! again every 30 s); until there is one they are sampled, and at [`TRAIN_AFTER`] samples the group's dictionary
//! is trained in the background and made current. Reads open a value with the dictionary its frame names,
//! loaded once per process; a dictionary that is gone makes the value a counted miss.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use fernando_cache_config::{CacheType, TtlTable};
use fernando_cache_keys::{AsScope, CacheKey, KeyBuilder, Scope, glob_match};
use serde::Serialize;

mod operator;
mod reading;
mod recent;
mod training;

pub use operator::TrainedDictionary;

use super::Store;
use crate::codec::{
    self, Encoded,
    dictionary::{self, Dictionary},
};

/// The specific key naming a group's current dictionary: `"<id> <stored at, ms>"` (under the prefix callers may
/// not use, `fernando_cache_keys::RESERVED_KEY_PREFIX`).
const CURRENT: &str = "fc.dictionary.current";

/// Most bytes `fc.dictionary.current` may hold (`"<id> <ms>"`).
const CURRENT_BYTES: usize = 64;

/// Samples a group collects before its dictionary is trained.
pub(crate) const TRAIN_AFTER: usize = 1000;

/// Bytes of samples at which a group's dictionary is trained even before [`TRAIN_AFTER`] values (large values
/// give enough to learn from sooner); also the most a group keeps.
const SAMPLE_BYTES: usize = 512 << 10;

/// Most bytes of samples a process keeps, all groups together: a group that would pass it is not sampled.
const SAMPLES_BUDGET: usize = 16 << 20;

/// Most groups sampled at once in a process.
const SAMPLED_GROUPS: usize = 256;

/// Most bytes of values an operator's training reads.
const OPERATOR_SAMPLE_BYTES: usize = 8 << 20;

/// How long a process trusts what it read of a group's current dictionary: a rotation reaches every process
/// within it.
const CURRENT_FOR: Duration = Duration::from_secs(30);

/// How long a dictionary found missing is not looked for again: a burst of its values costs one read.
const MISSING_FOR: Duration = Duration::from_secs(5);

/// Most samples an operator's training reads.
const OPERATOR_SAMPLES: usize = 2000;

/// How long a lease on a group's training lasts unless renewed (it is, while the training runs).
pub(super) const TRAINING_LEASE: Duration = Duration::from_secs(30);

/// How long the deployment's erasure count is kept after it was last made or bumped: well past
/// [`SAMPLING_FOR`], so that it outlives any samples taken under it (one that goes missing all the same —
/// evicted — refuses them: a count is never 0).
pub(in crate::store) const ERASURES_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a group's samples are gathered: older ones are dropped and the group sampled again (and so the
/// erasure count they were taken after is never older than this).
const SAMPLING_FOR: Duration = Duration::from_secs(24 * 3600);

/// The specific key of a group's dictionary `id`.
fn dictionary_key(id: u32) -> String {
    format!("fc.dictionary.{id}")
}

/// What a process knows of the groups' dictionaries.
pub(super) struct Dictionaries {
    enabled: bool,
    /// Tells this store's dictionaries apart from another store's in a thread's recent ones.
    serial: u64,
    /// How many times dictionaries were forgotten: what a thread remembers from before is not used.
    forgotten: AtomicU64,
    /// Dictionaries loaded, by group and id.
    by_id: moka::sync::Cache<(String, u32), Arc<Dictionary>>,
    /// Dictionaries looked for and not found, by group and id.
    missing: moka::sync::Cache<(String, u32), ()>,
    /// Each group's current dictionary (`None`: it has none), as last read.
    current: moka::sync::Cache<String, Option<Arc<Dictionary>>>,
    /// Payloads of groups without a dictionary, sampled for training, and their bytes all together.
    samples: Mutex<(HashMap<String, Samples>, usize)>,
}

impl std::fmt::Debug for Dictionaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionaries")
            .field("enabled", &self.enabled)
            .field("loaded", &self.by_id.entry_count())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Samples {
    payloads: Vec<Vec<u8>>,
    bytes: usize,
    /// Taken for training (or training failed): no more samples for this group in this process.
    closed: bool,
    /// The generations the samples were written under, as this process saw them: samples of generations that
    /// are gone (an invalidation, an erasure) are dropped, never trained on.
    generations: [u64; 2],
    /// What the samples were taken after: no sample is kept before the deployment's erasures are counted.
    erasures: Erasures,
}

/// Where a group's count of erasures stands in this process. Samples are kept only once the deployment's
/// erasure count is read ([`KeyBuilder::erasures_key`]), and trained on only while it is the same: an erasure
/// by any process bumps it — which the generations alone cannot tell, since an erasure deletes them too and
/// they read as never bumped. Any tenant's erasure counts (the key names none): the samples are then taken
/// again, which erasures' rarity makes cheap.
#[derive(Default)]
enum Erasures {
    /// Not read yet.
    #[default]
    Unread,
    /// Being read.
    Reading,
    /// Read: the count, and when (samples older than [`SAMPLING_FOR`] are dropped).
    Counted(u64, std::time::Instant),
    /// Could not be read at this instant: read again [`MISSING_FOR`] after it.
    Unknown(std::time::Instant),
}

/// What [`Dictionaries::offer`] asks of the caller.
enum Offer {
    /// Nothing: the payload was kept, or is not sampled.
    Nothing,
    /// Count the deployment's erasures ([`Store::count_erasures_in_background`]): samples are kept after.
    Count,
    /// Train on these samples, written under these generations, after this many erasures.
    Train(Vec<Vec<u8>>, [u64; 2], u64),
}

impl Dictionaries {
    /// `enabled`: whether groups are sampled and trained (`compression.dictionaries`); values written with a
    /// dictionary are read either way.
    pub(super) fn new(enabled: bool) -> Self {
        static SERIAL: AtomicU64 = AtomicU64::new(1);
        Dictionaries {
            enabled,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            forgotten: AtomicU64::new(0),
            // Weighed by their bytes: 32 MiB of dictionaries at most (two thousand of the usual 16 KiB).
            by_id: moka::sync::Cache::builder()
                .weigher(|_, d: &Arc<Dictionary>| {
                    u32::try_from(d.bytes().len()).unwrap_or(u32::MAX)
                })
                .max_capacity(32 << 20)
                .build(),
            missing: moka::sync::Cache::builder()
                .max_capacity(4096)
                .time_to_live(MISSING_FOR)
                .build(),
            current: moka::sync::Cache::builder()
                .max_capacity(4096)
                .time_to_live(CURRENT_FOR)
                .build(),
            samples: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// Dictionary `id` of `group`, if this process has it: a thread's recent ones first, then the shared cache.
    fn loaded(&self, group: &str, id: u32) -> Option<Arc<Dictionary>> {
        // Read before the shared cache: a forgetting after this point makes what is found here unused.
        let forgotten = self.forgotten.load(Ordering::Acquire);
        if let Some(found) = recent::get(self.serial, forgotten, group, id) {
            return Some(found);
        }
        let found = self.by_id.get(&(group.to_owned(), id))?;
        recent::put(self.serial, forgotten, group, id, &found);
        Some(found)
    }

    /// Keeps `payload` (written under `generations`) as a sample of `group` once the deployment's erasures are
    /// counted; the samples to train on, their generations and that count, once there are enough.
    fn offer(&self, group: &str, payload: &[u8], generations: [u64; 2]) -> Offer {
        if !(dictionary::MIN_DICTIONARY_VALUE..=dictionary::MAX_DICTIONARY_VALUE)
            .contains(&payload.len())
        {
            return Offer::Nothing;
        }
        let mut guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let (all, held) = &mut *guard;
        if !all.contains_key(group) && all.len() >= SAMPLED_GROUPS {
            return Offer::Nothing;
        }
        if *held + payload.len() > SAMPLES_BUDGET {
            return Offer::Nothing;
        }
        let s = all.entry(group.to_owned()).or_default();
        if s.closed {
            return Offer::Nothing;
        }
        let erasures = match s.erasures {
            Erasures::Counted(n, since) if since.elapsed() < SAMPLING_FOR => n,
            Erasures::Reading => return Offer::Nothing,
            Erasures::Unknown(at) if at.elapsed() < MISSING_FOR => return Offer::Nothing,
            Erasures::Unread | Erasures::Unknown(_) | Erasures::Counted(..) => {
                // Counted again before any sample is kept; samples past their time go.
                *held -= s.bytes;
                s.bytes = 0;
                s.payloads.clear();
                s.erasures = Erasures::Reading;
                return Offer::Count;
            }
        };
        if s.generations != generations {
            // The group was invalidated or erased since the samples were taken: they start again.
            *held -= s.bytes;
            s.bytes = 0;
            s.payloads.clear();
            s.generations = generations;
        }
        s.payloads.push(payload.to_vec());
        s.bytes += payload.len();
        *held += payload.len();
        if s.payloads.len() < TRAIN_AFTER && s.bytes < SAMPLE_BYTES {
            return Offer::Nothing;
        }
        s.closed = true;
        *held -= s.bytes;
        s.bytes = 0;
        Offer::Train(std::mem::take(&mut s.payloads), s.generations, erasures)
    }

    /// The deployment's erasures, counted for `group`'s samples (`None`: they could not be). A group forgotten
    /// meanwhile (its tenant erased here) is not sampled on this count: its next value counts again.
    fn counted(&self, group: &str, erasures: Option<u64>) {
        let mut guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = guard.0.get_mut(group)
            && matches!(s.erasures, Erasures::Reading)
        {
            let now = std::time::Instant::now();
            s.erasures = match erasures {
                Some(n) => Erasures::Counted(n, now),
                None => Erasures::Unknown(now),
            };
        }
    }

    /// Forgets the dictionaries and samples of every group `erased` says is gone (a tenant's erasure: a
    /// dictionary is made of its values).
    pub(super) fn forget(&self, erased: impl Fn(&str) -> bool) {
        for (at, _) in self.by_id.iter() {
            if erased(&at.0) {
                self.by_id.invalidate(&*at);
            }
        }
        for (at, ()) in self.missing.iter() {
            if erased(&at.0) {
                self.missing.invalidate(&*at);
            }
        }
        for (group, _) in self.current.iter() {
            if erased(&group) {
                self.current.invalidate(&*group);
            }
        }
        // After the shared cache forgot them: a thread that loaded one before remembers it under the old count.
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        let mut guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let (all, held) = &mut *guard;
        all.retain(|group, s| {
            let keep = !erased(group);
            if !keep {
                *held -= s.bytes;
            }
            keep
        });
    }

    /// `group` has a dictionary now, or its samples are of no use: its sampling ends, or starts again.
    fn trained(&self, group: &str) {
        let mut guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let (all, held) = &mut *guard;
        if let Some(s) = all.remove(group) {
            *held -= s.bytes;
        }
    }
}

impl Store {
    /// `value` encoded for the entry `key` of `scope` and `cache_type`, to be kept `ttl` (`None`: the type's):
    /// with the group's current dictionary when it has one; otherwise sampled, the group's dictionary trained in
    /// the background once enough were seen.
    pub(super) async fn encode_value<T: Serialize + ?Sized>(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &CacheKey,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<Encoded, String> {
        let policy = &self.inner.policy;
        self.encode_in_group(
            scope,
            cache_type,
            key,
            ttl,
            |dictionary, versioned, sample| {
                codec::encode_typed_with(value, [0, 0], policy, dictionary, versioned, sample)
            },
        )
        .await
    }

    /// `bytes` (a raw value) encoded for the entry `key`, as [`Store::encode_value`] encodes a typed one.
    pub(super) async fn encode_bytes(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &CacheKey,
        bytes: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Encoded, String> {
        let policy = &self.inner.policy;
        self.encode_in_group(
            scope,
            cache_type,
            key,
            ttl,
            |dictionary, versioned, sample| {
                sample(bytes);
                codec::encode_raw_with(bytes, [0, 0], policy, dictionary, versioned)
            },
        )
        .await
    }

    /// What both encodings share: `encode` is given the group's current dictionary, if any (none for a value
    /// kept `ttl`, longer than the dictionary is sure to be), whether the value will carry a version (a type
    /// this region replicates: room is kept for it), and a sink for the payload it encodes, which samples it
    /// while the group has no dictionary (training it once enough were seen).
    async fn encode_in_group(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &CacheKey,
        ttl: Option<Duration>,
        encode: impl FnOnce(Option<&Dictionary>, bool, &mut dyn FnMut(&[u8])) -> Result<Encoded, String>,
    ) -> Result<Encoded, String> {
        let dictionaries = &self.inner.dictionaries;
        // A replicated type's values go to other regions, which have dictionaries of their own (design 0026).
        if self.replicates(cache_type) {
            return encode(None, true, &mut |_| {});
        }
        if !dictionaries.enabled || !self.inner.policy.enabled {
            return encode(None, false, &mut |_| {});
        }
        // A value kept longer than its group's dictionary is sure to be (half the dictionary's life: it is
        // written again only past that) is written without one: it must stay readable as long as it is kept.
        let kept = ttl.map(|t| t + self.inner.tiers.get(cache_type).max_stale);
        if kept.is_some_and(|kept| kept > self.dictionary_ttl(cache_type) / 2) {
            return encode(None, false, &mut |_| {});
        }
        let current = self.current_dictionary(scope, cache_type, key).await;
        let group = KeyBuilder::group_of(key.as_str());
        let mut offer = Offer::Nothing;
        let encoded = encode(current.as_deref(), false, &mut |payload| {
            if current.is_none() {
                offer = dictionaries.offer(group, payload, self.generations_seen(scope, key));
            }
        });
        match offer {
            Offer::Nothing => {}
            Offer::Count => self.count_erasures_in_background(scope.clone(), key.clone()),
            Offer::Train(samples, generations, erasures) => self.train_in_background(
                scope.clone(),
                cache_type.clone(),
                key.clone(),
                (samples, generations, erasures),
            ),
        }
        encoded
    }

    /// The current dictionary of `key`'s group, as this process last read it (again after [`CURRENT_FOR`]); a
    /// dictionary past half its life is written again, so that it outlives the values made with it.
    async fn current_dictionary(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &CacheKey,
    ) -> Option<Arc<Dictionary>> {
        let dictionaries = &self.inner.dictionaries;
        let group = KeyBuilder::group_of(key.as_str());
        if let Some(current) = dictionaries.current.get(group) {
            return current;
        }
        let lane = self.lane(scope.as_scope());
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        // Read first: a dictionary written again is written under the generations it was found under, so that
        // one an invalidation hid in between is never made visible again.
        let generations = self.group_generations(scope, key).await;
        let named = self
            .read_sibling(&lane, key, &series, CURRENT, CURRENT_BYTES)
            .await
            .and_then(|text| parse_current(&text));
        let found = match named {
            Some((id, _)) => self.dictionary_by_id(&lane, key, &series, id).await,
            None => None,
        };
        if let (Some(dictionary), Some((_, stored_ms)), Some(generations)) =
            (&found, named, generations)
        {
            let life = self.dictionary_ttl(cache_type);
            let age = Duration::from_millis(codec::now_ms().saturating_sub(stored_ms));
            if age > life / 2 {
                self.store_dictionary(scope, cache_type, key, dictionary, generations, None)
                    .await;
            }
        }
        dictionaries.current.insert(group.to_owned(), found.clone());
        found
    }

    /// Forgets what this process knows of the dictionaries of `scope`'s groups (of `cache_type`, or all).
    pub(super) fn forget_dictionaries(&self, scope: &Scope, cache_type: Option<&CacheType>) {
        let patterns = self.inner.keys.scan_patterns(scope, cache_type);
        self.inner.dictionaries.forget(|group| {
            let entry = format!("{group}:x");
            patterns
                .iter()
                .any(|p| glob_match(p.as_bytes(), entry.as_bytes()))
        });
    }

    /// The generations this process would stamp on a value of `key`'s group now (tracked, or last seen).
    fn generations_seen(&self, scope: &Scope, key: &CacheKey) -> [u64; 2] {
        let lane = self.lane(scope.as_scope());
        if let Some(known) = lane.storage().known_generations(key.as_str()) {
            return known;
        }
        let g = self.inner.keys.generation_keys_of(key);
        self.inner.generations.get(g.cache_type()).unwrap_or([0, 0])
    }

    /// The generations of `key`'s group, as the backend has them now; `None` when it does not answer.
    pub(super) async fn group_generations(
        &self,
        scope: &Scope,
        key: &CacheKey,
    ) -> Option<[u64; 2]> {
        let lane = self.lane(scope.as_scope());
        let g = self.inner.keys.generation_keys_of(key);
        let read = self
            .call(
                &lane,
                lane.storage()
                    .read_generations(&[g.scope(), g.cache_type()]),
            )
            .await
            .ok()?;
        Some([*read.first()?, *read.get(1)?])
    }

    /// How long a dictionary of `cache_type` is kept: twice as long as a value of the type lives.
    fn dictionary_ttl(&self, cache_type: &CacheType) -> Duration {
        let ttl = self.inner.ttl.get(cache_type).unwrap_or(TtlTable::MAX_TTL);
        // Twice what a value is kept, and twice the time a process goes on using the current dictionary it read
        // without reading it again: a value written with it at the end of that window still finds it.
        ((ttl + self.inner.tiers.get(cache_type).max_stale + CURRENT_FOR) * 2)
            .min(TtlTable::MAX_TTL)
    }
}

/// `"<id> <ms>"`, as [`Store::store_dictionary`] writes a group's current dictionary.
fn parse_current(bytes: &[u8]) -> Option<(u32, u64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (id, at) = text.split_once(' ')?;
    Some((id.parse().ok()?, at.parse().ok()?))
}
