//! [`Store`]: the typed, tenant-scoped cache API over a [`CacheBackend`].

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use fernando_cache_config::{BackendKind, CacheType, Settings, TtlTable};
use fernando_cache_keys::{
    AsScope, CacheKey, GenerationKeys, KeyBuilder, Scope, ScopeRef, TenantId, layout,
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug_span};

use crate::{
    BackendError, BackendInfo, CacheBackend, ComputeError, KeyTtl, MemoryBackend, MetricsSnapshot,
    RedisBackend, StoreError,
    breaker::Breaker,
    codec::{self, CompressionPolicy, DecodeError, Encoded, Header},
    deadline::Deadlines,
    flight::{Flights, Role, Shared, follow},
    metrics::{Metrics, SeriesRef},
};

/// The store `#[cached]` functions use when they name none.
static INSTALLED: arc_swap::ArcSwapOption<Store> = arc_swap::ArcSwapOption::const_empty();

/// Pseudo cache type under which whole-scope invalidations are counted.
const ALL_TYPES: &str = "_all";

/// What happened to a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a write may be dropped while the backend is unavailable"]
pub enum WriteOutcome {
    /// The value is stored.
    Stored,
    /// The backend was unavailable; the write was dropped and counted (the cache is an optimisation).
    Dropped,
}

/// How an invalidation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationStrategy {
    /// Every matching key is deleted (SCAN + UNLINK) before the call returns.
    Eager,
    /// One O(1) write bumps a generation; readers stop seeing the old entries at once, and their storage is
    /// reclaimed by TTL.
    Lazy,
    /// Lazy now, then an eager sweep in the background to reclaim storage early.
    Hybrid,
}

impl InvalidationStrategy {
    /// `eager`, `lazy` or `hybrid`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationStrategy::Eager => "eager",
            InvalidationStrategy::Lazy => "lazy",
            InvalidationStrategy::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for InvalidationStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "eager" => Ok(Self::Eager),
            "lazy" => Ok(Self::Lazy),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!(
                "unknown invalidation strategy {other:?}; expected eager, lazy or hybrid"
            )),
        }
    }
}

/// The result of an invalidation.
#[derive(Debug)]
#[non_exhaustive]
pub struct Invalidation {
    /// The strategy applied.
    pub strategy: InvalidationStrategy,
    /// Keys deleted before the call returned (eager only).
    pub deleted: u64,
    /// The background sweep of the hybrid strategy; it yields the number of keys it deleted.
    pub sweep: Option<JoinHandle<Result<u64, StoreError>>>,
}

/// A cache store. Cheap to clone; all clones share connections, metrics and in-flight computations.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Arc<dyn CacheBackend>,
    /// The same backend when it is the built-in Redis one, so the hot read calls it without boxing a future.
    redis: Option<Arc<RedisBackend>>,
    /// Bounds every backend call by `timeout`; `None` for a backend in process, whose calls go through neither
    /// a timeout nor the breaker.
    deadlines: Option<Arc<Deadlines>>,
    keys: KeyBuilder,
    ttl: TtlTable,
    policy: CompressionPolicy,
    timeout: Duration,
    scan_batch: usize,
    generation_ttl: Duration,
    hybrid_delay: Duration,
    breaker: Breaker,
    metrics: Metrics,
    flights: Flights,
    /// Generations last seen per (scope, type): a writer's first guess, checked by every write.
    generations: moka::sync::Cache<String, [u64; 2]>,
}

/// How [`Store::compute_with`] treats computed values and errors.
pub(crate) struct ComputePolicy<T, E> {
    /// The entry's TTL; `None` uses the cache type's.
    pub(crate) ttl: Option<Duration>,
    /// Whether a computed value is written (it is shared with concurrent waiters either way).
    pub(crate) should_cache: fn(&T) -> bool,
    /// A copy of an error for concurrent waiters, when the error type allows one.
    pub(crate) share_error: fn(&E) -> Option<Shared>,
    /// A waiter's own error back from the shared copy.
    pub(crate) unshare_error: fn(&Shared) -> Option<E>,
}

/// Why [`Store::compute_with`] returned no value.
pub(crate) enum Failure<E> {
    /// The computation's own error (the leader's, or a shared copy).
    Compute(E),
    /// The call was refused before anything was computed.
    Store(StoreError),
}

/// Where a computed value goes.
struct StoreCtx<'a> {
    scope: &'a Scope,
    cache_type: &'a CacheType,
    key: &'a CacheKey,
    generations: Option<[u64; 2]>,
}

/// The generation keys of one read, built up front or only when a backend call needs them.
enum Gens<'a> {
    Built(GenerationKeys),
    Lazy {
        scope: ScopeRef<'a>,
        cache_type: &'a CacheType,
    },
}

impl Gens<'_> {
    fn build(
        &self,
        keys: &KeyBuilder,
    ) -> Result<std::borrow::Cow<'_, GenerationKeys>, BackendError> {
        match self {
            Gens::Built(g) => Ok(std::borrow::Cow::Borrowed(g)),
            // The entry key of the same scope was just built, so this cannot fail; if it did, the read degrades.
            Gens::Lazy { scope, cache_type } => keys
                .generation_keys(*scope, cache_type)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| BackendError::Other(e.to_string())),
        }
    }
}

/// A read's result, with the generations seen (when the backend answered) so a following write can use them.
struct Lookup<T> {
    value: Option<T>,
    generations: Option<[u64; 2]>,
}

impl Store {
    /// Builds the store the settings ask for: the in-process backend, or Redis (connecting lazily, so the store
    /// works — degraded — while Redis is down, and recovers by itself). Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// [`StoreError::Setup`] when the Redis URL cannot be used.
    pub fn from_settings(settings: &Settings) -> Result<Store, StoreError> {
        match settings.backend {
            BackendKind::Memory => Ok(Store::with_backend(
                settings,
                Arc::new(MemoryBackend::new(settings.memory.max_bytes)),
            )),
            BackendKind::Redis => {
                let redis = Arc::new(
                    RedisBackend::connect(
                        &settings.redis,
                        &KeyBuilder::new(
                            &settings.namespace,
                            settings.environment,
                            settings.tenancy.max_tenant_id_len,
                        )
                        .generation_prefix(),
                    )
                    .map_err(|e| StoreError::Setup(e.to_string()))?,
                );
                Ok(Store::build(settings, redis.clone(), Some(redis)))
            }
        }
    }

    /// Builds a store over any backend.
    pub fn with_backend(settings: &Settings, backend: Arc<dyn CacheBackend>) -> Store {
        Store::build(settings, backend, None)
    }

    fn build(
        settings: &Settings,
        backend: Arc<dyn CacheBackend>,
        redis: Option<Arc<RedisBackend>>,
    ) -> Store {
        let c = &settings.compression;
        Store {
            inner: Arc::new(Inner {
                deadlines: (!backend.is_local())
                    .then(|| Deadlines::start(settings.redis.command_timeout)),
                backend,
                redis,
                keys: KeyBuilder::new(
                    &settings.namespace,
                    settings.environment,
                    settings.tenancy.max_tenant_id_len,
                ),
                ttl: settings.ttl.clone(),
                policy: CompressionPolicy {
                    enabled: c.enabled,
                    threshold: c.threshold_bytes,
                    level: c.level,
                    max_decoded: c.max_decoded_bytes,
                },
                timeout: settings.redis.command_timeout,
                scan_batch: settings.redis.scan_batch,
                // A generation must outlive every entry written under the one before it.
                generation_ttl: (settings.ttl.max() * 2).min(TtlTable::MAX_TTL),
                hybrid_delay: settings.invalidation.hybrid_sweep_delay,
                breaker: Breaker::new(
                    settings.degradation.breaker_failure_threshold,
                    settings.degradation.breaker_open_for,
                ),
                metrics: Metrics::new(settings.metrics.max_series),
                flights: Flights::default(),
                generations: moka::sync::Cache::builder().max_capacity(100_000).build(),
            }),
        }
    }

    /// Installs this store as the process-wide default of `#[cached]` and `#[invalidates]` functions that
    /// name no store, replacing (and returning) the one installed before.
    pub fn install(&self) -> Option<Store> {
        INSTALLED
            .swap(Some(Arc::new(self.clone())))
            .map(|s| Store::clone(&s))
    }

    /// Removes the installed store: annotated functions then simply run. Returns the store that was installed.
    pub fn uninstall() -> Option<Store> {
        INSTALLED.swap(None).map(|s| Store::clone(&s))
    }

    /// The installed store, if any.
    pub fn installed() -> Option<Store> {
        INSTALLED.load().as_deref().cloned()
    }

    /// The seed's `invalidate_user_cache`: every entry of one tenant (user) becomes invisible now and is swept
    /// in the background (hybrid strategy).
    ///
    /// # Errors
    /// As [`Store::invalidate`].
    pub async fn invalidate_user_cache(
        &self,
        tenant: &TenantId,
    ) -> Result<Invalidation, StoreError> {
        self.invalidate(tenant, None, InvalidationStrategy::Hybrid)
            .await
    }

    /// The key builder, for callers that need the exact keys (operators, tests).
    pub fn keys(&self) -> &KeyBuilder {
        &self.inner.keys
    }

    /// The backend's kind (`redis`, `memory`).
    pub fn backend_kind(&self) -> &'static str {
        self.inner.backend.kind()
    }

    /// The configured TTL of a cache type.
    pub fn ttl_of(&self, cache_type: &CacheType) -> Option<Duration> {
        self.inner.ttl.get(cache_type)
    }

    // ---- reads -------------------------------------------------------------------------------------------

    /// Reads a value. Absent, expired, invalidated, undecodable or foreign-typed entries, and an unavailable
    /// backend, are all a miss (`Ok(None)`), counted in the metrics; undecodable entries are removed.
    ///
    /// # Errors
    /// Only for an invalid tenant or key.
    pub async fn get<T: DeserializeOwned>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        // Borrowed: a hot tenant's id is not cloned (and its reference count not bounced) per read.
        let scope = scope.as_scope();
        let span = debug_span!(
            "cache.get",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        // The hottest call: without a subscriber for the span, skip the `Instrumented` wrapper entirely.
        if span.is_disabled() {
            self.read(scope, cache_type, key, codec::decode_typed::<T>)
                .await
        } else {
            self.read(scope, cache_type, key, codec::decode_typed::<T>)
                .instrument(span)
                .await
        }
    }

    /// Reads bytes written with [`Store::set_bytes`]. For an entry written by the typed API it returns that
    /// value's bincode encoding (it never treats a typed entry as foreign), which is what operators inspect.
    ///
    /// # Errors
    /// Only for an invalid tenant or key.
    pub async fn get_bytes(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let scope = scope.as_scope();
        let span = debug_span!(
            "cache.get_bytes",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        self.read(scope, cache_type, key, codec::decode_raw)
            .instrument(span)
            .await
    }

    /// Whether a live entry exists (it may still be hidden by a lazy invalidation).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot answer; invalid tenant or key.
    pub async fn exists(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<bool, StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!(
            "cache.exists",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        let k = self.inner.keys.key(&scope, cache_type, key)?;
        self.call(self.inner.backend.exists(k.as_str()))
            .instrument(span)
            .await
            .map_err(|source| StoreError::Unavailable {
                op: "exists",
                source,
            })
    }

    /// The remaining life of an entry.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot answer; invalid tenant or key.
    pub async fn ttl(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<KeyTtl, StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!(
            "cache.ttl",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        let k = self.inner.keys.key(&scope, cache_type, key)?;
        self.call(self.inner.backend.ttl(k.as_str()))
            .instrument(span)
            .await
            .map_err(|source| StoreError::Unavailable { op: "ttl", source })
    }

    // ---- writes ------------------------------------------------------------------------------------------

    /// Stores a value for its cache type's configured TTL.
    ///
    /// # Errors
    /// Invalid tenant or key, a cache type without a TTL, or a value that cannot be encoded. An unavailable
    /// backend is not an error: the write is dropped and counted ([`WriteOutcome::Dropped`]).
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        value: &T,
    ) -> Result<WriteOutcome, StoreError> {
        self.set_with_ttl(scope, cache_type, key, value, None).await
    }

    /// Stores a value for `ttl`, or the cache type's TTL when `None`.
    ///
    /// # Errors
    /// As [`Store::set`], plus [`StoreError::InvalidTtl`].
    pub async fn set_with_ttl<T: Serialize + ?Sized>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<WriteOutcome, StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!(
            "cache.set",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        let encoded = codec::encode_typed(value, [0, 0], &self.inner.policy);
        self.write(&scope, cache_type, key, encoded, ttl)
            .instrument(span)
            .await
    }

    /// Stores bytes as they are (compressed above the threshold like any value).
    ///
    /// # Errors
    /// As [`Store::set_with_ttl`].
    pub async fn set_bytes(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<WriteOutcome, StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!(
            "cache.set_bytes",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        let encoded = codec::encode_raw(value, [0, 0], &self.inner.policy);
        self.write(&scope, cache_type, key, encoded, ttl)
            .instrument(span)
            .await
    }

    /// Deletes one entry; returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot delete (a silent failure would leave stale data);
    /// invalid tenant or key.
    pub async fn delete(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<bool, StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!(
            "cache.delete",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        async {
            let k = self.inner.keys.key(&scope, cache_type, key)?;
            let series = self
                .inner
                .metrics
                .series(scope.label(), cache_type.as_str());
            match self.call(self.inner.backend.delete(&[k.as_str()])).await {
                Ok(n) => {
                    series.add(|c| &c.deletes, n);
                    Ok(n > 0)
                }
                Err(source) => {
                    series.add(|c| &c.errors, 1);
                    Err(StoreError::Unavailable {
                        op: "delete",
                        source,
                    })
                }
            }
        }
        .instrument(span)
        .await
    }

    // ---- compute -----------------------------------------------------------------------------------------

    /// Returns the cached value, or computes, stores and returns it.
    ///
    /// Concurrent misses on one key in this process run `compute` once; the others wait for its outcome. An
    /// `Err` is handed to every waiter and not cached. With the backend unavailable, `compute` simply runs. A
    /// computed value that cannot be encoded is still returned (the failed write is logged and counted as an
    /// error).
    ///
    /// # Errors
    /// [`ComputeError::Compute`] with the computation's error; [`ComputeError::Store`] for an invalid tenant,
    /// key or cache type — always before `compute` runs.
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        compute: F,
    ) -> Result<T, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = ComputePolicy {
            ttl: None,
            should_cache: |_: &T| true,
            share_error: |e: &Arc<E>| Some(Arc::new(e.clone()) as Shared),
            unshare_error: |s: &Shared| s.downcast_ref::<Arc<E>>().cloned(),
        };
        let compute = || async { compute().await.map_err(Arc::new) };
        match self
            .compute_with(
                scope.as_scope().to_scope(),
                cache_type,
                key,
                &policy,
                compute,
            )
            .await
        {
            Ok(v) => Ok(v),
            Err(Failure::Compute(e)) => Err(ComputeError::Compute(e)),
            Err(Failure::Store(e)) => Err(ComputeError::Store(e)),
        }
    }

    /// The engine of [`Store::get_or_compute`] and of the `#[cached]` runtime: read, else single-flight
    /// compute, store when `policy.should_cache` says so, and share the outcome with the waiters.
    ///
    /// A [`Failure::Store`] is only ever returned before `compute` is called, so a caller can still run its
    /// computation itself.
    pub(crate) async fn compute_with<T, E, F, Fut>(
        &self,
        scope: Scope,
        cache_type: &CacheType,
        key: &str,
        policy: &ComputePolicy<T, E>,
        compute: F,
    ) -> Result<T, Failure<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let span = debug_span!(
            "cache.get_or_compute",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        self.compute_inner(scope, cache_type, key, policy, compute)
            .instrument(span)
            .await
    }

    async fn compute_inner<T, E, F, Fut>(
        &self,
        scope: Scope,
        cache_type: &CacheType,
        key: &str,
        policy: &ComputePolicy<T, E>,
        compute: F,
    ) -> Result<T, Failure<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match policy.ttl {
            Some(t) if t < Duration::from_millis(1) || t > TtlTable::MAX_TTL => {
                return Err(Failure::Store(StoreError::InvalidTtl(t)));
            }
            Some(_) => {}
            None if self.inner.ttl.get(cache_type).is_none() => {
                return Err(Failure::Store(StoreError::UnknownCacheType(
                    cache_type.clone(),
                )));
            }
            None => {}
        }
        let (k, g) = self
            .key_pair((&scope).into(), cache_type, key)
            .map_err(Failure::Store)?;
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        let first = self
            .lookup(&k, &g, &series, codec::decode_typed::<T>, false)
            .await;
        if let Some(v) = first.value {
            return Ok(v);
        }
        // The miss path is boxed so a hit's future stays small: hits are the hot path.
        let miss = self.after_miss(
            &scope,
            cache_type,
            (&k, &g),
            first.generations,
            policy,
            compute,
        );
        Box::pin(miss).await
    }

    /// Single-flight computation after a first read missed.
    async fn after_miss<T, E, F, Fut>(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        (k, g): (&CacheKey, &Gens<'_>),
        first_generations: Option<[u64; 2]>,
        policy: &ComputePolicy<T, E>,
        compute: F,
    ) -> Result<T, Failure<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        let mut compute = Some(compute);
        loop {
            match self.inner.flights.join(k.as_str()) {
                Role::Follower(rx) => {
                    if let Some(outcome) = follow(rx).await {
                        match outcome {
                            Ok(v) => {
                                if let Some(v) = v.downcast_ref::<T>() {
                                    return Ok(v.clone());
                                }
                            }
                            Err(Some(e)) => {
                                if let Some(e) = (policy.unshare_error)(&e) {
                                    return Err(Failure::Compute(e));
                                }
                            }
                            // The leader's error cannot be shared: each waiter computes for itself.
                            Err(None) => {}
                        }
                        // Same key, another type, or an unshared error: compute for ourselves, outside the
                        // flight.
                        let f = compute.take().expect("compute is only taken once");
                        let ctx = StoreCtx {
                            scope,
                            cache_type,
                            key: k,
                            generations: first_generations,
                        };
                        return self.compute_and_store(ctx, policy, f, None).await;
                    }
                    // The leader vanished: go round and maybe lead.
                }
                Role::Leader(guard) => {
                    // A flight that finished between our read and now may have filled the cache.
                    // This read also tells a key of another Redis type from an absent one, so such an entry
                    // is counted and removed before the computed value replaces it.
                    let again = self
                        .lookup(k, g, &series, codec::decode_typed::<T>, true)
                        .await;
                    if let Some(v) = again.value {
                        guard.publish(Ok(Arc::new(v.clone())));
                        return Ok(v);
                    }
                    let f = compute.take().expect("compute is only taken once");
                    let ctx = StoreCtx {
                        scope,
                        cache_type,
                        key: k,
                        generations: again.generations.or(first_generations),
                    };
                    return self.compute_and_store(ctx, policy, f, Some(&guard)).await;
                }
            }
        }
    }

    async fn compute_and_store<T, E, F, Fut>(
        &self,
        ctx: StoreCtx<'_>,
        policy: &ComputePolicy<T, E>,
        compute: F,
        guard: Option<&crate::flight::LeaderGuard<'_>>,
    ) -> Result<T, Failure<E>>
    where
        T: Serialize + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let series = self
            .inner
            .metrics
            .series(ctx.scope.label(), ctx.cache_type.as_str());
        match compute().await {
            Ok(value) => {
                if let Some(g) = guard {
                    g.publish(Ok(Arc::new(value.clone()) as Shared));
                }
                if (policy.should_cache)(&value) {
                    match codec::encode_typed(&value, [0, 0], &self.inner.policy) {
                        Ok(encoded) => {
                            // A dropped write is already counted as degraded; the caller gets its value.
                            let written = self
                                .write_key(
                                    ctx.scope,
                                    ctx.cache_type,
                                    ctx.key,
                                    encoded,
                                    policy.ttl,
                                    ctx.generations,
                                    &series,
                                )
                                .await;
                            if let Err(e) = written {
                                tracing::warn!(error = %e, "computed value not cached");
                            }
                        }
                        Err(e) => {
                            series.add(|c| &c.errors, 1);
                            tracing::warn!(error = %e, "computed value cannot be encoded; not cached");
                        }
                    }
                }
                Ok(value)
            }
            Err(e) => {
                if let Some(g) = guard {
                    g.publish(Err((policy.share_error)(&e)));
                }
                Err(Failure::Compute(e))
            }
        }
    }

    // ---- invalidation ------------------------------------------------------------------------------------

    /// Invalidates a scope's entries, or one cache type's, with the given strategy.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot take the invalidation — never silently skipped.
    pub async fn invalidate(
        &self,
        scope: impl AsScope,
        cache_type: Option<&CacheType>,
        strategy: InvalidationStrategy,
    ) -> Result<Invalidation, StoreError> {
        let scope = scope.as_scope().to_scope();
        let type_label = cache_type.map_or(ALL_TYPES, CacheType::as_str);
        let span = debug_span!(
            "cache.invalidate",
            tenant = scope.label(),
            cache_type = type_label,
            strategy = strategy.as_str()
        );
        async {
            let pattern = self.inner.keys.scan_pattern(&scope, cache_type);
            let mut result = Invalidation {
                strategy,
                deleted: 0,
                sweep: None,
            };
            if strategy == InvalidationStrategy::Eager {
                result.deleted = self.delete_matching(&scope, type_label, &pattern).await?;
            } else {
                // Any cache type works for the scope-level key.
                let g = self
                    .inner
                    .keys
                    .generation_keys(&scope, cache_type.unwrap_or(&CacheType::SESSION))?;
                let gen_key = if cache_type.is_some() {
                    g.cache_type()
                } else {
                    g.scope()
                };
                self.call(
                    self.inner
                        .backend
                        .bump_generation(gen_key, self.inner.generation_ttl),
                )
                .await
                .map_err(|source| StoreError::Unavailable {
                    op: "invalidate",
                    source,
                })?;
                if strategy == InvalidationStrategy::Hybrid {
                    let store = self.clone();
                    let type_label = type_label.to_owned();
                    let delay = self.inner.hybrid_delay;
                    result.sweep = Some(tokio::spawn(
                        async move {
                            tokio::time::sleep(delay).await;
                            store.delete_matching(&scope, &type_label, &pattern).await
                        }
                        .instrument(debug_span!("cache.hybrid_sweep")),
                    ));
                }
            }
            tracing::info!(deleted = result.deleted, "cache invalidated");
            Ok(result)
        }
        .instrument(span)
        .await
    }

    /// Deletes the entries of a scope (and optionally one type) whose specific key matches `key_glob`
    /// (`*`, `?`, `[…]`), with SCAN + UNLINK in batches — never `KEYS`. The glob cannot reach outside the scope.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot complete the sweep.
    pub async fn delete_pattern(
        &self,
        scope: impl AsScope,
        cache_type: Option<&CacheType>,
        key_glob: &str,
    ) -> Result<u64, StoreError> {
        let scope = scope.as_scope().to_scope();
        let pattern = self.inner.keys.key_pattern(&scope, cache_type, key_glob);
        let type_label = cache_type.map_or(ALL_TYPES, CacheType::as_str);
        self.delete_matching(&scope, type_label, &pattern)
            .instrument(debug_span!(
                "cache.delete_pattern",
                tenant = scope.label(),
                cache_type = type_label
            ))
            .await
    }

    /// Deletes every entry about `subject` — a document fingerprint, a session id — in a scope, in one cache
    /// type or in all of them: the entry keyed by the subject itself and every key under `{subject}/` (the
    /// document pipeline's stages for every engine, the HTTP copies of routes that name the subject; see
    /// [`fernando_cache_keys::layout`]). Eager, because generations exist per type, not per key. Returns how
    /// many keys were deleted.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot complete the sweep.
    pub async fn invalidate_subject(
        &self,
        scope: impl AsScope,
        cache_type: Option<&CacheType>,
        subject: &str,
    ) -> Result<u64, StoreError> {
        let scope = scope.as_scope();
        let mut deleted = 0;
        for glob in layout::subject_globs(subject) {
            deleted += self.delete_pattern(scope, cache_type, &glob).await?;
        }
        Ok(deleted)
    }

    /// Deletes every entry of a scope, or of one type in it (eager invalidation).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot complete the sweep.
    pub async fn clear_cache(
        &self,
        scope: impl AsScope,
        cache_type: Option<&CacheType>,
    ) -> Result<u64, StoreError> {
        Ok(self
            .invalidate(scope, cache_type, InvalidationStrategy::Eager)
            .await?
            .deleted)
    }

    async fn delete_matching(
        &self,
        scope: &Scope,
        type_label: &str,
        pattern: &str,
    ) -> Result<u64, StoreError> {
        let series = self.inner.metrics.series(scope.label(), type_label);
        let Some(permit) = self.inner.breaker.acquire() else {
            return Err(StoreError::Unavailable {
                op: "invalidate",
                source: BackendError::CircuitOpen,
            });
        };
        let r = self
            .inner
            .backend
            .delete_matching(pattern, self.inner.scan_batch, self.inner.timeout)
            .await;
        match r {
            Ok(n) => {
                permit.success();
                series.add(|c| &c.deletes, n);
                Ok(n)
            }
            Err(source) => {
                if source.is_unavailability() {
                    permit.failure();
                } else {
                    permit.success();
                }
                series.add(|c| &c.errors, 1);
                Err(StoreError::Unavailable {
                    op: "invalidate",
                    source,
                })
            }
        }
    }

    // ---- operations --------------------------------------------------------------------------------------

    /// Everything counted since the store started.
    pub fn metrics(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            taken_at: SystemTime::now(),
            backend: self.inner.backend.kind(),
            breaker: self.inner.breaker.state(),
            breaker_opened: self.inner.breaker.opened_total(),
            series: self.inner.metrics.snapshot(),
        }
    }

    /// Pings the backend (through the breaker and timeout) and returns the round-trip time.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not answer in time.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let start = Instant::now();
        self.call(self.inner.backend.ping())
            .instrument(debug_span!("cache.ping"))
            .await
            .map_err(|source| StoreError::Unavailable { op: "ping", source })?;
        Ok(start.elapsed())
    }

    /// Server facts (memory, eviction policy, key count) for operators and health checks.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend does not answer in time.
    pub async fn backend_info(&self) -> Result<BackendInfo, StoreError> {
        self.call(self.inner.backend.info())
            .instrument(debug_span!("cache.backend_info"))
            .await
            .map_err(|source| StoreError::Unavailable { op: "info", source })
    }

    // ---- internals ---------------------------------------------------------------------------------------

    /// The entry key and the generation keys of a read: built now, or left for the Redis backend to build
    /// when it must read them (its tracked hits do not).
    fn key_pair<'a>(
        &self,
        scope: ScopeRef<'a>,
        cache_type: &'a CacheType,
        key: &str,
    ) -> Result<(CacheKey, Gens<'a>), StoreError> {
        let entry = self
            .inner
            .keys
            .key_in(key_buffer::take(), scope, cache_type, key)?;
        let generations = if self.inner.redis.is_some() {
            Gens::Lazy { scope, cache_type }
        } else if self.inner.backend.generations_in_use() {
            Gens::Built(self.inner.keys.generation_keys(scope, cache_type)?)
        } else {
            // A generation bumped right after this check only makes this one read miss (never stale).
            Gens::Built(GenerationKeys::unused())
        };
        Ok((entry, generations))
    }

    /// One backend call through the breaker and the command timeout.
    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.call_from(Instant::now(), fut).await
    }

    /// [`Store::call`] for a call that started at `start` (a clock read the caller already made).
    async fn call_from<T>(
        &self,
        start: Instant,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let Some(deadlines) = &self.inner.deadlines else {
            return fut.await;
        };
        let Some(permit) = self.inner.breaker.acquire() else {
            return Err(BackendError::CircuitOpen);
        };
        let result = deadlines
            .run(start + self.inner.timeout, fut)
            .await
            .unwrap_or(Err(BackendError::Timeout(self.inner.timeout)));
        match &result {
            Err(e) if e.is_unavailability() => permit.failure(),
            _ => permit.success(),
        }
        result
    }

    async fn lookup<T>(
        &self,
        key: &CacheKey,
        generations: &Gens<'_>,
        series: &SeriesRef<'_>,
        decode: impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
        checked: bool,
    ) -> Lookup<T> {
        /// What a read found, counted once at the end.
        enum Found {
            Value,
            Absent,
            Stale,
            Corrupt,
            Unavailable { refused: bool },
        }
        let start = Instant::now();
        let backend = &self.inner.backend;
        let keys = &self.inner.keys;
        let fetched = if let (false, Some(redis)) = (checked, &self.inner.redis) {
            self.call_from(
                start,
                redis.fetch_unboxed(key.as_str(), || generations.build(keys)),
            )
            .await
        } else {
            match generations.build(keys) {
                Ok(g) if checked => {
                    self.call_from(start, backend.fetch_checked(key.as_str(), &g))
                        .await
                }
                Ok(g) => self.call_from(start, backend.fetch(key.as_str(), &g)).await,
                Err(e) => Err(e),
            }
        };
        let (result, found) = match fetched {
            Ok(f) => {
                let (value, found) = match f.value {
                    None => (None, Found::Absent),
                    Some(bytes) => match codec::read_header(&bytes) {
                        Ok(h) if h.generations != f.generations => (None, Found::Stale),
                        Ok(h) => match decode(&bytes, &h, self.inner.policy.max_decoded) {
                            Ok(v) => (Some(v), Found::Value),
                            Err(e) => {
                                Box::pin(self.discard_corrupt(key, &e.to_string())).await;
                                (None, Found::Corrupt)
                            }
                        },
                        Err(e) => {
                            Box::pin(self.discard_corrupt(key, &e.to_string())).await;
                            (None, Found::Corrupt)
                        }
                    },
                };
                let lookup = Lookup {
                    value,
                    generations: Some(f.generations),
                };
                (lookup, found)
            }
            Err(BackendError::WrongType) => {
                Box::pin(self.discard_corrupt(key, "the key holds a non-string Redis value")).await;
                (
                    Lookup {
                        value: None,
                        generations: None,
                    },
                    Found::Corrupt,
                )
            }
            Err(e) => {
                let refused = matches!(e, BackendError::CircuitOpen);
                if !refused {
                    tracing::debug!(error = %e, "cache read failed; treating as a miss");
                }
                (
                    Lookup {
                        value: None,
                        generations: None,
                    },
                    Found::Unavailable { refused },
                )
            }
        };
        let elapsed = start.elapsed();
        series.apply(|s| {
            let c = &s.counters;
            let one = |counter: &AtomicU64| {
                counter.fetch_add(1, Ordering::Relaxed);
            };
            // A leader's re-check belongs to a call whose first read was already counted as a miss: it
            // counts what it finds, but not a second hit or miss.
            let count = |counter: &AtomicU64| {
                if !checked {
                    one(counter);
                }
            };
            match found {
                Found::Value => count(&c.hits),
                Found::Absent => count(&c.misses),
                Found::Stale => {
                    count(&c.misses);
                    one(&c.stale);
                }
                Found::Corrupt => {
                    count(&c.misses);
                    one(&c.corrupt);
                }
                Found::Unavailable { refused } => {
                    count(&c.misses);
                    one(&c.degraded);
                    if !refused {
                        one(&c.errors);
                        one(&c.read_errors);
                    }
                }
            }
            // One logical read, one latency sample: the re-check is part of its call's read.
            if !checked {
                s.get_latency.record(elapsed);
            }
        });
        result
    }

    async fn discard_corrupt(&self, key: &CacheKey, why: &str) {
        tracing::warn!(key = key.as_str(), why, "unusable cache entry removed");
        if let Err(e) = self.call(self.inner.backend.delete(&[key.as_str()])).await {
            tracing::debug!(error = %e, "could not remove the unusable entry; its TTL will");
        }
    }

    /// The read path shared by the typed and the raw API: keys, one lookup, the value.
    async fn read<T>(
        &self,
        scope: ScopeRef<'_>,
        cache_type: &CacheType,
        key: &str,
        decode: impl Fn(&[u8], &Header, usize) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, StoreError> {
        let (k, g) = self.key_pair(scope, cache_type, key)?;
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        let value = self.lookup(&k, &g, &series, decode, false).await.value;
        key_buffer::give_back(k);
        Ok(value)
    }

    /// The write path shared by the typed and the raw API: an encoding failure is the caller's error.
    async fn write(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &str,
        encoded: Result<Encoded, String>,
        ttl: Option<Duration>,
    ) -> Result<WriteOutcome, StoreError> {
        let encoded = encoded.map_err(StoreError::Encode)?;
        let k = self.inner.keys.key(scope, cache_type, key)?;
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        self.write_key(scope, cache_type, &k, encoded, ttl, None, &series)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_key(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &CacheKey,
        encoded: Encoded,
        ttl: Option<Duration>,
        generations: Option<[u64; 2]>,
        series: &SeriesRef<'_>,
    ) -> Result<WriteOutcome, StoreError> {
        let ttl = match ttl {
            Some(t) if t < Duration::from_millis(1) || t > TtlTable::MAX_TTL => {
                return Err(StoreError::InvalidTtl(t));
            }
            Some(t) => t,
            None => self
                .inner
                .ttl
                .get(cache_type)
                .ok_or_else(|| StoreError::UnknownCacheType(cache_type.clone()))?,
        };
        let start = Instant::now();
        let raw_len = encoded.raw_len as u64;
        let stored = self
            .stamp_and_set(scope, cache_type, key, encoded.bytes, ttl, generations)
            .await;
        let elapsed = start.elapsed();
        let outcome = if stored.is_ok() {
            WriteOutcome::Stored
        } else {
            WriteOutcome::Dropped
        };
        series.apply(|s| {
            let c = &s.counters;
            match &stored {
                Ok(len) => {
                    c.sets.fetch_add(1, Ordering::Relaxed);
                    c.raw_bytes.fetch_add(raw_len, Ordering::Relaxed);
                    c.stored_bytes.fetch_add(*len, Ordering::Relaxed);
                }
                Err(e) => {
                    if !matches!(e, BackendError::CircuitOpen) {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        c.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    c.dropped_sets.fetch_add(1, Ordering::Relaxed);
                    c.degraded.fetch_add(1, Ordering::Relaxed);
                }
            }
            s.set_latency.record(elapsed);
        });
        if let Err(e) = &stored {
            tracing::debug!(error = %e, "cache write dropped");
        }
        Ok(outcome)
    }

    /// Writes an envelope stamped with the current generations: a guess first (the caller's, or the last seen),
    /// corrected from what the write's own round trip read if an invalidation changed them.
    async fn stamp_and_set(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &CacheKey,
        mut bytes: Vec<u8>,
        ttl: Duration,
        guess: Option<[u64; 2]>,
    ) -> Result<u64, BackendError> {
        let g = self
            .inner
            .keys
            .generation_keys(scope, cache_type)
            .map_err(|e| BackendError::Other(e.to_string()))?;
        let mut stamp = guess
            .or_else(|| self.inner.generations.get(g.cache_type()))
            .unwrap_or([0, 0]);
        let len = bytes.len() as u64;
        // Each retry means an invalidation landed between two of our writes; after three in a row the last
        // write simply stays invisible (a miss, never stale data).
        for _ in 0..3 {
            codec::set_generations(&mut bytes, stamp);
            let value = Bytes::from(bytes);
            let current = self
                .call(self.inner.backend.set(key.as_str(), value.clone(), ttl, &g))
                .await?;
            if current == stamp {
                return Ok(len);
            }
            self.inner
                .generations
                .insert(g.cache_type().to_owned(), current);
            stamp = current;
            bytes = value.to_vec();
        }
        Ok(len)
    }
}

/// Per-thread buffers for entry keys: a read builds its key into one and hands it back, saving an allocation
/// and a free per hit.
mod key_buffer {
    use std::cell::RefCell;

    use fernando_cache_keys::CacheKey;

    /// Buffers kept per thread: about the number of reads a thread has in flight at once.
    const KEPT: usize = 64;

    thread_local! {
        static BUFFERS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn take() -> String {
        BUFFERS.with(|b| b.borrow_mut().pop()).unwrap_or_default()
    }

    pub(super) fn give_back(key: CacheKey) {
        let buffer = key.into_string();
        // A buffer grown by an unusually long key is not worth keeping.
        if buffer.capacity() > 1024 {
            return;
        }
        BUFFERS.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < KEPT {
                b.push(buffer);
            }
        });
    }
}
