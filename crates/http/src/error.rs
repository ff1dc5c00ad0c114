//! The crate's configuration errors: the layer's, and the addresses the listener (feature `server`) refuses.
//! Serving never fails because of the cache: a cache that is down is a miss, and the inner service's own errors
//! pass through untouched.

/// Why an [`crate::HttpCacheLayer`] could not be built, or why the listener of the `server` feature refused the
/// address it was given (`server::bind_address`).
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
    /// The address to listen on is neither a socket address nor `localhost:PORT`.
    #[error(
        "{given:?} is not an address to listen on like 127.0.0.1:8080, localhost:8080, 0.0.0.0:8080 or \
         [::1]:8080 (host names other than localhost are not resolved)"
    )]
    Address {
        /// The address as given.
        given: String,
        /// Why it does not parse.
        #[source]
        source: std::net::AddrParseError,
    },
    /// The public development keys are configured and the address is not a loopback one.
    #[error(
        "refusing to listen on {addr}: {count} of the configured keys are the public development keys \
         (from config/development.toml or config/test.toml). Configure your own server.api_keys and \
         server.admin_token_sha256 (the production profile has none), listen on a loopback address, or \
         pass --allow-dev-keys if this network is private"
    )]
    DevelopmentKeys {
        /// The address refused.
        addr: std::net::SocketAddr,
        /// How many of the configured keys are development keys.
        count: usize,
    },
}
