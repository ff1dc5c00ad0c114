//! The backend seam: the few raw operations the store needs, implemented by Redis (one server, Sentinel,
//! Cluster), by a local SQLite file shared by the processes of one machine, and by an in-process cache.
//!
//! A backend moves bytes; it knows nothing of types, envelopes, tenants or metrics. Timeouts and the circuit
//! breaker are applied by the store around every call, so a backend may simply wait.

#[cfg(feature = "disk")]
mod disk;
mod glob;
mod ledger;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;

#[cfg(feature = "disk")]
pub use self::disk::DiskBackend;
pub use self::memory::MemoryBackend;
#[cfg(feature = "redis")]
pub use self::redis::{ClusterBackend, RedisBackend, TrackedKeys, Watch};

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
pub(crate) use glob::glob_match;

/// What [`CacheBackend::fetch`] read: the entry (if any) and the two invalidation generations it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The stored envelope, if the key exists.
    pub value: Option<Bytes>,
    /// Current `[scope, cache type]` generations (0 where never bumped).
    pub generations: [u64; 2],
}

/// The remaining life of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// No such key.
    Missing,
    /// The key exists without an expiry (never written by this library).
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

/// Facts about the server, for `cache stats` and health checks. Fields a backend cannot tell are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// Bytes in use.
    pub used_memory: Option<u64>,
    /// Memory limit (0 = none).
    pub max_memory: Option<u64>,
    /// Eviction policy, e.g. `allkeys-lru` or `noeviction`.
    pub eviction_policy: Option<String>,
    /// Keys evicted since start.
    pub evicted_keys: Option<u64>,
    /// Keys stored.
    pub keys: Option<u64>,
    /// Connected clients.
    pub connected_clients: Option<u64>,
    /// Server-side hits since start.
    pub keyspace_hits: Option<u64>,
    /// Server-side misses since start.
    pub keyspace_misses: Option<u64>,
    /// On a cluster, each primary's own facts (the fields above are their sums); empty on one server.
    pub nodes: Vec<NodeInfo>,
}

/// One node's facts, for a backend made of several servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `host:port`.
    pub address: String,
    /// What the node said, or why it said nothing.
    pub info: Result<BackendInfo, String>,
}

/// The member under which an entry is charged in a byte ledger: a short digest of its full key, the same in
/// every process (see [`CacheBackend::charge`]).
pub fn ledger_member(key: &str) -> String {
    format!("{:016x}", crate::hash::fnv1a(key.as_bytes()))
}

/// What [`CacheBackend::charge`] did with a byte ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// Whether the entry was admitted (recorded at its new size); `false`: it would have taken the ledger past
    /// its limit, and nothing changed.
    pub admitted: bool,
    /// The bytes of live entries the ledger holds now.
    pub total: u64,
}

/// A counter over a fixed window ([`CacheBackend::count_in_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// The count in the current window, this call's addition included.
    pub count: u64,
    /// When the current window ends.
    pub resets_in: Duration,
}

/// Why a backend call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The call took longer than the configured command timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The circuit breaker is open: the backend failed repeatedly and is not being called.
    #[error("circuit breaker open after repeated failures")]
    CircuitOpen,
    /// The server could not be reached or the connection broke; the client's error is the source.
    #[error("connection failed: {0}")]
    Connection(#[source] Cause),
    /// A fenced write found its computation's lease held by another process (or lapsed): the value was not
    /// written, so a newer one is never overwritten.
    #[error("the computation's lease passed to another process; the value was not written")]
    LeaseLost,
    /// The key holds a value of another Redis type (a hash, a list…).
    #[error("WRONGTYPE: the key holds a non-string value")]
    WrongType,
    /// Any other server or client error.
    #[error("{0}")]
    Other(String),
}

/// An error kept whole as another error's `source` — the Redis client's behind a [`BackendError`], the store's
/// behind a pipeline error — shared, so the error holding it stays `Clone`, and compared by message, so it
/// stays `Eq`.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Wraps the client's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(error))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

impl BackendError {
    /// Whether the failure says the backend is unhealthy (and so counts towards opening the breaker).
    pub fn is_unavailability(&self) -> bool {
        matches!(
            self,
            BackendError::Timeout(_) | BackendError::Connection(_) | BackendError::CircuitOpen
        )
    }
}

/// How a copy of a value read from a backend, kept in process (L1, design 0013), learns that the key changed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Coherence {
    /// The backend announces every change of the key: the copy is good while the watch is current.
    Watched(Watch),
    /// The backend cannot announce changes: the copy lives `l1.untracked_ttl` at most.
    Untracked,
    /// The backend could announce changes but is not listening right now: keep no copy.
    Unavailable,
}

/// Receives each message of a channel a backend listens to (see [`CacheBackend::listen`]).
pub type OnMessage = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// The raw operations the store is built on. Implement it to put the store on another key-value server.
///
/// Every key passed in was built by [`fernando_cache_keys::KeyBuilder`]; every write carries a TTL.
#[async_trait]
pub trait CacheBackend: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and metrics (`redis`, `memory`).
    fn kind(&self) -> &'static str;

    /// Whether the backend lives in this process and cannot hang (the store then skips the timeout and the
    /// circuit breaker for it).
    fn is_local(&self) -> bool {
        false
    }

    /// Whether reads must pass real generation keys. A backend that knows no generation was ever bumped may
    /// answer `false`; the store then passes [`GenerationKeys::unused`] and saves building them.
    fn generations_in_use(&self) -> bool {
        true
    }

    /// How a copy of `key`'s value, read after this call, would learn that the key changed. Called before the
    /// read. The default, for backends that cannot announce changes, is [`Coherence::Untracked`].
    fn watch(&self, key: &str) -> Coherence {
        let _ = key;
        Coherence::Untracked
    }

    /// Reads an entry and the current values of its two generation keys, in one round trip. This is the hot
    /// path: it may report a key holding a non-string value as absent.
    async fn fetch(&self, key: &str, generations: &GenerationKeys)
    -> Result<Fetched, BackendError>;

    /// Like [`CacheBackend::fetch`], but a key holding a non-string value is [`BackendError::WrongType`]. The
    /// store uses it on the miss path of `get_or_compute`, where a round trip is being spent anyway.
    async fn fetch_checked(
        &self,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        self.fetch(key, generations).await
    }

    /// Stores `value` under `key` for `ttl` (replacing whatever is there, of any type), and returns the
    /// `[scope, cache type]` generations as they were just before the write, read in the same round trip.
    ///
    /// The store stamps a guess of the generations into `value`; if the returned ones differ, it writes again
    /// with them, so an entry is never stored under generations that were already stale when it was written.
    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
    ) -> Result<[u64; 2], BackendError>;

    /// The `[scope, cache type]` generations of `key` that this backend knows to be current without a round
    /// trip (Redis generation tracking, design 0007), if it knows them.
    fn known_generations(&self, key: &str) -> Option<[u64; 2]> {
        let _ = key;
        None
    }

    /// Stores `value` with a plain write if `stamp` is still the generations [`CacheBackend::known_generations`]
    /// reports. `Ok(false)` when it is not, or when they may have changed before the write landed; the caller
    /// then writes with [`CacheBackend::set`].
    async fn set_known(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        stamp: [u64; 2],
    ) -> Result<bool, BackendError> {
        let _ = (key, value, ttl, stamp);
        Ok(false)
    }

    /// Removes keys; returns how many existed.
    async fn delete(&self, keys: &[&str]) -> Result<u64, BackendError>;

    /// Whether a key exists.
    async fn exists(&self, key: &str) -> Result<bool, BackendError>;

    /// The remaining life of a key.
    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError>;

    /// The current values of generation keys (0 where never bumped), in one round trip — a tagged entry's tags
    /// (design 0014). On a cluster, the keys share one slot (one scope).
    async fn read_generations(&self, keys: &[&str]) -> Result<Vec<u64>, BackendError>;

    /// Sets a generation key to a fresh random value (O(1)); returns it. `ttl` outlives every entry it guards.
    async fn bump_generation(&self, key: &str, ttl: Duration) -> Result<u64, BackendError>;

    /// Deletes every key matching a Redis glob `pattern`, in batches of `batch`, each step bounded by
    /// `step_timeout`; returns how many were deleted. With a `ledger` (the scope's byte ledger, see
    /// [`CacheBackend::charge`]), each batch's keys leave it as they are deleted ([`ledger_member`] names
    /// them), so a sweep gives the tenant its quota back at once.
    async fn delete_matching(
        &self,
        pattern: &str,
        batch: usize,
        step_timeout: Duration,
        ledger: Option<&str>,
    ) -> Result<u64, BackendError>;

    /// Adds `member` to the set at `key` unless the set already holds `limit` other members, atomically, and
    /// keeps the set for `ttl` after its last addition. Returns whether `member` is in the set now. Replicas
    /// sharing a server share the bound (the HTTP layer's variant budget).
    ///
    /// A backend in process may answer `true` always: the caller's per-process bound is then the bound. The
    /// default is an error, which callers treat as "no shared bound here".
    async fn admit(
        &self,
        key: &str,
        member: &[u8],
        limit: u64,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let _ = (key, member, limit, ttl);
        Err(BackendError::Other(format!(
            "the {} backend keeps no shared bounded sets",
            self.kind()
        )))
    }

    /// Records in the byte ledger `ledger` that `member` (an entry's digest) holds `bytes` for `expires_in`,
    /// replacing what it held, unless that grows the live total past `limit` (0: no limit). Members whose time
    /// has passed leave the total first. Atomic, so replicas sharing the backend share the bound; a ledger
    /// lives as long as its longest-lived member. With `member` empty, only sweeps and reports the total.
    ///
    /// The default is an error: a backend without ledgers cannot enforce byte quotas.
    async fn charge(
        &self,
        ledger: &str,
        member: &str,
        bytes: u64,
        expires_in: Duration,
        limit: u64,
    ) -> Result<Charge, BackendError> {
        let _ = (ledger, member, bytes, expires_in, limit);
        Err(BackendError::Other(format!(
            "the {} backend keeps no quota ledgers",
            self.kind()
        )))
    }

    /// Adds `add` to the counter `key` of a fixed `window` (started by the first addition) and returns the
    /// count and when the window ends; `add` 0 only reads. Atomic and shared like [`CacheBackend::charge`].
    async fn count_in_window(
        &self,
        key: &str,
        add: u64,
        window: Duration,
    ) -> Result<WindowCount, BackendError> {
        let _ = (key, add, window);
        Err(BackendError::Other(format!(
            "the {} backend keeps no windowed counters",
            self.kind()
        )))
    }

    /// Whether leases taken here are seen by every process sharing the cache (so cross-process single-flight
    /// can use them). An in-process backend answers `false`, and its store keeps single-flight per process.
    fn shares_leases(&self) -> bool {
        false
    }

    /// Takes the lease `key` for `token` unless someone holds it (`SET NX PX`). `Ok(true)` when taken.
    async fn acquire_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let _ = (key, token, ttl);
        Err(no_leases(self.kind()))
    }

    /// Extends the lease if `token` still holds it. `Ok(false)` when it does not.
    async fn renew_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let _ = (key, token, ttl);
        Err(no_leases(self.kind()))
    }

    /// Ends the lease if `token` still holds it, and announces that on `channel` (payload: `key`) so waiting
    /// processes look again at once.
    async fn release_lease(
        &self,
        key: &str,
        token: &str,
        channel: &str,
    ) -> Result<(), BackendError> {
        let _ = (key, token, channel);
        Err(no_leases(self.kind()))
    }

    /// [`CacheBackend::set`], done only while `token` holds the lease `lease` — checked on the server in the
    /// same step — so a process whose lease lapsed cannot overwrite a newer value. `Ok(None)` when fenced out.
    async fn set_fenced(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
        lease: (&str, &str),
    ) -> Result<Option<[u64; 2]>, BackendError> {
        let _ = (key, value, ttl, generations, lease);
        Err(no_leases(self.kind()))
    }

    /// Starts delivering every message published on `channel` to `on_message`, for as long as the backend
    /// lives, reconnecting by itself. A message may be lost while a connection is down; callers bound their
    /// waits.
    fn listen(&self, channel: &str, on_message: OnMessage) -> Result<(), BackendError> {
        let _ = (channel, on_message);
        Err(no_leases(self.kind()))
    }

    /// A cheap liveness check.
    async fn ping(&self) -> Result<(), BackendError>;

    /// Server facts for operators.
    async fn info(&self) -> Result<BackendInfo, BackendError>;
}

/// The backend a store runs on: the built-in ones by name — so the hot read reaches Redis's own unboxed fetch —
/// or a user's own behind [`CacheBackend`]. Every other call goes through the trait.
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
    /// A user's own backend.
    Custom(Arc<dyn CacheBackend>),
}

impl Backend {
    /// The backend as the trait, for every call but the hot fetch.
    pub(crate) fn ops(&self) -> &dyn CacheBackend {
        match self {
            #[cfg(feature = "redis")]
            Backend::Redis(b) => b.as_ref(),
            #[cfg(feature = "redis")]
            Backend::Cluster(b) => b.as_ref(),
            #[cfg(feature = "disk")]
            Backend::Disk(b) => b.as_ref(),
            Backend::Memory(b) => b.as_ref(),
            Backend::Custom(b) => b.as_ref(),
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

impl From<Arc<dyn CacheBackend>> for Backend {
    fn from(b: Arc<dyn CacheBackend>) -> Self {
        Backend::Custom(b)
    }
}

/// What the lease calls of a backend without shared leases answer.
fn no_leases(kind: &str) -> BackendError {
    BackendError::Other(format!("the {kind} backend keeps no shared leases"))
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
