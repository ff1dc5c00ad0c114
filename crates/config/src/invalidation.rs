//! `[invalidation]`: the hybrid strategy's delay, how often delayed invalidations are looked for, and how fast
//! one tenant's pattern sweeps may run.

use std::time::Duration;

use serde::Deserialize;

use crate::{ConfigError, check, duration};

/// `[invalidation]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct InvalidationSettings {
    /// Delay before the background sweep of the hybrid strategy (any duration, `0s` for at once).
    #[serde(with = "duration")]
    pub hybrid_sweep_delay: Duration,
    /// How often `serve` looks for delayed invalidations that are due (rules with a delay); above 0s, at most 1h.
    #[serde(with = "duration")]
    pub pending_poll_interval: Duration,
    /// Most pattern sweeps (SCAN and delete) one tenant may run per second, per process; they also run one at a
    /// time, and a sweep asked for while the same one waits joins it. 0: one at a time, no rate.
    pub max_sweeps_per_second: u32,
}

impl InvalidationSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check::duration(
            "invalidation.pending_poll_interval",
            self.pending_poll_interval,
        )
    }
}
