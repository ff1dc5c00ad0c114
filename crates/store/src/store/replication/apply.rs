//! Applying another region's entry here, through the store's own operations — so every rule of this region
//! (its generations, quotas, sealing) holds — and never appending it again.

use std::time::Duration;

use bytes::Bytes;
use fernando_cache_config::CacheType;
use fernando_cache_keys::Scope;

use super::{
    APPLYING, clock,
    entry::{Op, Replicated},
};
use crate::{
    InvalidationStrategy, StoreError,
    codec::{self, Encoded, Version},
    store::{
        Store, Target,
        write::{Stamp, Superseded, Written},
    },
};

/// What applying one entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Done here as it was there.
    Done,
    /// A value not applied: this region holds one as new or newer, it expired on the way, it was delivered
    /// out of its order, or it cannot be used here (a type this region does not replicate, sealed with a key
    /// this region lacks, written in the future).
    Skipped,
    /// An invalidation that could not be done as it was (a glob or tag this region refuses, a type it does not
    /// know): the scope's entries of that type — or all of them — were invalidated instead.
    Widened,
    /// An operation this region refuses whole (a tenant it could hold no keys for): nothing to do here.
    Refused,
}

/// The version an invalidation in the entry `id` is marked with here: the last possible one of the ms its
/// stream id says it was appended in (by the other region's clock, as its values are versioned), which this
/// process's clock then moves past; `None` (this process's next version) for an id that says no time.
fn made_at(id: &str) -> Option<Version> {
    let ms: u64 = id.split_once('-')?.0.parse().ok()?;
    let hlc = ms.checked_mul(1 << 16)?.checked_add(0xFFFF)?;
    if clock::too_far_ahead(hlc) {
        return None;
    }
    clock::observe(hlc);
    Some(Version {
        hlc,
        origin: u64::MAX,
    })
}

impl Store {
    /// Applies `entry` (its stream id `id`), made in another region; `value` is what the entry's key holds in
    /// that region now for a value entry (`None`: nothing, or hidden by an invalidation since). `Err` only when
    /// this region's backend could not take it (the entry is then left to be applied again).
    ///
    /// An entry may come out of its stream's order (claimed from a replicator that stopped) and still be
    /// applied: a value is read as it is now in its region (hidden there by any invalidation since), and written
    /// here only if newer than the copy held and than this region's invalidations of its scope's type — so it
    /// never overtakes an invalidation applied here before it.
    pub(crate) async fn apply(
        &self,
        id: &str,
        entry: Replicated,
        value: Option<Bytes>,
    ) -> Result<Applied, StoreError> {
        match APPLYING
            .scope(made_at(id), self.apply_here(entry, value))
            .await
        {
            Err(StoreError::Unavailable { op, source }) => {
                Err(StoreError::Unavailable { op, source })
            }
            Err(e) => {
                tracing::warn!(error = %e, "a replicated operation this region refuses; skipped");
                Ok(Applied::Refused)
            }
            applied => applied,
        }
    }

    async fn apply_here(
        &self,
        entry: Replicated,
        value: Option<Bytes>,
    ) -> Result<Applied, StoreError> {
        let Replicated {
            scope,
            cache_type,
            op,
            ..
        } = entry;
        let cache_type = match cache_type.map(CacheType::new).transpose() {
            Ok(t) => t,
            // A type this region cannot even name: for an invalidation, all of the scope goes.
            Err(_) if !matches!(op, Op::Value { .. }) => {
                return self.widened(&scope, None).await;
            }
            Err(_) => return Ok(Applied::Skipped),
        };
        let target = match &op {
            Op::Entries { strategy } => {
                self.invalidate(Target::entries(&scope, cache_type.as_ref()), *strategy)
                    .await?;
                return Ok(Applied::Done);
            }
            Op::Pattern(glob) => Target::pattern(&scope, cache_type.as_ref(), glob),
            Op::Subject(subject) => Target::subject(&scope, cache_type.as_ref(), subject),
            Op::Tag(tag) => Target::tag(&scope, tag),
            Op::Erase => {
                if let Scope::Tenant(tenant) = &scope {
                    self.erase_tenant(tenant).await?;
                    self.mark_erased(&scope).await?;
                }
                return Ok(Applied::Done);
            }
            Op::Value { key } => {
                // Only a type this region replicates: another region cannot write this one's sessions, HTTP
                // copies or shared reference data.
                let (Some(cache_type), Some(envelope)) =
                    (cache_type.filter(|t| self.replicates_here(t)), value)
                else {
                    return Ok(Applied::Skipped);
                };
                return self.apply_value(&scope, &cache_type, key, envelope).await;
            }
        };
        match self.invalidate(target, InvalidationStrategy::Lazy).await {
            Ok(_) => Ok(Applied::Done),
            Err(StoreError::Unavailable { op, source }) => {
                Err(StoreError::Unavailable { op, source })
            }
            // Refused here (a glob, subject or tag this region's rules reject): not knowing which entries it
            // meant, this region hides all it could have meant.
            Err(_) => self.widened(&scope, cache_type.as_ref()).await,
        }
    }

    /// Invalidates the scope's entries of `cache_type` (or all of them), lazily: what an entry that cannot be
    /// applied as it was could have reached.
    async fn widened(
        &self,
        scope: &Scope,
        cache_type: Option<&CacheType>,
    ) -> Result<Applied, StoreError> {
        tracing::warn!(
            tenant = scope.label(),
            cache_type = cache_type.map_or("*", CacheType::as_str),
            "a replicated invalidation could not be applied as it was; the scope's entries were invalidated"
        );
        self.invalidate(
            Target::entries(scope, cache_type),
            InvalidationStrategy::Lazy,
        )
        .await?;
        Ok(Applied::Widened)
    }

    /// Writes a replicated value's envelope under this region's key for it, keeping when it was written and
    /// for how long it is fresh, if it is newer than the copy held here.
    async fn apply_value(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        specific: &str,
        envelope: Bytes,
    ) -> Result<Applied, StoreError> {
        let Ok(key) = self.inner.keys.key(scope, cache_type, specific) else {
            return Ok(Applied::Skipped);
        };
        let (plain, header) = match self.opened(key.as_str(), envelope) {
            Ok(opened) => opened,
            Err(e) => {
                tracing::warn!(
                    why = e.why,
                    "a replicated value cannot be opened here; skipped"
                );
                return Ok(Applied::Skipped);
            }
        };
        // Never written with a dictionary or tags (`replicate_value`): one that says so is not ours.
        if header.dictionary || header.tags_at != 0 || header.fail_safe {
            return Ok(Applied::Skipped);
        }
        // Written no later than now (give or take the clocks' skew), and fresh no longer than this region keeps
        // the type: a value stamped in the future would win over every later write.
        let now = codec::now_ms();
        let Some(ttl) = self.inner.ttl.get(cache_type) else {
            return Ok(Applied::Skipped);
        };
        // Its version: the one it was written with, or (a value from a build before versions) one no version
        // of a later build is older than.
        let version = header.version.unwrap_or(Version {
            hlc: header.written_ms << 16,
            origin: 0,
        });
        if header.written_ms > now.saturating_add(clock::MAX_AHEAD_MS)
            || clock::too_far_ahead(version.hlc)
        {
            return Ok(Applied::Skipped);
        }
        // Written longer ago than a stream keeps its entries: an invalidation made here after it may have left
        // a mark that is gone by now (marks live as long as entries are kept), so it is not known to be newer
        // than what this region invalidated. Not applied: this region computes it, if it is asked for it.
        let max_age_ms = self.inner.region.as_ref().map_or(0, |r| r.max_age_ms);
        if (version.hlc >> 16).saturating_add(max_age_ms) < now {
            return Ok(Applied::Skipped);
        }
        let fresh_ms = header
            .fresh_ms
            .min(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let until = header.written_ms.saturating_add(fresh_ms);
        let Some(left) = until.checked_sub(now).filter(|ms| *ms > 0) else {
            return Ok(Applied::Skipped);
        };
        // A write this process makes after applying it is newer than it, whatever the clocks say.
        clock::observe(version.hlc);
        let encoded = Encoded {
            bytes: plain.to_vec(),
            raw_len: header.decoded_len as usize,
        };
        // Written only if newer than the copy held here and than this region's last invalidation of the
        // scope's type, in one step with the write (design 0026).
        let stamp = Stamp {
            written: Some((header.written_ms, fresh_ms)),
            applied: Some(version),
            ..Stamp::default()
        };
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        let written = self
            .write_key_as(
                scope,
                cache_type,
                &key,
                encoded,
                Some(Duration::from_millis(left)),
                stamp,
                &series,
            )
            .await;
        match written {
            Ok(Written {
                outcome: crate::WriteOutcome::Stored,
                ..
            }) => Ok(Applied::Done),
            // This region holds a newer copy, written by a region other than the one this value came from:
            // that one holds the older and would keep it — it is told of the newer again.
            Ok(Written {
                superseded: Some(Superseded::Held(held)),
                ..
            }) if held > version && held.region() != version.region() => {
                self.announce_again(scope, cache_type, specific);
                Ok(Applied::Skipped)
            }
            Ok(_) | Err(_) => Ok(Applied::Skipped),
        }
    }
}
