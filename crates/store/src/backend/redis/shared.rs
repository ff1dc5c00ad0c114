//! What the two Redis topologies do alike, written once over one seam, [`Connected`]: a topology lends a
//! connection for one call and judges the call's failure — one server lends its next hot slot's connection
//! and forgets it when the reply says it broke (`storage.rs`); a cluster lends its cluster connection and
//! replaces it when it timed out or broke (`cluster/storage.rs`). Over the seam: all of [`Coordination`] and
//! [`Leases`], and the calls of [`Storage`](crate::Storage) no topology sends its own way (`EXISTS`, `PTTL`,
//! generation reads and bumps), each one command or script of `commands/`.
//!
//! What differs stays in each topology's `storage.rs`: the hot read and write, the checked read, deletes,
//! sweeps, `PING` and `INFO`, and where the lease channel's subscription connects.

use std::{fmt, future::Future, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use fernando_cache_keys::GenerationKeys;
use futures_util::future::BoxFuture;
use redis::{RedisResult, aio::ConnectionLike};

use super::commands;
use crate::backend::{
    BackendError, ByteLedgers, Charge, Coordination, KeyTtl, Leases, NewEntries, OnMessage,
    StreamEntry, Streams, Versioned, WindowCount, new_generation,
};

/// A Redis topology as the calls it shares with the other see it: a connection lent for one call, and the
/// lease channel's subscription.
pub(super) trait Connected: Send + Sync + fmt::Debug + 'static {
    /// The connection a call is sent on: a clone of a multiplexed connection (a few reference counts), the
    /// call's own.
    type Conn: ConnectionLike + Send;

    /// Runs `call` on a connection of this topology and gives its reply as the backend's result; a failure
    /// that says the connection is broken has it replaced for the next call.
    ///
    /// The call takes the connection by value rather than `&mut`: a closure over a borrowed connection would
    /// need a higher-ranked lifetime on the future it returns, which then cannot borrow the caller's
    /// arguments.
    fn with_conn<R, F, Fut>(&self, call: F) -> impl Future<Output = Result<R, BackendError>> + Send
    where
        R: Send,
        F: FnOnce(Self::Conn) -> Fut + Send,
        Fut: Future<Output = RedisResult<R>> + Send;

    /// Starts delivering the messages of `channel` to `on_message` for as long as the backend lives
    /// (`commands::listen` over a subscription to a server this topology picks).
    fn subscribe(&self, channel: &str, on_message: OnMessage);
}

/// Each call one Lua script (`commands/limits.rs`), atomic on the server, so replicas share every bound.
#[async_trait]
impl<T: Connected> Coordination for T {
    async fn admit(
        &self,
        key: &str,
        member: &[u8],
        limit: u64,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        self.with_conn(move |mut conn| async move {
            commands::admit(&mut conn, key, member, limit, ttl).await
        })
        .await
    }

    async fn charge(
        &self,
        ledger: &str,
        member: &str,
        bytes: u64,
        expires_in: Duration,
        limit: u64,
    ) -> Result<Charge, BackendError> {
        self.with_conn(move |mut conn| async move {
            commands::charge(&mut conn, ledger, member, bytes, expires_in, limit).await
        })
        .await
    }

    async fn count_in_window(
        &self,
        key: &str,
        add: u64,
        window: Duration,
    ) -> Result<WindowCount, BackendError> {
        self.with_conn(move |mut conn| async move {
            commands::count_in_window(&mut conn, key, add, window).await
        })
        .await
    }

    /// Every process on the server sees the same lease keys.
    fn leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }

    /// Streams are the server's own: any region that reaches it reads them.
    fn streams(&self) -> Option<&dyn Streams> {
        Some(self)
    }
}

/// Each call one stream command (`commands/streams.rs`).
#[async_trait]
impl<T: Connected> Streams for T {
    async fn append(
        &self,
        stream: &str,
        fields: &[(&str, &[u8])],
        max_len: u64,
        min_ms: Option<u64>,
    ) -> Result<(), BackendError> {
        self.with_conn(move |mut conn| async move {
            commands::append(&mut conn, stream, fields, max_len, min_ms).await
        })
        .await
    }

    async fn join_group(&self, stream: &str, group: &str) -> Result<bool, BackendError> {
        self.with_conn(move |mut conn| async move {
            commands::join_group(&mut conn, stream, group).await
        })
        .await
    }

    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>, BackendError> {
        let reply = self
            .with_conn(move |mut conn| async move {
                commands::read_pending(&mut conn, stream, group, consumer, count).await
            })
            .await?;
        commands::read_entries(reply)
    }

    async fn read_new(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        accepted: &str,
        applied: &str,
    ) -> Result<NewEntries, BackendError> {
        let reply = self
            .with_conn(move |mut conn| async move {
                commands::read_new(&mut conn, stream, group, consumer, count, accepted, applied)
                    .await
            })
            .await?;
        commands::new_entries(reply)
    }

    async fn put_newer(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        generations: &GenerationKeys,
        mark: &str,
        expected: [&[u8]; 2],
        stamped: [u64; 2],
        version: &[u8; 16],
    ) -> Result<Versioned, BackendError> {
        let reply = self
            .with_conn(move |mut conn| async move {
                commands::put_newer(
                    &mut conn,
                    key,
                    value,
                    ttl,
                    generations,
                    mark,
                    expected,
                    stamped,
                    version,
                )
                .await
            })
            .await?;
        commands::versioned(reply)
    }

    async fn mark(
        &self,
        mark: &str,
        version: &[u8; 16],
        ttl: Duration,
    ) -> Result<(), BackendError> {
        self.with_conn(move |mut conn| async move {
            commands::mark(&mut conn, mark, version, ttl).await
        })
        .await
    }

    async fn record(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), BackendError> {
        self.with_conn(
            // A note is a plain string with a TTL, written as the hot path's tracked `SET` is.
            move |mut conn| async move { commands::set_plain(&mut conn, key, value, ttl).await },
        )
        .await
    }

    async fn recorded(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let value = self
            .with_conn(move |mut conn| async move { commands::recorded(&mut conn, key).await })
            .await?;
        Ok(value.map(Bytes::from))
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), BackendError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.with_conn(
            move |mut conn| async move { commands::ack(&mut conn, stream, group, ids).await },
        )
        .await
    }

    async fn claim_idle(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<StreamEntry>, BackendError> {
        let reply = self
            .with_conn(move |mut conn| async move {
                commands::claim_idle(&mut conn, stream, group, consumer, min_idle, count).await
            })
            .await?;
        commands::claimed_entries(reply)
    }
}

/// Lease keys on the server, fenced writes as one script, releases announced by `PUBLISH` (which reaches
/// every subscriber of a cluster, whichever node it is connected to).
#[async_trait]
impl<T: Connected> Leases for T {
    async fn acquire_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        self.with_conn(move |mut conn| async move {
            commands::acquire_lease(&mut conn, key, token, ttl).await
        })
        .await
    }

    async fn renew_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        self.with_conn(move |mut conn| async move {
            commands::renew_lease(&mut conn, key, token, ttl).await
        })
        .await
    }

    async fn release_lease(
        &self,
        key: &str,
        token: &str,
        channel: &str,
    ) -> Result<(), BackendError> {
        self.with_conn(move |mut conn| async move {
            commands::release_lease(&mut conn, key, token, channel).await
        })
        .await
    }

    async fn set_fenced(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        generations: &GenerationKeys,
        fence: (&str, &str),
    ) -> Result<Option<[u64; 2]>, BackendError> {
        self.with_conn(move |mut conn| async move {
            commands::set_fenced(&mut conn, key, &value, ttl, generations, fence).await
        })
        .await
    }

    fn listen(&self, channel: &str, on_message: OnMessage) -> Result<(), BackendError> {
        self.subscribe(channel, on_message);
        Ok(())
    }
}

// The key calls below hand back a future boxed here, where its lifetimes are the caller's named ones. As
// plain `async fn`s generic over the topology, awaited inside `async_trait`'s boxed future of a `Storage`
// method, their `Send` check fails ("one type is more general than the other": the auto-trait check through
// `with_conn`'s future meets the erased lifetimes of the call's async block).

/// `EXISTS key`, for [`Storage::exists`](crate::Storage::exists).
pub(super) fn exists<'a, T: Connected>(
    backend: &'a T,
    key: &'a str,
) -> BoxFuture<'a, Result<bool, BackendError>> {
    Box::pin(
        backend.with_conn(move |mut conn| async move { commands::exists(&mut conn, key).await }),
    )
}

/// `PTTL key`, for [`Storage::ttl`](crate::Storage::ttl).
pub(super) fn ttl<'a, T: Connected>(
    backend: &'a T,
    key: &'a str,
) -> BoxFuture<'a, Result<KeyTtl, BackendError>> {
    Box::pin(backend.with_conn(move |mut conn| async move { commands::ttl(&mut conn, key).await }))
}

/// `MGET` of generation keys, for [`Storage::read_generations`](crate::Storage::read_generations).
pub(super) fn read_generations<'a, T: Connected>(
    backend: &'a T,
    keys: &'a [&'a str],
) -> BoxFuture<'a, Result<Vec<u64>, BackendError>> {
    Box::pin(
        backend.with_conn(move |mut conn| async move {
            commands::get_generations(&mut conn, keys).await
        }),
    )
}

/// A fresh generation `SET` under `key`, for [`Storage::bump_generation`](crate::Storage::bump_generation).
pub(super) fn bump_generation<'a, T: Connected>(
    backend: &'a T,
    key: &'a str,
    ttl: Duration,
) -> BoxFuture<'a, Result<u64, BackendError>> {
    let generation = new_generation();
    Box::pin(async move {
        backend
            .with_conn(move |mut conn| async move {
                commands::set_generation(&mut conn, key, generation, ttl).await
            })
            .await?;
        Ok(generation)
    })
}

/// A generation key's value, made a fresh one where it has none, for
/// [`Storage::generation_or_new`](crate::Storage::generation_or_new).
pub(super) fn generation_or_new<'a, T: Connected>(
    backend: &'a T,
    key: &'a str,
    ttl: Duration,
) -> BoxFuture<'a, Result<u64, BackendError>> {
    let generation = new_generation();
    Box::pin(backend.with_conn(move |mut conn| async move {
        commands::generation_or_new(&mut conn, key, generation, ttl).await
    }))
}

/// `UNLINK` of one batch of keys (of one slot, on a cluster) and, with a byte ledger, their release from it:
/// the delete half of a sweep whose `SCAN` runs over another connection — an `acl` tenant's sweep, scanned as
/// the shared user, deleted as the tenant (design 0023).
pub(super) fn unlink_releasing<'a, T: Connected>(
    backend: &'a T,
    keys: &'a [&'a str],
    ledgers: Option<&'a ByteLedgers>,
) -> BoxFuture<'a, Result<u64, BackendError>> {
    // Each key goes back to the ledger it was charged to (its shard's, design 0024).
    let released = ledgers.map_or_else(Vec::new, |l| l.group(keys));
    Box::pin(backend.with_conn(move |mut conn| async move {
        let deleted: u64 = redis::cmd("UNLINK")
            .arg(keys)
            .query_async(&mut conn)
            .await?;
        for (ledger, members) in &released {
            let _: u64 = commands::release_cmd(ledger, members)
                .query_async(&mut conn)
                .await?;
        }
        Ok(deleted)
    }))
}
