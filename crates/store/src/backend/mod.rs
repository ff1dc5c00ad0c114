//! The backend seam: what the store needs of the server it runs on, in two traits. [`Storage`] keeps entries
//! and their generation keys — every backend has it. [`Coordination`] keeps what the replicas sharing a
//! backend must agree on — bounded sets, byte ledgers, windowed counters — and, where every process sees the
//! same ones, the [`Leases`] of cross-process single-flight. Built in: Redis (one server, Sentinel, Cluster;
//! all of it), a local SQLite file shared by the processes of one machine, and an in-process cache (both:
//! storage, ledgers and counters, no shared leases).
//!
//! A backend moves bytes; it knows nothing of types, envelopes, tenants or metrics. Timeouts and the circuit
//! breaker are applied by the store around every call, so a backend may simply wait. This file holds the
//! [`Backend`] the store runs on and the generation values every backend stores; `storage.rs` and
//! `coordination.rs` the two traits, `error.rs` their error.

mod coordination;
#[cfg(feature = "disk")]
mod disk;
mod error;
mod ledger;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod storage;
mod streams;

use std::sync::Arc;

pub use self::coordination::{
    ByteLedgers, Charge, Coordination, Leases, OnMessage, WindowCount, ledger_member,
};
#[cfg(feature = "disk")]
pub use self::disk::DiskBackend;
pub use self::error::{BackendError, Cause};
pub use self::memory::MemoryBackend;
#[cfg(feature = "redis")]
pub use self::redis::{ClusterBackend, RedisBackend, TrackedKeys, Watch};
pub use self::storage::{
    BackendInfo, Coherence, Fetched, KeyTtl, Listed, NodeInfo, ScanCursor, ScanPage, Storage,
};
pub use self::streams::{NewEntries, StreamEntry, Streams, Versioned};

/// Without the `redis` feature no backend announces changes: a watch cannot exist.
#[cfg(not(feature = "redis"))]
#[derive(Debug, Clone)]
pub struct Watch(std::convert::Infallible);

#[cfg(not(feature = "redis"))]
impl Watch {
    /// Whether no change of the key has been announced since the watch was taken (never called: no watch
    /// exists in this build).
    pub fn is_current(&self) -> bool {
        match self.0 {}
    }
}
pub(crate) use fernando_cache_keys::glob_match;

/// The backend a store runs on: the built-in ones by name — so the hot read reaches Redis's own unboxed fetch
/// — or a user's own, as a [`Storage`] and, if it has one, a [`Coordination`]. Every call but the hot read
/// goes through the two traits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Backend {
    #[cfg(feature = "redis")]
    /// Redis or Valkey: one server, or the primary of a Sentinel-watched group.
    Redis(Arc<RedisBackend>),
    #[cfg(feature = "redis")]
    /// A Redis Cluster.
    Cluster(Arc<ClusterBackend>),
    #[cfg(feature = "disk")]
    /// A local SQLite file, shared by the processes of one machine.
    Disk(Arc<DiskBackend>),
    /// The in-process cache.
    Memory(Arc<MemoryBackend>),
    /// A user's own backend, made with [`Backend::custom`].
    #[non_exhaustive]
    Custom {
        /// Where entries and generations live.
        storage: Arc<dyn Storage>,
        /// What replicas sharing the storage agree on; `None` leaves the store to its fallbacks (see
        /// [`Coordination`]).
        coordination: Option<Arc<dyn Coordination>>,
    },
}

impl Backend {
    /// A user's own backend: `storage`, and `coordination` when the server can keep quotas, bounded sets or
    /// leases for every replica sharing it. One value implementing both traits is passed twice
    /// (`Backend::custom(b.clone(), Some(b))`).
    pub fn custom(storage: Arc<dyn Storage>, coordination: Option<Arc<dyn Coordination>>) -> Self {
        Backend::Custom {
            storage,
            coordination,
        }
    }

    /// Where entries and generations live: every call but the hot read of the Redis backends.
    pub(crate) fn storage(&self) -> &dyn Storage {
        match self {
            #[cfg(feature = "redis")]
            Backend::Redis(b) => b.as_ref(),
            #[cfg(feature = "redis")]
            Backend::Cluster(b) => b.as_ref(),
            #[cfg(feature = "disk")]
            Backend::Disk(b) => b.as_ref(),
            Backend::Memory(b) => b.as_ref(),
            Backend::Custom { storage, .. } => storage.as_ref(),
        }
    }

    /// What the replicas sharing this backend agree on, if it keeps any.
    pub(crate) fn coordination(&self) -> Option<&dyn Coordination> {
        match self {
            #[cfg(feature = "redis")]
            Backend::Redis(b) => Some(b.as_ref()),
            #[cfg(feature = "redis")]
            Backend::Cluster(b) => Some(b.as_ref()),
            #[cfg(feature = "disk")]
            Backend::Disk(b) => Some(b.as_ref()),
            Backend::Memory(b) => Some(b.as_ref()),
            Backend::Custom { coordination, .. } => coordination.as_deref(),
        }
    }

    /// The coordination a call needs, or the error the call answers without it: the backend keeps no `what`
    /// (`"quota ledgers"`, `"shared bounded sets"`…). The store treats that error as it treats an
    /// unavailable backend.
    pub(crate) fn coordination_for(&self, what: &str) -> Result<&dyn Coordination, BackendError> {
        self.coordination().ok_or_else(|| self.lacks(what))
    }

    /// Leases shared by every process on this backend, if it has them.
    pub(crate) fn leases(&self) -> Option<&dyn Leases> {
        self.coordination()?.leases()
    }

    /// The streams replication between regions is carried on (design 0026), or why this backend has none.
    pub(crate) fn streams(&self) -> Result<&dyn Streams, BackendError> {
        self.coordination()
            .and_then(|c| c.streams())
            .ok_or_else(|| self.lacks("streams for replication"))
    }

    /// The error of a call this backend cannot answer: it keeps no `what`.
    pub(crate) fn lacks(&self, what: &str) -> BackendError {
        BackendError::Other(format!(
            "the {} backend keeps no {what}",
            self.storage().kind()
        ))
    }

    /// [`Storage::delete_matching`] with this backend scanning and `deleter` deleting: an `acl` tenant's sweep
    /// (design 0023), whose `SCAN` runs as the shared user — it is not filtered by key patterns — and whose
    /// deletes run as the tenant's. Two backends of different kinds cannot share a deployment: the deleter then
    /// sweeps alone.
    pub(crate) async fn delete_matching_as(
        &self,
        deleter: &Backend,
        pattern: &str,
        batch: usize,
        step_timeout: std::time::Duration,
        ledgers: Option<&ByteLedgers>,
    ) -> Result<u64, BackendError> {
        match (self, deleter) {
            #[cfg(feature = "redis")]
            (Backend::Redis(scan), Backend::Redis(delete)) => {
                scan.delete_matching_as(delete, pattern, batch, step_timeout, ledgers)
                    .await
            }
            #[cfg(feature = "redis")]
            (Backend::Cluster(scan), Backend::Cluster(delete)) => {
                scan.delete_matching_as(delete, pattern, batch, step_timeout, ledgers)
                    .await
            }
            _ => {
                deleter
                    .storage()
                    .delete_matching(pattern, batch, step_timeout, ledgers)
                    .await
            }
        }
    }

    /// The Redis user this deployment's connections run as (`ACL WHOAMI`).
    pub(crate) async fn acl_whoami(&self) -> Result<String, BackendError> {
        match self {
            #[cfg(feature = "redis")]
            Backend::Redis(b) => b.acl_whoami().await,
            #[cfg(feature = "redis")]
            Backend::Cluster(b) => b.acl_whoami().await,
            _ => Err(self.lacks("Redis ACL users")),
        }
    }

    /// `ACL SETUSER` of `args` (the user, then its rules) and `password` (the `>…` rule) on this Redis
    /// deployment: its server, its Sentinel-named primary, or every node of its cluster.
    pub(crate) async fn set_acl_user(
        &self,
        args: &[String],
        password: &str,
    ) -> Result<(), BackendError> {
        match self {
            #[cfg(feature = "redis")]
            Backend::Redis(b) => b.set_acl_user(args, password).await,
            #[cfg(feature = "redis")]
            Backend::Cluster(b) => b.set_acl_user(args, password).await,
            _ => {
                let _ = (args, password);
                Err(self.lacks("Redis ACL users"))
            }
        }
    }
}

#[cfg(feature = "redis")]
impl From<RedisBackend> for Backend {
    fn from(b: RedisBackend) -> Self {
        Backend::Redis(Arc::new(b))
    }
}

#[cfg(feature = "redis")]
impl From<ClusterBackend> for Backend {
    fn from(b: ClusterBackend) -> Self {
        Backend::Cluster(Arc::new(b))
    }
}

#[cfg(feature = "disk")]
impl From<DiskBackend> for Backend {
    fn from(b: DiskBackend) -> Self {
        Backend::Disk(Arc::new(b))
    }
}

impl From<MemoryBackend> for Backend {
    fn from(b: MemoryBackend) -> Self {
        Backend::Memory(Arc::new(b))
    }
}

/// A user's storage alone, without coordination: [`Backend::custom`]`(storage, None)`.
impl From<Arc<dyn Storage>> for Backend {
    fn from(storage: Arc<dyn Storage>) -> Self {
        Backend::custom(storage, None)
    }
}

/// Decodes a stored generation: a decimal number, or (for anything else) a hash of the bytes, so a garbled
/// generation key still yields one consistent value.
pub(crate) fn parse_generation(bytes: Option<&[u8]>) -> u64 {
    match bytes {
        None => 0,
        Some(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| crate::hash::fnv1a(b)),
    }
}

/// A fresh non-zero generation.
pub(crate) fn new_generation() -> u64 {
    loop {
        let g: u64 = rand::random();
        if g != 0 {
            return g;
        }
    }
}
