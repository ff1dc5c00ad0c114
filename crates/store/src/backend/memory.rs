//! The in-process backend: a moka cache bounded by bytes, with a TTL per entry ([`Storage`]), and the quota
//! ledgers and windowed counters of `ledger.rs` ([`Coordination`]; no shared leases).
//!
//! It gives the development profile a cache with no server at all, and the same semantics as Redis for
//! everything the store uses (TTLs, generations, glob deletion).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;
use moka::{Expiry, future::Cache};

use super::{
    BackendError, BackendInfo, ByteLedgers, Charge, Coordination, Fetched, KeyTtl, Listed,
    ScanCursor, ScanPage, Storage, WindowCount, glob_match, new_generation, parse_generation,
};

#[derive(Debug, Clone)]
struct Entry {
    bytes: Bytes,
    ttl: Duration,
    expires_at: Instant,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// An in-process cache bounded by the bytes of its keys and values.
#[derive(Clone)]
pub struct MemoryBackend {
    cache: Cache<String, Entry>,
    max_bytes: u64,
    /// Until the first lazy invalidation every generation is 0, and reads need not look any up.
    any_generation: Arc<AtomicBool>,
    /// Quota ledgers and windowed counters.
    ledgers: Arc<super::ledger::Ledgers>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl MemoryBackend {
    /// A cache holding at most `max_bytes` of keys and values (least recently used entries go first).
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Entry| {
                u32::try_from(k.len() + v.bytes.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        MemoryBackend {
            cache,
            max_bytes,
            any_generation: Arc::new(AtomicBool::new(false)),
            ledgers: Arc::default(),
        }
    }

    async fn generations(&self, generations: &GenerationKeys) -> [u64; 2] {
        if !self.any_generation.load(Ordering::Acquire) {
            return [0, 0];
        }
        let scope = self.live(generations.scope()).await;
        let typed = self.live(generations.cache_type()).await;
        [
            parse_generation(scope.as_ref().map(|e| e.bytes.as_ref())),
            parse_generation(typed.as_ref().map(|e| e.bytes.as_ref())),
        ]
    }

    async fn insert(&self, key: &str, bytes: Bytes, ttl: Duration) {
        let entry = Entry {
            bytes,
            ttl,
            expires_at: Instant::now() + ttl,
        };
        self.cache.insert(key.to_owned(), entry).await;
    }

    async fn live(&self, key: &str) -> Option<Entry> {
        self.cache
            .get(key)
            .await
            .filter(|e| e.expires_at > Instant::now())
    }
}

#[async_trait]
impl Storage for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn is_local(&self) -> bool {
        true
    }

    fn generations_in_use(&self) -> bool {
        self.any_generation.load(Ordering::Acquire)
    }

    async fn fetch(
        &self,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        let value = self.live(key).await.map(|e| e.bytes);
        Ok(Fetched {
            value,
            generations: self.generations(generations).await,
        })
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
    ) -> Result<[u64; 2], BackendError> {
        let current = self.generations(generations).await;
        self.insert(key, value, ttl).await;
        Ok(current)
    }

    async fn delete(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let mut n = 0;
        for key in keys {
            if self
                .cache
                .remove(*key)
                .await
                .is_some_and(|e| e.expires_at > Instant::now())
            {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        Ok(self.live(key).await.is_some())
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        Ok(match self.live(key).await {
            None => KeyTtl::Missing,
            Some(e) => KeyTtl::Expires(e.expires_at.saturating_duration_since(Instant::now())),
        })
    }

    async fn read_generations(&self, keys: &[&str]) -> Result<Vec<u64>, BackendError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let entry = self.live(key).await;
            out.push(parse_generation(entry.as_ref().map(|e| e.bytes.as_ref())));
        }
        Ok(out)
    }

    async fn bump_generation(&self, key: &str, ttl: Duration) -> Result<u64, BackendError> {
        let generation = new_generation();
        self.insert(key, Bytes::from(generation.to_string()), ttl)
            .await;
        self.any_generation.store(true, Ordering::Release);
        Ok(generation)
    }

    async fn delete_matching(
        &self,
        pattern: &str,
        _batch: usize,
        _step_timeout: Duration,
        ledgers: Option<&ByteLedgers>,
    ) -> Result<u64, BackendError> {
        let now = Instant::now();
        let doomed: Vec<String> = self
            .cache
            .iter()
            .filter(|(k, e)| e.expires_at > now && glob_match(pattern.as_bytes(), k.as_bytes()))
            .map(|(k, _)| (*k).clone())
            .collect();
        let mut n = 0;
        let mut deleted = Vec::new();
        for key in doomed {
            if self.cache.remove(&key).await.is_some() {
                n += 1;
                if ledgers.is_some() {
                    deleted.push(key);
                }
            }
        }
        if let Some(ledgers) = ledgers {
            for (ledger, keys) in ledgers.group(&deleted) {
                let members: Vec<String> = keys.into_iter().map(super::ledger_member).collect();
                self.ledgers
                    .release(&ledger, members.iter().map(String::as_str));
            }
        }
        // Ledgers are kept beside the entries, under keys of their own: a tenant's erasure reaches them.
        Ok(n + self.ledgers.remove_matching(pattern))
    }

    async fn scan(
        &self,
        pattern: &str,
        cursor: &ScanCursor,
        count: usize,
        read: usize,
    ) -> Result<ScanPage, BackendError> {
        let now = Instant::now();
        let after = cursor.after.as_deref();
        // In key order from `after`: the cache holds no order of its own, so each page looks at every key
        // (bounded by `memory.max_bytes`) and keeps the next `count`.
        let mut found: Vec<(String, Entry)> = self
            .cache
            .iter()
            .filter(|(k, e)| {
                e.expires_at > now
                    && after.is_none_or(|a| k.as_str() > a)
                    && glob_match(pattern.as_bytes(), k.as_bytes())
            })
            .map(|(k, e)| ((*k).clone(), e))
            .collect();
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let more = found.len() > count.max(1);
        found.truncate(count.max(1));
        let next = match found.last() {
            Some((last, _)) if more => Some(ScanCursor {
                after: Some(last.clone()),
                ..ScanCursor::default()
            }),
            _ => None,
        };
        let keys = found
            .into_iter()
            .map(|(key, e)| Listed {
                key,
                ttl: KeyTtl::Expires(e.expires_at.saturating_duration_since(now)),
                size: Some(e.bytes.len() as u64),
                value: Some(e.bytes.slice(..read.min(e.bytes.len()))),
            })
            .collect();
        Ok(ScanPage { keys, next })
    }

    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }

    async fn info(&self) -> Result<BackendInfo, BackendError> {
        self.cache.run_pending_tasks().await;
        Ok(BackendInfo {
            used_memory: Some(self.cache.weighted_size()),
            max_memory: Some(self.max_bytes),
            eviction_policy: Some("lru (moka, bounded by bytes)".to_owned()),
            keys: Some(self.cache.entry_count()),
            ..BackendInfo::default()
        })
    }
}

/// Ledgers and counters kept in process (`ledger.rs`); no shared leases: one process is the only replica, so
/// its stores keep single-flight per process.
#[async_trait]
impl Coordination for MemoryBackend {
    async fn admit(
        &self,
        _key: &str,
        _member: &[u8],
        _limit: u64,
        _ttl: Duration,
    ) -> Result<bool, BackendError> {
        // One process is the only replica: the caller's per-process bound is the bound.
        Ok(true)
    }

    async fn charge(
        &self,
        ledger: &str,
        member: &str,
        bytes: u64,
        expires_in: Duration,
        limit: u64,
    ) -> Result<Charge, BackendError> {
        Ok(self
            .ledgers
            .charge(ledger, member, bytes, expires_in, limit))
    }

    async fn count_in_window(
        &self,
        key: &str,
        add: u64,
        window: Duration,
    ) -> Result<WindowCount, BackendError> {
        Ok(self.ledgers.count_in_window(key, add, window))
    }
}
