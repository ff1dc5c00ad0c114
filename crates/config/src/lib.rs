//! Configuration for fernando-cache: environment profiles, everything about each cache type in one table
//! (`[types.<name>]`) and every tunable of the store, validated once at load time, each section by its own rules.
//!
//! This crate owns *what* the cache is configured to do, never how it does it: it reads configuration files and
//! environment variables and nothing else. It must not depend on any other fernando-cache crate, nor on Redis,
//! Tokio or a database.
//!
//! Settings are layered, each layer overriding the one before:
//!
//! 1. `default.toml`, then `{environment}.toml` — the files of the repository's `config/` folder, embedded in this
//!    crate so that a program runs with sane settings even without a config folder;
//! 2. the same two files and an optional untracked `local.toml` from a config folder on disk
//!    ([`LoadOptions::config_dir`], default `./config` when it exists, or `FERNANDO_CACHE_CONFIG_DIR`);
//! 3. environment variables `FERNANDO_CACHE__SECTION__KEY` (for example `FERNANDO_CACHE__REDIS__URL`,
//!    `FERNANDO_CACHE__TYPES__OCR_RESULT__TTL`);
//! 4. explicit overrides from code or the command line ([`LoadOptions::set`]).
//!
//! An unknown key is an error, and a key that moved (`ttl.ocr_result`, now `types.ocr_result.ttl`) is refused
//! with its new name ([`ConfigError::Moved`]).
//!
//! The profile is chosen by [`LoadOptions::environment`], else `FERNANDO_CACHE_ENV`, else `development`
//! (`dev` and `prod` are accepted as short forms).
//!
//! Files the cache keeps on this machine — the disk backend's and the SQLite statistics database — default to
//! the data folder, [`Settings::data_dir`]: the `data_dir` setting, else the platform's per-user data folder
//! ([`default_data_dir`]), so every process of a user finds them whatever folder it starts in.
//!
//! Every error names the key; a value given as an environment variable is named with the variable and its
//! value (never a secret's), a name that is not one of a setting's values lists the valid ones and suggests
//! the nearest (`"reddis" is not one of memory, disk, redis; did you mean "redis"?`).
//!
//! ```
//! use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
//!
//! let settings = Settings::load(LoadOptions::new().environment(Environment::Production)).unwrap();
//! let ocr = settings.types.get(&CacheType::OCR_RESULT);
//! assert_eq!(ocr.ttl.unwrap().as_secs(), 7 * 24 * 3600);
//! assert!(settings.seals(&CacheType::OCR_RESULT));
//! ```

mod backends;
mod cache_type;
mod check;
mod choice;
mod compression;
mod data_dir;
mod degradation;
mod duration;
mod environment;
mod error;
mod explain;
mod flight;
mod invalidation;
mod limits;
mod load;
mod moved;
mod names;
mod origin;
mod prices;
mod processor;
mod protection;
mod proxy;
mod redis;
mod regions;
mod server;
mod settings;
mod statistics;
mod telemetry;
mod tenancy;
mod tenants;
mod tier;
mod ttl;
mod types;
mod warming;

pub use backends::{BackendKind, DiskSettings, MemorySettings};
pub use cache_type::CacheType;
pub use compression::CompressionSettings;
pub use data_dir::{DISK_FILE, STATISTICS_FILE, default_data_dir};
pub use degradation::DegradationSettings;
pub use environment::Environment;
pub use error::ConfigError;
pub use flight::{FlightMode, FlightPolicy, SingleFlightTable};
pub use invalidation::InvalidationSettings;
pub use limits::ServerLimits;
pub use load::{ENV_CONFIG_DIR_VAR, ENV_PROFILE_VAR, LoadOptions};
pub use names::UnknownName;
pub use prices::{ModelPrice, Prices};
pub use processor::{ExtractorKind, OpenAiSettings, ProcessorSettings};
pub use protection::{EncryptionSettings, QuotaSettings, SealAlgorithm};
pub use proxy::ProxySettings;
pub use redis::{RedisMode, RedisSettings, RedisUrl};
pub use regions::{RegionRedis, RegionSettings};
pub use secrecy::{ExposeSecret, SecretString};
pub use server::{ApiKey, ServerSettings, listen_address};
pub use settings::Settings;
pub use statistics::{MetricsSettings, RetentionSettings, StatisticsSettings};
pub use telemetry::TelemetrySettings;
pub use tenancy::TenancySettings;
pub use tenants::{Isolation, MAX_SHARDS, SecretSource, TenantPlan, TenantPlans, TenantTable};
pub use tier::{L1Settings, TierPolicy, TierTable};
pub use ttl::TtlTable;
pub use types::{TypePolicy, TypeTable};
pub use warming::WarmingSettings;

/// Whether `text` is an absolute `http://` or `https://` URL with a host.
pub(crate) fn http_url(text: &str) -> bool {
    text.parse::<http::Uri>().is_ok_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty())
    })
}
