//! The hot read (and write) of one server: a few multiplexed connections used in rotation (`hot.rs`), the
//! generations remembered while tracking (`tracking.rs`) and the auto-pipelined `GET`s (`batch.rs`). A write
//! whose generations are remembered is one `SET`; the others read the generations in the same round trip. One server's
//! [`RedisBackend`](super::RedisBackend) has one [`HotPath`]; a cluster's direct routing has one per primary
//! (`cluster/direct.rs`).

use std::{borrow::Borrow, sync::Arc, time::Duration};

use bytes::Bytes;
use fernando_cache_keys::{GenerationKeys, KeyBuilder};
use redis::AsyncConnectionConfig;

use super::{
    batch, commands,
    endpoint::Endpoint,
    hot::{HotConn, Lease, SwitchUser},
    queue::Request,
    tracking::{TrackedKeys, Tracker},
};
use crate::backend::{BackendError, Fetched};

/// How a [`HotPath`] reads.
#[derive(Debug, Clone)]
pub(crate) struct HotSettings {
    /// Multiplexed connections used in rotation.
    pub(crate) connections: usize,
    /// `Some(keys)`: track them (the endpoint must speak RESP3).
    pub(crate) track: Option<TrackedKeys>,
    /// Hits that find their connection busy share one pipeline.
    pub(crate) auto_pipeline: bool,
    pub(crate) command_timeout: Duration,
    /// With `track`: the connections open with the deployment's credentials, track the keys they opt in to,
    /// and then become this user (an `acl` tenant's lane, design 0023); there is then one connection.
    pub(crate) switch: Option<Arc<SwitchUser>>,
}

impl HotSettings {
    /// The hot path `settings` ask for, tracking `tracked` when `redis.track_generations` is on.
    pub(crate) fn from_settings(
        settings: &fernando_cache_config::RedisSettings,
        tracked: &TrackedKeys,
    ) -> Self {
        HotSettings {
            connections: settings.multiplexed_connections,
            track: settings.track_generations.then(|| tracked.clone()),
            auto_pipeline: settings.auto_pipeline,
            command_timeout: settings.command_timeout,
            switch: None,
        }
    }
}

/// The hot read of one server.
pub(crate) struct HotPath {
    conns: Arc<[HotConn]>,
    tracker: Option<Arc<Tracker>>,
    auto_pipeline: bool,
    command_timeout: Duration,
}

impl std::fmt::Debug for HotPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotPath")
            .field("multiplexed_connections", &self.conns.len())
            .field("tracks_generations", &self.tracker.is_some())
            .field("auto_pipeline", &self.auto_pipeline)
            .finish_non_exhaustive()
    }
}

impl HotPath {
    /// Connection slots to `endpoint` (none is opened yet), with a tracking push handler each when tracking.
    pub(crate) fn new(
        endpoint: Arc<Endpoint>,
        config: &AsyncConnectionConfig,
        settings: &HotSettings,
    ) -> Self {
        // A switched user's tracking is keyed to the connection that read: one connection (see `Tracker`).
        let switch = settings.track.as_ref().and(settings.switch.clone());
        let n = if switch.is_some() {
            1
        } else {
            settings.connections.max(1)
        };
        let tracker = settings.track.as_ref().map(|keys| match &switch {
            // Generations only: entry keys read would each take a row of the server's tracking table, and
            // their copies in process live `l1.untracked_ttl` instead (design 0023).
            Some(_) => Tracker::new(
                n,
                &TrackedKeys {
                    generations: keys.generations.clone(),
                    entries: None,
                },
                settings.command_timeout,
                true,
            ),
            None => Tracker::new(n, keys, settings.command_timeout, false),
        });
        let conns = (0..n)
            .map(|i| match &tracker {
                Some(t) => {
                    let t2 = t.clone();
                    HotConn::new(
                        endpoint.clone(),
                        config.clone().set_push_sender(t.handler(i)),
                        Some(Box::new(move || t2.connection_changed(i))),
                        switch.clone(),
                    )
                }
                None => HotConn::new(endpoint.clone(), config.clone(), None, None),
            })
            .collect();
        HotPath {
            conns,
            tracker,
            auto_pipeline: settings.auto_pipeline,
            command_timeout: settings.command_timeout,
        }
    }

    /// A connection of the next slot (connecting it if needed).
    pub(crate) async fn conn(&self) -> Result<Lease<'_>, BackendError> {
        self.conns[self.pick()].lease().await
    }

    /// Forgets every remembered generation: the next read of each scope reads them from the server.
    pub(crate) fn forget_generations(&self) {
        if let Some(t) = &self.tracker {
            t.bump();
        }
    }

    /// How a copy of `key`'s value read now would learn that it changed (design 0013).
    pub(crate) fn watch(&self, key: &str) -> crate::backend::Coherence {
        use crate::backend::Coherence;
        match &self.tracker {
            Some(t) if t.tracks_entries() => match t.watch(key) {
                Some(w) => Coherence::Watched(w),
                None => {
                    // Nothing listens yet: the read that follows starts tracking on its connection.
                    Coherence::Unavailable
                }
            },
            _ => Coherence::Untracked,
        }
    }

    /// The next slot.
    fn pick(&self) -> usize {
        // A per-thread rotation: no shared counter for the worker threads to contend on.
        thread_local! {
            static NEXT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        }
        NEXT.with(|n| {
            let i = n.get();
            n.set(i.wrapping_add(1));
            i
        }) % self.conns.len()
    }

    /// [`Storage::fetch`](crate::Storage::fetch) without the boxed future of the trait object. The
    /// generation keys are built by `generations` only when they must be read from Redis.
    pub(crate) async fn fetch<G: Borrow<GenerationKeys>>(
        &self,
        key: &str,
        generations: impl FnOnce() -> Result<G, BackendError>,
    ) -> Result<Fetched, BackendError> {
        let i = self.pick();
        if let Some(tracker) = &self.tracker {
            let epoch = tracker.epoch();
            if !tracker.is_tracking(i) {
                tracker.start_tracking(i, self.conns.clone());
            } else if let Some(remembered) = tracker.lookup(KeyBuilder::group_of(key), epoch)
                && let Some(value) = self.send_get(i, key).await
            {
                // GET answers WRONGTYPE for a key of another type, which the store counts and removes.
                let value = value?;
                if tracker.epoch() == epoch {
                    return Ok(Fetched {
                        value: value.map(Bytes::from),
                        generations: remembered,
                    });
                }
                // A generation changed (or a connection came or went) while the GET was out: read them
                // again.
            }
        }
        // Boxed so that the hit's future stays small (it is moved a few times per call).
        Box::pin(self.fetch_with_generations(i, key, generations)).await
    }

    /// [`Storage::fetch_many`](crate::Storage::fetch_many): one `MGET` of `keys` (which share `generations`)
    /// when their generations are remembered (and no push arrives meanwhile), else that `MGET` and the
    /// generations' in one round trip (remembered when tracking). A key holding a non-string value reads as
    /// absent.
    pub(crate) async fn fetch_many(
        &self,
        keys: &[&str],
        generations: &GenerationKeys,
    ) -> Result<Vec<Fetched>, BackendError> {
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        let group = KeyBuilder::group_of(first);
        let i = self.pick();
        let entries = |values: Vec<Option<Vec<u8>>>, generations: [u64; 2]| {
            values
                .into_iter()
                .map(|v| Fetched {
                    value: v.map(Bytes::from),
                    generations,
                })
                .collect()
        };
        if let Some(tracker) = &self.tracker {
            let epoch = tracker.epoch();
            if !tracker.is_tracking(i) {
                tracker.start_tracking(i, self.conns.clone());
            } else if let Some(remembered) = tracker.lookup(group, epoch) {
                let mut lease = self.conns[i].lease().await?;
                // Sized once: a batch's command is not regrown key by key.
                let bytes: usize = keys.iter().map(|k| k.len()).sum();
                let mut mget = redis::Cmd::with_capacity(keys.len() + 1, bytes + 4);
                mget.arg("MGET").arg(keys);
                // The reply is read here in one pass, values moved out of it as they are: an error can
                // only be the reply's own (MGET answers nil for a key of another type).
                let reply = redis::aio::ConnectionLike::req_packed_command(&mut lease.conn, &mget)
                    .await
                    .and_then(|reply| match reply {
                        redis::Value::ServerError(e) => Err(e.into()),
                        reply => Ok(reply),
                    });
                let reply = lease.check(reply)?;
                lease.release();
                if tracker.epoch() == epoch {
                    return entries_of_mget(reply, keys.len(), remembered);
                }
                // A generation changed (or a connection came or went) while the MGET was out: read them.
            }
        }
        let epoch = self.tracker.as_ref().map(|t| t.epoch());
        let keyed = self.tracker.as_ref().is_some_and(|t| t.is_keyed());
        let mut lease = self.conns[i].lease().await?;
        let reply = commands::fetch_many(&mut lease.conn, keys, generations, keyed).await;
        let read = commands::fetched_many(lease.check(reply)?)?;
        lease.release();
        if let (Some(tracker), Some(epoch), true) = (&self.tracker, epoch, read.tracked) {
            tracker.remember(group, epoch, read.generations);
        }
        Ok(entries(read.values, read.generations))
    }

    /// The generations remembered on this thread for `key`'s scope and type, current as of now.
    pub(crate) fn known(&self, key: &str) -> Option<[u64; 2]> {
        let tracker = self.tracker.as_ref()?;
        tracker.lookup(KeyBuilder::group_of(key), tracker.epoch())
    }

    /// `SET key value PX ttl` alone, if `stamp` is still the remembered generations and the connection it goes
    /// on is tracking. `Ok(false)` when that is not so (nothing written), or when a push arrived before the
    /// `SET`'s reply: an invalidation that ran before the `SET` may have made `stamp` old, and the caller writes
    /// again reading the generations. (Its push precedes the reply on this connection, as for reads.)
    pub(crate) async fn set_known(
        &self,
        key: &str,
        value: &Bytes,
        ttl: Duration,
        stamp: [u64; 2],
    ) -> Result<bool, BackendError> {
        let Some(tracker) = &self.tracker else {
            return Ok(false);
        };
        let i = self.pick();
        let epoch = tracker.epoch();
        if !tracker.is_tracking(i)
            || tracker.lookup(KeyBuilder::group_of(key), epoch) != Some(stamp)
        {
            return Ok(false);
        }
        let slot = &self.conns[i];
        if self.auto_pipeline
            && slot.queue.busy()
            && slot.is_connected()
            && let Some(reply) = batch::send_batched(
                &self.conns,
                i,
                Request::Set {
                    key: key.to_owned(),
                    value: value.clone(),
                    ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
                },
                self.command_timeout,
            )
        {
            reply.await.unwrap_or_else(|_| {
                Err(BackendError::Other(
                    "the pipelined SET was dropped unanswered".into(),
                ))
            })?;
            return Ok(tracker.epoch() == epoch);
        }
        let _in_flight = self.auto_pipeline.then(|| slot.queue.sending());
        let Some(mut lease) = slot.current() else {
            return Ok(false);
        };
        let reply = commands::set_plain(&mut lease.conn, key, value, ttl).await;
        lease.check(reply)?;
        lease.release();
        Ok(tracker.epoch() == epoch)
    }

    /// `SET` with the generations read in the same round trip (remembered when tracking, so the next write of
    /// the scope is one `SET`).
    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        generations: &GenerationKeys,
    ) -> Result<[u64; 2], BackendError> {
        let i = self.pick();
        let epoch = self.tracker.as_ref().map(|t| t.epoch());
        if let Some(tracker) = &self.tracker
            && !tracker.is_tracking(i)
        {
            tracker.start_tracking(i, self.conns.clone());
        }
        let mut lease = self.conns[i].lease().await?;
        let (current, tracked) = match &self.tracker {
            Some(t) if t.is_keyed() => {
                let reply =
                    commands::set_opted_in(&mut lease.conn, key, value, ttl, generations).await;
                lease.check(reply)?
            }
            _ => {
                let reply = commands::set(&mut lease.conn, key, value, ttl, generations).await;
                (lease.check(reply)?, true)
            }
        };
        lease.release();
        if let (Some(tracker), Some(epoch), true) = (&self.tracker, epoch, tracked) {
            tracker.remember(KeyBuilder::group_of(key), epoch, current);
        }
        Ok(current)
    }

    /// `GET key` on slot `i`, auto-pipelined when configured; `None` when the slot has no connection yet (the
    /// caller then connects through the slow path).
    async fn send_get(&self, i: usize, key: &str) -> Option<Result<Option<Vec<u8>>, BackendError>> {
        let slot = &self.conns[i];
        if self.auto_pipeline
            && slot.queue.busy()
            && slot.is_connected()
            && let Some(reply) = batch::send_batched(
                &self.conns,
                i,
                Request::Get(key.to_owned()),
                self.command_timeout,
            )
        {
            return Some(reply.await.unwrap_or_else(|_| {
                Err(BackendError::Other(
                    "the pipelined GET was dropped unanswered".into(),
                ))
            }));
        }
        // Nothing else on the wire: sent at once (a lone request would only wait for the batch's task hop).
        let _in_flight = self.auto_pipeline.then(|| slot.queue.sending());
        let mut lease = slot.current()?;
        let get = GetCommand::new(key);
        let reply = get.0.query_async(&mut lease.conn).await;
        drop(get);
        let value = lease.check(reply);
        if value.is_ok() {
            lease.release();
        }
        Some(value)
    }

    /// The entry and its generations from Redis (remembered when tracking).
    async fn fetch_with_generations<G: Borrow<GenerationKeys>>(
        &self,
        i: usize,
        key: &str,
        generations: impl FnOnce() -> Result<G, BackendError>,
    ) -> Result<Fetched, BackendError> {
        let epoch = self.tracker.as_ref().map(|t| t.epoch());
        let mut lease = self.conns[i].lease().await?;
        let (fetched, tracked) = match &self.tracker {
            Some(t) if t.is_keyed() => {
                let reply =
                    commands::fetch_checked(&mut lease.conn, key, generations()?.borrow(), true)
                        .await;
                commands::fetched_opted_in(lease.check(reply)?)?
            }
            _ => {
                let reply = commands::fetch(&mut lease.conn, key, generations()?.borrow()).await;
                (commands::fetched(lease.check(reply)?)?, true)
            }
        };
        if let (Some(tracker), Some(epoch), true) = (&self.tracker, epoch, tracked) {
            tracker.remember(KeyBuilder::group_of(key), epoch, fetched.generations);
        }
        Ok(fetched)
    }
}

/// A `GET key` command whose buffers come from a per-thread stack and go back to it: building a `Cmd` costs two
/// allocations and two frees, a measurable share of a 100-byte hit.
struct GetCommand(redis::Cmd);

thread_local! {
    static GET_COMMANDS: std::cell::RefCell<Vec<redis::Cmd>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Commands kept per thread: about the number of hits a thread has in flight at once.
const KEPT_COMMANDS: usize = 64;

impl GetCommand {
    fn new(key: &str) -> Self {
        let mut cmd = GET_COMMANDS
            .with(|c| c.borrow_mut().pop())
            .unwrap_or_else(|| redis::Cmd::with_capacity(2, 3 + key.len()));
        cmd.arg("GET").arg(key);
        GetCommand(cmd)
    }
}

impl Drop for GetCommand {
    fn drop(&mut self) {
        let mut cmd = std::mem::take(&mut self.0);
        cmd.clear();
        GET_COMMANDS.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() < KEPT_COMMANDS {
                c.push(cmd);
            }
        });
    }
}

/// The entries of an `MGET` of `asked` keys sharing `generations`, read from its reply: a key that is not a
/// string reads as absent.
fn entries_of_mget(
    reply: redis::Value,
    asked: usize,
    generations: [u64; 2],
) -> Result<Vec<Fetched>, BackendError> {
    let redis::Value::Array(values) = reply else {
        return Err(BackendError::Other(format!(
            "MGET answered {reply:?}, not an array"
        )));
    };
    if values.len() != asked {
        return Err(BackendError::Other(format!(
            "MGET of {asked} keys answered {} values",
            values.len()
        )));
    }
    Ok(values
        .into_iter()
        .map(|v| Fetched {
            value: match v {
                redis::Value::BulkString(bytes) => Some(Bytes::from(bytes)),
                _ => None,
            },
            generations,
        })
        .collect())
}
