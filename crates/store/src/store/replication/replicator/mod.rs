//! [`Replicator`]: applies another region's stream here. It reads the stream through the consumer group
//! `to-{this region}` on that region's backend, so the replicas of this region share the work (each entry goes
//! to one of them); applies each entry (`applying.rs`, through the store's `apply.rs`), noting its progress and
//! answering losses (`notes.rs`); and acknowledges it once applied. Entries it was given and
//! did not acknowledge — it died, or this region's backend was down — are read again when it starts, and
//! another replicator claims them once they were left idle for `claim_after`: an entry is applied at least
//! once, and applying one twice changes nothing (a value is applied only if newer).

mod applying;
mod notes;

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use fernando_cache_config::RegionSettings;

use super::progress::{self, Progress};
use crate::{StoreError, Streams, store::Store};

/// Entries read at once (each up to 256 operations, as a writer packs them): what a replicator catching up after
/// a partition takes per round trip.
const BATCH: usize = 256;

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
    /// Whether the round met a loss — entries gone from the stream before they were applied here — answered by
    /// invalidating every scope's replicated types here (design 0026's partition rule): 0 or 1.
    pub gaps: u64,
}

impl Round {
    /// Entries the round took off the stream (losses not counted).
    pub fn total(&self) -> u64 {
        self.applied + self.skipped + self.widened + self.rejected
    }
}

/// Applies the stream of region `from` (on `remote`, that region's backend) to `local`, this region's store:
/// each shard of it (one, or one per hash tag on a cluster: design 0026) read on its own, side by side.
#[derive(Debug)]
pub struct Replicator {
    /// The region whose stream it reads.
    from: String,
    shards: Vec<Shard>,
}

/// Reads one shard of another region's stream and applies it here.
#[derive(Debug)]
struct Shard {
    local: Store,
    remote: Store,
    /// The region whose stream it reads.
    from: String,
    stream: String,
    /// This region's note of it, on this region's backend.
    note: String,
    /// Which shard it is, of how many.
    index: u16,
    of: u16,
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
    /// What this region noted of the stream (read from its backend when the replicator first joins).
    progress: Mutex<Tracked>,
}

/// A replicator's progress and what it goes by when it reads.
#[derive(Debug)]
struct Tracked {
    /// Read from this region's note (once).
    loaded: bool,
    noted: Progress,
    /// When it was last written.
    noted_at: Option<Instant>,
    /// What the group must have been given at least (the last entry applied in order): less means it was
    /// made again. Where the group stood, once a loss was answered.
    floor: String,
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
        let shards = remote.inner.stream_shards;
        let shards = (0..shards)
            .map(|shard| Shard {
                stream: remote.inner.keys.replication_stream(from, shard, shards),
                note: local.inner.keys.replication_progress(from, shard, shards),
                index: shard,
                of: shards,
                local: local.clone(),
                remote: remote.clone(),
                from: from.to_owned(),
                group: format!("to-{here}"),
                consumer: consumer.to_owned(),
                claim_after,
                resumed: AtomicBool::new(false),
                joined: AtomicBool::new(false),
                unacked: Mutex::default(),
                claimed: Mutex::default(),
                progress: Mutex::new(Tracked {
                    loaded: false,
                    noted: Progress::start(),
                    noted_at: None,
                    floor: "0-0".into(),
                }),
            })
            .collect();
        Ok(Replicator {
            from: from.to_owned(),
            shards,
        })
    }

    /// Takes what is waiting on each shard of the stream — this consumer's own unacknowledged entries first
    /// (once), entries others left idle (every half `claim_after`), then new ones, up to 256 of each — and
    /// applies them here, the shards side by side. What a round applied is acknowledged with the next round's
    /// read (one round trip for both); applying an entry again after a crash in between is harmless.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when either region's backend cannot be reached; what was not applied stays
    /// pending, to be applied by the next round (or another replicator). The other shards' rounds are done.
    pub async fn round(&self) -> Result<Round, StoreError> {
        // Boxed as `dyn`: a shard's round is deep (it applies through the store), and callers nest this one.
        let rounds = futures_util::future::join_all(self.shards.iter().map(
            |s| -> futures_util::future::BoxFuture<'_, Result<Round, StoreError>> {
                Box::pin(s.round())
            },
        ))
        .await;
        let mut total = Round::default();
        let mut failed = None;
        for round in rounds {
            match round {
                Ok(r) => {
                    total.applied += r.applied;
                    total.skipped += r.skipped;
                    total.widened += r.widened;
                    total.rejected += r.rejected;
                    total.gaps += r.gaps;
                }
                Err(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(total), Err)
    }

    /// Acknowledges what was applied and not yet acknowledged, on every shard.
    async fn flush(&self) -> Result<(), StoreError> {
        let flushed = futures_util::future::join_all(self.shards.iter().map(Shard::flush)).await;
        flushed.into_iter().collect()
    }

    /// Runs rounds until `stop` completes: at once while entries come, every `idle` when none did, and after
    /// a failure (logged) a second before the next.
    pub async fn run(&self, idle: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            // Boxed: a round's future is deep (it applies through the store), and callers nest this one.
            let pause = match Box::pin(self.round()).await {
                Ok(round) if round.total() > 0 || round.gaps > 0 => {
                    tracing::debug!(?round, "replicated");
                    Duration::ZERO
                }
                Ok(_) => idle,
                Err(e) => {
                    tracing::warn!(region = self.from, error = %e, "replication paused");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = &mut stop => {
                    if let Err(e) = self.flush().await {
                        tracing::warn!(region = self.from, error = %e, "applied entries left unacknowledged; they will be applied again");
                    }
                    return;
                }
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

impl Shard {
    fn streams(&self) -> Result<&dyn Streams, StoreError> {
        self.remote
            .inner
            .shared
            .backend
            .streams()
            .map_err(unavailable)
    }

    /// [`Replicator::round`] on this shard.
    async fn round(&self) -> Result<Round, StoreError> {
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
                     made again: the stream kept is applied again from its start"
                );
            }
            self.joined.store(true, Ordering::Relaxed);
            self.load_progress().await?;
            // What was applied goes first, so that only what was not is read again.
            self.flush().await?;
            let pending = self
                .remote
                .call(remote, streams.read_pending(stream, group, consumer, BATCH))
                .await
                .map_err(unavailable)?;
            self.apply_all(pending, &mut round).await?;
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
            self.apply_all(idle, &mut round).await?;
        }
        let new = loop {
            let done = std::mem::take(&mut *lock(&self.unacked));
            let (accepted, floor) = {
                let p = lock(&self.progress);
                (p.noted.accepted.clone(), p.floor.clone())
            };
            let (acked, new) = futures_util::join!(
                self.remote.call(remote, streams.ack(stream, group, &done)),
                self.remote.call(
                    remote,
                    streams.read_new(stream, group, consumer, BATCH, &accepted, &floor)
                ),
            );
            if let Err(e) = acked {
                // Still pending: taken back when this replicator starts again, or claimed by another.
                lock(&self.unacked).extend(done);
                return Err(unavailable(e));
            }
            let new = new.map_err(unavailable)?;
            let Some((given, gone)) = &new.lost else {
                break new;
            };
            self.answer_loss(
                &format!("entries after {given} up to {gone} are gone unread"),
                gone,
                &mut round,
            )
            .await?;
            // Answered: not found again, by this process or the next (the note keeps both).
            let mut p = lock(&self.progress);
            p.floor.clone_from(given);
            p.noted.applied.clone_from(given);
        };
        let full = new.entries.len() >= BATCH;
        let last = new.entries.last().map(|e| e.id.clone());
        self.apply_all(new.entries, &mut round).await?;
        {
            let mut p = lock(&self.progress);
            if let Some(last) = last {
                p.floor.clone_from(&last);
                p.noted.applied = last;
            }
            p.noted.behind = new.behind;
            let waiting = new.behind.map_or(full, |n| n > 0);
            p.noted.behind_ms = if waiting {
                progress::id_ms(&p.noted.applied)
                    .map_or(0, |ms| crate::codec::now_ms().saturating_sub(ms))
            } else {
                0
            };
        }
        self.note_progress().await;
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
}
