//! Reads: `get`, `get_bytes`, the operators' `exists` and `ttl`, and the lookup every read and `get_or_compute` share — one
//! backend fetch, the envelope's generations checked, the payload decoded (bounded), the outcome counted once.

use std::{sync::atomic::Ordering, time::Instant};

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, CacheKey, GenerationKeys, KeyBuilder, ScopeRef};
use serde::de::DeserializeOwned;
use tracing::{Instrument, debug_span};

use super::{
    Store, l1,
    route::Lane,
    tally::{Found, Tally},
};
use crate::{
    BackendError, KeyTtl, StoreError,
    codec::{self, DecodeError, Header},
    metrics::SeriesRef,
};

/// The generation keys of one read, built up front or only when a backend call needs them — from the entry key,
/// so an entry of a sharded tenant is checked against its own shard's (design 0024).
pub(super) enum Gens {
    Built(GenerationKeys),
    Lazy,
}

impl Gens {
    fn build(
        &self,
        keys: &KeyBuilder,
        entry: &CacheKey,
    ) -> Result<std::borrow::Cow<'_, GenerationKeys>, BackendError> {
        Ok(match self {
            Gens::Built(g) => std::borrow::Cow::Borrowed(g),
            Gens::Lazy => std::borrow::Cow::Owned(keys.generation_keys_of(entry)),
        })
    }
}

/// A read's result, with the generations seen (when the backend answered) so a following write can use them.
pub(super) struct Lookup<T> {
    /// A fresh value (or a fail-safe copy within its throttle period).
    pub(super) value: Option<T>,
    pub(super) generations: Option<[u64; 2]>,
    /// The value's header: its freshness, and whether it is a fail-safe copy.
    pub(super) header: Option<Header>,
    /// An expired value still kept (`max_stale`), to fall back on if its computation fails.
    pub(super) stale: Option<T>,
}

impl<T> Lookup<T> {
    fn nothing(generations: Option<[u64; 2]>) -> Self {
        Lookup {
            value: None,
            generations,
            header: None,
            stale: None,
        }
    }
}

impl Store {
    /// Reads a value. Absent, expired, invalidated, undecodable or foreign-typed entries, and an unavailable
    /// backend, are all a miss (`Ok(None)`), counted in the metrics; undecodable entries are removed.
    ///
    /// # Errors
    /// Only for an invalid tenant or key.
    pub async fn get<T: DeserializeOwned>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        // Borrowed: a hot tenant's id is not cloned (and its reference count not bounced) per read.
        let scope = scope.as_scope();
        let span = debug_span!(
            "cache.get",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        // The hottest call: without a subscriber for the span, skip the `Instrumented` wrapper entirely.
        if span.is_disabled() {
            self.read(scope, cache_type, key, codec::decode_typed::<T>)
                .await
        } else {
            self.read(scope, cache_type, key, codec::decode_typed::<T>)
                .instrument(span)
                .await
        }
    }

    /// Reads bytes written with [`Store::set_bytes`]. For an entry written by the typed API it returns that
    /// value's bincode encoding (it never treats a typed entry as foreign), which is what operators inspect.
    ///
    /// # Errors
    /// Only for an invalid tenant or key.
    pub async fn get_bytes(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let scope = scope.as_scope();
        let span = debug_span!(
            "cache.get_bytes",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        self.read(scope, cache_type, key, codec::decode_raw)
            .instrument(span)
            .await
    }

    /// Whether a live entry exists; public as [`super::Admin::exists`].
    pub(super) async fn exists(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<bool, StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!(
            "cache.exists",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        let k = self.inner.keys.key(&scope, cache_type, key)?;
        let lane = self.lane(scope.as_scope());
        self.call(&lane, lane.storage().exists(k.as_str()))
            .instrument(span)
            .await
            .map_err(|source| StoreError::Unavailable {
                op: "exists",
                source,
            })
    }

    /// The remaining fresh life of an entry, without the `types.<name>.max_stale` the backend keeps it longer; public as
    /// [`super::Admin::remaining_ttl`].
    pub(super) async fn ttl(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<KeyTtl, StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!(
            "cache.ttl",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        let k = self.inner.keys.key(&scope, cache_type, key)?;
        let kept_stale = self.inner.tiers.get(cache_type).max_stale;
        let lane = self.lane(scope.as_scope());
        self.call(&lane, lane.storage().ttl(k.as_str()))
            .instrument(span)
            .await
            .map(|t| match t {
                KeyTtl::Expires(left) => KeyTtl::Expires(left.saturating_sub(kept_stale)),
                other => other,
            })
            .map_err(|source| StoreError::Unavailable { op: "ttl", source })
    }

    /// The entry key and the generation keys of a read on `lane`: built now, or left for the Redis backend to
    /// build when it must read them (its tracked hits do not).
    pub(super) fn key_pair(
        &self,
        lane: &Lane,
        scope: ScopeRef<'_>,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<(CacheKey, Gens), StoreError> {
        let entry = self
            .inner
            .keys
            .key_in(key_buffer::take(), scope, cache_type, key)?;
        let generations = if lazy_generations(lane) {
            Gens::Lazy
        } else if lane.storage().generations_in_use() {
            Gens::Built(self.inner.keys.generation_keys_of(&entry))
        } else {
            // A generation bumped right after this check only makes this one read miss (never stale).
            Gens::Built(GenerationKeys::unused())
        };
        Ok((entry, generations))
    }

    /// One read of `key` on `lane` — the entry, its generations checked, its tags, an in-process copy when
    /// `l1_life` says so — counted once in `series`. `checked` is a leader's re-check (a non-string value is
    /// told from an absent one, and the read is not counted as a second hit or miss).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn lookup<T>(
        &self,
        lane: &Lane,
        key: &CacheKey,
        generations: &Gens,
        series: &SeriesRef<'_>,
        decode: impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        checked: bool,
        l1_life: Option<std::time::Duration>,
    ) -> Lookup<T> {
        let start = Instant::now();
        let storage = lane.storage();
        let keys = &self.inner.keys;
        let l1 = l1_life.and_then(|life| Some((self.inner.l1.as_ref()?, life)));
        let pending = match l1 {
            Some((l1, life)) => {
                if let Some((value, header)) = self.l1_hit(l1, key, &decode, series, start) {
                    return Lookup {
                        value: Some(value),
                        generations: None,
                        header: Some(header),
                        stale: None,
                    };
                }
                // Taken before the read: a change announced from now on retires what it returns.
                Some((
                    l1,
                    l1.before_read(key.as_str(), storage.watch(key.as_str()), life),
                ))
            }
            None => None,
        };
        let fetched = match (checked, &lane.backend) {
            #[cfg(feature = "redis")]
            (false, crate::Backend::Redis(redis)) => {
                self.call_from(
                    lane,
                    start,
                    redis.fetch_unboxed(key.as_str(), || generations.build(keys, key)),
                )
                .await
            }
            #[cfg(feature = "redis")]
            (false, crate::Backend::Cluster(cluster)) => {
                self.call_from(
                    lane,
                    start,
                    cluster.fetch_unboxed(key.as_str(), || generations.build(keys, key)),
                )
                .await
            }
            _ => match generations.build(keys, key) {
                Ok(g) if checked => {
                    self.call_from(lane, start, storage.fetch_checked(key.as_str(), &g))
                        .await
                }
                Ok(g) => {
                    self.call_from(lane, start, storage.fetch(key.as_str(), &g))
                        .await
                }
                Err(e) => Err(e),
            },
        };
        let mut tally = Tally::default();
        let result = self
            .settle(
                lane,
                key,
                generations,
                series,
                &decode,
                checked,
                pending,
                fetched,
                &mut tally,
            )
            .await;
        tally.apply(series, (!checked).then(|| start.elapsed()));
        result
    }

    /// What one backend answer for `key` (`fetched`) makes of the read: the envelope opened, its generations and
    /// tags checked, the value decoded (and kept in process when `pending` says so), a corrupt entry removed
    /// (counted in `series`) — and the outcome added to `tally`. [`Store::lookup`] of one key and
    /// `get_many` of many share it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn settle<T>(
        &self,
        lane: &Lane,
        key: &CacheKey,
        generations: &Gens,
        series: &SeriesRef<'_>,
        decode: &impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        checked: bool,
        pending: Option<(&l1::L1, l1::Pending)>,
        fetched: Result<crate::Fetched, BackendError>,
        tally: &mut Tally,
    ) -> Lookup<T> {
        let (result, found) = match fetched {
            Ok(f) => {
                let mut lookup = Lookup::nothing(Some(f.generations));
                let found = match f.value {
                    None => Found::Absent,
                    Some(bytes) => match self.opened(key, bytes) {
                        Ok((_, h)) if h.generations != f.generations => Found::Stale,
                        Ok((bytes, h))
                            if h.tags_at != 0
                                && !matches!(
                                    self.tags_current(lane, key, generations, &bytes, &h).await,
                                    Ok(true)
                                ) =>
                        {
                            // An invalidated tag hides the entry; an unanswered tag read is a miss too.
                            Found::Stale
                        }
                        Ok((bytes, h)) => 'found: {
                            // A value compressed with its group's dictionary is opened with it first; one whose
                            // dictionary is gone is unusable (design 0025).
                            let (bytes, h) = if h.dictionary {
                                match self.undictionaried(lane, key, series, bytes, &h).await {
                                    Ok(opened) => opened,
                                    Err(why) => {
                                        Box::pin(self.discard_corrupt(lane, key, &why)).await;
                                        break 'found Found::Corrupt;
                                    }
                                }
                            } else {
                                (bytes, h)
                            };
                            let fresh = h.is_fresh(codec::now_ms());
                            // Only fresh values are kept in process.
                            let pending = pending.filter(|_| fresh);
                            match self.decode_and_keep(key, bytes, &h, decode, pending) {
                                Ok(v) if fresh => {
                                    lookup.value = Some(v);
                                    lookup.header = Some(h);
                                    Found::Value
                                }
                                Ok(v) => {
                                    lookup.stale = Some(v);
                                    Found::Expired
                                }
                                Err(e) => {
                                    Box::pin(self.discard_corrupt(lane, key, &e.to_string())).await;
                                    Found::Corrupt
                                }
                            }
                        }
                        Err(e) => {
                            if e.sealed {
                                series.add(|c| &c.unopened, 1);
                            }
                            Box::pin(self.discard_corrupt(lane, key, &e.why)).await;
                            Found::Corrupt
                        }
                    },
                };
                (lookup, found)
            }
            Err(BackendError::WrongType) => {
                Box::pin(self.discard_corrupt(lane, key, "the key holds a non-string Redis value"))
                    .await;
                (Lookup::nothing(None), Found::Corrupt)
            }
            Err(e) => {
                let refused = matches!(e, BackendError::CircuitOpen);
                if !refused {
                    tracing::debug!(error = %e, "cache read failed; treating as a miss");
                }
                (Lookup::nothing(None), Found::Unavailable { refused })
            }
        };
        tally.add(&found, checked);
        result
    }

    /// Whether every tag of a tagged envelope still has the generation it was written with (the tags of the
    /// entry's scope, or of its shard: they share the entry's slot).
    async fn tags_current(
        &self,
        lane: &Lane,
        key: &CacheKey,
        generations: &Gens,
        bytes: &[u8],
        header: &Header,
    ) -> Result<bool, BackendError> {
        let g = generations.build(&self.inner.keys, key)?;
        let tags = codec::tags(bytes, header);
        let keys = tags
            .iter()
            .map(|(t, _)| g.tag(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BackendError::Other(e.to_string()))?;
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let current = self
            .call(lane, lane.storage().read_generations(&refs))
            .await?;
        Ok(tags.iter().map(|(_, g)| *g).eq(current))
    }

    /// A good in-process copy of `key`, decoded and counted as a hit (an L1 hit); `None` when there is none or
    /// it does not decode as `T` (then it is dropped and the backend is read).
    pub(super) fn l1_hit<T>(
        &self,
        l1: &l1::L1,
        key: &CacheKey,
        decode: &impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        series: &SeriesRef<'_>,
        start: Instant,
    ) -> Option<(T, Header)> {
        let envelope = l1.get(key.as_str())?;
        let decoded = codec::read_header(&envelope).and_then(|h| {
            if !h.is_fresh(codec::now_ms()) {
                // Expired: the backend answers (and keeps the stale value to fall back on).
                return Err(DecodeError::ForeignType);
            }
            decode(&envelope, &h, self.inner.policy.max_decoded).map(|v| (v, h))
        });
        match decoded {
            Ok(value) => {
                let elapsed = start.elapsed();
                series.apply(|s| {
                    s.counters.hits.fetch_add(1, Ordering::Relaxed);
                    s.counters.l1_hits.fetch_add(1, Ordering::Relaxed);
                    s.get_latency.record(elapsed);
                });
                Some(value)
            }
            // Expired, or read as another type than it was written: the backend's answer decides (and counts).
            Err(_) => {
                l1.changed(key.as_str());
                None
            }
        }
    }

    /// An envelope read from the backend and its header, opened first when its type is sealed (design 0018).
    fn opened(
        &self,
        key: &CacheKey,
        bytes: bytes::Bytes,
    ) -> Result<(bytes::Bytes, Header), Unusable> {
        let header = codec::read_header(&bytes).map_err(|e| Unusable {
            why: e.to_string(),
            sealed: false,
        })?;
        match &self.inner.sealer {
            Some(sealer) if header.sealed || sealer.seals_key(key.as_str()) => sealer
                .open(key.as_str(), bytes, header)
                .map_err(|e| Unusable {
                    why: e.to_string(),
                    sealed: true,
                }),
            // A sealed entry and no keys to open it: unusable, like any envelope this store cannot read.
            None if header.sealed => Err(Unusable {
                why: "the entry is sealed and no encryption keys are configured".into(),
                sealed: true,
            }),
            _ => Ok((bytes, header)),
        }
    }

    /// Decodes an envelope read from the backend, first keeping an uncompressed copy in process when asked.
    fn decode_and_keep<T>(
        &self,
        key: &CacheKey,
        bytes: bytes::Bytes,
        header: &Header,
        decode: &impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        pending: Option<(&l1::L1, l1::Pending)>,
    ) -> Result<T, DecodeError> {
        let max = self.inner.policy.max_decoded;
        let Some((l1, pending)) = pending else {
            return decode(&bytes, header, max);
        };
        let copy = codec::uncompressed(bytes, header, max)?;
        let copy_header = codec::read_header(&copy)?;
        let value = decode(&copy, &copy_header, max)?;
        l1.keep(key.as_str(), copy, pending);
        Ok(value)
    }

    pub(super) async fn discard_corrupt(&self, lane: &Lane, key: &CacheKey, why: &str) {
        tracing::warn!(key = key.as_str(), why, "unusable cache entry removed");
        self.changed_here(key.as_str());
        if let Err(e) = self
            .call(lane, lane.storage().delete(&[key.as_str()]))
            .await
        {
            tracing::debug!(error = %e, "could not remove the unusable entry; its TTL will");
        }
    }

    /// The read path shared by the typed and the raw API: keys, one lookup, the value.
    async fn read<T>(
        &self,
        scope: ScopeRef<'_>,
        cache_type: &CacheType,
        key: &str,
        decode: impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, StoreError> {
        let lane = self.lane(scope);
        let (k, g) = self.key_pair(&lane, scope, cache_type, key)?;
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        let l1_life = self.inner.l1.as_ref().and_then(|l1| l1.life_of(cache_type));
        let value = self
            .lookup(&lane, &k, &g, &series, decode, false, l1_life)
            .await
            .value;
        key_buffer::give_back(k);
        Ok(value)
    }
}

/// Whether a read on `lane` leaves its generation keys for the backend to build: the Redis backend's tracked
/// hits do not need them.
fn lazy_generations(lane: &Lane) -> bool {
    #[cfg(feature = "redis")]
    {
        matches!(lane.backend, crate::Backend::Redis(_))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = lane;
        false
    }
}

/// Per-thread buffers for entry keys: a read or `compute_with` (so `get_or_compute` and `#[cached]`) builds its
/// key into one and hands it back, saving an allocation and a free per hit.
pub(super) mod key_buffer {
    use std::cell::RefCell;

    use fernando_cache_keys::CacheKey;

    /// Buffers kept per thread: about the number of reads a thread has in flight at once.
    const KEPT: usize = 64;

    thread_local! {
        static BUFFERS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    pub(in crate::store) fn take() -> String {
        BUFFERS.with(|b| b.borrow_mut().pop()).unwrap_or_default()
    }

    pub(in crate::store) fn give_back(key: CacheKey) {
        let buffer = key.into_string();
        // A buffer grown by an unusually long key is not worth keeping.
        if buffer.capacity() > 1024 {
            return;
        }
        BUFFERS.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < KEPT {
                b.push(buffer);
            }
        });
    }
}

/// Why an envelope read from the backend cannot be used (it is removed and counted as corrupt).
struct Unusable {
    why: String,
    /// It failed to open (counted as `unopened` too).
    sealed: bool,
}
