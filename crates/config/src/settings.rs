//! The settings tree and its validation.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    ConfigError, Environment, L1Settings, ProcessorSettings, SingleFlightTable, TierTable,
    TtlTable, duration,
    redis::{RedisMode, RedisSettings, RedisUrl},
};

/// Where cache entries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// In-process, bounded by bytes; needs no server (the test default). Forgotten when the process exits.
    Memory,
    /// A file on local disk (`disk.path`), bounded by bytes; needs no server, outlives the process and is
    /// shared by every process that opens it (the development default).
    Disk,
    /// Redis (the staging and production default).
    Redis,
}

/// Every setting of the cache, validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// The profile these settings were loaded for (set by the loader, not by files).
    #[serde(skip, default = "default_env")]
    pub environment: Environment,
    /// First segment of every key, e.g. `fernando`.
    pub namespace: String,
    /// Which backend the store uses.
    pub backend: BackendKind,
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
    /// Timeouts and circuit breaker.
    pub degradation: DegradationSettings,
    /// Invalidation strategy tuning.
    pub invalidation: InvalidationSettings,
    /// Per cache type: single-flight per process or across processes (`[single_flight.<type>]`).
    pub single_flight: SingleFlightTable,
    /// The in-process tier's size and the life of its copies when the backend cannot announce changes.
    pub l1: L1Settings,
    /// Per cache type: whether reads keep a copy in process, and for how long at most (`[tiers.<type>]`).
    #[serde(default)]
    pub tiers: TierTable,
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
    /// The warmup jobs: access history, budgets, where documents and reference data come from.
    pub warming: crate::WarmingSettings,
    /// Per-tenant bounds on stored bytes and requests.
    pub quotas: crate::QuotaSettings,
    /// Which cache types are sealed with an AEAD, and where the keys are.
    pub encryption: crate::EncryptionSettings,
    /// OpenTelemetry export (off unless an endpoint is set).
    pub telemetry: crate::TelemetrySettings,
    /// Time to live per cache type.
    pub ttl: TtlTable,
}

fn default_env() -> Environment {
    Environment::Development
}

/// In-process backend settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MemorySettings {
    /// Upper bound on the bytes of stored entries (keys plus encoded values).
    pub max_bytes: u64,
}

/// Disk backend settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DiskSettings {
    /// The cache file (SQLite, WAL mode); its folder is created when missing. Relative paths start at the
    /// working directory.
    pub path: String,
    /// Upper bound on the bytes of stored entries (keys plus encoded values); past it, the entries closest to
    /// expiry are evicted first.
    pub max_bytes: u64,
}

/// Value compression settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CompressionSettings {
    /// Compress at all.
    pub enabled: bool,
    /// Encoded values larger than this are zstd-compressed; smaller ones are stored as they are.
    pub threshold_bytes: usize,
    /// zstd level, 1 (fastest) to 19.
    pub level: i32,
    /// Largest decoded value accepted; bigger claims are treated as corrupt entries.
    pub max_decoded_bytes: usize,
}

/// Multi-tenant settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TenancySettings {
    /// Longest tenant id accepted, in bytes.
    pub max_tenant_id_len: usize,
}

/// Circuit-breaker settings (timeouts are in [`RedisSettings`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DegradationSettings {
    /// Consecutive failed calls that open the breaker.
    pub breaker_failure_threshold: u32,
    /// How long the breaker stays open before it lets one probe call through.
    #[serde(with = "duration")]
    pub breaker_open_for: Duration,
}

/// Invalidation tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct InvalidationSettings {
    /// Delay before the background sweep of the hybrid strategy.
    #[serde(with = "duration")]
    pub hybrid_sweep_delay: Duration,
    /// How often `serve` looks for delayed invalidations that are due (rules with a delay).
    #[serde(with = "duration")]
    pub pending_poll_interval: Duration,
    /// Most pattern sweeps (SCAN and delete) one tenant may run per second, per process; they also run one at a
    /// time, and a sweep asked for while the same one waits joins it. 0: one at a time, no rate.
    pub max_sweeps_per_second: u32,
}

/// In-process metrics settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricsSettings {
    /// Distinct (tenant, cache type) series kept before new tenants fold into `_other`.
    pub max_series: usize,
}

/// Persistent statistics settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StatisticsSettings {
    /// Record statistics at all.
    pub enabled: bool,
    /// `postgres://…` or `sqlite://path`; may contain a password, so it is a secret.
    pub database_url: SecretString,
    /// Apply pending migrations when the program starts.
    pub run_migrations_at_start: bool,
    /// How often metrics are written.
    #[serde(with = "duration")]
    pub flush_interval: Duration,
    /// The length of a statistics row's window.
    #[serde(with = "duration")]
    pub window: Duration,
    /// Rows buffered while the database is unreachable.
    pub buffer_max_rows: usize,
    /// How often Redis and the database are checked.
    #[serde(with = "duration")]
    pub health_interval: Duration,
    /// Alert when a window's hit ratio falls below this (0.0–1.0).
    pub hit_ratio_alert: f64,
    /// Alert when Redis uses more than this share of its `maxmemory` (0.0–1.0).
    pub memory_alert_ratio: f64,
    /// How long rows are kept, per table, and how often old ones are removed.
    pub retention: RetentionSettings,
    /// A URL that receives each alert, as JSON, when its condition starts (`serve` only); empty for none.
    pub alert_webhook: String,
}

/// `[statistics.retention]`: rows older than these ages are removed every `interval` (the seed's background
/// cleanup). `"0s"` keeps a table's rows forever.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionSettings {
    /// `cache_statistics`.
    #[serde(with = "duration")]
    pub statistics: Duration,
    /// `cache_performance_metrics`.
    #[serde(with = "duration")]
    pub performance: Duration,
    /// `cache_health_status`.
    #[serde(with = "duration")]
    pub health: Duration,
    /// `cache_event_log`.
    #[serde(with = "duration")]
    pub events: Duration,
    /// How often old rows are removed.
    #[serde(with = "duration")]
    pub interval: Duration,
}

/// The HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerSettings {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub bind: String,
    /// SHA-256 (hex) of the admin token; empty disables the admin routes.
    pub admin_token_sha256: String,
    /// Tenants' API keys, stored as SHA-256 hashes.
    pub api_keys: Vec<ApiKey>,
    /// How long `GET /v1/documents/{sha256}` answers are cached by the HTTP layer.
    #[serde(with = "duration")]
    pub response_ttl: Duration,
    /// SHA-256 (hex) of the token `/metrics` asks for. Empty: `/metrics` is open on a loopback address and needs
    /// the admin token on any other.
    pub metrics_token_sha256: String,
    /// Timeouts, connections, bodies, engine work and request rates.
    pub limits: crate::ServerLimits,
}

/// One tenant API key, by hash: the key itself is never stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKey {
    /// The tenant the key belongs to.
    pub tenant: String,
    /// SHA-256 of the key, 64 hexadecimal digits.
    pub key_sha256: String,
}

impl Settings {
    /// Checks every value; the first problem found is returned, naming its key.
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
        let r = &self.redis;
        check_range("redis.pool_size", r.pool_size, 1, 1024)?;
        check_range(
            "redis.multiplexed_connections",
            r.multiplexed_connections,
            1,
            64,
        )?;
        check_range("redis.scan_batch", r.scan_batch, 1, 100_000)?;
        check_duration("redis.connect_timeout", r.connect_timeout)?;
        check_duration("redis.command_timeout", r.command_timeout)?;
        match r.mode {
            RedisMode::Standalone => {}
            RedisMode::Cluster => {
                if r.url.is_unix() || r.nodes.iter().any(RedisUrl::is_unix) {
                    return Err(ConfigError::invalid(
                        "redis.nodes",
                        "cluster nodes are reached over TCP, not a Unix socket",
                    ));
                }
            }
            RedisMode::Sentinel => {
                if r.sentinels.is_empty() {
                    return Err(ConfigError::invalid(
                        "redis.sentinels",
                        "sentinel mode needs at least one sentinel URL",
                    ));
                }
                if r.sentinel_master.is_empty() || r.sentinel_master.len() > 128 {
                    return Err(ConfigError::invalid(
                        "redis.sentinel_master",
                        "must be 1 to 128 characters",
                    ));
                }
            }
        }
        self.single_flight.validate()?;
        self.tiers.validate()?;
        if self.l1.max_bytes < 1024 {
            return Err(ConfigError::invalid(
                "l1.max_bytes",
                "must be at least 1024",
            ));
        }
        if self.l1.untracked_ttl.is_zero() || self.l1.untracked_ttl > TierTable::MAX_L1_TTL {
            return Err(ConfigError::invalid(
                "l1.untracked_ttl",
                "must be above 0s and at most a day",
            ));
        }
        if self.memory.max_bytes < 1024 {
            return Err(ConfigError::invalid(
                "memory.max_bytes",
                "must be at least 1024",
            ));
        }
        if self.disk.max_bytes < 64 * 1024 {
            return Err(ConfigError::invalid(
                "disk.max_bytes",
                "must be at least 65536",
            ));
        }
        if self.disk.path.trim().is_empty() {
            return Err(ConfigError::invalid("disk.path", "must name a file"));
        }
        let c = &self.compression;
        if !(1..=19).contains(&c.level) {
            return Err(ConfigError::invalid(
                "compression.level",
                format!("{} is outside 1..=19", c.level),
            ));
        }
        check_range(
            "compression.max_decoded_bytes",
            c.max_decoded_bytes,
            1024,
            1 << 30,
        )?;
        if c.threshold_bytes > c.max_decoded_bytes {
            return Err(ConfigError::invalid(
                "compression.threshold_bytes",
                "is larger than compression.max_decoded_bytes",
            ));
        }
        check_range(
            "tenancy.max_tenant_id_len",
            self.tenancy.max_tenant_id_len,
            1,
            1024,
        )?;
        let d = &self.degradation;
        if d.breaker_failure_threshold == 0 {
            return Err(ConfigError::invalid(
                "degradation.breaker_failure_threshold",
                "must be at least 1",
            ));
        }
        check_duration("degradation.breaker_open_for", d.breaker_open_for)?;
        check_duration(
            "invalidation.pending_poll_interval",
            self.invalidation.pending_poll_interval,
        )?;
        check_range("metrics.max_series", self.metrics.max_series, 1, 10_000_000)?;
        let st = &self.statistics;
        if st.enabled && st.database_url.expose_secret().trim().is_empty() {
            return Err(ConfigError::invalid(
                "statistics.database_url",
                "is empty while statistics.enabled is true",
            ));
        }
        check_duration("statistics.flush_interval", st.flush_interval)?;
        if st.window < Duration::from_secs(1) || st.window > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::invalid(
                "statistics.window",
                "must be between 1s and 24h",
            ));
        }
        check_duration("statistics.health_interval", st.health_interval)?;
        check_duration("statistics.retention.interval", st.retention.interval)?;
        if !st.alert_webhook.is_empty() && !crate::http_url(&st.alert_webhook) {
            return Err(ConfigError::invalid(
                "statistics.alert_webhook",
                "must be an http:// or https:// URL, or empty",
            ));
        }
        check_range(
            "statistics.buffer_max_rows",
            st.buffer_max_rows,
            1,
            10_000_000,
        )?;
        for (key, v) in [
            ("statistics.hit_ratio_alert", st.hit_ratio_alert),
            ("statistics.memory_alert_ratio", st.memory_alert_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{v} is outside 0.0..=1.0"),
                ));
            }
        }
        let sv = &self.server;
        if sv.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "server.bind",
                format!("{:?} is not an address like 127.0.0.1:8080", sv.bind),
            ));
        }
        let is_sha256 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        if !sv.admin_token_sha256.is_empty() && !is_sha256(&sv.admin_token_sha256) {
            return Err(ConfigError::invalid(
                "server.admin_token_sha256",
                "must be the SHA-256 of the token: 64 hexadecimal digits",
            ));
        }
        for (i, k) in sv.api_keys.iter().enumerate() {
            if !is_sha256(&k.key_sha256) {
                return Err(ConfigError::invalid(
                    format!("server.api_keys[{i}].key_sha256"),
                    "must be the SHA-256 of the key: 64 hexadecimal digits",
                ));
            }
            if k.tenant.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("server.api_keys[{i}].tenant"),
                    "is empty",
                ));
            }
        }
        check_duration("server.response_ttl", sv.response_ttl)?;
        self.processor.validate()?;
        self.prices.validate()?;
        self.warming.validate()?;
        self.server.limits.validate()?;
        self.quotas.validate()?;
        self.encryption.validate()?;
        self.telemetry.validate()?;
        self.ttl.validate()
    }
}

pub(crate) fn check_range(
    key: &str,
    value: usize,
    min: usize,
    max: usize,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            key,
            format!("{value} is outside {min}..={max}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_duration(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(key, "must be longer than zero"));
    }
    if value > Duration::from_secs(3600) {
        return Err(ConfigError::invalid(key, "must be at most 1h"));
    }
    Ok(())
}
