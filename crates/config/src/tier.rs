//! Per cache type: how an entry is tiered and served — whether reads keep a copy in process (L1, in front of
//! the configured backend, design 0013), how long an expired value is kept to fall back on when its computation
//! fails or is slow (fail-safe), and when a hit refreshes its entry ahead of expiry (design 0014) — as the
//! [`TierTable`] view of `[types]` (`types.rs` reads the table); and `[l1]`, the size of the in-process tier.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use crate::{CacheType, ConfigError, duration};

/// `[l1]`: the in-process tier shared by every cache type that turns it on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct L1Settings {
    /// Upper bound on the bytes held in process (keys plus decompressed envelopes).
    pub max_bytes: u64,
    /// Life of an in-process copy when the backend cannot announce changes (the in-process and disk backends,
    /// or Redis without RESP3 tracking): another process's write is seen at most this late.
    #[serde(with = "duration")]
    pub untracked_ttl: Duration,
}

impl L1Settings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_bytes < 1024 {
            return Err(ConfigError::invalid(
                "l1.max_bytes",
                "must be at least 1024",
            ));
        }
        if self.untracked_ttl.is_zero() || self.untracked_ttl > TierTable::MAX_L1_TTL {
            return Err(ConfigError::invalid(
                "l1.untracked_ttl",
                "must be above 0s and at most a day",
            ));
        }
        Ok(())
    }
}

/// The tiering policy of one cache type.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TierPolicy {
    /// Keep a copy of values read in process, in front of the backend.
    pub l1: bool,
    /// Longest an in-process copy lives, even while the backend announces no change.
    pub l1_max_ttl: Duration,
    /// How long an entry is kept past its TTL, stale, to be served when its computation fails or outlives the
    /// soft timeout (fail-safe); zero turns fail-safe off.
    pub max_stale: Duration,
    /// After a computation failed and a stale value was served, how long that value is served (marked stale)
    /// before the computation is tried again.
    pub fail_safe_throttle: Duration,
    /// With a stale value to fall back on, how long a caller waits for the computation before it is served the
    /// stale value; the computation then completes in the background and updates the cache.
    pub soft_timeout: Option<Duration>,
    /// How long a caller waits for the computation at most: past it, the stale value if there is one, else a
    /// timeout error.
    pub hard_timeout: Option<Duration>,
    /// A hit on an entry past this fraction of its TTL is answered at once and refreshes the entry in the
    /// background, once.
    pub refresh_ahead: Option<f64>,
}

// `refresh_ahead` is validated to be a finite fraction, so equality is total.
impl Eq for TierPolicy {}

/// The tiering fields of `[types]` (`l1`, `l1_max_ttl`, `max_stale`, `fail_safe_throttle`, `soft_timeout`,
/// `hard_timeout`, `refresh_ahead`): the `types.default` policy and each listed type's, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierTable {
    default: TierPolicy,
    types: BTreeMap<CacheType, TierPolicy>,
}

impl TierTable {
    /// Longest in-process life accepted.
    pub const MAX_L1_TTL: Duration = Duration::from_secs(24 * 3600);

    /// The policy of a type nobody configured, where `types.default` leaves a field out: no copy in process,
    /// no fail-safe, no timeouts, no refresh ahead.
    pub(crate) const BUILTIN: TierPolicy = TierPolicy {
        l1: false,
        l1_max_ttl: Duration::from_secs(300),
        max_stale: Duration::ZERO,
        fail_safe_throttle: Duration::from_secs(30),
        soft_timeout: None,
        hard_timeout: None,
        refresh_ahead: None,
    };

    /// The table of `default` and the listed types' policies.
    pub(crate) fn new(default: TierPolicy, types: BTreeMap<CacheType, TierPolicy>) -> Self {
        TierTable { default, types }
    }

    /// The policy of a cache type (the default for types not listed).
    pub fn get(&self, cache_type: &CacheType) -> TierPolicy {
        self.types.get(cache_type).copied().unwrap_or(self.default)
    }

    /// Whether any cache type keeps copies in process.
    pub fn any_l1(&self) -> bool {
        self.default.l1 || self.types.values().any(|p| p.l1)
    }

    /// Checks every duration.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let all = std::iter::once(("default", &self.default))
            .chain(self.types.iter().map(|(t, p)| (t.as_str(), p)));
        for (name, p) in all {
            if p.l1_max_ttl.is_zero() || p.l1_max_ttl > Self::MAX_L1_TTL {
                return Err(ConfigError::invalid(
                    format!("types.{name}.l1_max_ttl"),
                    format!(
                        "must be above 0s and at most {}",
                        duration::format(Self::MAX_L1_TTL)
                    ),
                ));
            }
            p.validate_serving(name)?;
        }
        Ok(())
    }
}

impl TierPolicy {
    /// Checks the fail-safe and refresh settings.
    fn validate_serving(&self, name: &str) -> Result<(), ConfigError> {
        if self.max_stale > crate::TtlTable::MAX_TTL {
            return Err(ConfigError::invalid(
                format!("types.{name}.max_stale"),
                format!(
                    "must be at most {}",
                    duration::format(crate::TtlTable::MAX_TTL)
                ),
            ));
        }
        if self.fail_safe_throttle.is_zero() || self.fail_safe_throttle > TierTable::MAX_L1_TTL {
            return Err(ConfigError::invalid(
                format!("types.{name}.fail_safe_throttle"),
                "must be above 0s and at most a day",
            ));
        }
        for (field, t) in [
            ("soft_timeout", self.soft_timeout),
            ("hard_timeout", self.hard_timeout),
        ] {
            if t.is_some_and(|t| t.is_zero() || t > TierTable::MAX_L1_TTL) {
                return Err(ConfigError::invalid(
                    format!("types.{name}.{field}"),
                    "must be above 0s and at most a day",
                ));
            }
        }
        if let (Some(soft), Some(hard)) = (self.soft_timeout, self.hard_timeout)
            && soft >= hard
        {
            return Err(ConfigError::invalid(
                format!("types.{name}.soft_timeout"),
                "must be shorter than hard_timeout",
            ));
        }
        if self.refresh_ahead.is_some_and(|f| !(f > 0.0 && f < 1.0)) {
            return Err(ConfigError::invalid(
                format!("types.{name}.refresh_ahead"),
                "must be a fraction of the TTL between 0 and 1 (exclusive)",
            ));
        }
        Ok(())
    }
}
