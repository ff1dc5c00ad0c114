//! The Redis backends: one server or a Sentinel-watched group ([`RedisBackend`]), and a Redis Cluster
//! ([`ClusterBackend`], `cluster/`). Their Redis commands and scripts are written once, for any connection,
//! in `commands/`.
//!
//! The hot read of one server (`read.rs`) goes over a few long-lived multiplexed connections used in rotation;
//! each slot reconnects by itself after the server restarts (`hot.rs`). With `redis.track_generations` they
//! speak RESP3 and track the generation keys (`tracking.rs`), so a hit is one `GET`; with
//! `redis.auto_pipeline`, `GET`s that find their slot busy share one pipeline (`batch.rs`, over each slot's
//! `queue.rs`). A cluster runs one such hot read per primary (`cluster/direct.rs`). Client errors become
//! backend errors in `error.rs`. Under Sentinel every connect asks the sentinels for the primary of the moment
//! (`endpoint.rs`).
//!
//! Work that wants a connection of its own (SCAN cursors, INFO) checks one out of a deadpool pool (or, under
//! Sentinel, opens one on the primary of the moment). A pool checkout costs an `UNWATCH` + `PING` round trip,
//! which is why it stays off the hot path (see `docs/benchmarks.md`). Construction is in `connect.rs`; one
//! server's [`Storage`](super::Storage) in `storage.rs`. What both topologies do alike — all of
//! [`Coordination`](super::Coordination) and [`Leases`](super::Leases), and the key calls no topology sends its
//! own way — is written once in `shared.rs`, over the seam each topology implements: a connection lent for one
//! call, its failure judged by the topology.

use std::{borrow::Borrow, sync::Arc};

use fernando_cache_keys::GenerationKeys;

mod batch;
mod cluster;
mod commands;
mod connect;
mod endpoint;
mod error;
mod hot;
mod queue;
mod read;
mod shared;
mod storage;
mod tracking;

pub use self::cluster::ClusterBackend;
pub use self::tracking::{TrackedKeys, Watch};
use self::{
    endpoint::{Endpoint, Exclusive, ExclusiveSource},
    read::HotPath,
};
use super::{BackendError, Fetched};

/// A Redis (or Valkey) server.
pub struct RedisBackend {
    /// The hot read (`read.rs`).
    hot: HotPath,
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
            .field("hot", &self.hot)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A connection of its own, for a sweep or `INFO`.
    async fn exclusive(&self) -> Result<Exclusive, BackendError> {
        self.exclusive.get().await
    }

    /// [`Storage::fetch`](super::Storage::fetch) without the boxed future of the trait object; the
    /// store calls it directly on its hot path. The generation keys are built by `generations` only when they
    /// must be read from Redis.
    pub(crate) async fn fetch_unboxed<G: Borrow<GenerationKeys>>(
        &self,
        key: &str,
        generations: impl FnOnce() -> Result<G, BackendError>,
    ) -> Result<Fetched, BackendError> {
        self.hot.fetch(key, generations).await
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
