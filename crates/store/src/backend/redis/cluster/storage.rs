//! A Redis Cluster's backend operations ([`Storage`] for [`ClusterBackend`]) and its side of the seam the two
//! Redis topologies share (`../shared.rs`, where its [`Coordination`](crate::Coordination) and leases come
//! from): a call's connection is the cluster connection, replaced when it timed out or broke. The hot read and
//! write go through `direct.rs` (the cluster client after a redirect); through the cluster client, multi-command
//! steps are single-slot scripts, deletes are `UNLINK`ed a slot at a time, sweeps `SCAN` every primary by
//! address, `PING` asks every primary and `INFO` each one.

use std::{future::Future, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;
use redis::{
    FromRedisValue, RedisResult,
    cluster_async::ClusterConnection,
    cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo},
};

use super::{
    super::{
        commands,
        shared::{self, Connected},
    },
    ClusterBackend, slot_of,
};
use crate::backend::{
    BackendError, BackendInfo, ByteLedgers, Coherence, Fetched, KeyTtl, NodeInfo, OnMessage,
    ScanCursor, ScanPage, Storage,
};

#[async_trait]
impl Storage for ClusterBackend {
    fn kind(&self) -> &'static str {
        "redis-cluster"
    }

    async fn fetch(
        &self,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        self.fetch_unboxed(key, || Ok::<_, BackendError>(generations))
            .await
    }

    async fn fetch_many(
        &self,
        keys: &[&str],
        generations: &GenerationKeys,
    ) -> Result<Vec<Fetched>, BackendError> {
        // The keys share their generations' hash tag, so one slot and one primary: one MGET there.
        if let Some(fetched) = self.direct.fetch_many(keys, generations).await {
            return fetched;
        }
        self.refresh_soon();
        let mut fetched = Vec::with_capacity(keys.len());
        for key in keys {
            fetched.push(self.fetch(key, generations).await?);
        }
        Ok(fetched)
    }

    async fn fetch_checked(
        &self,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        let replies = self
            .with_conn(move |mut conn| async move {
                commands::fetch_checked_scripted(&mut conn, key, generations).await
            })
            .await?;
        commands::fetched(replies)
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
    ) -> Result<[u64; 2], BackendError> {
        if let Some(written) = self.direct.set(key, &value, ttl, generations).await {
            return written;
        }
        self.refresh_soon();
        self.with_conn(move |mut conn| async move {
            commands::set_scripted(&mut conn, key, &value, ttl, generations).await
        })
        .await
    }

    fn watch(&self, key: &str) -> Coherence {
        self.direct.watch(key)
    }

    fn known_generations(&self, key: &str) -> Option<[u64; 2]> {
        self.direct.known(key)
    }

    async fn set_known(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        stamp: [u64; 2],
    ) -> Result<bool, BackendError> {
        match self.direct.set_known(key, &value, ttl, stamp).await {
            // A redirect or an unreachable node: the caller writes through the cluster client.
            Err(BackendError::Connection(_)) => {
                self.refresh_soon();
                Ok(false)
            }
            other => other,
        }
    }

    async fn delete(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let (mut conn, id) = self.conn().await?;
        let mut deleted = 0;
        for batch in commands::same_slot_batches(keys, usize::MAX) {
            let unlink = redis::cmd("UNLINK").arg(&batch).clone();
            let reply = conn
                .route_command(unlink, slot_of(batch[0]))
                .await
                .map_err(|e| self.failed(id, e))?;
            let n: u64 = FromRedisValue::from_redis_value(reply)
                .map_err(|e| BackendError::Other(format!("UNLINK reply: {e}")))?;
            deleted += n;
        }
        Ok(deleted)
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        shared::exists(self, key).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        shared::ttl(self, key).await
    }

    async fn read_generations(&self, keys: &[&str]) -> Result<Vec<u64>, BackendError> {
        shared::read_generations(self, keys).await
    }

    async fn bump_generation(&self, key: &str, ttl: Duration) -> Result<u64, BackendError> {
        shared::bump_generation(self, key, ttl).await
    }

    async fn generation_or_new(&self, key: &str, ttl: Duration) -> Result<u64, BackendError> {
        shared::generation_or_new(self, key, ttl).await
    }

    async fn delete_matching(
        &self,
        pattern: &str,
        batch: usize,
        step_timeout: Duration,
        ledgers: Option<&ByteLedgers>,
    ) -> Result<u64, BackendError> {
        // Scanned and deleted over this cluster's own connection: the sweep of an `acl` tenant is the same walk
        // with another deleter.
        self.delete_matching_as(self, pattern, batch, step_timeout, ledgers)
            .await
    }

    async fn scan(
        &self,
        pattern: &str,
        cursor: &ScanCursor,
        count: usize,
        read: usize,
    ) -> Result<ScanPage, BackendError> {
        // Each primary in turn (in address order), its own SCAN cursor at a time.
        let primaries = self.primaries().await?;
        let Some(primary) = primaries.get(cursor.node) else {
            return Ok(ScanPage::default());
        };
        let (mut conn, id) = self.conn().await?;
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor.position)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count.max(1));
        let reply = conn
            .route_command(scan, primary.route())
            .await
            .map_err(|e| self.failed(id, e))?;
        let (position, found): (u64, Vec<String>) = FromRedisValue::from_redis_value(reply)
            .map_err(|e| BackendError::Other(format!("SCAN reply: {e}")))?;
        let found: Vec<&str> = found.iter().map(String::as_str).collect();
        let mut keys = Vec::with_capacity(found.len());
        // Routed by slot, not to the node scanned: a key that moved since the SCAN is followed.
        for chunk in commands::same_slot_batches(&found, count.max(1)) {
            let reply = conn
                .route_command(commands::list_cmd(&chunk, read), slot_of(chunk[0]))
                .await
                .map_err(|e| self.failed(id, e))?;
            keys.extend(commands::listed(&chunk, reply)?);
        }
        let next = if position != 0 {
            Some(ScanCursor {
                node: cursor.node,
                position,
                ..ScanCursor::default()
            })
        } else if cursor.node + 1 < primaries.len() {
            Some(ScanCursor {
                node: cursor.node + 1,
                ..ScanCursor::default()
            })
        } else {
            None
        };
        Ok(ScanPage { keys, next })
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.with_conn(|mut conn| async move {
            let every_primary = RoutingInfo::MultiNode((
                MultipleNodeRoutingInfo::AllMasters,
                Some(ResponsePolicy::AllSucceeded),
            ));
            conn.route_command(redis::cmd("PING").clone(), every_primary)
                .await
                .map(drop)
        })
        .await
    }

    async fn info(&self) -> Result<BackendInfo, BackendError> {
        let primaries = self.primaries().await?;
        let (mut conn, id) = self.conn().await?;
        let mut nodes = Vec::with_capacity(primaries.len());
        for p in primaries {
            let info = async {
                let text = conn
                    .route_command(
                        redis::cmd("INFO")
                            .arg("memory")
                            .arg("stats")
                            .arg("clients")
                            .clone(),
                        p.route(),
                    )
                    .await?;
                let keys = conn
                    .route_command(redis::cmd("DBSIZE").clone(), p.route())
                    .await?;
                Ok::<_, redis::RedisError>(commands::parse_info(
                    &String::from_redis_value(text)?,
                    u64::from_redis_value(keys)?,
                ))
            }
            .await
            .map_err(|e| self.failed(id, e).to_string());
            nodes.push(NodeInfo {
                address: format!("{}:{}", p.host, p.port),
                info,
            });
        }
        Ok(sum(nodes))
    }
}

impl ClusterBackend {
    /// [`Storage::delete_matching`] with the keys this backend's `SCAN` of every primary finds deleted (and
    /// released from `ledger`) by `deleter`, a slot at a time: an `acl` tenant's sweep, scanned as the shared
    /// user and deleted as the tenant (design 0023).
    pub(crate) async fn delete_matching_as(
        &self,
        deleter: &ClusterBackend,
        pattern: &str,
        batch: usize,
        step_timeout: Duration,
        ledgers: Option<&ByteLedgers>,
    ) -> Result<u64, BackendError> {
        let step = |d| BackendError::Timeout(d);
        let primaries = tokio::time::timeout(step_timeout, self.primaries())
            .await
            .map_err(|_| step(step_timeout))??;
        let (mut conn, id) = self.conn().await?;
        let mut deleted = 0;
        for primary in primaries {
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(batch);
                let reply =
                    tokio::time::timeout(step_timeout, conn.route_command(scan, primary.route()))
                        .await
                        .map_err(|_| step(step_timeout))?
                        .map_err(|e| self.failed(id, e))?;
                let (next, keys): (u64, Vec<String>) = FromRedisValue::from_redis_value(reply)
                    .map_err(|e| BackendError::Other(format!("SCAN reply: {e}")))?;
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                // The deleter's cluster connection routes each batch by its slot.
                for chunk in commands::same_slot_batches(&keys, batch) {
                    deleted += tokio::time::timeout(
                        step_timeout,
                        shared::unlink_releasing(deleter, &chunk, ledgers),
                    )
                    .await
                    .map_err(|_| step(step_timeout))??;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// `ACL WHOAMI` on a node: the user the store's own connections run as (the same on every node).
    pub(crate) async fn acl_whoami(&self) -> Result<String, BackendError> {
        self.with_conn(move |mut conn| async move {
            redis::cmd("ACL").arg("WHOAMI").query_async(&mut conn).await
        })
        .await
    }

    /// `ACL SETUSER` with `args` (the user, then its rules) and `password` (`>…`, sent last, never logged) on
    /// every node, primaries and replicas: a cluster keeps its users per node.
    pub(crate) async fn set_acl_user(
        &self,
        args: &[String],
        password: &str,
    ) -> Result<(), BackendError> {
        let every_node = RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllNodes,
            Some(ResponsePolicy::AllSucceeded),
        ));
        let mut cmd = redis::cmd("ACL");
        cmd.arg(args).arg(password);
        self.with_conn(move |mut conn| async move {
            conn.route_command(cmd, every_node).await.map(drop)
        })
        .await
    }
}

impl Connected for ClusterBackend {
    type Conn = ClusterConnection;

    async fn with_conn<R, F, Fut>(&self, call: F) -> Result<R, BackendError>
    where
        R: Send,
        F: FnOnce(Self::Conn) -> Fut + Send,
        Fut: Future<Output = RedisResult<R>> + Send,
    {
        let (conn, id) = self.conn().await?;
        call(conn).await.map_err(|e| self.failed(id, e))
    }

    fn subscribe(&self, channel: &str, on_message: OnMessage) {
        // Classic PUBLISH reaches every node of a cluster: one subscription, to any seed node that answers
        // (the next one after a failure), hears every announcement.
        let seeds = self.seeds.clone();
        let task = commands::listen(channel.to_owned(), on_message, move |attempt| {
            let url = seeds[attempt % seeds.len()].clone();
            async move { redis::Client::open(url) }
        });
        self.listeners.add(task);
    }
}

/// A cluster's facts: the sum over the primaries that answered, the eviction policy if they agree, and each
/// primary's own.
fn sum(nodes: Vec<NodeInfo>) -> BackendInfo {
    let answered: Vec<&BackendInfo> = nodes.iter().filter_map(|n| n.info.as_ref().ok()).collect();
    let total = |f: fn(&BackendInfo) -> Option<u64>| -> Option<u64> {
        answered.iter().map(|i| f(i)).sum::<Option<u64>>()
    };
    let policies: Vec<&Option<String>> = answered.iter().map(|i| &i.eviction_policy).collect();
    BackendInfo {
        used_memory: total(|i| i.used_memory),
        max_memory: total(|i| i.max_memory),
        eviction_policy: match policies.first() {
            Some(first) if policies.iter().all(|p| p == first) => (*first).clone(),
            Some(_) => Some("mixed".to_owned()),
            None => None,
        },
        evicted_keys: total(|i| i.evicted_keys),
        keys: total(|i| i.keys),
        connected_clients: total(|i| i.connected_clients),
        keyspace_hits: total(|i| i.keyspace_hits),
        keyspace_misses: total(|i| i.keyspace_misses),
        nodes,
    }
}
