//! The queue of one connection slot's `GET`s and `SET`s waiting for the next auto-pipelined flush ([`super::batch`]): a
//! plain data structure the slot holds, so the connections (`hot.rs`) need not know how batches are sent.

use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::oneshot;

use crate::BackendError;

/// The commands waiting for the next flush of one connection slot.
#[derive(Default)]
pub(crate) struct Queue {
    waiting: Mutex<Vec<Waiting>>,
    /// `GET`s sent directly plus flushes scheduled, not yet answered: whether a new `GET` has company to wait
    /// for. A hint only (a caller that gives up may leave it briefly high or low), never a correctness input.
    pub(super) in_flight: AtomicUsize,
}

/// Counts one directly sent `GET` as in flight until dropped.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) struct Waiting {
    pub(super) request: Request,
    pub(super) reply: oneshot::Sender<Reply>,
}

/// A command waiting for the next flush.
pub(crate) enum Request {
    /// `GET key`.
    Get(String),
    /// `SET key value PX ttl_ms`.
    Set {
        key: String,
        value: bytes::Bytes,
        ttl_ms: u64,
    },
}

/// A command's answer: a `GET`'s value if any (`None` for a `SET`), or why there is none.
pub(crate) type Reply = Result<Option<Vec<u8>>, BackendError>;

impl Queue {
    pub(super) fn lock(&self) -> MutexGuard<'_, Vec<Waiting>> {
        // Every update is a push or a take: a panic elsewhere cannot leave the queue half-changed.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether other `GET`s of this slot are on the wire or queued: a new one should join the next batch.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// Marks a `GET` sent directly as in flight until the returned guard is dropped.
    pub(crate) fn sending(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }
}
