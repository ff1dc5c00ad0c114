//! Invalidation generations kept in process, made current by Redis's server-assisted client-side caching.
//!
//! Every read must compare an entry's stamped generations with the current ones (design 0001). Reading them
//! from Redis with every hit turns a `GET` into an `MGET` of three keys; instead, each hot connection runs
//! `CLIENT TRACKING ON BCAST PREFIX {namespace}:{environment}:_gen:` (RESP3), so the server pushes an
//! `invalidate` message down that connection whenever any generation key changes or expires, and the
//! generations last read are remembered per thread.
//!
//! Why a remembered generation is never stale when it is used (design 0007):
//! - redis-rs hands a push message to [`PushHandler`] synchronously, in stream order, before it completes any
//!   reply read after it; the handler bumps [`Tracker`]'s epoch.
//! - A bump that executed on the server before a tracking connection's `GET` was queued on that connection
//!   ahead of the `GET`'s reply, so the epoch has moved by the time the reply is seen. A hit therefore uses
//!   remembered generations only if its connection was tracking and the epoch did not move from before the
//!   lookup to after the reply; otherwise it reads the generations from Redis, as without tracking.
//! - A remembered value carries the epoch read before the `MGET` that fetched it, so any push processed after
//!   that moment retires it.
//! - Losing a connection, or a connection starting to track, also moves the epoch: invalidations sent while a
//!   connection was not tracking never reach it, so everything remembered before is dropped.

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    PushInfo, PushKind,
    aio::{AsyncPushSender, SendError},
};

use super::hot::HotConn;

/// Remembered generation pairs per thread and backend; past this the thread's map is emptied.
const MAX_REMEMBERED: usize = 4096;
/// Least time between two attempts to start tracking on one connection.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// `confirmed` of a connection that has never tracked.
const NEVER: u64 = u64::MAX;

/// The tracking state of one backend's hot connections.
#[derive(Debug)]
pub(crate) struct Tracker {
    /// Moved by every invalidation push, every lost connection and every connection that starts tracking.
    epoch: AtomicU64,
    conns: Box<[ConnState]>,
    /// `{namespace}:{environment}:_gen:`
    prefix: String,
    command_timeout: Duration,
    started: Instant,
    /// Generation pairs remembered per thread, keyed by the `{prefix}{scope}:{type}` part of entry keys, each
    /// with the epoch it was read in.
    remembered: thread_local::ThreadLocal<RefCell<Remembered>>,
}

type Remembered = HashMap<Box<str>, (u64, [u64; 2]), foldhash::fast::RandomState>;

#[derive(Debug)]
struct ConnState {
    /// Moved each time the slot's connection is lost (redis-rs reports it as a `Disconnection` push) or
    /// replaced.
    incarnation: AtomicU64,
    /// The incarnation whose `CLIENT TRACKING` succeeded, or [`NEVER`].
    confirmed: AtomicU64,
    /// When (ms since `started`, plus one) tracking was last tried; 0 = never.
    last_attempt: AtomicU64,
}

impl Tracker {
    pub(crate) fn new(connections: usize, prefix: String, command_timeout: Duration) -> Arc<Self> {
        Arc::new(Tracker {
            epoch: AtomicU64::new(0),
            conns: (0..connections)
                .map(|_| ConnState {
                    incarnation: AtomicU64::new(0),
                    confirmed: AtomicU64::new(NEVER),
                    last_attempt: AtomicU64::new(0),
                })
                .collect(),
            prefix,
            command_timeout,
            started: Instant::now(),
            remembered: thread_local::ThreadLocal::new(),
        })
    }

    /// The push handler to install on connection `index`.
    pub(crate) fn handler(self: &Arc<Self>, index: usize) -> PushHandler {
        PushHandler {
            tracker: self.clone(),
            index,
        }
    }

    /// The current epoch; read it before a lookup and compare after the reply.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Retires everything remembered (a push arrived, a connection changed, or the topology moved).
    pub(crate) fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether connection `index` is tracking (so invalidations reach it in order with its replies).
    pub(crate) fn is_tracking(&self, index: usize) -> bool {
        let c = &self.conns[index];
        c.confirmed.load(Ordering::Acquire) == c.incarnation.load(Ordering::Acquire)
    }

    /// Slot `index` lost its connection or got a new one: it does not track until told to again.
    pub(crate) fn connection_changed(&self, index: usize) {
        self.conns[index].incarnation.fetch_add(1, Ordering::AcqRel);
        self.bump();
    }

    /// Starts tracking on the connection of slot `index` in the background, at most once per
    /// [`RETRY_AFTER`].
    pub(crate) fn start_tracking(self: &Arc<Self>, index: usize, slots: Arc<[HotConn]>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let c = &self.conns[index];
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = c.last_attempt.load(Ordering::Relaxed);
        if last != 0 && now < last + RETRY_AFTER.as_millis() as u64 {
            return;
        }
        if c.last_attempt
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let tracker = self.clone();
        runtime.spawn(async move {
            let c = &tracker.conns[index];
            // OFF first: turning BCAST on twice with one prefix is refused as an overlapping prefix.
            let mut pipe = redis::pipe();
            pipe.cmd("CLIENT")
                .arg("TRACKING")
                .arg("OFF")
                .ignore()
                .cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("BCAST")
                .arg("PREFIX")
                .arg(&tracker.prefix)
                .ignore();
            let attempt = async {
                // The connection first (connecting moves the incarnation), then the incarnation, then a check
                // that the connection is still the slot's: a confirmation then always names the connection
                // the command went to.
                let mut lease = slots[index].lease().await?;
                let incarnation = c.incarnation.load(Ordering::Acquire);
                if !lease.is_current() {
                    return Ok(None);
                }
                let reply = pipe.exec_async(&mut lease.conn).await;
                lease.check(reply).map(|()| Some(incarnation))
            };
            match tokio::time::timeout(tracker.command_timeout, attempt).await {
                Ok(Ok(Some(incarnation)))
                    if c.incarnation.load(Ordering::Acquire) == incarnation =>
                {
                    c.confirmed.store(incarnation, Ordering::Release);
                    tracker.bump();
                    tracing::debug!(connection = index, "generation tracking on");
                }
                // The connection changed meanwhile: try again on the next read.
                Ok(Ok(_)) => c.last_attempt.store(0, Ordering::Release),
                Ok(Err(e)) => tracing::debug!(
                    connection = index,
                    error = %e,
                    "CLIENT TRACKING failed; generations are read with every hit"
                ),
                Err(_) => tracing::debug!(connection = index, "CLIENT TRACKING timed out"),
            }
        });
    }

    /// The generations remembered on this thread for the `{prefix}{scope}:{type}` part of entry keys, if they
    /// are from epoch `epoch`.
    pub(crate) fn lookup(&self, scope_and_type: &str, epoch: u64) -> Option<[u64; 2]> {
        let map = self.remembered.get()?.borrow();
        match map.get(scope_and_type) {
            Some(&(stamp, generations)) if stamp == epoch => Some(generations),
            _ => None,
        }
    }

    /// Remembers `generations` of `scope_and_type`, read by a command sent when the epoch was `epoch`.
    pub(crate) fn remember(&self, scope_and_type: &str, epoch: u64, generations: [u64; 2]) {
        if self.epoch() != epoch {
            return;
        }
        let mut map = self.remembered.get_or_default().borrow_mut();
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, (stamp, _)| *stamp == epoch);
            if map.len() >= MAX_REMEMBERED {
                map.clear();
            }
        }
        match map.get_mut(scope_and_type) {
            Some(slot) => *slot = (epoch, generations),
            None => {
                map.insert(scope_and_type.into(), (epoch, generations));
            }
        }
    }
}

/// Receives one connection's push messages, in stream order, before the replies that follow them.
pub(crate) struct PushHandler {
    tracker: Arc<Tracker>,
    index: usize,
}

impl AsyncPushSender for PushHandler {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Invalidate => self.tracker.bump(),
            PushKind::Disconnection => self.tracker.connection_changed(self.index),
            _ => {}
        }
        Ok(())
    }
}
