//! Where a connection goes: one fixed server, or the current primary of a Sentinel-watched group, asked of the
//! sentinels on every connect so that a connection lost in a failover comes back on the new primary. A
//! connection to a demoted primary is dropped at its first `READONLY` reply (`hot.rs`), so writes are never
//! sent to a replica for longer than one failed command per connection.
//!
//! Also the exclusive connections of sweeps and `INFO`: from the pool for a fixed server, and made afresh
//! (on the primary of the moment) under Sentinel, where a pool would keep connections to a demoted primary.

use std::time::Duration;

use deadpool_redis::Pool;
use redis::{
    AsyncConnectionConfig, Client, Cmd, Pipeline, ProtocolVersion, RedisFuture, Value,
    aio::{ConnectionLike, MultiplexedConnection},
    sentinel::SentinelClient,
};

use super::error::{conn_err, pool_err};
use crate::BackendError;

/// Where a connection goes.
pub(crate) enum Endpoint {
    /// One server.
    Fixed(Box<Client>),
    /// The primary the sentinels name at the moment of connecting.
    Sentinel {
        sentinels: Box<dyn PrimaryLookup>,
        /// Speak RESP3 to the primary (for tracking pushes).
        resp3: bool,
    },
}

/// Asks the sentinels for the primary of the moment. A trait object, so that the sentinel client's many
/// nested types stay out of the auto-trait checks of every future holding a store (they would otherwise push
/// a user's `tokio::spawn` past the compiler's recursion limit).
pub(crate) trait PrimaryLookup: Send + Sync {
    /// A client for the current primary.
    fn primary(&self) -> RedisFuture<'_, Client>;
}

impl PrimaryLookup for tokio::sync::Mutex<SentinelClient> {
    fn primary(&self) -> RedisFuture<'_, Client> {
        Box::pin(async move { self.lock().await.async_get_client().await })
    }
}

impl Endpoint {
    /// A client for the server to connect to now.
    pub(crate) async fn client(&self) -> redis::RedisResult<Client> {
        match self {
            Endpoint::Fixed(client) => Ok(Client::clone(client)),
            Endpoint::Sentinel { sentinels, resp3 } => {
                let client = sentinels.primary().await?;
                if !*resp3 {
                    return Ok(client);
                }
                let info = client.get_connection_info().clone();
                let redis = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                Client::open(info.set_redis_settings(redis))
            }
        }
    }
}

/// Where the exclusive connections of sweeps and `INFO` come from.
pub(crate) enum ExclusiveSource {
    /// A deadpool pool on one server.
    Pool(Pool),
    /// A fresh connection to the endpoint's server of the moment, per use.
    Fresh {
        endpoint: Box<Endpoint>,
        connect_timeout: Duration,
    },
}

impl ExclusiveSource {
    /// A connection of its own for one sweep or one `INFO`.
    pub(crate) async fn get(&self) -> Result<Exclusive, BackendError> {
        match self {
            ExclusiveSource::Pool(pool) => {
                Ok(Exclusive::Pooled(pool.get().await.map_err(pool_err)?))
            }
            ExclusiveSource::Fresh {
                endpoint,
                connect_timeout,
            } => {
                let connect = async {
                    let client = endpoint.client().await?;
                    client
                        .get_multiplexed_async_connection_with_config(
                            &AsyncConnectionConfig::new()
                                .set_connection_timeout(Some(*connect_timeout)),
                        )
                        .await
                };
                let conn = tokio::time::timeout(*connect_timeout, connect)
                    .await
                    .map_err(|_| BackendError::Timeout(*connect_timeout))?
                    .map_err(conn_err)?;
                Ok(Exclusive::Fresh(conn))
            }
        }
    }
}

/// A connection held by one sweep or one `INFO`.
pub(crate) enum Exclusive {
    /// Checked out of the pool (returned when dropped).
    Pooled(deadpool_redis::Connection),
    /// Made for this use (closed when dropped).
    Fresh(MultiplexedConnection),
}

impl ConnectionLike for Exclusive {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Exclusive::Pooled(c) => c.req_packed_command(cmd),
            Exclusive::Fresh(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Exclusive::Pooled(c) => c.req_packed_commands(cmd, offset, count),
            Exclusive::Fresh(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Exclusive::Pooled(c) => c.get_db(),
            Exclusive::Fresh(c) => c.get_db(),
        }
    }
}
