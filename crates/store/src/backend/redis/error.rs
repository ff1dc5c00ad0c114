//! How Redis client errors become [`BackendError`]s: unavailability (I/O, refused, dropped, timed out, and a
//! topology in motion — a slot without a primary, a demoted primary, a server still loading) apart from a key of
//! another type and from everything else, with the client's error kept as the cause.

use redis::{ErrorKind, ServerErrorKind};

use crate::{BackendError, backend::Cause};

/// A client error as a backend error: `WRONGTYPE`, an unavailability, or anything else.
pub(crate) fn conn_err(e: redis::RedisError) -> BackendError {
    if e.code() == Some("WRONGTYPE") {
        return BackendError::WrongType;
    }
    if e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
    {
        return BackendError::Credentials(Cause::new(e));
    }
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::BusyLoading
            ) | ErrorKind::ClusterConnectionNotFound
        )
    {
        BackendError::Connection(Cause::new(e))
    } else {
        BackendError::Other(e.to_string())
    }
}

/// A pool checkout error as a backend error.
pub(crate) fn pool_err(e: deadpool_redis::PoolError) -> BackendError {
    match e {
        deadpool_redis::PoolError::Backend(e) => conn_err(e),
        other => BackendError::Connection(Cause::new(other)),
    }
}
