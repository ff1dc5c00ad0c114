//! [`Storage`], the half of the backend seam every backend has: entries and the generation keys guarding them,
//! each with a TTL — read, written, deleted one by one or by pattern, listed a page at a time — and the
//! backend's own facts. Beside it, the values its calls answer with ([`Fetched`], [`KeyTtl`], [`BackendInfo`],
//! [`ScanPage`]) and how an in-process copy of a value learns that the key changed ([`Coherence`]).

use std::{fmt, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;

use super::{BackendError, ByteLedgers, Watch};

/// What [`Storage::fetch`] read: the entry (if any) and the two invalidation generations it depends on.
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

/// Where a [`Storage::scan`] goes on from: `ScanCursor::default()` at first, then each page's
/// [`ScanPage::next`]. Which fields mean what is the backend's own business; a backend of your own may use them
/// as it likes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanCursor {
    /// Which server of a backend made of several (a cluster's primaries, in address order).
    pub node: usize,
    /// The server's own cursor (Redis `SCAN`'s), 0 at the start of a server.
    pub position: u64,
    /// The last key listed, for a backend that lists in key order (`None`: from the first).
    pub after: Option<String>,
}

/// One key a [`Storage::scan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listed {
    /// The full key.
    pub key: String,
    /// Its remaining life.
    pub ttl: KeyTtl,
    /// The bytes of its value; `None` for a key holding something else (a set, a hash).
    pub size: Option<u64>,
    /// The first bytes of its value as asked for (all of them, or a header's worth), `None` for a key holding
    /// something else.
    pub value: Option<Bytes>,
}

impl Listed {
    /// A listed key, for a backend of your own.
    pub fn new(key: String, ttl: KeyTtl, size: Option<u64>, value: Option<Bytes>) -> Listed {
        Listed {
            key,
            ttl,
            size,
            value,
        }
    }
}

/// A page of a [`Storage::scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanPage {
    /// The keys of this page (possibly none, with more pages to come).
    pub keys: Vec<Listed>,
    /// Where the next page starts; `None` after the last one.
    pub next: Option<ScanCursor>,
}

impl ScanPage {
    /// A page, for a backend of your own.
    pub fn new(keys: Vec<Listed>, next: Option<ScanCursor>) -> ScanPage {
        ScanPage { keys, next }
    }
}

/// What every backend does: keep entries and the generation keys that guard them (lazy invalidation), each
/// with a TTL; read an entry with its generations in one step; delete keys one by one or by pattern; and tell
/// its health and facts. Implement it to put the store on another key-value server, and hand it over with
/// [`Backend::custom`](crate::Backend::custom) (or `Backend::from(Arc<dyn Storage>)`). What replicas sharing
/// the server must agree on — quotas, bounded sets, leases — is the other half of the seam,
/// [`Coordination`](crate::Coordination), which a backend implements only if it can.
///
/// Every key passed in was built by [`fernando_cache_keys::KeyBuilder`]; every write carries a TTL. The
/// methods with a default body are optional refinements (a local backend, tracked generations, announced
/// changes, a stricter read); the defaults are correct for a plain remote key-value server.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug + 'static {
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

    /// Reads entries that share one pair of generation keys (one scope — one shard of it — and one cache
    /// type) and those generations: `keys.len()` answers, in order. Redis sends one `MGET` (with the
    /// generations in the same round trip unless they are tracked); the default reads them one by one.
    async fn fetch_many(
        &self,
        keys: &[&str],
        generations: &GenerationKeys,
    ) -> Result<Vec<Fetched>, BackendError> {
        let mut fetched = Vec::with_capacity(keys.len());
        for key in keys {
            fetched.push(self.fetch(key, generations).await?);
        }
        Ok(fetched)
    }

    /// Like [`Storage::fetch`], but a key holding a non-string value is [`BackendError::WrongType`]. The store
    /// uses it on the miss path of `get_or_compute`, where a round trip is being spent anyway.
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

    /// Stores `value` with a plain write if `stamp` is still the generations [`Storage::known_generations`]
    /// reports. `Ok(false)` when it is not, or when they may have changed before the write landed; the caller
    /// then writes with [`Storage::set`].
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

    /// The value of generation key `key`, made a fresh one first where it has none (never bumped, expired,
    /// evicted, or 0) — in one step on a backend that processes share, so that processes finding it missing at once
    /// agree on one value; by default (a backend one process uses) read, then bumped.
    async fn generation_or_new(&self, key: &str, ttl: Duration) -> Result<u64, BackendError> {
        match self.read_generations(&[key]).await?.first() {
            Some(n) if *n != 0 => Ok(*n),
            _ => self.bump_generation(key, ttl).await,
        }
    }

    /// Deletes every key matching a Redis glob `pattern` — quota ledgers and request counters included, where a
    /// backend keeps them apart from its keys (each counts as one) — in batches of `batch`, each step bounded by
    /// `step_timeout`; returns how many were deleted. With `ledgers` (the byte ledgers the scope's entries are
    /// charged to, see [`Coordination::charge`](crate::Coordination::charge)), each batch's keys leave the
    /// ledger [`ByteLedgers::of`](crate::ByteLedgers::of) names for each — the scope's, or each key's shard's
    /// (design 0024) — as they are deleted ([`ledger_member`](crate::ledger_member) names them), so a sweep
    /// gives the tenant its quota back at once; a backend that keeps no ledgers ignores them.
    async fn delete_matching(
        &self,
        pattern: &str,
        batch: usize,
        step_timeout: Duration,
        ledgers: Option<&ByteLedgers>,
    ) -> Result<u64, BackendError>;

    /// Lists the keys matching a Redis glob `pattern`, a page of about `count` at a time from `cursor` (a page
    /// may hold fewer, even none, and still have a next one), each with its remaining life, its size and the
    /// first `read` bytes of its value (`usize::MAX`: all of it; 0: none) — what a tenant's export reads
    /// (issue 31). A key written or removed while the listing runs may or may not be listed, and on Redis a
    /// key may be listed twice (`SCAN`'s guarantee); a listing never holds more than a page in memory.
    ///
    /// The default, for a backend that cannot list its keys, is an error saying so.
    async fn scan(
        &self,
        pattern: &str,
        cursor: &ScanCursor,
        count: usize,
        read: usize,
    ) -> Result<ScanPage, BackendError> {
        let _ = (pattern, cursor, count, read);
        Err(BackendError::Other(format!(
            "the {} backend cannot list its keys",
            self.kind()
        )))
    }

    /// A cheap liveness check.
    async fn ping(&self) -> Result<(), BackendError>;

    /// Server facts for operators.
    async fn info(&self) -> Result<BackendInfo, BackendError>;
}
