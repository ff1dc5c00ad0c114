//! `[degradation]`: the circuit breaker in front of the backend. (How long one backend call may take is the
//! top-level `command_timeout`, beside `backend`, since it bounds every backend that is not in process.)

use std::time::Duration;

use serde::Deserialize;

use crate::{ConfigError, check, duration};

/// `[degradation]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DegradationSettings {
    /// Consecutive failed calls that open the breaker; at least 1.
    pub breaker_failure_threshold: u32,
    /// How long the breaker stays open before it lets one probe call through (above 0s, at most 1h).
    #[serde(with = "duration")]
    pub breaker_open_for: Duration,
}

impl DegradationSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.breaker_failure_threshold == 0 {
            return Err(ConfigError::invalid(
                "degradation.breaker_failure_threshold",
                "must be at least 1",
            ));
        }
        check::duration("degradation.breaker_open_for", self.breaker_open_for)
    }
}
