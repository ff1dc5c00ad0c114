//! The backend operations of a Redis Cluster: the hot read and write through `direct.rs` (the cluster client
//! after a redirect), everything else through redis-rs's cluster client — single-slot scripts for multi-command
//! steps, `SCAN` on every primary by address for sweeps, `INFO` per primary.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;
use redis::{
    FromRedisValue,
    cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo},
};

use super::{super::commands, ClusterBackend, slot_of};
use crate::backend::{
    BackendError, BackendInfo, CacheBackend, Charge, Fetched, KeyTtl, NodeInfo, WindowCount,
    new_generation,
};

#[async_trait]
impl CacheBackend for ClusterBackend {
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

    async fn fetch_checked(
        &self,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        let (mut conn, id) = self.conn().await?;
        commands::fetched(
            commands::fetch_checked_scripted(&mut conn, key, generations)
                .await
                .map_err(|e| self.failed(id, e))?,
        )
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
        let (mut conn, id) = self.conn().await?;
        commands::set_scripted(&mut conn, key, &value, ttl, generations)
            .await
            .map_err(|e| self.failed(id, e))
    }

    fn watch(&self, key: &str) -> crate::backend::Coherence {
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
        let (mut conn, id) = self.conn().await?;
        commands::exists(&mut conn, key)
            .await
            .map_err(|e| self.failed(id, e))
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let (mut conn, id) = self.conn().await?;
        commands::ttl(&mut conn, key)
            .await
            .map_err(|e| self.failed(id, e))
    }

    async fn read_generations(&self, keys: &[&str]) -> Result<Vec<u64>, BackendError> {
        let (mut conn, id) = self.conn().await?;
        commands::get_generations(&mut conn, keys)
            .await
            .map_err(|e| self.failed(id, e))
    }

    async fn bump_generation(&self, key: &str, ttl: Duration) -> Result<u64, BackendError> {
        let generation = new_generation();
        let (mut conn, id) = self.conn().await?;
        commands::set_generation(&mut conn, key, generation, ttl)
            .await
            .map_err(|e| self.failed(id, e))?;
        Ok(generation)
    }

    async fn delete_matching(
        &self,
        pattern: &str,
        batch: usize,
        step_timeout: Duration,
        ledger: Option<&str>,
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
                // Routed by slot, not to the node scanned: a key that moved since the SCAN is followed.
                for chunk in commands::same_slot_batches(&keys, batch) {
                    let unlink = redis::cmd("UNLINK").arg(&chunk).clone();
                    let reply = tokio::time::timeout(
                        step_timeout,
                        conn.route_command(unlink, slot_of(chunk[0])),
                    )
                    .await
                    .map_err(|_| step(step_timeout))?
                    .map_err(|e| self.failed(id, e))?;
                    let n: u64 = FromRedisValue::from_redis_value(reply)
                        .map_err(|e| BackendError::Other(format!("UNLINK reply: {e}")))?;
                    deleted += n;
                    if let Some(ledger) = ledger {
                        // The ledger shares the scope's hash tag: the slot of the keys just deleted.
                        tokio::time::timeout(
                            step_timeout,
                            conn.route_command(commands::release_cmd(ledger, &chunk), slot_of(ledger)),
                        )
                        .await
                        .map_err(|_| step(step_timeout))?
                        .map_err(|e| self.failed(id, e))?;
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    async fn admit(
        &self,
        key: &str,
        member: &[u8],
        limit: u64,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let (mut conn, id) = self.conn().await?;
        commands::admit(&mut conn, key, member, limit, ttl)
            .await
            .map_err(|e| self.failed(id, e))
    }

    async fn charge(
        &self,
        ledger: &str,
        member: &str,
        bytes: u64,
        expires_in: Duration,
        limit: u64,
    ) -> Result<Charge, BackendError> {
        let (mut conn, id) = self.conn().await?;
        commands::charge(&mut conn, ledger, member, bytes, expires_in, limit)
            .await
            .map_err(|e| self.failed(id, e))
    }

    async fn count_in_window(
        &self,
        key: &str,
        add: u64,
        window: Duration,
    ) -> Result<WindowCount, BackendError> {
        let (mut conn, id) = self.conn().await?;
        commands::count_in_window(&mut conn, key, add, window)
            .await
            .map_err(|e| self.failed(id, e))
    }

    fn shares_leases(&self) -> bool {
        true
    }

    async fn acquire_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let (mut conn, id) = self.conn().await?;
        commands::acquire_lease(&mut conn, key, token, ttl)
            .await
            .map_err(|e| self.failed(id, e))
    }

    async fn renew_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let (mut conn, id) = self.conn().await?;
        commands::renew_lease(&mut conn, key, token, ttl)
            .await
            .map_err(|e| self.failed(id, e))
    }

    async fn release_lease(
        &self,
        key: &str,
        token: &str,
        channel: &str,
    ) -> Result<(), BackendError> {
        let (mut conn, id) = self.conn().await?;
        commands::release_lease(&mut conn, key, token, channel)
            .await
            .map_err(|e| self.failed(id, e))
    }

    async fn set_fenced(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
        fence: (&str, &str),
    ) -> Result<Option<[u64; 2]>, BackendError> {
        let (mut conn, id) = self.conn().await?;
        commands::set_fenced(&mut conn, key, &value, ttl, generations, fence)
            .await
            .map_err(|e| self.failed(id, e))
    }

    fn listen(
        &self,
        channel: &str,
        on_message: crate::backend::OnMessage,
    ) -> Result<(), BackendError> {
        // Classic PUBLISH reaches every node of a cluster: one subscription, to any seed node that answers
        // (the next one after a failure), hears every announcement.
        let seeds = self.seeds.clone();
        let task = commands::listen(channel.to_owned(), on_message, move |attempt| {
            let url = seeds[attempt % seeds.len()].clone();
            async move { redis::Client::open(url) }
        });
        self.listeners.add(task);
        Ok(())
    }

    async fn ping(&self) -> Result<(), BackendError> {
        let (mut conn, id) = self.conn().await?;
        conn.route_command(
            redis::cmd("PING").clone(),
            RoutingInfo::MultiNode((
                MultipleNodeRoutingInfo::AllMasters,
                Some(ResponsePolicy::AllSucceeded),
            )),
        )
        .await
        .map_err(|e| self.failed(id, e))?;
        Ok(())
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
