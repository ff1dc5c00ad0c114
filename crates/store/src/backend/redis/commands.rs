//! The backend operations as Redis commands: the checked fetch, SET with the generations read in the same
//! round trip, deletes, TTLs, generation bumps, SCAN + UNLINK sweeps on a pooled connection, PING and INFO.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;
use redis::AsyncCommands;

use super::{
    RedisBackend,
    error::{conn_err, pool_err},
};
use crate::backend::{
    BackendError, BackendInfo, CacheBackend, Fetched, KeyTtl, new_generation, parse_generation,
};

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

    async fn admit(
        &self,
        key: &str,
        member: &[u8],
        limit: u64,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        // One round trip, atomic: a member already in stays in; a new one only while the set is under `limit`.
        const ADMIT: &str = "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end \
             if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end \
             redis.call('SADD', KEYS[1], ARGV[1]) \
             redis.call('PEXPIRE', KEYS[1], ARGV[3]) \
             return 1";
        let ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        let mut lease = self.conn().await?;
        let reply: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(ADMIT)
            .arg(1)
            .arg(key)
            .arg(member)
            .arg(limit)
            .arg(ms)
            .query_async(&mut lease.conn)
            .await;
        Ok(lease.check(reply)? == 1)
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
