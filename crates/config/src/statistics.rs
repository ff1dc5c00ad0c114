//! `[metrics]` and `[statistics]`: the in-process counters' series bound, and what is persisted to the
//! statistics database — how often, for how long, and when an alert is raised.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{ConfigError, check, duration};

/// `[metrics]`: the in-process counters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricsSettings {
    /// Distinct (tenant, cache type) series kept before new tenants fold into `_other` (1 to 10 000 000).
    pub max_series: usize,
}

impl MetricsSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check::range("metrics.max_series", self.max_series, 1, 10_000_000)
    }
}

/// `[statistics]`: persistent statistics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StatisticsSettings {
    /// Record statistics at all.
    pub enabled: bool,
    /// `postgres://…` or `sqlite://path`; may contain a password, so it is a secret. Required when `enabled`;
    /// left out, `fernando-cache.sqlite3` in the data folder ([`crate::Settings::data_dir`]). A relative
    /// `sqlite://` path starts at the working directory.
    pub database_url: SecretString,
    /// Apply pending migrations when the program starts.
    pub run_migrations_at_start: bool,
    /// How often metrics are written (above 0s, at most 1h).
    #[serde(with = "duration")]
    pub flush_interval: Duration,
    /// The length of a statistics row's window, 1s to 24h.
    #[serde(with = "duration")]
    pub window: Duration,
    /// Rows buffered while the database is unreachable (1 to 10 000 000).
    pub buffer_max_rows: usize,
    /// How often Redis and the database are checked (above 0s, at most 1h).
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
    /// Age of the oldest `cache_statistics` row kept.
    #[serde(with = "duration")]
    pub statistics: Duration,
    /// Age of the oldest `cache_performance_metrics` row kept.
    #[serde(with = "duration")]
    pub performance: Duration,
    /// Age of the oldest `cache_health_status` row kept.
    #[serde(with = "duration")]
    pub health: Duration,
    /// Age of the oldest `cache_event_log` row kept.
    #[serde(with = "duration")]
    pub events: Duration,
    /// How often old rows are removed (above 0s, at most 1h).
    #[serde(with = "duration")]
    pub interval: Duration,
}

impl StatisticsSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.database_url.expose_secret().trim().is_empty() {
            return Err(ConfigError::invalid(
                "statistics.database_url",
                "is empty while statistics.enabled is true",
            ));
        }
        check::duration("statistics.flush_interval", self.flush_interval)?;
        if self.window < Duration::from_secs(1) || self.window > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::invalid(
                "statistics.window",
                "must be between 1s and 24h",
            ));
        }
        check::duration("statistics.health_interval", self.health_interval)?;
        check::duration("statistics.retention.interval", self.retention.interval)?;
        if !self.alert_webhook.is_empty() && !crate::http_url(&self.alert_webhook) {
            return Err(ConfigError::invalid(
                "statistics.alert_webhook",
                "must be an http:// or https:// URL, or empty",
            ));
        }
        check::range(
            "statistics.buffer_max_rows",
            self.buffer_max_rows,
            1,
            10_000_000,
        )?;
        for (key, v) in [
            ("statistics.hit_ratio_alert", self.hit_ratio_alert),
            ("statistics.memory_alert_ratio", self.memory_alert_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{v} is outside 0.0..=1.0"),
                ));
            }
        }
        Ok(())
    }
}
