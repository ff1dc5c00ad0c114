//! One server's backend operations ([`Storage`] for [`RedisBackend`]) and its side of the seam the two Redis
//! topologies share (`shared.rs`, where its [`Coordination`](crate::Coordination) and leases come from): a
//! call's connection is the next hot slot's, forgotten when the reply says it broke. The hot read and write go
//! through `read.rs`; the checked read is one pipeline; sweeps (SCAN + UNLINK), listings (SCAN + one script)
//! and `INFO` run on a connection of their own.

use std::{future::Future, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;
use redis::{RedisResult, aio::MultiplexedConnection};

use super::{
    RedisBackend, commands,
    error::conn_err,
    shared::{self, Connected},
};
use crate::backend::{
    BackendError, BackendInfo, ByteLedgers, Coherence, Fetched, KeyTtl, OnMessage, ScanCursor,
    ScanPage, Storage,
};

#[async_trait]
impl Storage for RedisBackend {
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

    async fn fetch_many(
        &self,
        keys: &[&str],
        generations: &GenerationKeys,
    ) -> Result<Vec<Fetched>, BackendError> {
        self.hot.fetch_many(keys, generations).await
    }

    async fn fetch_checked(
        &self,
        key: &str,
        generations: &GenerationKeys,
    ) -> Result<Fetched, BackendError> {
        let replies = self
            .with_conn(move |mut conn| async move {
                commands::fetch_checked(&mut conn, key, generations, false).await
            })
            .await?;
        commands::fetched_checked(replies)
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
    ) -> Result<[u64; 2], BackendError> {
        self.hot.set(key, &value, ttl, generations).await
    }

    fn watch(&self, key: &str) -> Coherence {
        self.hot.watch(key)
    }

    fn known_generations(&self, key: &str) -> Option<[u64; 2]> {
        self.hot.known(key)
    }

    async fn set_known(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        stamp: [u64; 2],
    ) -> Result<bool, BackendError> {
        self.hot.set_known(key, &value, ttl, stamp).await
    }

    async fn delete(&self, keys: &[&str]) -> Result<u64, BackendError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.with_conn(move |mut conn| async move { commands::unlink(&mut conn, keys).await })
            .await
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
        // One walk for every sweep: scanned over a connection of its own, each batch deleted (and released from
        // its ledger) in one call — here by this backend itself, for an `acl` tenant by the tenant's user.
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
        let mut conn = self.exclusive().await?;
        let (position, found) =
            commands::scan_step(&mut conn, cursor.position, pattern, count.max(1))
                .await
                .map_err(conn_err)?;
        let found: Vec<&str> = found.iter().map(String::as_str).collect();
        let keys = if found.is_empty() {
            Vec::new()
        } else {
            let reply: redis::Value = commands::list_cmd(&found, read)
                .query_async(&mut conn)
                .await
                .map_err(conn_err)?;
            commands::listed(&found, reply)?
        };
        let next = (position != 0).then(|| ScanCursor {
            position,
            ..ScanCursor::default()
        });
        Ok(ScanPage { keys, next })
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.with_conn(|mut conn| async move { redis::cmd("PING").exec_async(&mut conn).await })
            .await
    }

    async fn info(&self) -> Result<BackendInfo, BackendError> {
        let mut conn = self.exclusive().await?;
        commands::info(&mut conn).await.map_err(conn_err)
    }
}

impl RedisBackend {
    /// [`Storage::delete_matching`] with the keys this backend's `SCAN` finds deleted (and released from
    /// `ledger`) by `deleter`: an `acl` tenant's sweep, scanned as the shared user — `SCAN` is not filtered by
    /// key patterns, so the tenant's user may not run it — and deleted as the tenant, whose keys alone Redis lets
    /// it delete (design 0023).
    pub(crate) async fn delete_matching_as(
        &self,
        deleter: &RedisBackend,
        pattern: &str,
        batch: usize,
        step_timeout: Duration,
        ledgers: Option<&ByteLedgers>,
    ) -> Result<u64, BackendError> {
        let step = |d| BackendError::Timeout(d);
        let mut conn = tokio::time::timeout(step_timeout, self.exclusive())
            .await
            .map_err(|_| step(step_timeout))??;
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys) = tokio::time::timeout(
                step_timeout,
                commands::scan_step(&mut conn, cursor, pattern, batch),
            )
            .await
            .map_err(|_| step(step_timeout))?
            .map_err(conn_err)?;
            for chunk in keys.chunks(batch.max(1)) {
                let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
                deleted += tokio::time::timeout(
                    step_timeout,
                    shared::unlink_releasing(deleter, &chunk, ledgers),
                )
                .await
                .map_err(|_| step(step_timeout))??;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// `ACL WHOAMI`: the user the store's own connections run as (whatever the URL's spelling of it).
    pub(crate) async fn acl_whoami(&self) -> Result<String, BackendError> {
        self.with_conn(move |mut conn| async move {
            redis::cmd("ACL").arg("WHOAMI").query_async(&mut conn).await
        })
        .await
    }

    /// `ACL SETUSER` with `args` (the user, then its rules) and `password` (`>…`, sent last, never logged):
    /// on this server, or under Sentinel on the primary of the moment (a replica keeps its own users).
    pub(crate) async fn set_acl_user(
        &self,
        args: &[String],
        password: &str,
    ) -> Result<(), BackendError> {
        self.with_conn(move |mut conn| async move {
            redis::cmd("ACL")
                .arg(args)
                .arg(password)
                .exec_async(&mut conn)
                .await
        })
        .await
    }
}

impl Connected for RedisBackend {
    type Conn = MultiplexedConnection;

    async fn with_conn<R, F, Fut>(&self, call: F) -> Result<R, BackendError>
    where
        R: Send,
        F: FnOnce(Self::Conn) -> Fut + Send,
        Fut: Future<Output = RedisResult<R>> + Send,
    {
        let lease = self.hot.conn().await?;
        // The call owns a clone of the slot's connection (a few reference counts); the lease stays here to
        // judge the reply, and forgets the slot's connection if the reply says it broke.
        let reply = call(lease.conn.clone()).await;
        lease.check(reply)
    }

    fn subscribe(&self, channel: &str, on_message: OnMessage) {
        // RESP2, on the server of the moment (under Sentinel, the primary the sentinels name at each connect).
        let endpoint = self.listen_endpoint.clone();
        let task = commands::listen(channel.to_owned(), on_message, move |_| {
            let endpoint = endpoint.clone();
            async move { endpoint.client().await }
        });
        self.listeners.add(task);
    }
}
