//! The cache store of fernando-cache: typed, tenant-scoped get / set / delete on Redis or in process, with
//! compression, bounded decoding, single-flight computation, three invalidation strategies, graceful
//! degradation and metrics.
//!
//! This crate owns everything between a typed value and the bytes in a backend. It depends on
//! `fernando-cache-config` and `fernando-cache-keys` only; it must not depend on the decorators, processor, HTTP,
//! models or binary crates (they build on it), nor on a database.
//!
//! ```
//! use fernando_cache_config::{CacheType, Environment, Settings};
//! use fernando_cache_keys::TenantId;
//! use fernando_cache_store::Store;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The test profile keeps entries in process memory: no server, no files (the development profile keeps
//! // them on disk, in the user's data folder, across runs).
//! let store = Store::from_settings(&Settings::embedded(Environment::Test)?)?;
//! let tenant = TenantId::new("user123")?;
//!
//! store.set(&tenant, &CacheType::SESSION, "user:123", &vec!["admin".to_owned()]).await?;
//! let roles: Option<Vec<String>> = store.get(&tenant, &CacheType::SESSION, "user:123").await?;
//! assert_eq!(roles.unwrap(), ["admin"]);
//!
//! // Concurrent misses on one key compute once; errors are shared and never cached.
//! let total = store
//!     .get_or_compute(&tenant, &CacheType::BILLING, "total", || async { Ok::<_, std::io::Error>(42u64) })
//!     .await?;
//! assert_eq!(total, 42);
//! # Ok(()) }
//! ```

mod backend;
mod breaker;
mod codec;
mod deadline;
mod default_store;
mod error;
mod flight;
mod hash;
mod metrics;
#[cfg(feature = "seal")]
mod seal;
#[cfg(not(feature = "seal"))]
#[path = "seal/unavailable.rs"]
mod seal;
mod store;

#[doc(hidden)]
#[path = "macro_runtime.rs"]
pub mod __private;

#[cfg(feature = "disk")]
pub use backend::DiskBackend;
pub use backend::{
    Backend, BackendError, BackendInfo, ByteLedgers, Cause, Charge, Coherence, Coordination,
    Fetched, KeyTtl, Leases, Listed, MemoryBackend, NewEntries, NodeInfo, OnMessage, ScanCursor,
    ScanPage, Storage, StreamEntry, Streams, Versioned, Watch, WindowCount, ledger_member,
};
#[cfg(feature = "redis")]
pub use backend::{ClusterBackend, RedisBackend, TrackedKeys};
pub use breaker::BreakerState;
pub use default_store::{install, installed, uninstall};
pub use error::{ComputeError, StoreError};
pub use metrics::{
    COUNTERS, CounterInfo, CounterUnit, Counters, LatencyHistogram, MetricsSnapshot,
    OVERFLOW_TENANT, SeriesSnapshot,
};
pub use store::{
    Admin, Attached, Compute, ComputeMode, Coordinator, Cost, Detached, Erasure, ExportCursor,
    ExportPage, HeldEntry, Invalidation, InvalidationStrategy, Isolations, QuotaUsage,
    RefreshClaim, RegionProgress, RegionStatus, Replicator, RequestQuota, Round, Served, Store,
    Target, TrainedDictionary, Write, WriteOutcome,
};

pub use fernando_cache_config as config;
pub use fernando_cache_keys as keys;
