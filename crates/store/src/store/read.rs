//! Reads: `get`, `get_bytes`, the operators' `exists` and `ttl`, and the lookup every read and `get_or_compute` share — one
//! backend fetch, the envelope's generations checked, the payload decoded (bounded), the outcome counted once.

use std::{sync::atomic::Ordering, time::Instant};

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, CacheKey, GenerationKeys, KeyBuilder, ScopeRef};
use serde::de::DeserializeOwned;
use tracing::{Instrument, debug_span};

use super::{Store, l1, route::Lane, tally::Tally};
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
    pub(super) fn build(
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
    pub(super) fn nothing(generations: Option<[u64; 2]>) -> Self {
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
            self.read(scope, cache_type, key, codec::typed_decoder::<T>())
                .await
        } else {
            self.read(scope, cache_type, key, codec::typed_decoder::<T>())
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
                if let Some((value, header)) = self.l1_hit(l1, key.as_str(), &decode, series, start)
                {
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
                codec::now_ms(),
                &mut tally,
            )
            .await;
        tally.apply(series, (!checked).then(|| start.elapsed()));
        result
    }

    /// A good in-process copy of `key`, decoded and counted as a hit (an L1 hit); `None` when there is none or
    /// it does not decode as `T` (then it is dropped and the backend is read).
    pub(super) fn l1_hit<T>(
        &self,
        l1: &l1::L1,
        key: &str,
        decode: &impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        series: &SeriesRef<'_>,
        start: Instant,
    ) -> Option<(T, Header)> {
        let envelope = l1.get(key)?;
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
                l1.changed(key);
                None
            }
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
