//! The settings tree, and the rules that span sections. Each section checks its own values in its own file
//! (`redis.rs`, `types.rs`, `server.rs`, …); [`Settings::validate`] calls them in turn.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::{
    BackendKind, CacheType, CompressionSettings, ConfigError, DegradationSettings, DiskSettings,
    Environment, InvalidationSettings, L1Settings, MemorySettings, MetricsSettings,
    ProcessorSettings, RedisSettings, ServerSettings, StatisticsSettings, TenancySettings,
    TypeTable, check, duration,
};

/// Every setting of the cache, validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// The profile these settings were loaded for (set by the loader, not by files).
    #[serde(skip, default = "default_env")]
    pub environment: Environment,
    /// The folder of the files the cache keeps on this machine: the disk backend's file and the SQLite
    /// statistics database live in it unless `disk.path` or `statistics.database_url` name others. The
    /// `data_dir` setting (`FERNANDO_CACHE__DATA_DIR`, the program's `--data-dir`) made absolute, else the
    /// platform's per-user data folder ([`crate::default_data_dir`]); `None` only where neither is known, and
    /// then both files are named. Nothing is created here until a backend or the statistics write.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// First segment of every key, e.g. `fernando`.
    pub namespace: String,
    /// Which backend the store uses.
    pub backend: BackendKind,
    /// Longest wait for any one backend call (Redis or disk; the in-process backend is not bounded): past it
    /// the call degrades — a read is a miss, a write is dropped — and counts as a failure for the breaker.
    #[serde(with = "duration")]
    pub command_timeout: Duration,
    /// Redis connection settings.
    pub redis: RedisSettings,
    /// In-process backend settings.
    pub memory: MemorySettings,
    /// Disk backend settings.
    pub disk: DiskSettings,
    /// Value compression settings.
    pub compression: CompressionSettings,
    /// Multi-tenant settings.
    pub tenancy: TenancySettings,
    /// The circuit breaker.
    pub degradation: DegradationSettings,
    /// Invalidation strategy tuning.
    pub invalidation: InvalidationSettings,
    /// Everything about each cache type, one table per type (`[types.<name>]`, `[types.default]`).
    pub types: TypeTable,
    /// The in-process tier's size and the life of its copies when the backend cannot announce changes.
    pub l1: L1Settings,
    /// In-process metrics.
    pub metrics: MetricsSettings,
    /// Persistent statistics.
    pub statistics: StatisticsSettings,
    /// The document pipeline.
    pub processor: ProcessorSettings,
    /// What model calls cost (`[prices]`), for the money the cache saves.
    pub prices: crate::Prices,
    /// The HTTP API (`fernando-cache serve`).
    pub server: ServerSettings,
    /// `fernando-cache proxy`: the CA an `https://` origin is checked against.
    #[serde(default)]
    pub proxy: crate::ProxySettings,
    /// Keeping entries warm: the warmer's interval, the warmup jobs' history and budgets, where documents and
    /// reference data come from.
    pub warming: crate::WarmingSettings,
    /// Per-tenant bounds on stored bytes and requests, shared by every replica.
    pub quotas: crate::QuotaSettings,
    /// How sealed values are sealed, and whether all document data is.
    pub encryption: crate::EncryptionSettings,
    /// OpenTelemetry export (off unless an endpoint is set).
    pub telemetry: crate::TelemetrySettings,
    /// The region this deployment is, for replication between regions (off unless named).
    pub regions: crate::RegionSettings,
    /// Each tenant's plan as written (`[tenants.<id>]`, `[tenants.default]`); [`Settings::tenant_plans`]
    /// resolves it over the deployment-wide quotas and rates.
    #[serde(default)]
    pub tenants: crate::TenantTable,
}

fn default_env() -> Environment {
    Environment::Development
}

impl Settings {
    /// Checks every value — each section by its own rules, then the rules that span sections; the first
    /// problem found is returned, naming its key.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and the reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ns = &self.namespace;
        if ns.is_empty() || ns.len() > 64 {
            return Err(ConfigError::invalid(
                "namespace",
                "must be 1 to 64 characters",
            ));
        }
        if !ns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(ConfigError::invalid(
                "namespace",
                format!("{ns:?} may contain only ASCII letters, digits, '_', '-' and '.'"),
            ));
        }
        check::duration("command_timeout", self.command_timeout)?;
        self.redis.validate()?;
        self.memory.validate()?;
        self.disk.validate()?;
        self.compression.validate()?;
        self.tenancy.validate()?;
        self.degradation.validate()?;
        self.invalidation.validate()?;
        self.types.validate()?;
        self.l1.validate()?;
        self.metrics.validate()?;
        self.statistics.validate()?;
        self.processor.validate()?;
        self.prices.validate()?;
        self.server.validate()?;
        self.proxy.validate()?;
        self.warming.validate()?;
        self.quotas.validate()?;
        self.telemetry.validate()?;
        self.regions.validate()?;
        self.tenant_plans()?;
        // Across sections: sealing (`[types]`, `[encryption]`) needs keys.
        let e = &self.encryption;
        if !self.sealed_types().is_empty() && e.keys_env.is_empty() && e.keys_file.is_empty() {
            return Err(ConfigError::invalid(
                "encryption.keys_env",
                "name an environment variable or set encryption.keys_file when values are sealed \
                 (types.<name>.sealed or encryption.document_data)",
            ));
        }
        Ok(())
    }

    /// Every tenant's plan: its `[tenants.<id>]` table over `[tenants.default]` over the deployment-wide
    /// `quotas.*` and `server.limits.per_process_*` (design 0023).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the `tenants.<id>.<field>` that is wrong.
    pub fn tenant_plans(&self) -> Result<crate::TenantPlans, ConfigError> {
        let base = crate::tenants::PlanBase {
            tenant_bytes: self.quotas.tenant_bytes,
            shared_requests: self.quotas.shared_requests,
            per_process_rate: self.server.limits.per_process_rate,
            per_process_burst: self.server.limits.per_process_burst,
        };
        self.tenants.resolve(base, &self.redis)
    }

    /// Whether values of `cache_type` are sealed: when its own `types.<name>.sealed` says so, or when it holds
    /// document data ([`CacheType::DOCUMENT_DATA`]) and `encryption.document_data` is on.
    pub fn seals(&self, cache_type: &CacheType) -> bool {
        self.types.get(cache_type).sealed
            || (self.encryption.document_data && CacheType::DOCUMENT_DATA.contains(cache_type))
    }

    /// Every sealed cache type, in name order: those whose own `sealed` is true, and the document data when
    /// `encryption.document_data` is on.
    pub fn sealed_types(&self) -> Vec<CacheType> {
        let mut sealed: BTreeSet<CacheType> = self.types.sealed().cloned().collect();
        if self.encryption.document_data {
            sealed.extend(CacheType::DOCUMENT_DATA);
        }
        sealed.into_iter().collect()
    }
}
