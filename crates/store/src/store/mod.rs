//! [`Store`]: the typed, tenant-scoped cache API over a [`crate::Backend`] — its construction, its metrics, and
//! the bodies of the operator calls [`Admin`] exposes. The rest is here by concern: reads (`read.rs`), writes
//! (`write.rs`), `get_or_compute` (`get_or_compute.rs`) over the single-flight engine (`compute.rs`,
//! `detached.rs`), invalidation (`invalidate.rs`), the operators' and the services' handles (`admin.rs`,
//! `coordinator.rs`), tenants' plans (`plans.rs`), erasure and export (`erasure.rs`, `export.rs`), every
//! backend call's breaker and deadline (`call.rs`), and which backend each tenant's calls go to (`route/`,
//! design 0023).

mod accounting;
mod admin;
mod call;
mod compute;
mod coordinator;
mod detached;
mod dictionaries;
mod erasure;
mod export;
mod get_or_compute;
mod invalidate;
mod l1;
mod lease;
mod many;
mod plans;
mod quota;
mod read;
mod replication;
mod route;
mod settle;
pub(crate) mod sweeps;
mod tally;
mod write;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use fernando_cache_config::{BackendKind, CacheType, Settings, SingleFlightTable, TtlTable};
use fernando_cache_keys::{AsScope, KeyBuilder};
use tracing::{Instrument, debug_span};

use crate::{
    Backend, BackendInfo, MemoryBackend, MetricsSnapshot, StoreError, breaker::Breaker,
    codec::CompressionPolicy, deadline::Deadlines, flight::Flights, metrics::Metrics,
};
use route::{Lane, Role};

pub use accounting::Cost;
pub use admin::Admin;
pub use compute::Served;
pub(crate) use compute::{ComputePolicy, Failure};
pub use coordinator::Coordinator;
pub use dictionaries::TrainedDictionary;
pub use erasure::Erasure;
pub use export::{ExportCursor, ExportPage, HeldEntry};
pub use get_or_compute::{Attached, Compute, ComputeMode, Detached};
pub use invalidate::{Invalidation, InvalidationStrategy, Target};
pub use lease::RefreshClaim;
pub use quota::{QuotaUsage, RequestQuota};
pub use replication::{Progress as RegionProgress, RegionStatus, Replicator, Round};
pub use route::Isolations;
pub(crate) use write::EntryTags;
pub use write::{Write, WriteOutcome};

/// Pseudo cache type under which whole-scope invalidations are counted.
const ALL_TYPES: &str = "_all";

/// A cache store: typed values per tenant and cache type on one backend. Cheap to clone; all clones share
/// connections, metrics and in-flight computations.
///
/// Its whole API: [`Store::get`], [`Store::get_bytes`]; [`Store::set`], and [`Store::set_with`] /
/// [`Store::set_bytes`] with [`Write`] options (TTL, tags); [`Store::delete`]; [`Store::get_or_compute`], and
/// [`Store::get_or_compute_with`] with [`Compute`] options (which values are stored, detached computations);
/// [`Store::invalidate`] of a [`Target`]; [`Store::metrics`]. Operators' calls are on [`Store::admin`], the
/// coordination services share through the store on [`Store::coordinator`], and the default store of
/// `#[cached]` functions is set with [`crate::install`].
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The shared backend, with its breaker and deadlines: the global scope's, every `namespace` tenant's, and
    /// the operators' calls'.
    shared: Lane,
    /// The lanes of tenants that run `acl` or `dedicated` isolation (design 0023); `None` while every tenant
    /// runs on the shared lane, so picking a lane costs one branch.
    routes: Option<route::Routes>,
    keys: KeyBuilder,
    ttl: TtlTable,
    policy: CompressionPolicy,
    timeout: Duration,
    scan_batch: usize,
    generation_ttl: Duration,
    hybrid_delay: Duration,
    /// Pattern sweeps, bounded per tenant.
    sweeps: sweeps::Sweeps,
    /// Why a backend last could not be reached (its error, as an operator reads it), if one ever was not.
    last_unavailable: std::sync::Mutex<Option<String>>,
    metrics: Metrics,
    flights: Flights,
    /// Per cache type: single-flight per process or across processes.
    single_flight: SingleFlightTable,
    /// Generations last seen per (scope, type): a writer's first guess, checked by every write.
    generations: moka::sync::Cache<String, [u64; 2]>,
    /// The in-process tier, when some cache type keeps copies (design 0013).
    l1: Option<l1::L1>,
    /// Per cache type: L1, fail-safe and eager refresh (designs 0013, 0014).
    tiers: fernando_cache_config::TierTable,
    /// Entry keys being refreshed ahead of expiry in the background (one refresh per key at a time).
    refreshing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The request quota's window (design 0017); each tenant's bounds are in its plan.
    quotas: fernando_cache_config::QuotaSettings,
    /// Each tenant's plan: its isolation, shards, byte and request quotas and TTL cap (issue 31).
    plans: plans::Plans,
    /// Seals the values of the configured cache types (design 0018); `None` when none is sealed.
    sealer: Option<crate::seal::Sealer>,
    /// The groups' compression dictionaries this process knows, and its samples for training (design 0025).
    dictionaries: dictionaries::Dictionaries,
    /// The region this deployment is, when it replicates to others (design 0026).
    region: Option<replication::Region>,
    /// Shards of a region's stream on this store's backend (design 0026): one, or more on a cluster.
    stream_shards: u16,
}

impl Store {
    /// Builds the store the settings ask for: the in-process backend, or Redis — one server, a Redis Cluster or
    /// a Sentinel-watched primary, as `redis.mode` says — connecting lazily, so the store works (degraded)
    /// while Redis is down and recovers by itself. Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// [`StoreError::Setup`] when the Redis URL cannot be used.
    pub fn from_settings(settings: &Settings) -> Result<Store, StoreError> {
        match settings.backend {
            BackendKind::Memory => {
                Store::with_backend(settings, MemoryBackend::new(settings.memory.max_bytes))
            }
            #[cfg(feature = "disk")]
            BackendKind::Disk => {
                let disk = crate::DiskBackend::open(&settings.disk, settings.command_timeout)
                    .map_err(|source| StoreError::Setup { source })?;
                Store::with_backend(settings, disk)
            }
            #[cfg(not(feature = "disk"))]
            BackendKind::Disk => Err(missing_feature("disk", "disk")),
            #[cfg(not(feature = "redis"))]
            BackendKind::Redis => Err(missing_feature("redis", "redis")),
            #[cfg(feature = "redis")]
            BackendKind::Redis => {
                use crate::{ClusterBackend, RedisBackend};
                let tracked = tracked_keys(settings);
                if settings.redis.mode == fernando_cache_config::RedisMode::Cluster {
                    let cluster = ClusterBackend::connect(&settings.redis, &tracked)
                        .map_err(|source| StoreError::Setup { source })?;
                    return Store::with_backend(settings, cluster);
                }
                let redis = RedisBackend::connect(&settings.redis, &tracked)
                    .map_err(|source| StoreError::Setup { source })?;
                Store::with_backend(settings, redis)
            }
        }
    }

    /// Builds a store over any backend: a built-in one, or your own as [`Backend::custom`] (a
    /// [`Storage`](crate::Storage), with a [`Coordination`](crate::Coordination) if it has one) or
    /// `Arc<dyn Storage>` alone.
    ///
    /// Tenants whose plan (`[tenants.<id>]`) isolates them by `acl` reach the same deployment as their own
    /// Redis user, and `dedicated` ones their own deployment (design 0023); the backend given here is the shared
    /// one.
    ///
    /// # Errors
    /// [`StoreError::Setup`] when a cache type is sealed (`types.<name>.sealed`, `encryption.document_data`) and
    /// its keys cannot be read or are malformed; the error names where they were looked for, never what was found.
    /// Also when a tenant's plan cannot be run: `acl` isolation over a backend that is not Redis, or a `dedicated`
    /// deployment whose settings cannot be used (naming the tenant).
    /// [`StoreError::Settings`] when a tenant's plan (`[tenants.<id>]`) is wrong, for settings that were built
    /// by hand rather than loaded (loading validates them).
    pub fn with_backend(
        settings: &Settings,
        backend: impl Into<Backend>,
    ) -> Result<Store, StoreError> {
        let backend = backend.into();
        let plans = plans::Plans::new(settings.tenant_plans().map_err(StoreError::Settings)?);
        let c = &settings.compression;
        let sealer =
            crate::seal::Sealer::from_settings(settings).map_err(|e| StoreError::Setup {
                source: crate::BackendError::Other(e.to_string()),
            })?;
        let deadlines =
            (!backend.storage().is_local()).then(|| Deadlines::start(settings.command_timeout));
        let routes = route::Routes::new(settings, plans.all(), &backend, deadlines.as_ref())?;
        let breaker = Breaker::new(
            settings.degradation.breaker_failure_threshold,
            settings.degradation.breaker_open_for,
        );
        let keys = KeyBuilder::new(
            &settings.namespace,
            settings.environment,
            settings.tenancy.max_tenant_id_len,
        )
        .with_shards(plans.all().into());
        Ok(Store {
            inner: Arc::new(Inner {
                shared: Lane::new(backend, deadlines, breaker, Role::Shared),
                routes,
                region: replication::Region::from_settings(settings, &keys),
                stream_shards: replication::stream_shards(settings.redis.mode),
                keys,
                ttl: settings.types.ttl().clone(),
                policy: CompressionPolicy {
                    enabled: c.enabled,
                    threshold: c.threshold_bytes,
                    level: c.level,
                    max_decoded: c.max_decoded_bytes,
                },
                timeout: settings.command_timeout,
                scan_batch: settings.redis.scan_batch,
                // A generation must outlive every entry written under the one before it.
                generation_ttl: (settings.types.ttl().max() * 2).min(TtlTable::MAX_TTL),
                hybrid_delay: settings.invalidation.hybrid_sweep_delay,
                sweeps: sweeps::Sweeps::new(settings.invalidation.max_sweeps_per_second),
                last_unavailable: std::sync::Mutex::new(None),
                metrics: Metrics::new(settings.metrics.max_series),
                flights: Flights::default(),
                single_flight: settings.types.single_flight().clone(),
                generations: moka::sync::Cache::builder().max_capacity(100_000).build(),
                l1: l1::L1::new(&settings.l1, settings.types.tiers()),
                tiers: settings.types.tiers().clone(),
                refreshing: Default::default(),
                quotas: settings.quotas.clone(),
                plans,
                sealer,
                dictionaries: dictionaries::Dictionaries::new(settings.compression.dictionaries),
            }),
        })
    }

    /// The shared backend's kind (`redis`, `memory`); public as [`Admin::backend_kind`].
    fn backend_kind(&self) -> &'static str {
        self.inner.shared.storage().kind()
    }

    /// The configured TTL of a cache type; public as [`Admin::configured_ttl`].
    fn ttl_of(&self, cache_type: &CacheType) -> Option<Duration> {
        self.inner.ttl.get(cache_type)
    }

    /// Everything counted since the store started: per tenant and cache type, hits, misses, writes, errors,
    /// latencies, costs; and the shared backend's kind and breaker state (a tenant's own backend under `acl`
    /// or `dedicated` isolation has a breaker of its own, design 0023).
    pub fn metrics(&self) -> MetricsSnapshot {
        let shared = &self.inner.shared;
        MetricsSnapshot {
            taken_at: SystemTime::now(),
            backend: shared.storage().kind(),
            breaker: shared.breaker.state(),
            breaker_opened: shared.breaker.opened_total(),
            series: self.inner.metrics.snapshot(),
        }
    }

    /// Admits `member` into a bounded set of a scope and type; public as [`Coordinator::admit`].
    async fn admit(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        set: &str,
        member: &[u8],
        limit: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let scope = scope.as_scope();
        let key = self.inner.keys.key(scope, cache_type, set)?;
        let lane = self.lane(scope);
        self.coordinate(&lane, "shared bounded sets", |c| {
            c.admit(key.as_str(), member, limit, ttl)
        })
        .instrument(debug_span!("cache.admit", tenant = scope.label()))
        .await
        .map_err(|source| StoreError::Unavailable {
            op: "admit",
            source,
        })
    }

    /// Pings the backend (through the breaker and timeout) and returns the round-trip time; public as
    /// [`Admin::ping`].
    async fn ping(&self) -> Result<Duration, StoreError> {
        let start = Instant::now();
        let shared = &self.inner.shared;
        self.call(shared, shared.storage().ping())
            .instrument(debug_span!("cache.ping"))
            .await
            .map_err(|source| StoreError::Unavailable { op: "ping", source })?;
        Ok(start.elapsed())
    }

    /// Server facts (memory, eviction policy, key count); public as [`Admin::backend_info`].
    async fn backend_info(&self) -> Result<BackendInfo, StoreError> {
        let shared = &self.inner.shared;
        self.call(shared, shared.storage().info())
            .instrument(debug_span!("cache.backend_info"))
            .await
            .map_err(|source| StoreError::Unavailable { op: "info", source })
    }
}

/// The keys the hot connections of a Redis backend on `settings` track: every generation key, and every entry
/// key when some cache type keeps values in process (design 0013).
#[cfg(feature = "redis")]
fn tracked_keys(settings: &Settings) -> crate::TrackedKeys {
    let keys = KeyBuilder::new(
        &settings.namespace,
        settings.environment,
        settings.tenancy.max_tenant_id_len,
    );
    crate::TrackedKeys {
        generations: keys.generation_prefix(),
        entries: settings
            .types
            .tiers()
            .any_l1()
            .then(|| keys.prefix().to_owned()),
    }
}

/// The settings ask for a backend this build leaves out.
#[cfg(not(all(feature = "redis", feature = "disk")))]
fn missing_feature(backend: &str, feature: &str) -> StoreError {
    StoreError::Setup {
        source: crate::BackendError::Other(format!(
            "backend = \"{backend}\", but this build of fernando-cache-store has no `{feature}` feature"
        )),
    }
}
