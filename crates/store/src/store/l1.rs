//! The in-process tier (L1): decompressed envelopes of values read from the backend, kept in a byte-bounded
//! moka cache in front of it, for the cache types whose `types.<name>.l1` turns it on (design 0013).
//!
//! A copy is good while two things hold, both checked on every hit:
//! - **nothing changed in Redis**: the backend's [`Watch`], taken *before* the read, is still current — no
//!   announcement of a change of the key, of a generation, or of a lost connection has been handled since. An
//!   announcement of a change that happened after the read was sent is handled after the watch was taken, so
//!   it always retires the copy, however it races the reply and the insertion; no ordering between the read's
//!   task and the connection's push handler is needed. A backend that announces nothing gives copies a life of
//!   `l1.untracked_ttl`.
//! - **nothing changed here**: this process's own writes, deletes and invalidations move a local counter (per
//!   key hash) or the local epoch once the backend has acknowledged them, so a read started before them can
//!   never leave a copy that outlives them — the process reads its own writes at once, before any
//!   announcement arrives.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use fernando_cache_config::{CacheType, L1Settings, TierTable};

use crate::backend::{Coherence, Watch};

/// Local counters of keys written or deleted by this process (a collision only costs another key's copy).
const LOCAL_COUNTERS: usize = 4096;
/// What an entry costs besides its key and envelope (moka's node, the `Arc`, the watch).
const ENTRY_OVERHEAD: usize = 128;

/// The in-process tier.
pub(super) struct L1 {
    cache: moka::sync::Cache<String, Arc<Held>>,
    tiers: TierTable,
    untracked_ttl: Duration,
    /// Moved by this process's invalidations (every copy goes).
    epoch: AtomicU64,
    /// Moved by this process's writes and deletes of a key (its hash's counter).
    counters: Box<[AtomicU64]>,
}

impl std::fmt::Debug for L1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1")
            .field("entries", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .finish_non_exhaustive()
    }
}

/// One copy.
struct Held {
    envelope: Bytes,
    watch: Option<Watch>,
    local: Local,
    life: Duration,
}

/// This process's own changes as of a moment, to compare with later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Local {
    epoch: u64,
    slot: usize,
    count: u64,
}

/// Taken before a backend read whose value may be kept.
pub(super) struct Pending {
    coherence: Coherence,
    local: Local,
    life: Duration,
}

struct Life;

impl moka::Expiry<String, Arc<Held>> for Life {
    fn expire_after_create(&self, _: &String, held: &Arc<Held>, _: Instant) -> Option<Duration> {
        Some(held.life)
    }
}

impl L1 {
    /// The tier `settings` ask for, or `None` when no cache type keeps copies.
    pub(super) fn new(l1: &L1Settings, tiers: &TierTable) -> Option<L1> {
        if !tiers.any_l1() {
            return None;
        }
        let cache = moka::sync::Cache::builder()
            .max_capacity(l1.max_bytes)
            .weigher(|key: &String, held: &Arc<Held>| {
                u32::try_from(key.len() + held.envelope.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(Life)
            .build();
        Some(L1 {
            cache,
            tiers: tiers.clone(),
            untracked_ttl: l1.untracked_ttl,
            epoch: AtomicU64::new(0),
            counters: (0..LOCAL_COUNTERS).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// The longest life of a copy of `cache_type`, if that type keeps copies.
    pub(super) fn life_of(&self, cache_type: &CacheType) -> Option<Duration> {
        let policy = self.tiers.get(cache_type);
        policy.l1.then_some(policy.l1_max_ttl)
    }

    /// The envelope of a good copy of `key`, if one is held; a copy gone out of date is dropped.
    pub(super) fn get(&self, key: &str) -> Option<Bytes> {
        let held = self.cache.get(key)?;
        if held.watch.as_ref().is_none_or(Watch::is_current) && self.local(key) == held.local {
            return Some(held.envelope.clone());
        }
        self.cache.invalidate(key);
        None
    }

    /// Call before reading `key` from the backend (with `coherence` from
    /// [`Storage::watch`](crate::Storage::watch), also taken before); hand the result to [`L1::keep`] with the
    /// value read.
    pub(super) fn before_read(&self, key: &str, coherence: Coherence, life: Duration) -> Pending {
        let life = match coherence {
            Coherence::Untracked => life.min(self.untracked_ttl),
            _ => life,
        };
        Pending {
            coherence,
            local: self.local(key),
            life,
        }
    }

    /// Keeps `envelope` (uncompressed) as the copy of `key`, read after `pending` was taken, unless something
    /// already retired it.
    pub(super) fn keep(&self, key: &str, envelope: Bytes, pending: Pending) {
        let watch = match pending.coherence {
            Coherence::Watched(w) if w.is_current() => Some(w),
            Coherence::Untracked => None,
            _ => return,
        };
        if self.local(key) != pending.local {
            return;
        }
        self.cache.insert(
            key.to_owned(),
            Arc::new(Held {
                envelope,
                watch,
                local: pending.local,
                life: pending.life,
            }),
        );
    }

    /// This process wrote or deleted `key` (acknowledged by the backend): copies read before go.
    pub(super) fn changed(&self, key: &str) {
        self.counters[slot_of(key)].fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(key);
    }

    /// This process invalidated a scope or a pattern (acknowledged by the backend): every copy goes.
    pub(super) fn changed_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }

    fn local(&self, key: &str) -> Local {
        let slot = slot_of(key);
        Local {
            epoch: self.epoch.load(Ordering::SeqCst),
            slot,
            count: self.counters[slot].load(Ordering::SeqCst),
        }
    }
}

fn slot_of(key: &str) -> usize {
    use std::hash::BuildHasher;
    (foldhash::fast::FixedState::with_seed(0x4c31).hash_one(key.as_bytes()) as usize)
        % LOCAL_COUNTERS
}
