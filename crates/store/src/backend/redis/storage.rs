//! The backend operations as Redis commands: the checked fetch, SET with the generations read in the same
//! round trip, deletes, TTLs, generation bumps, SCAN + UNLINK sweeps on a pooled connection, PING and INFO.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;
use redis::AsyncCommands;

use super::{RedisBackend, commands, error::conn_err};
use crate::backend::{
    BackendError, BackendInfo, CacheBackend, Charge, Fetched, KeyTtl, WindowCount, new_generation,
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
        let mut lease = self.conn().await?;
        let reply = commands::fetch_checked(&mut lease.conn, key, generations).await;
        commands::fetched_checked(lease.check(reply)?)
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

    fn watch(&self, key: &str) -> crate::backend::Coherence {
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
        let mut lease = self.conn().await?;
        let reply = lease.conn.unlink(keys).await;
        lease.check(reply)
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        let mut lease = self.conn().await?;
        let reply = commands::exists(&mut lease.conn, key).await;
        lease.check(reply)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let mut lease = self.conn().await?;
        let reply = commands::ttl(&mut lease.conn, key).await;
        lease.check(reply)
    }

    async fn read_generations(&self, keys: &[&str]) -> Result<Vec<u64>, BackendError> {
        let mut lease = self.conn().await?;
        let reply = commands::get_generations(&mut lease.conn, keys).await;
        lease.check(reply)
    }

    async fn bump_generation(&self, key: &str, ttl: Duration) -> Result<u64, BackendError> {
        let generation = new_generation();
        let mut lease = self.conn().await?;
        let reply = commands::set_generation(&mut lease.conn, key, generation, ttl).await;
        lease.check(reply)?;
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
                let n: u64 = tokio::time::timeout(step_timeout, conn.unlink(chunk))
                    .await
                    .map_err(|_| step(step_timeout))?
                    .map_err(conn_err)?;
                deleted += n;
                if let Some(ledger) = ledger {
                    let _: u64 = tokio::time::timeout(
                        step_timeout,
                        commands::release_cmd(ledger, chunk).query_async(&mut conn),
                    )
                    .await
                    .map_err(|_| step(step_timeout))?
                    .map_err(conn_err)?;
                }
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
        let mut lease = self.conn().await?;
        let reply = commands::admit(&mut lease.conn, key, member, limit, ttl).await;
        lease.check(reply)
    }

    async fn charge(
        &self,
        ledger: &str,
        member: &str,
        bytes: u64,
        expires_in: Duration,
        limit: u64,
    ) -> Result<Charge, BackendError> {
        let mut lease = self.conn().await?;
        let reply = commands::charge(&mut lease.conn, ledger, member, bytes, expires_in, limit).await;
        lease.check(reply)
    }

    async fn count_in_window(
        &self,
        key: &str,
        add: u64,
        window: Duration,
    ) -> Result<WindowCount, BackendError> {
        let mut lease = self.conn().await?;
        let reply = commands::count_in_window(&mut lease.conn, key, add, window).await;
        lease.check(reply)
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
        let mut lease = self.conn().await?;
        let reply = commands::acquire_lease(&mut lease.conn, key, token, ttl).await;
        lease.check(reply)
    }

    async fn renew_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let mut lease = self.conn().await?;
        let reply = commands::renew_lease(&mut lease.conn, key, token, ttl).await;
        lease.check(reply)
    }

    async fn release_lease(
        &self,
        key: &str,
        token: &str,
        channel: &str,
    ) -> Result<(), BackendError> {
        let mut lease = self.conn().await?;
        let reply = commands::release_lease(&mut lease.conn, key, token, channel).await;
        lease.check(reply)
    }

    async fn set_fenced(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
        fence: (&str, &str),
    ) -> Result<Option<[u64; 2]>, BackendError> {
        let mut lease = self.conn().await?;
        let reply = commands::set_fenced(&mut lease.conn, key, &value, ttl, generations, fence).await;
        lease.check(reply)
    }

    fn listen(
        &self,
        channel: &str,
        on_message: crate::backend::OnMessage,
    ) -> Result<(), BackendError> {
        let endpoint = self.listen_endpoint.clone();
        let task = commands::listen(channel.to_owned(), on_message, move |_| {
            let endpoint = endpoint.clone();
            async move { endpoint.client().await }
        });
        self.listeners.add(task);
        Ok(())
    }

    async fn ping(&self) -> Result<(), BackendError> {
        let mut lease = self.conn().await?;
        let reply = redis::cmd("PING").exec_async(&mut lease.conn).await;
        lease.check(reply)
    }

    async fn info(&self) -> Result<BackendInfo, BackendError> {
        let mut conn = self.exclusive().await?;
        commands::info(&mut conn).await.map_err(conn_err)
    }
}
