//! The Redis Cluster backend. Hits and writes go straight to the slot's primary over its own tracked,
//! auto-pipelined hot connections (`direct.rs`); everything else, and a direct call that meets a redirect, goes
//! through redis-rs's cluster client: one multiplexed connection per node, commands routed by key slot,
//! `MOVED` / `ASK` followed and the slot map refreshed by the client. This file holds the construction, the
//! cluster connection and its replacement, the slot map refresh and `CLUSTER SLOTS`; `storage.rs` the backend
//! operations and the cluster's side of the seam both topologies share (`../shared.rs`).
//!
//! Every key of one scope carries the scope as its hash tag (design 0010), so an entry and the two generation
//! keys guarding it live in one slot, and no command here is ever cross-slot. Through the cluster client,
//! multi-command steps are single-slot scripts rather than pipelines: it follows `MOVED` / `ASK` for one
//! command, while a pipeline caught by a slot migration kept failing. Sweeps are the exception that must reach
//! every primary: `SCAN` runs on each primary by address and the keys found are `UNLINK`ed in batches of one
//! slot each.

use std::{
    borrow::Borrow,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwapOption;
use fernando_cache_config::RedisSettings;
use fernando_cache_keys::GenerationKeys;
use redis::{
    FromRedisValue, TlsMode, Value,
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr},
};

use self::direct::Direct;
use super::{Listeners, commands, connect::tls_roots, error::conn_err, tracking::TrackedKeys};
use crate::backend::{BackendError, Fetched};

mod direct;
mod storage;

/// A Redis Cluster.
pub struct ClusterBackend {
    client: ClusterClient,
    /// The hot read, straight to each slot's primary.
    direct: Arc<Direct>,
    command_timeout: Duration,
    /// The cluster connection, made on first use (so a store starts while the cluster is down).
    conn: ArcSwapOption<Installed>,
    next_id: AtomicU64,
    /// When the connection was last replaced (ms since `started`, plus one).
    replaced_at: AtomicU64,
    started: Instant,
    connecting: tokio::sync::Mutex<()>,
    /// The seed URLs (credentials included), for the lease channel's subscription.
    seeds: Arc<[String]>,
    listeners: Listeners,
    shown: String,
}

impl std::fmt::Debug for ClusterBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBackend")
            .field("seeds", &self.shown)
            .field("connected", &self.conn.load().is_some())
            .field("direct_primaries", &self.direct.primaries())
            .finish_non_exhaustive()
    }
}

/// Least time between two replacements of the cluster connection.
const REPLACE_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// The cluster connection in use, numbered so a failure replaces only the connection that failed.
struct Installed {
    id: u64,
    conn: ClusterConnection,
}

/// A primary's address, as `CLUSTER SLOTS` gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Primary {
    host: String,
    port: u16,
}

impl Primary {
    fn route(&self) -> RoutingInfo {
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: self.host.clone(),
            port: self.port,
        })
    }
}

impl ClusterBackend {
    /// Prepares the cluster client from `redis.url` and `redis.nodes` (seed nodes) without contacting any
    /// node, so a program starts (degraded) while the cluster is down and recovers when it comes up.
    /// `tracked` names the keys every primary's hot connections track when `settings.track_generations` is on.
    ///
    /// # Errors
    /// [`BackendError::Other`] when a seed URL cannot be used.
    pub fn connect(settings: &RedisSettings, tracked: &TrackedKeys) -> Result<Self, BackendError> {
        Self::connect_as(settings, tracked, None)
    }

    /// [`ClusterBackend::connect`] as the Redis user `credentials` names (`(user, password)`) on every node, in
    /// place of the seed URLs': an `acl` tenant's connections to the shared cluster (design 0023).
    pub(crate) fn connect_as(
        settings: &RedisSettings,
        tracked: &TrackedKeys,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self, BackendError> {
        let mut shown = std::iter::once(&settings.url)
            .chain(&settings.nodes)
            .map(|u| u.redacted())
            .collect::<Vec<_>>()
            .join(",");
        if let Some((user, _)) = credentials {
            shown = format!("{shown} as user {user}");
        }
        let mut builder = ClusterClientBuilder::new(settings.seed_urls())
            .connection_timeout(settings.connect_timeout)
            // Under the store's own deadline, so a node that stops answering is reported here (and the
            // connection replaced) rather than only seen as the store's timeout.
            .response_timeout(settings.command_timeout * 3 / 4)
            // A redirect or a node in failover is retried a few times, briefly; the store's own deadline
            // bounds the call as a whole.
            .retries(3)
            .min_retry_wait(5)
            .max_retry_wait(50);
        if let Some((user, password)) = credentials {
            builder = builder.username(user).password(password);
        }
        let tls = tls_roots(settings)?;
        if let Some(root) = &tls {
            builder = builder.tls(TlsMode::Secure);
            if let Some(root_cert) = root {
                builder = builder.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert.clone()),
                });
            }
        }
        let client = builder
            .build()
            .map_err(|e| BackendError::Other(format!("redis cluster {shown}: {e}")))?;
        Ok(ClusterBackend {
            client,
            direct: Arc::new(Direct::new(settings, tracked, tls, credentials)?),
            command_timeout: settings.command_timeout,
            conn: ArcSwapOption::empty(),
            next_id: AtomicU64::new(1),
            replaced_at: AtomicU64::new(0),
            started: Instant::now(),
            connecting: tokio::sync::Mutex::new(()),
            seeds: settings.seed_urls().into(),
            listeners: Listeners::default(),
            shown,
        })
    }

    /// The cluster connection and its id, connecting first if there is none.
    async fn conn(&self) -> Result<(ClusterConnection, u64), BackendError> {
        if let Some(i) = &*self.conn.load() {
            return Ok((ClusterConnection::clone(&i.conn), i.id));
        }
        let _one = self.connecting.lock().await;
        if let Some(i) = &*self.conn.load() {
            return Ok((ClusterConnection::clone(&i.conn), i.id));
        }
        let conn = self.client.get_async_connection().await.map_err(conn_err)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conn.store(Some(Arc::new(Installed {
            id,
            conn: conn.clone(),
        })));
        Ok((conn, id))
    }

    /// A failed call's error as a backend error; a connection that timed out or broke is replaced (at most once
    /// a second), so the next call starts from a fresh slot map and fresh node connections. A cluster
    /// connection that went through a slot migration under load was seen to time out every request afterwards
    /// (redis-rs 1.8), while a new one worked at once.
    fn failed(&self, id: u64, e: redis::RedisError) -> BackendError {
        if e.is_timeout()
            || e.is_io_error()
            || e.is_connection_dropped()
            || e.kind() == redis::ErrorKind::ClusterConnectionNotFound
        {
            let now = self.started.elapsed().as_millis() as u64 + 1;
            let last = self.replaced_at.load(Ordering::Relaxed);
            let current = self.conn.load();
            if current.as_ref().is_some_and(|i| i.id == id)
                && now.saturating_sub(last) >= REPLACE_AT_MOST_EVERY.as_millis() as u64
                && self
                    .replaced_at
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::debug!(error = %e, "replacing the cluster connection");
                let _ = self.conn.compare_and_swap(&current, None);
            }
        }
        conn_err(e)
    }

    /// The primaries serving slots now, from `CLUSTER SLOTS`.
    async fn primaries(&self) -> Result<Vec<Primary>, BackendError> {
        let (mut conn, id) = self.conn().await?;
        let ranges = cluster_slots(&mut conn)
            .await
            .map_err(|e| self.failed(id, e))??;
        let mut primaries: Vec<Primary> = ranges.into_iter().map(|(_, _, p)| p).collect();
        primaries.sort();
        primaries.dedup();
        Ok(primaries)
    }

    /// [`Storage::fetch`](crate::Storage::fetch) without the boxed future of the trait object; the store calls
    /// it directly on its hot path. The generation keys are built by `generations` only when they must be read
    /// from Redis.
    pub(crate) async fn fetch_unboxed<G: Borrow<GenerationKeys>>(
        &self,
        key: &str,
        generations: impl Fn() -> Result<G, BackendError>,
    ) -> Result<Fetched, BackendError> {
        if let Some(fetched) = self.direct.fetch(key, &generations).await {
            return fetched;
        }
        self.refresh_soon();
        Box::pin(self.fetch_through_client(key, generations()?.borrow())).await
    }

    /// The entry and its generations through the cluster client, which follows redirects.
    async fn fetch_through_client(
        &self,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        let (mut conn, id) = self.conn().await?;
        let mut mget = redis::cmd("MGET");
        mget.arg(key)
            .arg(generations.scope())
            .arg(generations.cache_type());
        // Sent straight to the slot's primary: the client would otherwise take MGET down its multi-slot path
        // (split per slot, then merged), which cost a third of a hit's throughput; the keys share one tag.
        let reply = conn
            .route_command(mget, slot_of(key))
            .await
            .map_err(|e| self.failed(id, e))?;
        let replies = FromRedisValue::from_redis_value(reply)
            .map_err(|e| BackendError::Other(format!("MGET reply: {e}")))?;
        commands::fetched(replies)
    }

    /// Refreshes the direct read's slot map in the background (at most every 100 ms; only once the cluster
    /// connection exists, since the refresh asks through it).
    fn refresh_soon(&self) {
        let Some(installed) = self.conn.load_full() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.direct.due() {
            return;
        }
        let (direct, timeout) = (self.direct.clone(), self.command_timeout);
        let mut conn = installed.conn.clone();
        runtime.spawn(async move {
            let ranges = match tokio::time::timeout(timeout, cluster_slots(&mut conn)).await {
                Ok(Ok(Ok(ranges))) => ranges,
                Ok(Ok(Err(e))) => return tracing::debug!(error = %e, "CLUSTER SLOTS unreadable"),
                Ok(Err(e)) => return tracing::debug!(error = %e, "CLUSTER SLOTS failed"),
                Err(_) => return tracing::debug!("CLUSTER SLOTS timed out"),
            };
            if let Err(e) = direct.install(&ranges) {
                tracing::debug!(error = %e, "the cluster slot map was not installed");
            }
        });
    }
}

/// `CLUSTER SLOTS`, asked of any node: the outer error is the client's, the inner one a reply that does not
/// parse.
async fn cluster_slots(
    conn: &mut ClusterConnection,
) -> redis::RedisResult<Result<Vec<(u16, u16, Primary)>, BackendError>> {
    let reply = conn
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    Ok(parse_slots(reply))
}

/// Routing to the primary of `key`'s slot, for a multi-key command whose keys share its hash tag.
fn slot_of(key: &str) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        key,
        SlotAddr::Master,
    )))
}

/// The slot ranges of a `CLUSTER SLOTS` reply and their primaries: `[[first, last, [host, port, id, …],
/// replicas…], …]`.
fn parse_slots(reply: Value) -> Result<Vec<(u16, u16, Primary)>, BackendError> {
    let bad = |what: &str| BackendError::Other(format!("CLUSTER SLOTS: {what}"));
    let Value::Array(ranges) = reply else {
        return Err(bad("not an array"));
    };
    let mut ranges_out = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err(bad("a range is not an array"));
        };
        let bound = |v: Option<&Value>| -> Result<u16, BackendError> {
            let n = i64::from_redis_value(v.ok_or_else(|| bad("a range has no bounds"))?.clone())
                .map_err(|_| bad("a slot is not a number"))?;
            u16::try_from(n).map_err(|_| bad("a slot is out of range"))
        };
        let (first, last) = (bound(parts.first())?, bound(parts.get(1))?);
        let Some(Value::Array(node)) = parts.get(2) else {
            return Err(bad("a range has no primary"));
        };
        let (host, port) = match (node.first(), node.get(1)) {
            (Some(h), Some(p)) => (
                String::from_redis_value(h.clone()).map_err(|_| bad("a host is not text"))?,
                i64::from_redis_value(p.clone()).map_err(|_| bad("a port is not a number"))?,
            ),
            _ => return Err(bad("a primary has no address")),
        };
        let port = u16::try_from(port).map_err(|_| bad("a port is out of range"))?;
        ranges_out.push((first, last, Primary { host, port }));
    }
    Ok(ranges_out)
}
