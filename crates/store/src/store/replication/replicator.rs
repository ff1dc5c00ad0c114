//! [`Replicator`]: applies another region's stream here. It reads the stream through the consumer group
//! `to-{this region}` on that region's backend, so the replicas of this region share the work (each entry goes
//! to one of them); applies each entry (`apply.rs`); and acknowledges it once applied. Entries it was given and
//! did not acknowledge — it died, or this region's backend was down — are read again when it starts, and
//! another replicator claims them once they were left idle for `claim_after`: an entry is applied at least
//! once, and applying one twice changes nothing (a value is applied only if newer).

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use fernando_cache_config::RegionSettings;

use super::{
    apply::Applied,
    entry::{Op, Replicated},
};
use crate::{StoreError, StreamEntry, Streams, store::Store};

/// Entries read at once (each at most 4 MiB: `entry::MAX_VALUE_BYTES`).
const BATCH: usize = 64;

/// What one [`Replicator::round`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Round {
    /// Entries applied as they were.
    pub applied: u64,
    /// Values not applied (as new or newer here, expired, unusable here).
    pub skipped: u64,
    /// Invalidations applied more widely than they were made (not understood here as they were).
    pub widened: u64,
    /// Entries that were not ours to read, or that this region refuses whole (a tenant it can hold no keys
    /// for): acknowledged, logged, never applied.
    pub rejected: u64,
}

impl Round {
    /// Entries the round took off the stream.
    pub fn total(&self) -> u64 {
        self.applied + self.skipped + self.widened + self.rejected
    }
}

/// Applies the stream of region `from` (on `remote`, that region's backend) to `local`, this region's store.
#[derive(Debug)]
pub struct Replicator {
    local: Store,
    remote: Store,
    /// The region whose stream it reads.
    from: String,
    stream: String,
    group: String,
    consumer: String,
    claim_after: Duration,
    /// Its own pending entries were read since it (re)joined the group; cleared by any failure, so that the next
    /// round joins again (a group lost meanwhile is made anew) and reads what it left pending first.
    resumed: AtomicBool,
    /// It has joined the group once.
    joined: AtomicBool,
    /// Entries applied, to be acknowledged with the next read.
    unacked: Mutex<Vec<String>>,
    /// When entries left idle were last claimed.
    claimed: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unavailable(source: crate::BackendError) -> StoreError {
    StoreError::Unavailable {
        op: "replicate",
        source,
    }
}

impl Replicator {
    /// A replicator of region `from`'s stream, read from `remote` (a store on that region's backend) and applied
    /// to `local`, as consumer `consumer` of this region's group; entries another consumer left idle for
    /// `claim_after` are taken over.
    ///
    /// # Errors
    /// [`StoreError::Settings`] when `local` is no region, `from` is not a region name or is `local`'s own, or
    /// `consumer` is empty.
    pub fn new(
        local: Store,
        remote: Store,
        from: &str,
        consumer: &str,
        claim_after: Duration,
    ) -> Result<Replicator, StoreError> {
        let invalid = |key: &str, reason: String| {
            StoreError::Settings(fernando_cache_config::ConfigError::Invalid {
                key: key.to_owned(),
                reason,
                detail: String::new(),
            })
        };
        let here = local
            .inner
            .region
            .as_ref()
            .map(|r| r.name.clone())
            .ok_or_else(|| {
                invalid(
                    "regions.name",
                    "name this region to replicate into it".into(),
                )
            })?;
        RegionSettings::check_name(from).map_err(|e| invalid("from", e))?;
        if from == here {
            return Err(invalid("from", format!("{from:?} is this region")));
        }
        if consumer.is_empty() || consumer.len() > 128 || consumer.chars().any(char::is_control) {
            return Err(invalid("consumer", "1 to 128 printable characters".into()));
        }
        let stream = remote.inner.keys.replication_stream(from);
        Ok(Replicator {
            local,
            remote,
            from: from.to_owned(),
            stream,
            group: format!("to-{here}"),
            consumer: consumer.to_owned(),
            claim_after,
            resumed: AtomicBool::new(false),
            joined: AtomicBool::new(false),
            unacked: Mutex::default(),
            claimed: Mutex::default(),
        })
    }

    fn streams(&self) -> Result<&dyn Streams, StoreError> {
        self.remote
            .inner
            .shared
            .backend
            .streams()
            .map_err(unavailable)
    }

    /// Takes what is waiting on the stream — this consumer's own unacknowledged entries first (once), entries
    /// others left idle (every half `claim_after`), then new ones, up to 256 of each — and applies them here.
    /// What a round applied is acknowledged with the next round's read (one round trip for both); applying an
    /// entry again after a crash in between is harmless.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when either region's backend cannot be reached; what was not applied stays
    /// pending, to be applied by the next round (or another replicator).
    pub async fn round(&self) -> Result<Round, StoreError> {
        let round = self.take_round().await;
        if round.is_err() {
            self.resumed.store(false, Ordering::Relaxed);
        }
        round
    }

    async fn take_round(&self) -> Result<Round, StoreError> {
        let streams = self.streams()?;
        let remote = &self.remote.inner.shared;
        let (stream, group, consumer) = (&self.stream, &self.group, &self.consumer);
        let mut round = Round::default();
        if !self.resumed.load(Ordering::Relaxed) {
            let made = self
                .remote
                .call(remote, streams.join_group(stream, group))
                .await
                .map_err(unavailable)?;
            if made && self.joined.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    stream,
                    group,
                    "the replication group was lost (deleted, evicted, or the server lost its data) and was \
                     made again: the stream kept is applied again from its start, and what was trimmed before \
                     is not known here"
                );
            }
            self.joined.store(true, Ordering::Relaxed);
            // What was applied goes first, so that only what was not is read again.
            self.flush().await?;
            let pending = self
                .remote
                .call(
                    remote,
                    streams.read_group(stream, group, consumer, true, BATCH),
                )
                .await
                .map_err(unavailable)?;
            self.apply_all(pending, true, &mut round).await?;
            self.resumed.store(true, Ordering::Relaxed);
        }
        if self.claim_due() {
            let idle = self
                .remote
                .call(
                    remote,
                    streams.claim_idle(stream, group, consumer, self.claim_after, BATCH),
                )
                .await
                .map_err(unavailable)?;
            self.apply_all(idle, false, &mut round).await?;
        }
        let done = std::mem::take(&mut *lock(&self.unacked));
        let (acked, new) = futures_util::join!(
            self.remote.call(remote, streams.ack(stream, group, &done)),
            self.remote.call(
                remote,
                streams.read_group(stream, group, consumer, false, BATCH)
            ),
        );
        if let Err(e) = acked {
            // Still pending: taken back when this replicator starts again, or claimed by another.
            lock(&self.unacked).extend(done);
            return Err(unavailable(e));
        }
        self.apply_all(new.map_err(unavailable)?, true, &mut round)
            .await?;
        Ok(round)
    }

    /// Whether entries left idle are to be claimed now (every half `claim_after`).
    fn claim_due(&self) -> bool {
        let mut last = lock(&self.claimed);
        if last.is_some_and(|at| at.elapsed() < self.claim_after / 2) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Applies `entries` in order (`in_order`: after everything before them in the stream), keeping the ids of
    /// those done to be acknowledged; stops at the first this region could not take.
    async fn apply_all(
        &self,
        entries: Vec<StreamEntry>,
        in_order: bool,
        round: &mut Round,
    ) -> Result<(), StoreError> {
        let max_tenant = self.local.inner.keys.max_tenant_len();
        // Only entries that say they were made in the region whose stream this is.
        let read: Vec<_> = entries
            .iter()
            .map(|e| {
                Replicated::read(e, max_tenant).and_then(|r| {
                    if r.from == self.from {
                        Ok(r)
                    } else {
                        Err("made in another region than the stream's".to_owned())
                    }
                })
            })
            .collect();
        // The values the batch names, read from the other region all at once (one pipeline), each as it is now.
        let values = futures_util::future::join_all(read.iter().map(|r| async move {
            match r {
                Ok(r) if in_order && matches!(r.op, Op::Value { .. }) => self.value_of(r).await,
                _ => Ok(None),
            }
        }))
        .await;
        for ((entry, read), value) in entries.into_iter().zip(read).zip(values) {
            match read {
                Err(why) => {
                    tracing::warn!(
                        id = entry.id,
                        why,
                        "a replication entry that is not ours; skipped"
                    );
                    round.rejected += 1;
                }
                Ok(r) => match self.local.apply(r, in_order, value?).await {
                    Ok(Applied::Done) => round.applied += 1,
                    Ok(Applied::Skipped) => round.skipped += 1,
                    Ok(Applied::Widened) => round.widened += 1,
                    Ok(Applied::Refused) => round.rejected += 1,
                    // This entry and those after it stay pending: the next round reads them again, in order,
                    // before anything newer (a value never overtakes the invalidation before it).
                    Err(e) => return Err(e),
                },
            }
            lock(&self.unacked).push(entry.id);
        }
        Ok(())
    }

    /// What a value entry's key holds in the other region now, unless an invalidation there hid it (its
    /// generations are not the current ones): `Ok(None)` for nothing to apply.
    async fn value_of(&self, r: &Replicated) -> Result<Option<bytes::Bytes>, StoreError> {
        let (Op::Value { key }, Some(cache_type)) = (&r.op, &r.cache_type) else {
            return Ok(None);
        };
        let Ok(cache_type) = fernando_cache_config::CacheType::new(cache_type.as_str()) else {
            return Ok(None);
        };
        let keys = &self.remote.inner.keys;
        let Ok(key) = keys.key(&r.scope, &cache_type, key) else {
            return Ok(None);
        };
        let generations = keys.generation_keys_of(&key);
        let lane = &self.remote.inner.shared;
        let fetched = self
            .remote
            .call(lane, lane.storage().fetch(key.as_str(), &generations))
            .await
            .map_err(unavailable)?;
        Ok(fetched.value.filter(|bytes| {
            crate::codec::read_header(bytes).is_ok_and(|h| h.generations == fetched.generations)
        }))
    }

    /// Acknowledges what was applied and not yet acknowledged.
    async fn flush(&self) -> Result<(), StoreError> {
        let streams = self.streams()?;
        let done = std::mem::take(&mut *lock(&self.unacked));
        self.remote
            .call(
                &self.remote.inner.shared,
                streams.ack(&self.stream, &self.group, &done),
            )
            .await
            .map_err(unavailable)
    }

    /// Runs rounds until `stop` completes: at once while entries come, every `idle` when none did, and after
    /// a failure (logged) a second before the next.
    pub async fn run(&self, idle: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let pause = match self.round().await {
                Ok(round) if round.total() > 0 => {
                    tracing::debug!(?round, "replicated");
                    Duration::ZERO
                }
                Ok(_) => idle,
                Err(e) => {
                    tracing::warn!(error = %e, "replication paused");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = &mut stop => {
                    if let Err(e) = self.flush().await {
                        tracing::warn!(error = %e, "applied entries left unacknowledged; they will be applied again");
                    }
                    return;
                }
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
