//! [`Appender`]: the one ordered queue through which a store appends to its region's stream. A task drains it,
//! packing whatever has gathered into one stream entry (one `XADD`) — so appends cost the writing region a share
//! of one command, not one each, and the stream keeps the order in which this process made its operations.
//! When it finds only values, it lingers [`LINGER`] for more, listening to nothing meanwhile: a write wakes no
//! task.
//!
//! An invalidation or erasure waits until its entry is on the stream (it fails if it cannot be appended: none
//! is lost silently); a value's entry does not — the write returns at once, and an entry that cannot be
//! appended, or finds the queue full, is counted and logged (another region computes the value itself).
//! [`Store::flush_replication`] waits for everything queued before it, for a process about to exit.

use std::sync::{
    Mutex, Weak,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::{mpsc, oneshot};

use super::{
    super::{Inner, Store},
    entry::Replicated,
};
use crate::BackendError;

/// Entries that may wait at once; a value's entry past it is dropped (counted).
const QUEUE: usize = 16_384;

/// Operations one entry carries at most.
const BATCH: usize = 256;

/// How long the task waits for more values before it appends what it has (not when an invalidation, an erasure
/// or a flush is among what it took; one queued while it waits waits with it).
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// One operation to append (none: a flush's marker); `done` is told when it is on the stream (or why not). Its
/// fields are written by the queue's task, not by the writer.
pub(super) struct Job {
    pub(super) op: Option<Replicated>,
    pub(super) done: Option<oneshot::Sender<Result<(), BackendError>>>,
}

/// A region's queue of entries, and its task.
#[derive(Debug, Default)]
pub(super) struct Appender {
    /// The queue, made with its task on first use (and again if that task's runtime went away).
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    /// Values' entries dropped: the queue was full, or the stream could not be reached.
    pub(super) dropped: AtomicU64,
}

impl Appender {
    /// Queues `job` behind everything queued before it. `wait`: wait for room in the queue (an invalidation);
    /// otherwise a full queue drops the job (a value) — `false` then.
    pub(super) async fn push(&self, store: &Store, job: Job, wait: bool) -> bool {
        if !wait {
            // A value's entry, on every replicated write: queued under the lock, with no sender cloned (a clone
            // and its drop are two atomic writes to a count every writing thread shares).
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            return match Self::running(&mut queue, store) {
                Some(tx) => tx.try_send(job).is_ok(),
                None => false,
            };
        }
        let Some(tx) = self.sender(store) else {
            return false;
        };
        tx.send(job).await.is_ok()
    }

    /// The queue's sender, its task started if there is none running.
    fn sender(&self, store: &Store) -> Option<mpsc::Sender<Job>> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        Self::running(&mut queue, store).cloned()
    }

    /// The sender in `queue`, its task started if there is none running (none: no runtime to start it on).
    fn running<'q>(
        queue: &'q mut Option<mpsc::Sender<Job>>,
        store: &Store,
    ) -> Option<&'q mpsc::Sender<Job>> {
        if queue.as_ref().is_some_and(|tx| !tx.is_closed()) {
            return queue.as_ref();
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        handle.spawn(drain(std::sync::Arc::downgrade(&store.inner), rx));
        Some(queue.insert(tx))
    }
}

/// Appends what gathers in the queue, an entry at a time, until the store is gone.
async fn drain(store: Weak<Inner>, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        // A full entry goes at once (the queue is ahead of the stream); so does anything waited for.
        if jobs.len() < BATCH && jobs.iter().all(|j| j.done.is_none()) {
            linger(&mut rx, &mut jobs).await;
        }
        let Some(inner) = store.upgrade() else {
            return;
        };
        let store = Store { inner };
        let appended = store.append_now(&mut jobs).await;
        let mut lost = 0;
        let mut why = None;
        for (job, appended) in jobs.drain(..).zip(appended) {
            match (job.done, appended) {
                (Some(done), appended) => {
                    let _ = done.send(appended);
                }
                (None, Err(e)) => {
                    lost += 1;
                    why = Some(e);
                }
                (None, Ok(())) => {}
            }
        }
        if let Some(e) = why {
            store.count_dropped(lost);
            tracing::warn!(error = %e, lost, "values' entries could not be appended for other regions");
        }
    }
}

/// Waits [`LINGER`] without listening — so that values queued meanwhile wake nothing — then takes what came, up
/// to a full entry.
async fn linger(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    tokio::time::sleep(LINGER).await;
    while jobs.len() < BATCH {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => return,
        }
    }
}

impl Store {
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
        let (done, appended) = oneshot::channel();
        let marker = Job {
            op: None,
            done: Some(done),
        };
        if region.appender.push(self, marker, true).await {
            let _ = appended.await;
        }
    }
}
