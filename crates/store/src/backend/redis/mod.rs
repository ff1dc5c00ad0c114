//! The Redis backends: one server or a Sentinel-watched group ([`RedisBackend`]), and a Redis Cluster
//! ([`ClusterBackend`], `cluster.rs`). Their commands are written once, for any connection, in `ops.rs`.
//!
//! The hot path (GET, SET, the generation reads) goes over a few long-lived multiplexed connections used in
//! rotation; each slot reconnects by itself after the server restarts (`hot.rs`).
//! With `redis.track_generations` they speak RESP3 and track the generation keys (`tracking.rs`), so
//! a hit is one `GET`; with `redis.auto_pipeline`, `GET`s that find their slot busy share one pipeline
//! (`batch.rs`, over each slot's `queue.rs`). Client errors become backend errors in `error.rs`.
//! Under Sentinel every connect asks the sentinels for the primary of the moment (`endpoint.rs`).
//! Work that wants a connection of its own (SCAN cursors, INFO) checks one out of a deadpool pool (or, under
//! Sentinel, opens one on the primary of the moment). A pool checkout costs an `UNWATCH` + `PING` round trip,
//! which is why it stays off the hot path (see `docs/benchmarks.md`). Construction is in `connect.rs`, the commands of the backend trait in `commands.rs`;
//! this file holds the hot read.

use std::{borrow::Borrow, sync::Arc, time::Duration};

use bytes::Bytes;
use fernando_cache_keys::{GenerationKeys, KeyBuilder};

mod batch;
mod cluster;
mod commands;
mod connect;
mod endpoint;
mod error;
mod hot;
mod ops;
mod queue;
mod tracking;

pub use self::cluster::ClusterBackend;
use self::{
    endpoint::{Endpoint, Exclusive, ExclusiveSource},
    hot::{HotConn, Lease},
    tracking::Tracker,
};
use super::{BackendError, Fetched};

/// A Redis (or Valkey) server.
pub struct RedisBackend {
    conns: Arc<[HotConn]>,
    tracker: Option<Arc<Tracker>>,
    /// `redis.auto_pipeline`: hits go out through `batch.rs`.
    auto_pipeline: bool,
    command_timeout: Duration,
    /// Connections of their own for sweeps and `INFO`.
    exclusive: ExclusiveSource,
    /// Where the lease channel's subscription connects (RESP2; under Sentinel, the primary of the moment).
    listen_endpoint: Arc<Endpoint>,
    listeners: Listeners,
    shown_url: String,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.shown_url)
            .field("multiplexed_connections", &self.conns.len())
            .field("tracks_generations", &self.tracker.is_some())
            .field("auto_pipeline", &self.auto_pipeline)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A connection of the next hot slot (connecting it if needed).
    async fn conn(&self) -> Result<Lease<'_>, BackendError> {
        self.conns[self.pick()].lease().await
    }

    /// A connection of its own, for a sweep or `INFO`.
    async fn exclusive(&self) -> Result<Exclusive, BackendError> {
        self.exclusive.get().await
    }

    /// The next hot slot.
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

    /// [`CacheBackend::fetch`] without the boxed future of the trait object; the store calls it directly on
    /// its hot path. The generation keys are built by `generations` only when they must be read from Redis.
    pub(crate) async fn fetch_unboxed<G: Borrow<GenerationKeys>>(
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

    /// `GET key` on slot `i`, auto-pipelined when configured; `None` when the slot has no connection yet (the
    /// caller then connects through the slow path).
    async fn send_get(&self, i: usize, key: &str) -> Option<Result<Option<Vec<u8>>, BackendError>> {
        let slot = &self.conns[i];
        if self.auto_pipeline
            && slot.gets.busy()
            && slot.is_connected()
            && let Some(reply) = batch::get(&self.conns, i, key, self.command_timeout)
        {
            return Some(reply.await.unwrap_or_else(|_| {
                Err(BackendError::Other(
                    "the pipelined GET was dropped unanswered".into(),
                ))
            }));
        }
        // Nothing else on the wire: sent at once (a lone request would only wait for the batch's task hop).
        let _in_flight = self.auto_pipeline.then(|| slot.gets.sending());
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
        let reply = ops::fetch(&mut lease.conn, key, generations()?.borrow()).await;
        let fetched = ops::fetched(lease.check(reply)?)?;
        if let (Some(tracker), Some(epoch)) = (&self.tracker, epoch) {
            tracker.remember(KeyBuilder::group_of(key), epoch, fetched.generations);
        }
        Ok(fetched)
    }
}

/// The subscription tasks a backend started; they end with it.
#[derive(Default)]
pub(crate) struct Listeners(std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>);

impl Listeners {
    fn add(&self, task: tokio::task::JoinHandle<()>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in self
            .0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
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
