//! Why a backend call failed ([`BackendError`]), with the client's own error kept whole as its source
//! ([`Cause`]); and which failures say the backend is unhealthy, the ones the circuit breaker counts.

use std::{fmt, sync::Arc, time::Duration};

/// Why a backend call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The call took longer than the configured command timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The circuit breaker is open: the backend failed repeatedly and is not being called.
    #[error("circuit breaker open after repeated failures")]
    CircuitOpen,
    /// The server could not be reached or the connection broke; the client's error is the source.
    #[error("connection failed: {0}")]
    Connection(#[source] Cause),
    /// The server refused the connection's credentials (`WRONGPASS`, `NOAUTH`, a disabled or deleted user):
    /// the backend cannot be used as configured, which the breaker counts like an unreachable server. On an
    /// `acl` tenant's lane it also retires the lane, so its password is read again (design 0023).
    #[error("the server refused the credentials: {0}")]
    Credentials(#[source] Cause),
    /// A fenced write found its computation's lease held by another process (or lapsed): the value was not
    /// written, so a newer one is never overwritten.
    #[error("the computation's lease passed to another process; the value was not written")]
    LeaseLost,
    /// The key holds a value of another Redis type (a hash, a list…).
    #[error("WRONGTYPE: the key holds a non-string value")]
    WrongType,
    /// Any other server or client error, or a call of what the backend does not keep (a user's storage-only
    /// backend asked for a quota ledger).
    #[error("{0}")]
    Other(String),
    /// A tenant's own connections (design 0023: `acl` or `dedicated` isolation) cannot be opened: its Redis
    /// ACL password cannot be read, its user name cannot be used, or its deployment's settings cannot. Names the
    /// tenant and where a secret was looked for, never what was found. The tenant's calls degrade as on an
    /// unavailable backend; every other tenant is served.
    #[error("tenant {tenant:?}: {source}")]
    Tenant {
        /// The tenant.
        tenant: String,
        /// Why.
        #[source]
        source: Cause,
    },
}

/// An error kept whole as another error's `source` — the Redis client's behind a [`BackendError`], the store's
/// behind a pipeline error — shared, so the error holding it stays `Clone`, and compared by message, so it
/// stays `Eq`.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Wraps the client's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(error))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

impl BackendError {
    /// Whether the failure says the backend is unhealthy (and so counts towards opening the breaker).
    pub fn is_unavailability(&self) -> bool {
        matches!(
            self,
            BackendError::Timeout(_)
                | BackendError::Connection(_)
                | BackendError::Credentials(_)
                | BackendError::CircuitOpen
        )
    }
}
