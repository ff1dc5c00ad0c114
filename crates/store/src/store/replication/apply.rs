//! Applying another region's entry here, through the store's own operations — so every rule of this region
//! (its generations, quotas, sealing) holds — and never appending it again.

use std::time::Duration;

use bytes::Bytes;
use fernando_cache_config::CacheType;
use fernando_cache_keys::Scope;

use super::{
    APPLYING,
    entry::{Op, Replicated},
};
use crate::{
    InvalidationStrategy, StoreError,
    codec::{self, Encoded, Header},
    store::{Store, Target, write::Stamp},
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

/// How far ahead of this region's clock a value's write time may be (clocks differ a little).
const CLOCK_SKEW_MS: u64 = 60_000;

impl Store {
    /// Applies `entry`, made in another region; `in_order` says whether it comes after everything before it
    /// in its stream was applied (not so for an entry claimed from a replicator that stopped), and `value` is
    /// what the entry's key holds in that region now for a value entry (`None`: nothing, or hidden by an
    /// invalidation since). `Err` only when this region's backend could not take it (the entry is then left to
    /// be applied again).
    pub(crate) async fn apply(
        &self,
        entry: Replicated,
        in_order: bool,
        value: Option<Bytes>,
    ) -> Result<Applied, StoreError> {
        // A value out of its order could overtake the invalidation that followed it: only invalidations, which
        // at worst hide more than they meant, are applied late.
        if !in_order && matches!(entry.op, Op::Value { .. }) {
            return Ok(Applied::Skipped);
        }
        match APPLYING.scope((), self.apply_here(entry, value)).await {
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
        if header.written_ms > now.saturating_add(CLOCK_SKEW_MS) {
            return Ok(Applied::Skipped);
        }
        let fresh_ms = header
            .fresh_ms
            .min(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let until = header.written_ms.saturating_add(fresh_ms);
        let Some(left) = until.checked_sub(now).filter(|ms| *ms > 0) else {
            return Ok(Applied::Skipped);
        };
        // Newer than what this region holds, by when it was written (design 0026).
        let lane = self.lane(scope.into());
        // With the entry's own generation keys: a backend that remembers what it read must not remember others.
        let generations = self.inner.keys.generation_keys_of(&key);
        let held = self
            .call(&lane, lane.storage().fetch(key.as_str(), &generations))
            .await
            .map_err(|source| StoreError::Unavailable {
                op: "replicate",
                source,
            })?;
        // A copy an invalidation hid is no copy: what comes after the invalidation is applied over it.
        if let Some(bytes) = held.value
            && let Ok((held_bytes, held_header)) = self.opened(key.as_str(), bytes)
            && held_header.generations == held.generations
            && !newer(&plain, &header, &held_bytes, &held_header)
        {
            return Ok(Applied::Skipped);
        }
        let encoded = Encoded {
            bytes: plain.to_vec(),
            raw_len: header.decoded_len as usize,
        };
        let stamp = Stamp {
            written: Some((header.written_ms, fresh_ms)),
            ..Stamp::default()
        };
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        match self
            .write_key(
                scope,
                cache_type,
                &key,
                encoded,
                Some(Duration::from_millis(left)),
                stamp,
                &series,
            )
            .await
        {
            Ok(crate::WriteOutcome::Stored) => Ok(Applied::Done),
            Ok(_) => Ok(Applied::Skipped),
            Err(_) => Ok(Applied::Skipped),
        }
    }
}

/// Whether the value `incoming` (with its header) wins over `held`: written later, or at the same millisecond
/// with the larger payload — a rule both regions apply alike, so they end with the same value whichever
/// arrives first.
fn newer(incoming: &[u8], incoming_header: &Header, held: &[u8], held_header: &Header) -> bool {
    match incoming_header.written_ms.cmp(&held_header.written_ms) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => {
            fn payload<'b>(bytes: &'b [u8], header: &Header) -> &'b [u8] {
                bytes.get(header.len..).unwrap_or_default()
            }
            payload(incoming, incoming_header) > payload(held, held_header)
        }
    }
}
