//! Writes: `set`, `set_with` and `set_bytes` with their options ([`Write`]), `delete`, and the write path they
//! and `get_or_compute` share — the TTL checked and capped by the tenant's plan, the envelope stamped with the
//! current generations (re-stamped if an invalidation raced it), the outcome counted.

mod stamping;

use std::{
    borrow::Cow,
    sync::{OnceLock, atomic::Ordering},
    time::{Duration, Instant},
};

use fernando_cache_config::{CacheType, TtlTable};
use fernando_cache_keys::{AsScope, CacheKey, Scope};
use serde::Serialize;
use tracing::{Instrument, debug_span};

use self::stamping::Outgoing;
use super::Store;
use crate::{
    BackendError, StoreError,
    codec::{self, Encoded},
    metrics::SeriesRef,
    seal::Sealer,
};

/// What happened to a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a write may be dropped while the backend is unavailable"]
pub enum WriteOutcome {
    /// The value is stored.
    Stored,
    /// The backend was unavailable; the write was dropped and counted (the cache is an optimisation).
    Dropped,
    /// The tenant's stored bytes would have passed its quota (`quotas.tenant_bytes`); the write was refused
    /// and counted (`quota_refused`).
    OverQuota,
}

/// The tags a value is written with (design 0014).
#[derive(Debug, Clone, Copy)]
pub(crate) enum EntryTags<'t> {
    /// Known before the call.
    Given(&'t [&'t str]),
    /// Set by the computation's closure when it is called: the `#[cached]` runtime evaluates its tag
    /// expressions only then — on a miss, never on a hit.
    Computed(&'t OnceLock<Vec<String>>),
}

impl<'t> EntryTags<'t> {
    /// The tags as known now (`Computed` ones are none before the closure ran).
    pub(super) fn names(self) -> Cow<'t, [&'t str]> {
        match self {
            EntryTags::Given(tags) => Cow::Borrowed(tags),
            EntryTags::Computed(set) => Cow::Owned(
                set.get()
                    .map(|tags| tags.iter().map(String::as_str).collect::<Vec<_>>())
                    .unwrap_or_default(),
            ),
        }
    }

    /// The tags a fail-safe copy is written with. `Computed` ones are set when the computation's closure is
    /// called; a follower that took the leader's failure never called it, so it does now and drops the future
    /// unpolled: nothing is computed.
    pub(super) fn for_copy<R>(
        self,
        pending: &mut Option<impl FnOnce() -> R>,
    ) -> Cow<'t, [&'t str]> {
        if matches!(self, EntryTags::Computed(_))
            && let Some(compute) = pending.take()
        {
            drop(compute());
        }
        self.names()
    }
}

/// How a write is stamped and guarded: the caller's guess of the current generations, and the lease
/// `(key, token)` that must still be held for the write to happen.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stamp<'a> {
    pub(super) generations: Option<[u64; 2]>,
    pub(super) fence: Option<(&'a str, &'a str)>,
    /// `Some(throttle)`: a fail-safe copy of an expired value, fresh (and marked stale) for the throttle
    /// period instead of the TTL (design 0014).
    pub(super) fail_safe: Option<Duration>,
    /// Written only under `generations` exactly: if an invalidation or erasure changed them, the entry just
    /// written is deleted and the write refused, instead of stamped again — for what was made from values of
    /// those generations (a group's compression dictionary, design 0025).
    pub(super) exact: bool,
    /// `Some((written_ms, fresh_ms))`: the freshness another region wrote the value with, kept (design 0026);
    /// `None`: written now, fresh for the TTL.
    pub(super) written: Option<(u64, u64)>,
    /// `Some(version)`: another region's value, written with its version and only if it is newer than the
    /// copy held here and than this region's last invalidation of its scope and type (design 0026); `None`:
    /// written here (a replicated type's value is then stamped with this process's next version).
    pub(super) applied: Option<codec::Version>,
}

/// What a write did, for the caller that must know why a value was not stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct Written {
    pub(super) outcome: WriteOutcome,
    /// Why another region's value was not stored, when something here is as new or newer.
    pub(super) superseded: Option<Superseded>,
}

/// What kept another region's value out (design 0026).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Superseded {
    /// The copy held here, of this version.
    Held(codec::Version),
    /// An invalidation of the scope's type here, of this version.
    Marked(codec::Version),
}

/// How a value is written: for how long, and with which tags (design 0014). `Write::default()` is the cache
/// type's configured TTL and no tags — what [`Store::set`] does.
///
/// ```
/// # use std::time::Duration;
/// use fernando_cache_store::Write;
///
/// let options = Write::default().ttl(Duration::from_secs(90)).tags(&["customer:42", "reports"]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Write<'a> {
    ttl: Option<Duration>,
    tags: &'a [&'a str],
}

impl<'a> Write<'a> {
    /// Keeps the value for `ttl` (1 ms to 366 days) instead of the cache type's TTL; `None` is the type's.
    #[must_use]
    pub fn ttl(self, ttl: impl Into<Option<Duration>>) -> Self {
        Write {
            ttl: ttl.into(),
            ..self
        }
    }

    /// Writes the value with `tags` (at most 16, each 1 to 128 bytes without control characters): invalidating
    /// any of them ([`crate::Target::tag`]) hides the value, in O(1). A tagged entry's read costs one more round
    /// trip (its tags' generations), except from L1.
    #[must_use]
    pub fn tags(self, tags: &'a [&'a str]) -> Self {
        Write { tags, ..self }
    }
}

impl Store {
    /// Stores a value for its cache type's configured TTL, untagged.
    ///
    /// # Errors
    /// Invalid tenant or key, a cache type without a TTL, or a value that cannot be encoded. An unavailable
    /// backend is not an error: the write is dropped and counted ([`WriteOutcome::Dropped`]); nor is a tenant
    /// over its byte quota ([`WriteOutcome::OverQuota`]).
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        value: &T,
    ) -> Result<WriteOutcome, StoreError> {
        self.set_with(scope, cache_type, key, value, Write::default())
            .await
    }

    /// Stores a value as `options` say: its own TTL, tags.
    ///
    /// # Errors
    /// As [`Store::set`]; [`StoreError::InvalidTtl`] for a TTL out of bounds; an invalid tag, or more than 16.
    pub async fn set_with<T: Serialize + ?Sized>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        value: &T,
        options: Write<'_>,
    ) -> Result<WriteOutcome, StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!(
            "cache.set",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        async move {
            // The entry's key first: its group's dictionary compresses it (design 0025).
            let k = self.inner.keys.key(&scope, cache_type, key)?;
            let encoded = self
                .encode_value(&scope, cache_type, &k, value, options.ttl)
                .await;
            self.write_with(scope, cache_type, k, encoded, options)
                .await
        }
        .instrument(span)
        .await
    }

    /// Stores bytes as they are (compressed above the threshold like any value), as `options` say; read them
    /// back with [`Store::get_bytes`].
    ///
    /// # Errors
    /// As [`Store::set_with`].
    pub async fn set_bytes(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        value: &[u8],
        options: Write<'_>,
    ) -> Result<WriteOutcome, StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!(
            "cache.set_bytes",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        async move {
            let k = self.inner.keys.key(&scope, cache_type, key)?;
            let encoded = self
                .encode_bytes(&scope, cache_type, &k, value, options.ttl)
                .await;
            self.write_with(scope, cache_type, k, encoded, options)
                .await
        }
        .instrument(span)
        .await
    }

    /// Deletes one entry; returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot delete (a silent failure would leave stale data);
    /// invalid tenant or key.
    pub async fn delete(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<bool, StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!(
            "cache.delete",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        async {
            let k = self.inner.keys.key(&scope, cache_type, key)?;
            let series = self
                .inner
                .metrics
                .series(scope.label(), cache_type.as_str());
            let lane = self.lane(scope.as_scope());
            let deleted = self.call(&lane, lane.storage().delete(&[k.as_str()])).await;
            self.changed_here(k.as_str());
            if matches!(deleted, Ok(n) if n > 0) {
                self.release_quota(&lane, &scope, &k).await;
            }
            match deleted {
                Ok(n) => {
                    series.add(|c| &c.deletes, n);
                    Ok(n > 0)
                }
                Err(source) => {
                    series.add(|c| &c.errors, 1);
                    Err(StoreError::Unavailable {
                        op: "delete",
                        source,
                    })
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The write path of `set_with` and `set_bytes`: the tags' generations stamped in (a write whose tags
    /// cannot be read is dropped, as one the backend cannot take), then [`Store::write`].
    async fn write_with(
        &self,
        scope: Scope,
        cache_type: &CacheType,
        k: CacheKey,
        encoded: Result<Encoded, String>,
        options: Write<'_>,
    ) -> Result<WriteOutcome, StoreError> {
        let encoded = encoded.map_err(StoreError::Encode)?;
        let encoded = match self.tagged(&scope, &k, encoded, options.tags).await {
            Ok(e) => e,
            Err(StoreError::Unavailable { .. }) => {
                let series = self
                    .inner
                    .metrics
                    .series(scope.label(), cache_type.as_str());
                series.add(|c| &c.dropped_sets, 1);
                series.add(|c| &c.degraded, 1);
                return Ok(WriteOutcome::Dropped);
            }
            Err(e) => return Err(e),
        };
        self.write(&scope, cache_type, &k, encoded, options.ttl)
            .await
    }

    /// `encoded`, to be written under `key`, with its tags' current generations stamped in (unchanged without
    /// tags). The tags are those of the entry's scope — of its shard, for a tenant spread over shards, so they
    /// share the entry's slot. A tag invalidated between this read and the write only hides the entry at once —
    /// never leaves it visible.
    pub(super) async fn tagged(
        &self,
        scope: &Scope,
        key: &CacheKey,
        encoded: Encoded,
        tags: &[&str],
    ) -> Result<Encoded, StoreError> {
        if tags.is_empty() {
            return Ok(encoded);
        }
        let g = self.inner.keys.generation_keys_of(key);
        let keys = tags
            .iter()
            .map(|t| g.tag(t))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let lane = self.lane(scope.into());
        let current = self
            .call(&lane, lane.storage().read_generations(&refs))
            .await
            .map_err(|source| StoreError::Unavailable {
                op: "set_tagged",
                source,
            })?;
        let pairs: Vec<(&str, u64)> = tags.iter().copied().zip(current).collect();
        let bytes = codec::with_tags(&encoded.bytes, &pairs).map_err(StoreError::Encode)?;
        Ok(Encoded {
            bytes,
            raw_len: encoded.raw_len,
        })
    }

    /// This process changed `key` (its backend call is over, whatever it answered): in-process copies read
    /// before are retired.
    pub(super) fn changed_here(&self, key: &str) {
        if let Some(l1) = &self.inner.l1 {
            l1.changed(key);
        }
    }

    /// The write path shared by the typed and the raw API, under the entry key `k`.
    async fn write(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        k: &CacheKey,
        encoded: Encoded,
        ttl: Option<Duration>,
    ) -> Result<WriteOutcome, StoreError> {
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        self.write_key(
            scope,
            cache_type,
            k,
            encoded,
            ttl,
            Stamp::default(),
            &series,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_key(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &CacheKey,
        encoded: Encoded,
        ttl: Option<Duration>,
        stamp: Stamp<'_>,
        series: &SeriesRef<'_>,
    ) -> Result<WriteOutcome, StoreError> {
        self.write_key_as(scope, cache_type, key, encoded, ttl, stamp, series)
            .await
            .map(|w| w.outcome)
    }

    /// [`Self::write_key`], saying why another region's value was not stored.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_key_as(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &CacheKey,
        mut encoded: Encoded,
        ttl: Option<Duration>,
        stamp: Stamp<'_>,
        series: &SeriesRef<'_>,
    ) -> Result<Written, StoreError> {
        let ttl = match ttl {
            Some(t) if !TtlTable::in_bounds(t) => {
                return Err(StoreError::InvalidTtl(t));
            }
            Some(t) => t,
            None => self
                .inner
                .ttl
                .get(cache_type)
                .ok_or_else(|| StoreError::UnknownCacheType(cache_type.clone()))?,
        };
        // The tenant's plan caps every TTL it is given, whoever asked for it (issue 31): `set_with`, a type's own,
        // `get_or_compute`, `#[cached]`, the HTTP layer's copies and fail-safe copies all come through here.
        let cap = self.inner.plans.max_ttl(scope);
        let ttl = cap.map_or(ttl, |cap| ttl.min(cap));
        // Fresh for the TTL (or a fail-safe copy's throttle), kept `max_stale` longer to fall back on.
        let fresh = stamp.fail_safe.unwrap_or(ttl);
        let fresh = cap.map_or(fresh, |cap| fresh.min(cap));
        let kept = (fresh + self.inner.tiers.get(cache_type).max_stale).min(TtlTable::MAX_TTL);
        let (written_ms, fresh_ms) = stamp.written.unwrap_or_else(|| {
            let fresh_ms = u64::try_from(fresh.as_millis()).unwrap_or(u64::MAX);
            (codec::now_ms(), fresh_ms)
        });
        codec::set_freshness(
            &mut encoded.bytes,
            written_ms,
            fresh_ms,
            stamp.fail_safe.is_some(),
        );
        // Other regions are told of the value (design 0026) — not of a fail-safe copy: that is this region's own
        // fallback. A replicated type's value carries its version: another region's own, or this process's next.
        let replicated = stamp.fail_safe.is_none() && self.replicates(cache_type);
        if stamp.fail_safe.is_none()
            && self.replicates_here(cache_type)
            && let Some(version) = stamp.applied.or_else(|| self.next_version())
        {
            codec::set_version(&mut encoded.bytes, version);
        }
        let ttl = kept;
        // Sealed after the generations are stamped (`stamp_and_set`): the seal covers the header (design 0018).
        let sealer = self.inner.sealer.as_ref().filter(|s| s.seals(cache_type));
        let stored_len = encoded.bytes.len() + sealer.map_or(0, Sealer::overhead);
        let lane = self.lane(scope.as_scope());
        if let Some(refused) = self
            .charge_quota(&lane, scope, key, stored_len, kept, series)
            .await
        {
            return Ok(Written {
                outcome: refused,
                superseded: None,
            });
        }
        let start = Instant::now();
        let raw_len = encoded.raw_len as u64;
        let outgoing = Outgoing {
            plain: encoded.bytes,
            sealer,
        };
        let stored = match stamp.applied {
            None => self.stamp_and_set(&lane, key, outgoing, ttl, stamp).await,
            Some(version) => match self
                .put_newer(&lane, key, outgoing, ttl, stamp.generations, version)
                .await
            {
                Ok(Err(by)) => {
                    return Ok(Written {
                        outcome: WriteOutcome::Dropped,
                        superseded: Some(by),
                    });
                }
                Ok(Ok(len)) => Ok(len),
                Err(e) => Err(e),
            },
        };
        if replicated && stored.is_ok() {
            // Queued once the value is there to be read, behind what this store queued before and ahead of any
            // invalidation its caller makes next; not waited for (design 0026).
            self.replicate_value(scope, cache_type, key);
        }
        self.changed_here(key.as_str());
        let elapsed = start.elapsed();
        let outcome = if stored.is_ok() {
            WriteOutcome::Stored
        } else {
            WriteOutcome::Dropped
        };
        series.apply(|s| {
            let c = &s.counters;
            match &stored {
                Ok(len) => {
                    c.sets.fetch_add(1, Ordering::Relaxed);
                    c.raw_bytes.fetch_add(raw_len, Ordering::Relaxed);
                    c.stored_bytes.fetch_add(*len, Ordering::Relaxed);
                }
                // Another process holds the computation's lease now: its value wins, ours is not a fault.
                Err(BackendError::LeaseLost) => {
                    c.dropped_sets.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if !matches!(e, BackendError::CircuitOpen) {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        c.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    c.dropped_sets.fetch_add(1, Ordering::Relaxed);
                    c.degraded.fetch_add(1, Ordering::Relaxed);
                }
            }
            s.set_latency.record(elapsed);
        });
        if let Err(e) = &stored {
            tracing::debug!(error = %e, "cache write dropped");
        }
        Ok(Written {
            outcome,
            superseded: None,
        })
    }
}
