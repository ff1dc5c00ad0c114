//! The Redis backend.
//!
//! The hot path (GET, SET, the generation reads) goes over a few long-lived multiplexed connections used in
//! rotation; each slot reconnects by itself after the server restarts (`hot.rs`).
//! With `redis.track_generations` they speak RESP3 and track the generation keys (`tracking.rs`), so
//! a hit is one `GET`; with `redis.auto_pipeline`, `GET`s that find their slot busy share one pipeline
//! (`batch.rs`, over each slot's `queue.rs`). Client errors become backend errors in `error.rs`.
//! Work that wants a connection of its own (SCAN cursors, INFO) checks one out of a deadpool pool. A pool
//! checkout costs an `UNWATCH` + `PING` round trip, which is why it stays off the hot path (see
//! `docs/benchmarks.md`).

use std::{borrow::Borrow, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_redis::{Pool, Runtime};
use fernando_cache_config::RedisSettings;
use fernando_cache_keys::{GenerationKeys, KeyBuilder};
use redis::{AsyncCommands, AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion};

mod batch;
mod error;
mod hot;
mod queue;
mod tracking;

use self::{
    error::{conn_err, pool_err},
    hot::{HotConn, Lease},
    tracking::Tracker,
};
use super::{
    BackendError, BackendInfo, CacheBackend, Fetched, KeyTtl, new_generation, parse_generation,
};

/// A Redis (or Valkey) server.
pub struct RedisBackend {
    conns: Arc<[HotConn]>,
    tracker: Option<Arc<Tracker>>,
    /// `redis.auto_pipeline`: hits go out through `batch.rs`.
    auto_pipeline: bool,
    command_timeout: Duration,
    pool: Pool,
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
    /// Prepares connections without contacting the server, so a program starts (degraded) while Redis is down
    /// and recovers when it comes up. `generation_prefix` is
    /// [`KeyBuilder::generation_prefix`](fernando_cache_keys::KeyBuilder::generation_prefix), tracked on the
    /// hot connections when `settings.track_generations` is on.
    ///
    /// # Errors
    /// [`BackendError::Other`] when the URL cannot be used (for example `rediss://` in a build without TLS).
    pub fn connect(
        settings: &RedisSettings,
        generation_prefix: &str,
    ) -> Result<Self, BackendError> {
        let shown_url = settings.url.redacted();
        let url = settings
            .connection_url()
            .into_connection_info()
            .map_err(|e| BackendError::Other(format!("redis URL {shown_url}: {e}")))?;
        let client = if settings.uses_tls() {
            // rustls needs a process-wide crypto provider; installing it twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let root_cert =
                match &settings.tls_ca_file {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        BackendError::Other(format!("redis.tls_ca_file {path}: {e}"))
                    })?),
                    None => None,
                };
            redis::Client::build_with_tls(
                url.clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert,
                },
            )
        } else {
            redis::Client::open(url.clone())
        }
        .map_err(|e| BackendError::Other(format!("redis URL {shown_url}: {e}")))?;
        let hot_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            // The store bounds every call with its own timeout; a second timer per request only costs.
            .set_response_timeout(None);
        let n = settings.multiplexed_connections;
        let tracker = settings
            .track_generations
            .then(|| Tracker::new(n, generation_prefix.to_owned(), settings.command_timeout));
        // Push messages need RESP3; the pool's connections stay on RESP2.
        let hot_client = match &tracker {
            Some(_) => {
                let info = client.get_connection_info().clone();
                let redis = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                redis::Client::open(info.set_redis_settings(redis))
                    .map_err(|e| BackendError::Other(format!("redis URL {shown_url}: {e}")))?
            }
            None => client.clone(),
        };
        let conns = (0..n)
            .map(|i| match &tracker {
                Some(t) => {
                    let t2 = t.clone();
                    HotConn::new(
                        hot_client.clone(),
                        hot_config.clone().set_push_sender(t.handler(i)),
                        Some(Box::new(move || t2.connection_changed(i))),
                    )
                }
                None => HotConn::new(hot_client.clone(), hot_config.clone(), None),
            })
            .collect();
        // The pool connects with redis's own connection info, which keeps the TLS parameters (deadpool-redis's
        // serialisable `Config` would drop a private CA).
        let manager = deadpool_redis::Manager::new(client.get_connection_info().clone())
            .map_err(|e| BackendError::Other(format!("redis pool for {shown_url}: {e}")))?;
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.command_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| BackendError::Other(format!("redis pool for {shown_url}: {e}")))?;
        Ok(RedisBackend {
            conns,
            tracker,
            auto_pipeline: settings.auto_pipeline,
            command_timeout: settings.command_timeout,
            pool,
            shown_url,
        })
    }

    /// A connection of the next hot slot (connecting it if needed).
    async fn conn(&self) -> Result<Lease<'_>, BackendError> {
        self.conns[self.pick()].lease().await
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

    /// The entry and both generations in one `MGET` (which answers nil for a key of another type).
    async fn fetch_all(
        lease: &mut Lease<'_>,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        let reply = redis::cmd("MGET")
            .arg(key)
            .arg(generations.scope())
            .arg(generations.cache_type())
            .query_async(&mut lease.conn)
            .await;
        let mut replies: Vec<Option<Vec<u8>>> = lease.check(reply)?;
        if replies.len() != 3 {
            return Err(BackendError::Other(format!(
                "MGET answered {} values, not 3",
                replies.len()
            )));
        }
        let g_type = replies.pop().flatten();
        let g_scope = replies.pop().flatten();
        Ok(Fetched {
            value: replies.pop().flatten().map(Bytes::from),
            generations: [
                parse_generation(g_scope.as_deref()),
                parse_generation(g_type.as_deref()),
            ],
        })
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
        let fetched = Self::fetch_all(&mut lease, key, generations()?.borrow()).await?;
        if let (Some(tracker), Some(epoch)) = (&self.tracker, epoch) {
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

#[async_trait]
impl CacheBackend for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn fetch(
        &self,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        self.fetch_unboxed(key, || Ok::<_, BackendError>(generations))
            .await
    }

    async fn fetch_checked(
        &self,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        // GET answers WRONGTYPE for a key of another type; the pipeline's per-command replies keep that
        // visible instead of failing the whole pipeline.
        let mut lease = self.conn().await?;
        let reply = redis::pipe()
            .ignore_errors()
            .cmd("GET")
            .arg(key)
            .cmd("MGET")
            .arg(generations.scope())
            .arg(generations.cache_type())
            .query_async(&mut lease.conn)
            .await;
        let replies: Vec<redis::Value> = lease.check(reply)?;
        let [value, gens]: [redis::Value; 2] = replies.try_into().map_err(|r: Vec<_>| {
            BackendError::Other(format!("pipeline answered {} replies, not 2", r.len()))
        })?;
        let value = match value {
            redis::Value::Nil => None,
            redis::Value::BulkString(bytes) => Some(Bytes::from(bytes)),
            redis::Value::ServerError(e) if e.code() == "WRONGTYPE" => {
                return Err(BackendError::WrongType);
            }
            other => {
                return Err(BackendError::Other(format!(
                    "unexpected reply to GET: {other:?}"
                )));
            }
        };
        let (g_scope, g_type): (Option<Vec<u8>>, Option<Vec<u8>>) =
            redis::FromRedisValue::from_redis_value(gens)
                .map_err(|e| BackendError::Other(e.to_string()))?;
        Ok(Fetched {
            value,
            generations: [
                parse_generation(g_scope.as_deref()),
                parse_generation(g_type.as_deref()),
            ],
        })
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
    ) -> Result<[u64; 2], BackendError> {
        let ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        let mut lease = self.conn().await?;
        let reply = redis::pipe()
            .cmd("MGET")
            .arg(generations.scope())
            .arg(generations.cache_type())
            .cmd("SET")
            .arg(key)
            .arg(value.as_ref())
            .arg("PX")
            .arg(ms)
            .ignore()
            .query_async(&mut lease.conn)
            .await;
        let ((g_scope, g_type),): ((Option<Vec<u8>>, Option<Vec<u8>>),) = lease.check(reply)?;
        Ok([
            parse_generation(g_scope.as_deref()),
            parse_generation(g_type.as_deref()),
        ])
    }

    async fn delete(&self, keys: &[&str]) -> Result<u64, BackendError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut lease = self.conn().await?;
        let reply = lease.conn.unlink(keys).await;
        lease.check(reply)
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        let mut lease = self.conn().await?;
        let reply = lease.conn.exists(key).await;
        lease.check(reply)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let mut lease = self.conn().await?;
        let reply = lease.conn.pttl(key).await;
        let ms: i64 = lease.check(reply)?;
        Ok(match ms {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::Expires(Duration::from_millis(ms.max(0) as u64)),
        })
    }

    async fn bump_generation(&self, key: &str, ttl: Duration) -> Result<u64, BackendError> {
        let generation = new_generation();
        let ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        let mut lease = self.conn().await?;
        let reply = redis::cmd("SET")
            .arg(key)
            .arg(generation.to_string())
            .arg("PX")
            .arg(ms)
            .exec_async(&mut lease.conn)
            .await;
        lease.check(reply)?;
        Ok(generation)
    }

    async fn delete_matching(
        &self,
        pattern: &str,
        batch: usize,
        step_timeout: Duration,
    ) -> Result<u64, BackendError> {
        let step = |d| BackendError::Timeout(d);
        let mut conn = tokio::time::timeout(step_timeout, self.pool.get())
            .await
            .map_err(|_| step(step_timeout))?
            .map_err(pool_err)?;
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = tokio::time::timeout(
                step_timeout,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(batch)
                    .query_async(&mut *conn),
            )
            .await
            .map_err(|_| step(step_timeout))?
            .map_err(conn_err)?;
            for chunk in keys.chunks(batch.max(1)) {
                let n: u64 = tokio::time::timeout(step_timeout, conn.unlink(chunk))
                    .await
                    .map_err(|_| step(step_timeout))?
                    .map_err(conn_err)?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    async fn ping(&self) -> Result<(), BackendError> {
        let mut lease = self.conn().await?;
        let reply = redis::cmd("PING").exec_async(&mut lease.conn).await;
        lease.check(reply)
    }

    async fn info(&self) -> Result<BackendInfo, BackendError> {
        let mut conn = self.pool.get().await.map_err(pool_err)?;
        let text: String = redis::cmd("INFO")
            .arg("memory")
            .arg("stats")
            .arg("clients")
            .query_async(&mut *conn)
            .await
            .map_err(conn_err)?;
        let keys: u64 = redis::cmd("DBSIZE")
            .query_async(&mut *conn)
            .await
            .map_err(conn_err)?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        let num = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok());
        Ok(BackendInfo {
            used_memory: num("used_memory"),
            max_memory: num("maxmemory"),
            eviction_policy: field("maxmemory_policy"),
            evicted_keys: num("evicted_keys"),
            keys: Some(keys),
            connected_clients: num("connected_clients"),
            keyspace_hits: num("keyspace_hits"),
            keyspace_misses: num("keyspace_misses"),
        })
    }
}
