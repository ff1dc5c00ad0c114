//! [`Appender`]: the one ordered queue through which a store appends to its region's stream. A writer packs its
//! operation straight into the entry gathering for its shard (a few bytes under a lock: no operation built,
//! nothing sent over a channel); a task takes whatever gathered and appends each entry — one `XADD` of one
//! field — shards side by side and each shard's entries in order, so the stream keeps the order in which this
//! process made its operations. When it finds only values, it lingers [`LINGER`] for more first; a write wakes
//! the task only when it finds the queue empty.
//!
//! An invalidation or erasure waits until its entry is on the stream (it fails if it cannot be appended: none
//! is lost silently); a value's entry does not — the write returns at once, and an entry that cannot be
//! appended, or finds the queue full, is counted and logged (another region computes the value itself).
//! [`Store::flush_replication`] waits for everything queued before it, for a process about to exit.

use std::{
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use fernando_cache_keys::Scope;
use tokio::sync::{Notify, oneshot};

use super::{
    super::{Inner, Store},
    entry::Op,
    packing::Packer,
};
use crate::BackendError;

/// Operations that may wait at once; a value's entry past it is dropped (counted), an invalidation waits for
/// room.
const QUEUE: usize = 16_384;

/// Operations one entry carries at most.
const BATCH: usize = 256;

/// How long the task waits for more values before it appends what it has (not when an invalidation, an erasure,
/// a flush or a full entry is among what gathered).
const LINGER: Duration = Duration::from_millis(1);

/// Told when an operation is on the stream, or why not.
type Done = oneshot::Sender<Result<(), BackendError>>;

/// An entry gathering: its packed operations, how many of them are values, and who waits for it.
#[derive(Debug)]
struct Chunk {
    packer: Packer,
    values: u64,
    waiting: Vec<Done>,
}

/// What is queued and not yet taken.
#[derive(Debug, Default)]
struct Pending {
    /// Each shard's entries, in order.
    shards: Vec<Vec<Chunk>>,
    /// Operations in them.
    ops: usize,
    /// Something among them is waited for, or an entry is full: no lingering.
    urgent: bool,
    /// Flushes waiting for everything queued before them.
    flushes: Vec<Done>,
    /// The task appending them (none yet, or it ended with its runtime).
    task: Option<tokio::task::JoinHandle<()>>,
    /// The store is gone: the task ends.
    closed: bool,
}

/// What the queue's writers and its task share.
#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Something was queued (the task listens).
    work: Notify,
    /// The queue was emptied (invalidations waiting for room listen).
    room: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A region's queue of entries, and its task.
#[derive(Debug, Default)]
pub(super) struct Appender {
    shared: Arc<Shared>,
    /// Values' entries dropped: the queue was full, or the stream could not be reached.
    pub(super) dropped: AtomicU64,
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_one();
    }
}

/// Where an operation goes: the region it is made in, and its stream's shard of how many.
pub(super) struct Place<'a> {
    pub(super) from: &'a str,
    pub(super) shard: usize,
    pub(super) shards: usize,
}

impl Pending {
    /// The entry an operation for `place` goes into: the shard's last, or a new one when that is full.
    fn chunk(&mut self, place: &Place<'_>) -> &mut Chunk {
        if self.shards.len() < place.shards {
            self.shards.resize_with(place.shards, Vec::new);
        }
        let chunks = &mut self.shards[place.shard];
        if chunks.last().is_none_or(|c| c.packer.ops() >= BATCH) {
            chunks.push(Chunk {
                packer: Packer::new(place.from),
                values: 0,
                waiting: Vec::new(),
            });
        }
        let chunk = chunks.last_mut().expect("a chunk was just ensured");
        if chunk.packer.ops() + 1 >= BATCH {
            self.urgent = true;
        }
        chunk
    }
}

impl Appender {
    /// Queues that a value of `cache_type` was written under `key` — never waiting: `false` when the queue is
    /// full or there is no runtime to append on (the entry is then dropped; the caller counts it).
    pub(super) fn push_value(
        &self,
        store: &Store,
        place: &Place<'_>,
        scope: &Scope,
        cache_type: &str,
        key: &str,
    ) -> bool {
        let mut pending = self.shared.lock();
        if !self.running(&mut pending, store) || pending.ops >= QUEUE {
            return false;
        }
        let chunk = pending.chunk(place);
        chunk.packer.push_value(scope, cache_type, key);
        chunk.values += 1;
        pending.ops += 1;
        let wake = pending.ops == 1 || pending.urgent;
        drop(pending);
        if wake {
            self.shared.work.notify_one();
        }
        true
    }

    /// Queues `op`, waiting for room in the queue; what tells when it is on the stream.
    ///
    /// # Errors
    /// When there is no runtime to append on.
    pub(super) async fn push_waited(
        &self,
        store: &Store,
        place: &Place<'_>,
        scope: &Scope,
        cache_type: Option<&str>,
        op: &Op,
    ) -> Result<oneshot::Receiver<Result<(), BackendError>>, BackendError> {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut pending = self.shared.lock();
                if !self.running(&mut pending, store) {
                    return Err(closed());
                }
                if pending.ops < QUEUE {
                    let (done, appended) = oneshot::channel();
                    let chunk = pending.chunk(place);
                    chunk.packer.push(scope, cache_type, op);
                    chunk.waiting.push(done);
                    pending.ops += 1;
                    pending.urgent = true;
                    drop(pending);
                    self.shared.work.notify_one();
                    return Ok(appended);
                }
            }
            room.await;
        }
    }

    /// What tells when everything queued before it is on the stream (or was given up); none when there is no
    /// runtime to append on.
    fn push_flush(&self, store: &Store) -> Option<oneshot::Receiver<Result<(), BackendError>>> {
        let mut pending = self.shared.lock();
        if !self.running(&mut pending, store) {
            return None;
        }
        let (done, flushed) = oneshot::channel();
        pending.flushes.push(done);
        pending.urgent = true;
        drop(pending);
        self.shared.work.notify_one();
        Some(flushed)
    }

    /// Whether the queue's task runs, started if it does not (`false`: no runtime to start it on).
    fn running(&self, pending: &mut Pending, store: &Store) -> bool {
        if pending.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return true;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        pending.task = Some(handle.spawn(drain(Arc::downgrade(&store.inner), self.shared.clone())));
        true
    }
}

fn closed() -> BackendError {
    BackendError::Other("the replication queue is closed (no runtime to append on)".into())
}

/// Appends what gathers in the queue until the store is gone.
async fn drain(store: Weak<Inner>, shared: Arc<Shared>) {
    loop {
        // Something to append (a permit left by a writer while this task was busy counts).
        loop {
            let work = shared.work.notified();
            {
                let pending = shared.lock();
                if pending.closed {
                    return;
                }
                if pending.ops > 0 || !pending.flushes.is_empty() {
                    break;
                }
            }
            work.await;
        }
        if !shared.lock().urgent {
            tokio::time::sleep(LINGER).await;
        }
        let (shards, flushes) = {
            let mut pending = shared.lock();
            pending.ops = 0;
            pending.urgent = false;
            (
                std::mem::take(&mut pending.shards),
                std::mem::take(&mut pending.flushes),
            )
        };
        shared.room.notify_waiters();
        let Some(inner) = store.upgrade() else {
            return;
        };
        let store = Store { inner };
        futures_util::future::join_all(
            shards
                .into_iter()
                .enumerate()
                .map(|(shard, chunks)| store.append_chunks(shard, chunks)),
        )
        .await;
        for flush in flushes {
            let _ = flush.send(Ok(()));
        }
    }
}

impl Store {
    /// Appends a shard's entries in their order, telling each one's waiters; values of one that cannot be
    /// appended are counted and logged.
    async fn append_chunks(&self, shard: usize, chunks: Vec<Chunk>) {
        for chunk in chunks {
            let appended = self.append_entry(shard, chunk.packer.into_bytes()).await;
            if let Err(e) = &appended
                && chunk.values > 0
            {
                self.count_dropped(chunk.values);
                tracing::warn!(error = %e, lost = chunk.values, "values' entries could not be appended for other regions");
            }
            for done in chunk.waiting {
                let _ = done.send(appended.clone());
            }
        }
    }

    /// Counts values' entries that never reached the stream.
    pub(super) fn count_dropped(&self, n: u64) {
        if let Some(region) = &self.inner.region {
            region.appender.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// How many values' entries this store could not append for other regions (the queue was full, or the
    /// stream could not be reached): each a value another region computes itself.
    pub fn replication_dropped(&self) -> u64 {
        self.inner
            .region
            .as_ref()
            .map_or(0, |r| r.appender.dropped.load(Ordering::Relaxed))
    }

    /// Waits until every entry this store queued for other regions before the call is on the stream (or was
    /// given up): for a process about to exit, whose last writes' entries would otherwise be lost with it.
    /// Nothing to wait for when the deployment is no region.
    pub async fn flush_replication(&self) {
        let Some(region) = &self.inner.region else {
            return;
        };
        if let Some(flushed) = region.appender.push_flush(self) {
            let _ = flushed.await;
        }
    }
}
