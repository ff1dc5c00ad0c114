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
//!
//! When the store keeps values in process (L1, design 0013) the connections track the whole namespace instead
//! (`PREFIX {namespace}:{environment}:`). A push naming a generation key (or a flush) still moves the epoch; a
//! push naming any other key moves that key's counter in [`Tracker::counters`], and a [`Watch`] taken before a
//! read is current only while neither its epoch nor its key's counter has moved.

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
    PushInfo, PushKind, Value,
    aio::{AsyncPushSender, SendError},
};

use super::hot::HotConn;

/// Remembered generation pairs per thread and backend; past this the thread's map is emptied.
const MAX_REMEMBERED: usize = 4096;
/// Least time between two attempts to start tracking on one connection.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// `confirmed` of a connection that has never tracked.
const NEVER: u64 = u64::MAX;
/// Counters of entry keys, when values are tracked: a push for a key moves the counter its hash falls on (a
/// collision only costs another key's copy). 64 Ki × 8 bytes per tracked server.
const COUNTERS: usize = 1 << 16;

/// The keys a backend's hot connections track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedKeys {
    /// [`KeyBuilder::generation_prefix`](fernando_cache_keys::KeyBuilder::generation_prefix): always tracked.
    pub generations: String,
    /// [`KeyBuilder::prefix`](fernando_cache_keys::KeyBuilder::prefix), when the store keeps values in process
    /// and must hear of every change to an entry key (design 0013).
    pub entries: Option<String>,
}

/// Taken before a read whose value may be kept in process: current until Redis announces a change of the key
/// (or loses a connection that carried the announcements). See design 0013.
#[derive(Clone)]
pub struct Watch {
    tracker: Arc<Tracker>,
    epoch: u64,
    slot: usize,
    count: u64,
}

impl Watch {
    /// Whether no change of the key (nor of any generation, nor of a connection) has been announced since the
    /// watch was taken.
    pub fn is_current(&self) -> bool {
        // SeqCst pairs with the handler's increments: a push handled before this load is seen.
        self.tracker.epoch.load(Ordering::SeqCst) == self.epoch
            && self.tracker.counters[self.slot].load(Ordering::SeqCst) == self.count
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("epoch", &self.epoch)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// The counter a key's changes move.
fn counter_of(key: &[u8]) -> usize {
    use std::hash::BuildHasher;
    // A fixed seed: the handler and the reader must agree, and nothing outside chooses the keys' slots.
    (foldhash::fast::FixedState::with_seed(0x4643_4c31).hash_one(key) as usize) % COUNTERS
}

/// The tracking state of one backend's hot connections.
#[derive(Debug)]
pub(crate) struct Tracker {
    /// Moved by every invalidation push, every lost connection and every connection that starts tracking.
    epoch: AtomicU64,
    conns: Box<[ConnState]>,
    /// The prefix registered with `CLIENT TRACKING … BCAST PREFIX`.
    prefix: String,
    /// `{namespace}:{environment}:_gen:`: a push for a key under it moves the epoch.
    generations: String,
    /// Per entry-key counters, when entry keys are tracked (empty otherwise).
    counters: Box<[AtomicU64]>,
    /// The connections track the keys they opt in to (`CLIENT TRACKING ON OPTIN`, turned on as they connect:
    /// an `acl` tenant's, see [`SwitchUser`](super::hot::SwitchUser)) rather than a `BCAST` prefix: every
    /// connection tracks from the moment it exists, and a push reaches only the connection that read the key,
    /// so such a backend has one connection per tracker (a pair remembered from one connection and trusted on
    /// another could miss its push).
    keyed: bool,
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
    pub(crate) fn new(
        connections: usize,
        keys: &TrackedKeys,
        command_timeout: Duration,
        keyed: bool,
    ) -> Arc<Self> {
        assert!(
            !keyed || (connections == 1 && keys.entries.is_none()),
            "keyed tracking is one connection's, and of generations only"
        );
        let counters = if keys.entries.is_some() { COUNTERS } else { 0 };
        Arc::new(Tracker {
            epoch: AtomicU64::new(0),
            conns: (0..connections)
                .map(|_| ConnState {
                    incarnation: AtomicU64::new(0),
                    confirmed: AtomicU64::new(NEVER),
                    last_attempt: AtomicU64::new(0),
                })
                .collect(),
            prefix: keys
                .entries
                .clone()
                .unwrap_or_else(|| keys.generations.clone()),
            generations: keys.generations.clone(),
            counters: (0..counters).map(|_| AtomicU64::new(0)).collect(),
            keyed,
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
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether entry keys are tracked (so values read may be kept in process).
    pub(crate) fn tracks_entries(&self) -> bool {
        !self.counters.is_empty()
    }

    /// A watch on `key`, if entry keys are tracked and some connection is tracking now (BCAST announces every
    /// change to every tracking connection, so one suffices; losing it moves the epoch).
    pub(crate) fn watch(self: &Arc<Self>, key: &str) -> Option<Watch> {
        if !self.tracks_entries() || !(0..self.conns.len()).any(|i| self.is_tracking(i)) {
            return None;
        }
        let slot = counter_of(key.as_bytes());
        Some(Watch {
            tracker: self.clone(),
            epoch: self.epoch.load(Ordering::SeqCst),
            slot,
            count: self.counters[slot].load(Ordering::SeqCst),
        })
    }

    /// An `invalidate` push: the keys it names, or a flush (`FLUSHALL`, `FLUSHDB`: no key list).
    fn invalidated(&self, data: &[Value]) {
        let Some(Value::Array(keys)) = data.first() else {
            self.bump();
            return;
        };
        if self.counters.is_empty() {
            self.bump();
            return;
        }
        let mut generations = false;
        for key in keys {
            match key {
                Value::BulkString(k) if !k.starts_with(self.generations.as_bytes()) => {
                    self.counters[counter_of(k)].fetch_add(1, Ordering::SeqCst);
                }
                // A generation changed, or a key we cannot read: everything goes.
                _ => generations = true,
            }
        }
        if generations {
            self.bump();
        }
    }

    /// Whether the connections track the keys they opt in to (see [`Tracker::keyed`]): a read whose
    /// generations are to be remembered must opt in to them (`CLIENT CACHING YES`).
    pub(crate) fn is_keyed(&self) -> bool {
        self.keyed
    }

    /// Whether connection `index` is tracking (so invalidations reach it in order with its replies).
    pub(crate) fn is_tracking(&self, index: usize) -> bool {
        if self.keyed {
            // Tracking from its first command on; a new or lost connection moves the epoch all the same.
            return true;
        }
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
        if self.keyed {
            return;
        }
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
            PushKind::Invalidate => self.tracker.invalidated(&info.data),
            PushKind::Disconnection => self.tracker.connection_changed(self.index),
            _ => {}
        }
        Ok(())
    }
}
