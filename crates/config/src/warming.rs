//! `[warming]`: everything that keeps entries warm — how often the warmer runs and which documents it keeps
//! alive between runs, how the `frequency_based` and `predictive` warmup jobs read the access history, what they
//! may spend, where they find documents to recompute, and where the `scheduled` jobs' reference data comes from.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer, de::Error as _};

use crate::{ConfigError, check, duration};

/// `[warming]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WarmingSettings {
    /// How often the warmer runs: it keeps hot documents alive, runs the due warmup jobs, and adds this
    /// process's reads to the shared access history (above 0s, at most 1h).
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Documents read at least this often in one `interval` have their entries refreshed before they expire.
    pub min_hits: u32,
    /// The folder (walked recursively) where the platform keeps its documents: the warmer finds a document there
    /// by fingerprint to recompute it. Unset: the document jobs record that they had nothing to read.
    pub documents_dir: Option<PathBuf>,
    /// A JSON file `{"key": value, …}` of reference data for the `scheduled` jobs. Unset: the
    /// `cache_reference_data` table of the statistics database.
    pub reference_file: Option<PathBuf>,
    /// Length of one access-history bucket (reads are counted per document and bucket, over every replica).
    #[serde(with = "duration")]
    pub history_bucket: Duration,
    /// How far back the jobs read the history.
    #[serde(with = "duration")]
    pub history_window: Duration,
    /// How far ahead a refresh should serve: a document is refreshed when it will probably be read within this
    /// time and its entry is gone or expires before then.
    #[serde(with = "duration")]
    pub horizon: Duration,
    /// Half-life of a read's weight in the frequency score.
    #[serde(with = "duration")]
    pub half_life: Duration,
    /// Periods the predictive policy looks for in each document's reads (a daily and a weekly rhythm).
    #[serde(deserialize_with = "durations")]
    pub periods: Vec<Duration>,
    /// The predictive policy refreshes only documents at least this likely (0..1) to be read within the horizon.
    pub min_probability: f64,
    /// Engine time one job run may spend per tenant, in milliseconds.
    pub budget_ms: u64,
    /// Money one job run may spend per tenant, in the `prices.currency` unit; unset: no money limit.
    pub budget_money: Option<f64>,
}

fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| duration::parse(s).map_err(D::Error::custom))
        .collect()
}

impl WarmingSettings {
    /// The money budget in millionths of the currency unit, if there is one.
    pub fn budget_micros(&self) -> Option<u64> {
        self.budget_money.map(|m| (m * 1_000_000.0).round() as u64)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check::duration("warming.interval", self.interval)?;
        for (key, d) in [
            ("warming.history_bucket", self.history_bucket),
            ("warming.history_window", self.history_window),
            ("warming.horizon", self.horizon),
            ("warming.half_life", self.half_life),
        ] {
            if d.is_zero() {
                return Err(ConfigError::invalid(key, "must be longer than zero"));
            }
        }
        if self.history_window < self.history_bucket {
            return Err(ConfigError::invalid(
                "warming.history_window",
                "must be at least one history_bucket",
            ));
        }
        if self.periods.len() > 8 || self.periods.iter().any(|p| *p < self.history_bucket) {
            return Err(ConfigError::invalid(
                "warming.periods",
                "at most 8 periods, each at least one history_bucket",
            ));
        }
        if !(0.0..=1.0).contains(&self.min_probability) {
            return Err(ConfigError::invalid(
                "warming.min_probability",
                "must be between 0 and 1",
            ));
        }
        if let Some(m) = self.budget_money
            && (!m.is_finite() || !(0.0..=1_000_000.0).contains(&m))
        {
            return Err(ConfigError::invalid(
                "warming.budget_money",
                "must be between 0 and 1 000 000",
            ));
        }
        Ok(())
    }
}
