//! The disk backend: one SQLite file in WAL mode, the development default, that outlives the process and is
//! shared by every process that opens it (`serve` while `process` runs, two `process` runs). It is a
//! [`Storage`] and a [`Coordination`] — quota ledgers and windowed counters in the file — without shared
//! leases: nothing announces a release across processes.
//!
//! Why SQLite (docs/dependencies.md): it is the one embedded engine among those considered (redb, fjall,
//! foyer's disk tier) that supports several processes on one file — the others take an exclusive lock — and the
//! workspace already builds it. WAL mode lets readers run beside one writer; every write is one transaction,
//! so a process killed mid-write leaves the previous value or none, never a torn one (and an envelope that
//! does not decode is still a counted, removed miss in the store).
//!
//! Layout (format 1, `PRAGMA user_version`; `application_id` marks the file as ours): `entries` (key, value,
//! expiry in Unix ms, size), `generations` (key, value, expiry) apart from the entries so eviction never drops
//! one — a lost generation would make lazily invalidated entries readable again — and `totals`, the bytes of
//! all entries, kept by triggers in the same transactions; the quota ledgers are `quota_ledger` and `quota_windows`
//! (`ledger.rs`). Entries are listed a page at a time in key order (`listing.rs`). Past `disk.max_bytes` a write
//! evicts the expired entries, then those closest to expiry (Redis's `volatile-ttl`), down to 90 %. A file of an
//! older format is emptied and recreated (it is a cache); one of a newer format, or not ours, is refused with a
//! clear error.
//! The file holds every tenant's values, so its folder is `0700` and the file, its WAL and `-shm` `0600`
//! (`files.rs`).
//!
//! Calls run on tokio's blocking threads over a few pooled connections; the store's deadline bounds each call,
//! and SQLite's busy timeout bounds how long one waits for another process's write. Design 0012.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_config::DiskSettings;
use fernando_cache_keys::GenerationKeys;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{
    BackendError, BackendInfo, ByteLedgers, Charge, Coordination, Fetched, KeyTtl, ScanCursor,
    ScanPage, Storage, WindowCount, glob_match, new_generation,
};

mod files;
mod generations;
mod ledger;
mod listing;
mod schema;

use generations::{generation, read_generations};
use schema::prepare;

/// Connections kept open per backend (and calls in flight at once).
const CONNECTIONS: usize = 8;
/// Every this many writes, a write also removes expired rows.
const SWEEP_EVERY: u64 = 256;
/// Expired rows removed per step of a sweep.
const STEP_ROWS: i64 = 256;
/// Rows evicted per step: few, so an eviction stops close to its target.
const EVICT_ROWS: i64 = 16;

/// A cache in one local SQLite file.
pub struct DiskBackend {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    max_bytes: u64,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    /// Bounds the calls in flight (each holds a connection on a blocking thread).
    permits: tokio::sync::Semaphore,
    writes: AtomicU64,
}

impl std::fmt::Debug for DiskBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBackend")
            .field("path", &self.inner.path)
            .field("max_bytes", &self.inner.max_bytes)
            .finish_non_exhaustive()
    }
}

impl DiskBackend {
    /// Opens (creating when missing) the cache file `settings.path`, waiting at most `busy_timeout` for another
    /// process's write at each step. The folder and the files are made the owner's alone (`files.rs`).
    ///
    /// # Errors
    /// [`BackendError::Other`] naming the file when it cannot be created or opened, is readable by other users
    /// and cannot be narrowed, is not a fernando-cache file, or was written by a newer version.
    pub fn open(settings: &DiskSettings, busy_timeout: Duration) -> Result<Self, BackendError> {
        let path = PathBuf::from(&settings.path);
        // Before SQLite opens it: the WAL and -shm files copy the database file's mode.
        files::create(&path)?;
        let inner = Inner {
            path,
            max_bytes: settings.max_bytes,
            busy_timeout,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(CONNECTIONS),
            writes: AtomicU64::new(0),
        };
        let conn = inner.connect()?;
        prepare(&conn).map_err(|e| inner.error(e))?;
        // Only once the file is known to be ours: what an earlier version left open to others is narrowed.
        files::narrow(&inner.path)?;
        inner.give_back(conn);
        Ok(DiskBackend {
            inner: Arc::new(inner),
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a pooled connection on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &Inner) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, BackendError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| BackendError::Other("the disk cache is closed".into()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.take()?;
            let result = f(&mut conn, &inner).map_err(|e| inner.error(e));
            inner.give_back(conn);
            result
        })
        .await
        .map_err(|e| BackendError::Other(format!("a disk cache call panicked: {e}")))?
    }
}

impl Inner {
    fn connect(&self) -> Result<Connection, BackendError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.error(e))?;
        conn.busy_timeout(self.busy_timeout)
            .map_err(|e| self.error(e))?;
        // WAL: readers beside one writer, across processes. NORMAL: a transaction is durable once the WAL is
        // checkpointed; a process crash (not a power loss) never loses a committed one.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.error(e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.error(e))?;
        Ok(conn)
    }

    fn take(&self) -> Result<Connection, BackendError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < CONNECTIONS {
            idle.push(conn);
        }
    }

    /// An SQLite error as a backend error naming the file: a lock held too long by another process is an
    /// unavailability (the read misses, the write is dropped), anything else a plain error.
    fn error(&self, e: rusqlite::Error) -> BackendError {
        let what = format!("disk cache {}: {e}", self.path.display());
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                BackendError::Connection(super::Cause::new(std::io::Error::other(what)))
            }
            _ => BackendError::Other(what),
        }
    }
}

/// Milliseconds since the Unix epoch: expiries are wall-clock times, shared by every process on the machine.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn expiry(ttl: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// Removes expired rows, a step at a time.
fn sweep_expired(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM entries WHERE rowid IN \
         (SELECT rowid FROM entries WHERE expires_at <= ?1 LIMIT ?2)",
        params![now, STEP_ROWS],
    )?;
    conn.execute(
        "DELETE FROM generations WHERE key IN \
         (SELECT key FROM generations WHERE expires_at <= ?1 LIMIT ?2)",
        params![now, STEP_ROWS],
    )?;
    Ok(())
}

/// Past `max_bytes`: evicts expired entries, then those closest to expiry, down to 90 % of it.
fn evict(conn: &Connection, max_bytes: u64, now: i64) -> rusqlite::Result<()> {
    let total = |conn: &Connection| -> rusqlite::Result<u64> {
        let bytes: i64 =
            conn.query_row("SELECT bytes FROM totals WHERE id = 1", [], |r| r.get(0))?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    };
    if total(conn)? <= max_bytes {
        return Ok(());
    }
    let target = max_bytes / 10 * 9;
    sweep_expired(conn, now)?;
    while total(conn)? > target {
        let removed = conn.execute(
            "DELETE FROM entries WHERE rowid IN \
             (SELECT rowid FROM entries ORDER BY expires_at LIMIT ?1)",
            params![EVICT_ROWS],
        )?;
        if removed == 0 {
            break;
        }
    }
    Ok(())
}

/// The literal start of a Redis glob: every key it matches begins with it.
pub(super) fn literal_prefix(pattern: &str) -> String {
    let mut prefix = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' | '[' => break,
            '\\' => match chars.next() {
                Some(escaped) => prefix.push(escaped),
                None => break,
            },
            c => prefix.push(c),
        }
    }
    prefix
}

/// Keys of `table` that start with `prefix`, by a range scan of its key index.
fn keys_from(
    conn: &Connection,
    table: &str,
    prefix: &str,
    now: i64,
) -> rusqlite::Result<Vec<String>> {
    // Text compares bytewise: every key that starts with `prefix` lies in [prefix, prefix + U+10FFFF).
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT key FROM {table} WHERE key >= ?1 AND key < ?2 AND substr(key, 1, length(?1)) = ?1 \
         AND expires_at > ?3"
    ))?;
    let upper = format!("{prefix}\u{10FFFF}");
    let rows = stmt.query_map(params![prefix, upper, now], |r| r.get::<_, String>(0))?;
    rows.collect()
}

#[async_trait]
impl Storage for DiskBackend {
    fn kind(&self) -> &'static str {
        "disk"
    }

    async fn fetch(
        &self,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        let key = key.to_owned();
        let gens = [
            generations.scope().to_owned(),
            generations.cache_type().to_owned(),
        ];
        self.run(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT (SELECT value FROM entries WHERE key = ?1 AND expires_at > ?4), \
                        (SELECT value FROM generations WHERE key = ?2 AND expires_at > ?4), \
                        (SELECT value FROM generations WHERE key = ?3 AND expires_at > ?4)",
            )?;
            stmt.query_row(params![key, gens[0], gens[1], now_ms()], |r| {
                Ok(Fetched {
                    value: r.get::<_, Option<Vec<u8>>>(0)?.map(Bytes::from),
                    generations: [generation(r.get(1)?), generation(r.get(2)?)],
                })
            })
        })
        .await
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
    ) -> Result<[u64; 2], BackendError> {
        let key = key.to_owned();
        let gens = [
            generations.scope().to_owned(),
            generations.cache_type().to_owned(),
        ];
        self.run(move |conn, inner| {
            let now = now_ms();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = read_generations(&tx, &gens, now)?;
            let size = i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX);
            tx.prepare_cached(
                "INSERT INTO entries (key, value, expires_at, size) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, \
                 size = excluded.size",
            )?
            .execute(params![key, &value[..], expiry(ttl), size])?;
            if inner.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                sweep_expired(&tx, now)?;
            }
            evict(&tx, inner.max_bytes, now)?;
            tx.commit()?;
            Ok(current)
        })
        .await
    }

    async fn delete(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.run(move |conn, _| {
            let now = now_ms();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut n = 0u64;
            for key in &keys {
                let live: bool = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM entries WHERE key = ?1 AND expires_at > ?2) \
                         OR EXISTS (SELECT 1 FROM generations WHERE key = ?1 AND expires_at > ?2)",
                    )?
                    .query_row(params![key, now], |r| r.get(0))?;
                tx.prepare_cached("DELETE FROM entries WHERE key = ?1")?
                    .execute(params![key])?;
                tx.prepare_cached("DELETE FROM generations WHERE key = ?1")?
                    .execute(params![key])?;
                n += u64::from(live);
            }
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        Ok(self.ttl(key).await? != KeyTtl::Missing)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let key = key.to_owned();
        self.run(move |conn, _| {
            let now = now_ms();
            let expires: Option<i64> = conn
                .prepare_cached(
                    "SELECT expires_at FROM entries WHERE key = ?1 AND expires_at > ?2 \
                     UNION ALL SELECT expires_at FROM generations WHERE key = ?1 AND expires_at > ?2",
                )?
                .query_row(params![key, now], |r| r.get(0))
                .optional()?;
            Ok(match expires {
                None => KeyTtl::Missing,
                Some(at) => KeyTtl::Expires(Duration::from_millis(
                    u64::try_from(at - now).unwrap_or(0),
                )),
            })
        })
        .await
    }

    async fn read_generations(&self, keys: &[&str]) -> Result<Vec<u64>, BackendError> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.run(move |conn, _| generations::read_each(conn, &keys, now_ms()))
            .await
    }

    async fn bump_generation(&self, key: &str, ttl: Duration) -> Result<u64, BackendError> {
        let key = key.to_owned();
        let generation = new_generation();
        self.run(move |conn, _| generations::set(conn, &key, generation, expiry(ttl)))
            .await
    }

    async fn generation_or_new(&self, key: &str, ttl: Duration) -> Result<u64, BackendError> {
        let key = key.to_owned();
        let fresh = new_generation();
        self.run(move |conn, _| generations::or_new(conn, &key, fresh, expiry(ttl), now_ms()))
            .await
    }

    async fn delete_matching(
        &self,
        pattern: &str,
        batch: usize,
        _step_timeout: Duration,
        ledgers: Option<&ByteLedgers>,
    ) -> Result<u64, BackendError> {
        let pattern = pattern.to_owned();
        let ledgers = ledgers.cloned();
        let batch = batch.max(1);
        self.run(move |conn, _| {
            let now = now_ms();
            let prefix = literal_prefix(&pattern);
            let mut deleted = 0u64;
            for table in ["entries", "generations"] {
                let doomed: Vec<String> = keys_from(conn, table, &prefix, now)?
                    .into_iter()
                    .filter(|k| glob_match(pattern.as_bytes(), k.as_bytes()))
                    .collect();
                for chunk in doomed.chunks(batch) {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    for key in chunk {
                        let gone = tx
                            .prepare_cached(&format!("DELETE FROM {table} WHERE key = ?1"))?
                            .execute(params![key])?;
                        deleted += gone as u64;
                        if let (Some(ledgers), 1.., "entries") = (&ledgers, gone, table)
                            && let Some(ledger) = ledgers.of(key)
                        {
                            ledger::release(&tx, &ledger, &super::ledger_member(key))?;
                        }
                    }
                    tx.commit()?;
                }
            }
            // Quota ledgers and request windows sit in tables of their own, under keys like any other (design
            // 0017): a tenant's erasure reaches them; a sweep's pattern, inside the tenant's data, never does.
            deleted += ledger::remove_matching(conn, &prefix, &pattern)?;
            Ok(deleted)
        })
        .await
    }

    async fn scan(
        &self,
        pattern: &str,
        cursor: &ScanCursor,
        count: usize,
        read: usize,
    ) -> Result<ScanPage, BackendError> {
        let pattern = pattern.to_owned();
        let after = cursor.after.clone().unwrap_or_default();
        let count = count.max(1);
        let read = i64::try_from(read).unwrap_or(i64::MAX);
        self.run(move |conn, _| listing::scan(conn, now_ms(), &pattern, &after, count, read))
            .await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.run(|conn, _| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn info(&self) -> Result<BackendInfo, BackendError> {
        self.run(|conn, inner| {
            let bytes: i64 =
                conn.query_row("SELECT bytes FROM totals WHERE id = 1", [], |r| r.get(0))?;
            let keys: i64 = conn.query_row(
                "SELECT count(*) FROM entries WHERE expires_at > ?1",
                params![now_ms()],
                |r| r.get(0),
            )?;
            Ok(BackendInfo {
                used_memory: u64::try_from(bytes).ok(),
                max_memory: Some(inner.max_bytes),
                eviction_policy: Some("volatile-ttl (closest to expiry first)".to_owned()),
                keys: u64::try_from(keys).ok(),
                ..BackendInfo::default()
            })
        })
        .await
    }
}

/// Ledgers and counters in the cache file (`ledger.rs`), shared by the processes that open it; no shared
/// leases (the file announces nothing), so its stores keep single-flight per process.
#[async_trait]
impl Coordination for DiskBackend {
    async fn admit(
        &self,
        _key: &str,
        _member: &[u8],
        _limit: u64,
        _ttl: Duration,
    ) -> Result<bool, BackendError> {
        // The caller's per-process bound holds; processes sharing the file are each bounded by it.
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
        let (ledger, member) = (ledger.to_owned(), member.to_owned());
        let life = u64::try_from(expires_in.as_millis()).unwrap_or(u64::MAX);
        self.run(move |conn, _| {
            ledger::charge(conn, now_ms(), &ledger, &member, bytes, life, limit)
        })
        .await
    }

    async fn count_in_window(
        &self,
        key: &str,
        add: u64,
        window: Duration,
    ) -> Result<WindowCount, BackendError> {
        let key = key.to_owned();
        let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.run(move |conn, _| ledger::count_in_window(conn, now_ms(), &key, add, window))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::literal_prefix;

    #[test]
    fn the_literal_prefix_stops_at_the_first_wildcard_and_unescapes() {
        assert_eq!(literal_prefix("a:b:*"), "a:b:");
        assert_eq!(literal_prefix(r"a\*b:?x"), "a*b:");
        assert_eq!(literal_prefix("[ab]c"), "");
        assert_eq!(literal_prefix(r"abc\"), "abc");
    }
}
