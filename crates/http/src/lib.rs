//! A tower [`Layer`](tower_layer::Layer) that caches HTTP responses in a fernando-cache
//! [`Store`](fernando_cache_store::Store), per tenant, with the shared-cache rules of RFC 9111.
//!
//! This crate owns the HTTP side only: which requests may be answered from the cache, which responses may be
//! stored, their keys, and invalidation after unsafe requests. It depends on the store and keys crates and on
//! the `http`/`tower` traits; the layer must not depend on a web framework, on the decorators, the processor,
//! the ops crate, the models or the binary. The one exception is opt-in: the feature `server` (off by default)
//! adds `server`, the hardened listener the program serves on, built on axum and hyper-util and reading the
//! config crate's `[server]` settings; a service using only the layer compiles none of them.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use fernando_cache_http::{HttpCacheLayer, Route, tenant_from_header};
//! use fernando_cache_store::{Store, config::{CacheType, Environment, Settings}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::from_settings(&Settings::embedded(Environment::Test)?)?;
//! let cache = HttpCacheLayer::builder(store, tenant_from_header("x-tenant-id".parse()?))
//!     .route(Route::new("/v1/reports/**").cache_type(CacheType::DASHBOARD).ttl(Duration::from_secs(600)))
//!     .exclude("/v1/reports/live")
//!     .ignore_query_param("utm_source")
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/v1/reports/{id}", get(|| async { "report" }))
//!     .layer(cache);
//! # drop(app);
//! # Ok(()) }
//! ```
//!
//! # Rules
//! - Only `GET` and `HEAD` requests on included (and not excluded) routes with a tenant are answered from the
//!   cache. A `HEAD` is answered from a fresh stored `GET` response (its status and header fields, no content),
//!   stores and revalidates nothing, and otherwise goes to the service as a `HEAD`. Every response on such a
//!   route carries `X-Cache`: `HIT`, `MISS`, `REVALIDATED` (a stored response the service confirmed with a
//!   304) or `STALE` (RFC 5861), and answers from the cache carry the `Age` accumulated upstream and here.
//! - Freshness is RFC 9111's, judged by the `http-cache-semantics` crate at store time and again at every
//!   lookup: `s-maxage`, then `max-age`, then `Expires` against `Date` (past or invalid means stale); the
//!   origin's `Age` and the time since its `Date` count against it; RFC 9213's `CDN-Cache-Control` takes the
//!   place of `Cache-Control` when present. The route's TTL caps how long anything is kept, and is the
//!   heuristic freshness of a response that states none ([`Route::heuristic`]).
//! - Revalidation (RFC 9111 §4.3): a stale stored response with a validator (`ETag`, `Last-Modified`) —
//!   including every `no-cache` one — is revalidated with a conditional request; a 304 that selects it
//!   refreshes its stored headers and it answers as `REVALIDATED`; anything else replaces it. Such responses
//!   are kept for the route's TTL, others for their freshness plus what RFC 5861 grants:
//!   `stale-while-revalidate` answers at once with the stale response and revalidates behind it (one
//!   revalidation per entry for every process on the store's backend), `stale-if-error` answers with it when
//!   the service fails or gives a 5xx. `must-revalidate`, `proxy-revalidate` and `no-cache` forbid both.
//! - Never stored: `no-store` or `private` responses, responses stale on arrival that can be neither
//!   revalidated nor served stale, `Vary: *`, statuses other than the heuristically cacheable ones (so no
//!   partial content and no 5xx), responses to requests with `Authorization` unless explicitly public
//!   (`public`, `s-maxage`, `must-revalidate`), `Set-Cookie` responses unless `public` (and then without the
//!   cookie). Bodies without a known size under the limit pass through unstored.
//! - Requests: `no-store` bypasses the cache; `no-cache` or `max-age=0` revalidates (or asks the service);
//!   `max-age`, `min-fresh`, `max-stale` and `stale-if-error` are honoured; `only-if-cached` is answered from
//!   the cache or with 504, never by the service; a `Range` request bypasses. A client's conditional `GET`
//!   (`If-None-Match` by weak comparison, else `If-Modified-Since`) is answered 304 from a fresh or
//!   revalidated entry. A cached response answers an `Authorization` request only if it was explicitly public.
//! - Keys: tenant, path and query as sent up to RFC 3986's equivalences (an encoded unreserved character,
//!   the case of hex digits; ignored parameters dropped; the service is sent the same form), configured keyed
//!   headers, and the values of the response's `Vary` headers (an absent header differs from an empty one).
//! - Every header the service was sent is part of the answer's key: [`FORWARDED_HEADERS`], keyed headers and
//!   the tenant header as configured, any other header as if the answer's `Vary` named it — so no header
//!   outside the key can poison a shared entry. Once a URL has a stored response, headers its record does not
//!   name are withheld from the service (a response whose `Vary` names a withheld header the client sent is
//!   asked for again with it); on a URL's first request they go as sent.
//! - A `GET` with a body is passed through: neither answered from the cache nor stored.
//! - A successful (2xx/3xx) unsafe request invalidates its path (and a same-site `Location` /
//!   `Content-Location`) for its tenant: the path's epoch changes, so every variant is unreachable at once.
//! - Each tenant caches at most `max_paths` paths per route and `max_variants` variants per path, in each
//!   process and across every replica sharing the store (bounded sets in Redis, admitted atomically); further
//!   paths and variants are served but not stored, and an unsafe request to a path that holds nothing writes
//!   nothing, so flooding with unique paths or query strings cannot fill Redis.
//! - The cache never fails a request: with Redis down every request is a miss served by the service.

mod body;
mod entries;
mod error;
mod forward;
mod freshness;
mod head;
mod key;
mod layer;
mod policy;
mod revalidate;
#[cfg(feature = "server")]
pub mod server;
mod service;

pub use body::CacheBody;
pub use error::ConfigError;
pub use layer::{
    FORWARDED_HEADERS, HttpCacheLayer, HttpCacheLayerBuilder, Route, TenantExtractor,
    tenant_from_extension, tenant_from_header,
};
pub use service::{HttpCache, ResponseFuture, X_CACHE};
