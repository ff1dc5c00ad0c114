//! The store's error types.

use std::sync::Arc;

use fernando_cache_config::CacheType;
use fernando_cache_keys::KeyError;

use crate::BackendError;

/// Why a store call failed.
///
/// Reads and writes do not fail because the backend is down: they degrade (a miss, a dropped write). Errors are
/// for the caller's mistakes and for operations whose silent failure would be wrong (deletes, invalidations).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A tenant id or key was refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The cache type has no TTL configured, and the library never writes immortal keys.
    #[error("cache type `{0}` has no TTL configured (add `types.{0}.ttl` to the configuration)")]
    UnknownCacheType(CacheType),
    /// An explicit TTL is zero or longer than a year.
    #[error("TTL {0:?} is not between 1ms and 366 days")]
    InvalidTtl(std::time::Duration),
    /// The value could not be encoded (for example a map with non-string keys, or too large).
    #[error("value could not be stored: {0}")]
    Encode(String),
    /// A compression dictionary was asked for and not trained (design 0025): too few values, or values a
    /// dictionary would not make smaller.
    #[error("no compression dictionary was trained: {0}")]
    Training(String),
    /// The backend could not perform an operation that must not fail silently.
    #[error("cache backend unavailable during {op}: {source}")]
    Unavailable {
        /// The operation, e.g. `delete` or `invalidate`.
        op: &'static str,
        /// What went wrong.
        #[source]
        source: BackendError,
    },
    /// The settings the store was built from were not validated and a tenant's plan (`[tenants.<id>]`) is
    /// wrong; the error names the setting.
    #[error("cache store settings: {0}")]
    Settings(#[source] fernando_cache_config::ConfigError),
    /// The store could not be built from its settings.
    #[error("cache store could not be created: {source}")]
    Setup {
        /// Why.
        #[source]
        source: BackendError,
    },
}

/// Why [`crate::Store::get_or_compute`] returned no value.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError<E> {
    /// The computation failed; every caller waiting on it receives the same error, which is not cached.
    #[error("computation failed: {0}")]
    Compute(Arc<E>),
    /// The call itself was invalid (bad key, unknown cache type, unencodable value).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The computation outlived the cache type's `hard_timeout` and there was no stale value to serve.
    #[error("computation timed out after {0:?}")]
    TimedOut(std::time::Duration),
}

impl<E> ComputeError<E> {
    /// The computation's error, if that is what this is.
    pub fn compute_error(&self) -> Option<&E> {
        match self {
            ComputeError::Compute(e) => Some(e),
            ComputeError::Store(_) | ComputeError::TimedOut(_) => None,
        }
    }
}
