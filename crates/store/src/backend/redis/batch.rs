//! Auto-pipelining of the hot path's `GET`s and tracked `SET`s: commands that are ready at the same moment go to
//! Redis as one pipeline.
//!
//! Sent one by one, each `GET` on a multiplexed connection tends to be written by its own `writev`, and the
//! server reads it with its own `read`: on this 2-core machine that was ~0.6 client and ~0.2 server system calls
//! per hit, most of a hit's cost. Here a `GET` on a slot that has nothing on the wire is sent at once (a lone
//! request pays nothing); one that finds the slot busy joins the queue. The first `GET` queued spawns a flush
//! task, which yields once — so every task that is ready to run queues its `GET` first — then sends the whole
//! queue as one pipeline and hands each caller its own reply (docs/design/0008-auto-pipelining.md). It is the
//! batching of ioredis's `enableAutoPipelining` and of Lettuce's and StackExchange.Redis's writers, per slot.
//!
//! Invariant: a flush is scheduled exactly when the queue is non-empty, so no queued `GET` is ever stranded; a
//! flush task dropped before it ran (its runtime shutting down) answers its queue with an error on the way out.

use std::sync::{Arc, atomic::Ordering};

use redis::Value;
use tokio::sync::oneshot;

use super::{
    error::conn_err,
    hot::HotConn,
    queue::{Reply, Request, Waiting},
};
use crate::BackendError;

/// `request` on slot `i`, sent with whatever else is queued on that slot when the flush runs. `None` when there
/// is no tokio runtime to flush on (the caller sends the command itself).
pub(crate) fn send_batched(
    slots: &Arc<[HotConn]>,
    i: usize,
    request: Request,
    timeout: std::time::Duration,
) -> Option<oneshot::Receiver<Reply>> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let (tx, rx) = oneshot::channel();
    let first = {
        let mut queue = slots[i].queue.lock();
        queue.push(Waiting { request, reply: tx });
        queue.len() == 1
    };
    if first {
        // Counted from now until the flush is done, so that GETs meanwhile join this batch or the next.
        slots[i].queue.in_flight.fetch_add(1, Ordering::Relaxed);
        let flush = Flush {
            slots: slots.clone(),
            i,
            taken: false,
        };
        handle.spawn(flush.run(timeout));
    }
    Some(rx)
}

/// The one scheduled flush of a slot's queue.
struct Flush {
    slots: Arc<[HotConn]>,
    i: usize,
    /// Whether this flush has cut its batch (after which the queue belongs to the next flush).
    taken: bool,
}

impl Flush {
    async fn run(mut self, timeout: std::time::Duration) {
        // Let every task that is ready to run queue its GET before the batch is cut.
        tokio::task::yield_now().await;
        let batch = std::mem::take(&mut *self.slots[self.i].queue.lock());
        self.taken = true;
        if batch.is_empty() {
            return;
        }
        let slot = &self.slots[self.i];
        let replies = match tokio::time::timeout(timeout, send(slot, &batch)).await {
            Ok(replies) => replies,
            // The callers have their own deadlines; this only keeps a stuck batch from living forever.
            Err(_) => Err(BackendError::Timeout(timeout)),
        };
        match replies {
            Ok(values) => {
                for (waiting, value) in batch.into_iter().zip(values) {
                    // A caller that gave up (its deadline passed) has dropped its receiver: nothing to do.
                    let _ = waiting.reply.send(value);
                }
            }
            Err(e) => {
                for waiting in batch {
                    let _ = waiting.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        self.slots[self.i]
            .queue
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
        // Normally `run` cut the batch; if the task is dropped before that (runtime shutdown), answer what is
        // queued so that the invariant (a queued GET has a scheduled flush) holds for the next caller.
        if self.taken {
            return;
        }
        let stranded = std::mem::take(&mut *self.slots[self.i].queue.lock());
        for waiting in stranded {
            let _ = waiting.reply.send(Err(BackendError::Other(
                "the task that was to send this GET was dropped (runtime shutting down?)".into(),
            )));
        }
    }
}

/// Sends the batch as one pipeline and splits the replies, one per `GET`, in order.
async fn send(slot: &HotConn, batch: &[Waiting]) -> Result<Vec<Reply>, BackendError> {
    let mut lease = slot.lease().await?;
    let mut pipe = redis::pipe();
    // Each command answers for itself: a WRONGTYPE key fails its own GET, not its neighbours'.
    pipe.ignore_errors();
    for waiting in batch {
        match &waiting.request {
            Request::Get(key) => {
                pipe.cmd("GET").arg(key);
            }
            Request::Set { key, value, ttl_ms } => {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(&value[..])
                    .arg("PX")
                    .arg(*ttl_ms);
            }
        }
    }
    let reply: redis::RedisResult<Vec<Value>> = pipe.query_async(&mut lease.conn).await;
    let values = lease.check(reply)?;
    lease.release();
    if values.len() != batch.len() {
        return Err(BackendError::Other(format!(
            "a pipeline of {} GETs was answered with {} replies",
            batch.len(),
            values.len()
        )));
    }
    Ok(values.into_iter().map(one_reply).collect())
}

fn one_reply(value: Value) -> Reply {
    match value {
        Value::Nil | Value::Okay => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        // WRONGTYPE, and MOVED / ASK on a cluster node, each as its own kind of error.
        Value::ServerError(e) => Err(conn_err(e.into())),
        other => Err(BackendError::Other(format!(
            "a pipelined command was answered with {other:?}, not a string, OK or nil"
        ))),
    }
}
