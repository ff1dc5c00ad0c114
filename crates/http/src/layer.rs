//! [`HttpCacheLayer`] and its builder: which routes are cached, for how long, under which tenant, and the limits.

use std::{fmt, sync::Arc, time::Duration};

use fernando_cache_keys::{CacheType, Scope, TenantId};
use fernando_cache_store::{Store, config::TtlTable};
use http::{HeaderName, request::Parts};
use tower_layer::Layer;

use crate::{
    ConfigError, HttpCache,
    key::{PathPattern, paths_budget_key},
};

/// A cached route: a path pattern, its cache type, the longest time a response is kept, and the freshness
/// given to responses that state none.
///
/// Patterns are `/`-separated; `*` is exactly one segment and a final `**` any number of them
/// (`/v1/reports/**`). One segment may be `{subject}` (`/v1/documents/{subject}`): it matches like `*` and
/// files the route's entries under that subject, so [`fernando_cache_store::Target::subject`] (an
/// event about the document, say) removes them too.
#[derive(Debug, Clone)]
pub struct Route {
    pattern: String,
    cache_type: CacheType,
    ttl: Option<Duration>,
    heuristic: Option<Duration>,
}

impl Route {
    /// A route cached under `api_response` with that type's TTL.
    pub fn new(pattern: impl Into<String>) -> Route {
        Route {
            pattern: pattern.into(),
            cache_type: CacheType::API_RESPONSE,
            ttl: None,
            heuristic: None,
        }
    }

    /// The cache type its entries live under.
    #[must_use]
    pub fn cache_type(mut self, cache_type: CacheType) -> Route {
        self.cache_type = cache_type;
        self
    }

    /// The longest time a response is kept: a cap on the freshness an origin states (`s-maxage`, `max-age`,
    /// `Expires`, less its `Age`), which can only shorten it.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Route {
        self.ttl = Some(ttl);
        self
    }

    /// How long a response that states no freshness at all stays fresh (RFC 9111 §4.2.2's heuristic
    /// freshness; the route's TTL by default, and never more). Such a response is stored only if its status
    /// is heuristically cacheable.
    #[must_use]
    pub fn heuristic(mut self, lifetime: Duration) -> Route {
        self.heuristic = Some(lifetime);
        self
    }
}

/// Finds the tenant of a request; `None` means the request is not cached (nor does it invalidate).
pub trait TenantExtractor: Send + Sync + 'static {
    /// The scope the request's entries live in.
    fn scope(&self, parts: &Parts) -> Option<Scope>;

    /// The request header the tenant is read from, if any: part of every key, so it may reach the service
    /// and never keeps an answer from being shared.
    fn header(&self) -> Option<&HeaderName> {
        None
    }
}

impl<F> TenantExtractor for F
where
    F: Fn(&Parts) -> Option<Scope> + Send + Sync + 'static,
{
    fn scope(&self, parts: &Parts) -> Option<Scope> {
        self(parts)
    }
}

/// The tenant is the value of a request header (for example one set by an authenticating proxy or an
/// earlier middleware). Missing or invalid values mean "not cached".
pub fn tenant_from_header(name: HeaderName) -> impl TenantExtractor {
    TenantHeader(name)
}

struct TenantHeader(HeaderName);

impl TenantExtractor for TenantHeader {
    fn scope(&self, parts: &Parts) -> Option<Scope> {
        let value = parts.headers.get(&self.0)?.to_str().ok()?;
        TenantId::new(value).ok().map(Scope::Tenant)
    }

    fn header(&self) -> Option<&HeaderName> {
        Some(&self.0)
    }
}

/// The tenant is a [`TenantId`] (or [`Scope`]) an earlier middleware put into the request extensions.
pub fn tenant_from_extension() -> impl TenantExtractor {
    |parts: &Parts| -> Option<Scope> {
        parts.extensions.get::<Scope>().cloned().or_else(|| {
            parts
                .extensions
                .get::<TenantId>()
                .cloned()
                .map(Scope::Tenant)
        })
    }
}

/// The request headers that reach the service on a request the cache may answer or store, besides those that
/// are part of its key (configured keyed headers, and those a stored response names in `Vary`): content
/// negotiation, validators, directives, credentials (whose responses are shared only when they say so, RFC 9111
/// §3.5) and trace context. Every other header is withheld — an allow-list cannot miss a new poisoning header
/// (`X-Forwarded-Ssl`, `X-Original-URI`, …) the way a deny-list can. Add to it with
/// [`HttpCacheLayerBuilder::forward_header`].
pub const FORWARDED_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "authorization",
    "cache-control",
    "cookie",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "pragma",
    "traceparent",
    "tracestate",
    "user-agent",
];

pub(crate) struct CompiledRoute {
    pub(crate) pattern: PathPattern,
    pub(crate) cache_type: CacheType,
    /// The cap on how long a response is kept.
    pub(crate) ttl: Duration,
    /// The freshness of a response that states none.
    pub(crate) heuristic: Duration,
    /// The set bounding how many paths of this route a tenant has cached, across replicas.
    pub(crate) paths_key: String,
    /// The pattern as configured (names the per-path variant sets).
    pub(crate) source: String,
    /// Its position in the configuration.
    pub(crate) index: usize,
}

pub(crate) struct Config {
    pub(crate) store: Store,
    pub(crate) routes: Vec<CompiledRoute>,
    pub(crate) excluded: Vec<PathPattern>,
    pub(crate) tenant: Box<dyn TenantExtractor>,
    pub(crate) keyed_headers: Vec<String>,
    /// What reaches the service of a cacheable request: [`FORWARDED_HEADERS`], the keyed headers and those the
    /// builder added.
    pub(crate) forwarded_headers: Vec<HeaderName>,
    pub(crate) ignored_query: Vec<String>,
    pub(crate) max_variants: usize,
    pub(crate) max_paths: usize,
    pub(crate) max_body_bytes: u64,
    /// Part of every key when set ([`HttpCacheLayerBuilder::partition`]).
    pub(crate) partition: Option<String>,
    pub(crate) epoch_ttl: Duration,
    /// This process's own view of each bounded set, (tenant, set key) → members: the bound when the backend
    /// keeps no shared sets or does not answer.
    pub(crate) admitted: moka::sync::Cache<(String, String), Arc<std::sync::Mutex<AdmittedSet>>>,
    /// Entries being revalidated behind a stale answer by this process: a second stale request does not ask the
    /// backend for the entry's (fleet-wide) refresh claim again.
    pub(crate) refreshing: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// The members of one bounded set admitted in this process, with when each was last admitted.
#[derive(Default)]
pub(crate) struct AdmittedSet {
    pub(crate) members: std::collections::HashMap<String, std::time::Instant>,
}

impl Config {
    /// A path as key material: with a partition, the partition and the path (a NUL between them, which neither
    /// a configured name nor a request path holds), so equal paths of two partitions never share a key.
    pub(crate) fn keyed_path<'p>(&self, path: &'p str) -> std::borrow::Cow<'p, str> {
        match &self.partition {
            None => std::borrow::Cow::Borrowed(path),
            Some(p) => std::borrow::Cow::Owned(format!("{p}\u{0}{path}")),
        }
    }

    pub(crate) fn route(&self, path: &str) -> Option<&CompiledRoute> {
        if self.excluded.iter().any(|p| p.matches(path)) {
            return None;
        }
        self.routes.iter().find(|r| r.pattern.matches(path))
    }
}

/// A tower [`Layer`] that caches responses of selected routes in a [`Store`], per tenant, following the
/// shared-cache rules of RFC 9111. Build it with [`HttpCacheLayer::builder`].
#[derive(Clone)]
pub struct HttpCacheLayer {
    config: Arc<Config>,
}

impl fmt::Debug for HttpCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCacheLayer")
            .field("routes", &self.config.routes.len())
            .finish_non_exhaustive()
    }
}

impl HttpCacheLayer {
    /// Starts a layer over `store`; the tenant comes from `tenant`.
    pub fn builder(store: Store, tenant: impl TenantExtractor) -> HttpCacheLayerBuilder {
        HttpCacheLayerBuilder {
            store,
            tenant: Box::new(tenant),
            routes: Vec::new(),
            excluded: Vec::new(),
            keyed_headers: Vec::new(),
            forwarded_headers: Vec::new(),
            ignored_query: Vec::new(),
            max_variants: 256,
            max_paths: 10_000,
            max_body_bytes: 1 << 20,
            partition: None,
        }
    }
}

impl<S> Layer<S> for HttpCacheLayer {
    type Service = HttpCache<S>;

    fn layer(&self, inner: S) -> HttpCache<S> {
        HttpCache::new(inner, self.config.clone())
    }
}

/// Configures an [`HttpCacheLayer`].
pub struct HttpCacheLayerBuilder {
    store: Store,
    tenant: Box<dyn TenantExtractor>,
    routes: Vec<Route>,
    excluded: Vec<String>,
    keyed_headers: Vec<String>,
    forwarded_headers: Vec<String>,
    ignored_query: Vec<String>,
    max_variants: usize,
    max_paths: usize,
    max_body_bytes: u64,
    partition: Option<String>,
}

impl fmt::Debug for HttpCacheLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCacheLayerBuilder")
            .field("routes", &self.routes)
            .field("excluded", &self.excluded)
            .finish_non_exhaustive()
    }
}

impl HttpCacheLayerBuilder {
    /// Caches a route. The first matching route applies.
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Never caches paths matching this pattern, even when a route includes them.
    #[must_use]
    pub fn exclude(mut self, pattern: impl Into<String>) -> Self {
        self.excluded.push(pattern.into());
        self
    }

    /// Makes a request header part of every key (for example `accept-language` when responses depend on it
    /// without saying so in `Vary`). A keyed header reaches the service.
    #[must_use]
    pub fn key_header(mut self, name: impl Into<String>) -> Self {
        self.keyed_headers.push(name.into().to_ascii_lowercase());
        self
    }

    /// Lets a request header that is not part of the key reach the service of cacheable requests, beside
    /// [`FORWARDED_HEADERS`]. Only for a header the service's responses do not depend on (a tenant header the
    /// layer already keys by, a request id): anything it changes would be served to every client.
    #[must_use]
    pub fn forward_header(mut self, name: impl Into<String>) -> Self {
        self.forwarded_headers
            .push(name.into().to_ascii_lowercase());
        self
    }

    /// Leaves a query parameter out of keys (tracking parameters such as `utm_source`).
    #[must_use]
    pub fn ignore_query_param(mut self, name: impl Into<String>) -> Self {
        self.ignored_query.push(name.into());
        self
    }

    /// The most variants (distinct query strings and `Vary` values) one tenant may hold per URL path — in each
    /// process, and across every replica sharing the store (a bounded set in Redis); further variants are
    /// served by the service and not stored. Default 256.
    #[must_use]
    pub fn max_variants(mut self, n: usize) -> Self {
        self.max_variants = n;
        self
    }

    /// The most distinct paths of one route a tenant may have cached (each holds an epoch key and a variant
    /// set), bounded like [`max_variants`](Self::max_variants); requests for further paths are served by the
    /// service and leave nothing in the store. Default 10 000.
    #[must_use]
    pub fn max_paths(mut self, n: usize) -> Self {
        self.max_paths = n;
        self
    }

    /// The largest body stored; larger (or unsized, streamed) responses pass through. Default 1 MiB.
    #[must_use]
    pub fn max_body_bytes(mut self, n: u64) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Keeps this layer's entries apart from every other layer's on the same store and tenant: `name` (a proxy's
    /// origin, say) is part of every entry's key, so two layers in front of different services never answer
    /// each other's requests. Layers with the same partition (replicas of one service) share their entries.
    pub fn partition(mut self, name: impl Into<String>) -> Self {
        self.partition = Some(name.into());
        self
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    /// A malformed pattern or header name, a cache type without a TTL, or a zero limit.
    pub fn build(self) -> Result<HttpCacheLayer, ConfigError> {
        if self.max_variants == 0 {
            return Err(ConfigError::Zero("max_variants"));
        }
        if self.max_paths == 0 {
            return Err(ConfigError::Zero("max_paths"));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::Zero("max_body_bytes"));
        }
        let mut routes = Vec::new();
        let mut longest = Duration::ZERO;
        for (index, r) in self.routes.into_iter().enumerate() {
            let pattern = PathPattern::parse(&r.pattern).map_err(ConfigError::Pattern)?;
            let ttl = match r.ttl {
                Some(t) => t,
                None => self
                    .store
                    .admin()
                    .configured_ttl(&r.cache_type)
                    .ok_or_else(|| ConfigError::UnknownCacheType {
                        route: r.pattern.clone(),
                        cache_type: r.cache_type.to_string(),
                    })?,
            };
            longest = longest.max(ttl);
            routes.push(CompiledRoute {
                pattern,
                cache_type: r.cache_type,
                ttl,
                heuristic: r.heuristic.map_or(ttl, |h| h.min(ttl)),
                paths_key: paths_budget_key(&r.pattern),
                source: r.pattern.clone(),
                index,
            });
        }
        let excluded = self
            .excluded
            .iter()
            .map(|p| PathPattern::parse(p).map_err(ConfigError::Pattern))
            .collect::<Result<Vec<_>, _>>()?;
        let mut forwarded_headers: Vec<HeaderName> = FORWARDED_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h))
            .collect();
        for h in self.keyed_headers.iter().chain(&self.forwarded_headers) {
            let name = HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| ConfigError::HeaderName(h.clone()))?;
            forwarded_headers.push(name);
        }
        forwarded_headers.extend(self.tenant.header().cloned());
        let longest = longest.max(Duration::from_secs(1));
        Ok(HttpCacheLayer {
            config: Arc::new(Config {
                store: self.store,
                routes,
                excluded,
                tenant: self.tenant,
                keyed_headers: self.keyed_headers,
                forwarded_headers,
                ignored_query: self.ignored_query,
                max_variants: self.max_variants,
                max_paths: self.max_paths,
                max_body_bytes: self.max_body_bytes,
                partition: self.partition,
                // An epoch must outlive every entry written under it.
                epoch_ttl: (longest * 2).min(TtlTable::MAX_TTL),
                admitted: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(longest)
                    .build(),
                refreshing: std::sync::Mutex::default(),
            }),
        })
    }
}
