//! The layer's configuration errors. Serving never fails because of the cache: a cache that is down is a
//! miss, and the inner service's own errors pass through untouched.

/// Why an [`crate::HttpCacheLayer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A route pattern is malformed.
    #[error("invalid route pattern: {0}")]
    Pattern(String),
    /// A header name is not a valid HTTP header name.
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    /// The store has no TTL for a route's cache type.
    #[error("route {route:?} uses cache type `{cache_type}`, which has no TTL configured")]
    UnknownCacheType {
        /// The route pattern.
        route: String,
        /// The cache type.
        cache_type: String,
    },
    /// A limit is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}
