//! [`Coordination`], the half of the backend seam that only some backends have: what the replicas sharing a
//! backend must agree on — bounded sets, byte ledgers, windowed counters — and, through it, the shared
//! [`Leases`] of cross-process single-flight with their announcements. Beside them, the values those calls
//! answer with ([`Charge`], [`WindowCount`]), the name of an entry in a ledger ([`ledger_member`]) and the
//! ledgers a sweep's keys were charged to ([`ByteLedgers`]).
//!
//! Who has what: Redis (one server, Sentinel, Cluster) has all of it; the disk and in-process backends keep
//! ledgers and counters but share no leases (`leases()` is `None`); a user's storage-only backend has none of
//! it, and the store falls back as [`Coordination`] says.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::{GenerationKeys, KeyBuilder};

use super::BackendError;

/// The member under which an entry is charged in a byte ledger: a short digest of its full key, the same in
/// every process (see [`Coordination::charge`]).
pub fn ledger_member(key: &str) -> String {
    format!("{:016x}", crate::hash::fnv1a(key.as_bytes()))
}

/// The byte ledgers the keys a sweep deletes were charged to
/// ([`Storage::delete_matching`](crate::Storage::delete_matching)): each entry key's own — its scope's, or its
/// shard's for a tenant spread over several hash tags (design 0024) — named from the key by the store's key
/// builder, so a backend needs to know nothing of the key layout.
#[derive(Debug, Clone)]
pub struct ByteLedgers {
    keys: KeyBuilder,
}

impl ByteLedgers {
    /// The ledgers of the entries `keys` builds.
    pub(crate) fn new(keys: KeyBuilder) -> Self {
        ByteLedgers { keys }
    }

    /// The ledger the entry `key` was charged to; `None` for a key that is no entry of the store's namespace
    /// (nothing to release).
    pub fn of(&self, key: &str) -> Option<String> {
        self.keys.byte_ledger_of(key)
    }

    /// `keys` grouped by the ledger each was charged to, in the order the ledgers are first met, for one
    /// release per ledger (usually a single group: a sweep stays within one scope, and on one shard per slot).
    /// Keys with no ledger are left out.
    pub fn group<'k, K: AsRef<str>>(&self, keys: &'k [K]) -> Vec<(String, Vec<&'k str>)> {
        let mut groups: Vec<(String, Vec<&'k str>)> = Vec::new();
        for key in keys {
            let key = key.as_ref();
            let Some(ledger) = self.of(key) else {
                continue;
            };
            match groups.iter_mut().find(|(l, _)| *l == ledger) {
                Some((_, members)) => members.push(key),
                None => groups.push((ledger, vec![key])),
            }
        }
        groups
    }
}

/// What [`Coordination::charge`] did with a byte ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// Whether the entry was admitted (recorded at its new size); `false`: it would have taken the ledger past
    /// its limit, and nothing changed.
    pub admitted: bool,
    /// The bytes of live entries the ledger holds now.
    pub total: u64,
}

/// A counter over a fixed window ([`Coordination::count_in_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// The count in the current window, this call's addition included.
    pub count: u64,
    /// When the current window ends.
    pub resets_in: Duration,
}

/// Receives each message of a channel a backend listens to (see [`Leases::listen`]).
pub type OnMessage = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// What the replicas sharing a backend agree on through it, each decision atomic on the backend: bounded sets
/// (the HTTP layer's variant budgets), byte ledgers (tenant byte quotas, design 0017) and windowed counters
/// (tenant request quotas) — and, where every process sees the same ones, [`Leases`].
///
/// A backend without it — a user's own [`Storage`](crate::Storage) handed over alone — leaves the store to
/// what it does when these calls fail: a write under a byte quota is dropped (a quota that cannot be checked is
/// not waived), a request quota lets the request through and counts it as degraded, `admit` is
/// [`StoreError::Unavailable`](crate::StoreError::Unavailable) (the HTTP layer keeps its per-process bound),
/// and single-flight stays per process.
#[async_trait]
pub trait Coordination: Send + Sync + fmt::Debug + 'static {
    /// Adds `member` to the set at `key` unless the set already holds `limit` other members, atomically, and
    /// keeps the set for `ttl` after its last addition. Returns whether `member` is in the set now. Replicas
    /// sharing a server share the bound (the HTTP layer's variant budget).
    ///
    /// A backend in process may answer `true` always: the caller's per-process bound is then the bound.
    async fn admit(
        &self,
        key: &str,
        member: &[u8],
        limit: u64,
        ttl: Duration,
    ) -> Result<bool, BackendError>;

    /// Records in the byte ledger `ledger` that `member` (an entry's digest, [`ledger_member`]) holds `bytes`
    /// for `expires_in`, replacing what it held, unless that grows the live total past `limit` (0: no limit).
    /// Members whose time has passed leave the total first. Atomic, so replicas sharing the backend share the
    /// bound; a ledger lives as long as its longest-lived member. With `member` empty, only sweeps and reports
    /// the total.
    async fn charge(
        &self,
        ledger: &str,
        member: &str,
        bytes: u64,
        expires_in: Duration,
        limit: u64,
    ) -> Result<Charge, BackendError>;

    /// Adds `add` to the counter `key` of a fixed `window` (started by the first addition) and returns the
    /// count and when the window ends; `add` 0 only reads. Atomic and shared like [`Coordination::charge`].
    async fn count_in_window(
        &self,
        key: &str,
        add: u64,
        window: Duration,
    ) -> Result<WindowCount, BackendError>;

    /// The backend's leases, if every process sharing the cache sees the same ones (so cross-process
    /// single-flight and refresh claims can use them). `None`, the default: an in-process or single-file
    /// backend, whose stores keep single-flight per process.
    fn leases(&self) -> Option<&dyn Leases> {
        None
    }

    /// The backend's shared [`Streams`](crate::Streams), which replication between regions is carried on
    /// (design 0026). `None`, the default: a backend no other region could read.
    fn streams(&self) -> Option<&dyn super::Streams> {
        None
    }
}

/// Leases seen by every process sharing the backend (design 0011): taken, renewed and released by token, a
/// write fenced by one, and the channel on which a release is announced so that waiting processes look again at
/// once. Reached through [`Coordination::leases`].
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes the lease `key` for `token` unless someone holds it (`SET NX PX`). `Ok(true)` when taken.
    async fn acquire_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError>;

    /// Extends the lease if `token` still holds it. `Ok(false)` when it does not.
    async fn renew_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError>;

    /// Ends the lease if `token` still holds it, and announces that on `channel` (payload: `key`) so waiting
    /// processes look again at once.
    async fn release_lease(
        &self,
        key: &str,
        token: &str,
        channel: &str,
    ) -> Result<(), BackendError>;

    /// [`Storage::set`](crate::Storage::set), done only while `token` holds the lease `lease` — checked on the
    /// server in the same step — so a process whose lease lapsed cannot overwrite a newer value. `Ok(None)`
    /// when fenced out.
    async fn set_fenced(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
        lease: (&str, &str),
    ) -> Result<Option<[u64; 2]>, BackendError>;

    /// Starts delivering every message published on `channel` to `on_message`, for as long as the backend
    /// lives, reconnecting by itself. A message may be lost while a connection is down; callers bound their
    /// waits.
    ///
    /// # Errors
    /// When the subscription cannot be started at all; the store's waiters then poll.
    fn listen(&self, channel: &str, on_message: OnMessage) -> Result<(), BackendError>;
}
