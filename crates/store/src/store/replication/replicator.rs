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
use fernando_cache_keys::Scope;

use super::{
    apply::Applied,
    entry::{Op, Replicated},
    progress::{self, Progress},
};
use crate::{StoreError, StreamEntry, Streams, store::Store};

/// Entries read at once (each up to 256 operations, as a writer packs them): what a replicator catching up after
/// a partition takes per round trip.
const BATCH: usize = 256;

/// Operations whose values are read from the other region at once (each value at most 4 MiB:
/// `entry::MAX_VALUE_BYTES`).
const APPLY_AT_ONCE: usize = 64;

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
    /// What this region noted of the stream (read from its backend when the replicator first joins), and the
    /// loss it accepted last.
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
    /// made again. `0-0` just after that loss was answered.
    floor: String,
}

/// One operation taken off the stream: its entry's id, the operation as read, and the value it names as read
/// from the other region.
type Taken<'a> = (
    &'a str,
    Result<Replicated, String>,
    Result<Option<bytes::Bytes>, StoreError>,
);

/// How often the note of progress is written.
const NOTE_EVERY: Duration = Duration::from_secs(1);

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
            progress: Mutex::new(Tracked {
                loaded: false,
                noted: Progress::start(),
                noted_at: None,
                floor: "0-0".into(),
            }),
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
        self.apply_all(new.entries, true, &mut round).await?;
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

    /// Reads this region's note of the stream, once: what was applied before (a group given less was made
    /// again), and the losses counted so far.
    async fn load_progress(&self) -> Result<(), StoreError> {
        if lock(&self.progress).loaded {
            return Ok(());
        }
        let local = &self.local.inner.shared;
        let streams = local.backend.streams().map_err(unavailable)?;
        let key = self.local.inner.keys.replication_progress(&self.from);
        let kept = match self.local.call(local, streams.recorded(&key)).await {
            Ok(kept) => kept,
            // Not a note at all (a hash, a list): started anew, and overwritten by the first note.
            Err(crate::BackendError::WrongType) => Some(bytes::Bytes::new()),
            Err(e) => return Err(unavailable(e)),
        };
        let mut p = lock(&self.progress);
        if let Some(noted) = kept.as_deref().and_then(Progress::parse) {
            p.floor.clone_from(&noted.applied);
            p.noted = noted;
        } else if kept.is_some() {
            tracing::warn!(
                key,
                "a note of replication progress this build did not write; started anew"
            );
        }
        p.loaded = true;
        Ok(())
    }

    /// Writes this region's note of the stream every [`NOTE_EVERY`], whether entries came or not (how long ago
    /// it was written says whether a replicator runs), and at once after a loss. A note that cannot be written
    /// is logged: a later round writes it.
    async fn note_progress(&self) {
        {
            let mut p = lock(&self.progress);
            if p.noted_at.is_some_and(|at| at.elapsed() < NOTE_EVERY) {
                return;
            }
            p.noted_at = Some(Instant::now());
        }
        let local = &self.local.inner.shared;
        let Ok(streams) = local.backend.streams() else {
            return;
        };
        let key = self.local.inner.keys.replication_progress(&self.from);
        // Other replicas of this region note the same stream: the losses counted and accepted never go back.
        let noted = self.noted_now().await;
        let text = {
            let mut p = lock(&self.progress);
            if let Some(noted) = &noted {
                p.noted.merge_losses(noted);
            }
            p.noted.at_ms = crate::codec::now_ms();
            p.noted.to_text()
        };
        if let Err(e) = self
            .local
            .call(local, streams.record(&key, text.as_bytes(), progress::KEPT))
            .await
        {
            tracing::warn!(error = %e, "replication progress not noted");
        }
    }

    /// Takes the mark of the loss known by `known_by` on this region's backend (`SET NX`, kept as long as a
    /// note): whether this replicator is the one that counts it. Counted when the mark cannot be taken for want
    /// of the backend (a loss is never left uncounted).
    async fn mark_loss(&self, known_by: &str) -> bool {
        let local = &self.local.inner.shared;
        let Some(leases) = local.backend.leases() else {
            return true;
        };
        let key = format!(
            "{}:loss:{known_by}",
            self.local.inner.keys.replication_progress(&self.from)
        );
        self.local
            .call(local, leases.acquire_lease(&key, "counted", progress::KEPT))
            .await
            .unwrap_or(true)
    }

    /// What this region's note of the stream says now (any replica's), if it can be read.
    async fn noted_now(&self) -> Option<Progress> {
        let local = &self.local.inner.shared;
        let streams = local.backend.streams().ok()?;
        let key = self.local.inner.keys.replication_progress(&self.from);
        let kept = self
            .local
            .call(local, streams.recorded(&key))
            .await
            .ok()??;
        Progress::parse(&kept)
    }

    /// Answers a loss — entries of the stream gone before they were applied here: every scope's replicated
    /// types here invalidated, counted, logged, and noted at once.
    async fn answer_loss(
        &self,
        what: &str,
        known_by: &str,
        round: &mut Round,
    ) -> Result<(), StoreError> {
        // Another replica of this region (or this one before a restart) may have answered it already.
        if let Some(noted) = self.noted_now().await {
            lock(&self.progress).noted.merge_losses(&noted);
        }
        if !progress::id_after(known_by, &lock(&self.progress).noted.accepted) {
            return Ok(());
        }
        let scopes = self.local.invalidate_replicated_everywhere().await?;
        // Replicas of this region that meet one loss at once each answer it (twice changes nothing); the one
        // that takes its mark counts it. One trim can be met twice in a round (entries given and not applied,
        // and entries never given): the round counts one loss.
        let counted = round.gaps == 0 && self.mark_loss(known_by).await;
        {
            let mut p = lock(&self.progress);
            p.noted.accepted = known_by.to_owned();
            if counted {
                p.noted.gaps = p.noted.gaps.saturating_add(1);
            }
            p.noted_at = None;
        }
        round.gaps = 1;
        tracing::warn!(
            region = self.from,
            stream = self.stream,
            lost = what,
            scopes,
            "entries of another region's stream were lost before they were applied here: not knowing what \
             they invalidated, this region invalidated every scope's replicated types"
        );
        self.note_progress().await;
        Ok(())
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
        // Entries given to this region and gone before they were applied: what they said is lost. Answered
        // before the rest is applied (a value after them is read as it is now, so applying it later is sound).
        let gone: Vec<&str> = entries
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.id.as_str())
            .collect();
        if let Some(last) = gone.last() {
            self.answer_loss(
                &format!(
                    "{} entries given to this region were trimmed before they were applied",
                    gone.len()
                ),
                last,
                round,
            )
            .await?;
        }
        let entries: Vec<_> = entries.into_iter().filter(|e| !e.deleted).collect();
        let max_tenant = self.local.inner.keys.max_tenant_len();
        // Each entry's operations (a writer packs several into one); only those that say they were made in the
        // region whose stream this is.
        let read: Vec<Vec<Result<Replicated, String>>> = entries
            .iter()
            .map(|e| {
                Replicated::read_all(e, max_tenant)
                    .into_iter()
                    .map(|r| {
                        r.and_then(|r| {
                            if r.from == self.from {
                                Ok(r)
                            } else {
                                Err("made in another region than the stream's".to_owned())
                            }
                        })
                    })
                    .collect()
            })
            .collect();
        // Operations in order, each with the entry it came in and whether it is that entry's last.
        let mut ops = Vec::new();
        for (entry, read) in entries.iter().zip(read) {
            let last = read.len().saturating_sub(1);
            ops.extend(
                read.into_iter()
                    .enumerate()
                    .map(|(i, r)| (entry.id.as_str(), r, i == last)),
            );
        }
        for chunk in ops.chunks_mut(APPLY_AT_ONCE) {
            // The values the chunk names, read from the other region at once (one pipeline), each as it is now.
            let values = futures_util::future::join_all(chunk.iter().map(|(_, r, _)| async move {
                match r {
                    Ok(r) if in_order && matches!(r.op, Op::Value { .. }) => self.value_of(r).await,
                    _ => Ok(None),
                }
            }))
            .await;
            // One scope's operations in their order, scopes side by side: no operation reaches past its scope,
            // so this is the stream's order wherever it matters, in a fraction of the time.
            let mut by_scope: Vec<(Option<Scope>, Vec<Taken<'_>>)> = Vec::new();
            for ((id, read, _), value) in chunk.iter_mut().zip(values) {
                let read = std::mem::replace(read, Err(String::new()));
                let scope = read.as_ref().ok().map(|r| r.scope.clone());
                // Operations that cannot be read go together: they change nothing.
                match by_scope.iter_mut().find(|(s, _)| *s == scope) {
                    Some((_, ops)) => ops.push((id, read, value)),
                    None => by_scope.push((scope, vec![(id, read, value)])),
                }
            }
            let tallies = futures_util::future::join_all(
                by_scope
                    .into_iter()
                    .map(|(_, ops)| self.apply_in_order(ops, in_order)),
            )
            .await;
            for tally in tallies {
                let tally = tally?;
                round.applied += tally.applied;
                round.skipped += tally.skipped;
                round.widened += tally.widened;
                round.rejected += tally.rejected;
            }
            // Every operation of the chunk applied: the entries that ended in it are done.
            let mut unacked = lock(&self.unacked);
            unacked.extend(
                chunk
                    .iter()
                    .filter(|(_, _, last)| *last)
                    .map(|(id, _, _)| (*id).to_owned()),
            );
        }
        Ok(())
    }

    /// Applies one scope's operations in their order; stops at the first this region could not take.
    async fn apply_in_order(
        &self,
        ops: Vec<Taken<'_>>,
        in_order: bool,
    ) -> Result<Round, StoreError> {
        let mut tally = Round::default();
        let mut warned = None;
        for (id, read, value) in ops {
            match read {
                Err(why) => {
                    // One warning an entry, however many of its operations are wrong.
                    if warned != Some(id) {
                        tracing::warn!(id, why, "a replication entry that is not ours; skipped");
                        warned = Some(id);
                    }
                    tally.rejected += 1;
                }
                Ok(r) => match self.local.apply(r, in_order, value?).await? {
                    Applied::Done => tally.applied += 1,
                    Applied::Skipped => tally.skipped += 1,
                    Applied::Widened => tally.widened += 1,
                    Applied::Refused => tally.rejected += 1,
                },
            }
        }
        Ok(tally)
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
            // Boxed: a round's future is deep (it applies through the store), and callers nest this one.
            let pause = match Box::pin(self.round()).await {
                Ok(round) if round.total() > 0 || round.gaps > 0 => {
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
