//! Per cache type: how an entry is tiered and served — whether reads keep a copy in process (L1, in front of
//! the configured backend, design 0013), how long an expired value is kept to fall back on when its computation
//! fails or is slow (fail-safe), and when a hit refreshes its entry ahead of expiry (design 0014) — and the size
//! of the in-process tier.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Deserializer, de::Error as _};

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

/// `[tiers]`: a `default` policy and per-type overrides, each field optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierTable {
    default: TierPolicy,
    types: BTreeMap<CacheType, TierPolicy>,
}

impl TierTable {
    /// Longest in-process life accepted.
    pub const MAX_L1_TTL: Duration = Duration::from_secs(24 * 3600);

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
                    format!("tiers.{name}.l1_max_ttl"),
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
                format!("tiers.{name}.max_stale"),
                format!(
                    "must be at most {}",
                    duration::format(crate::TtlTable::MAX_TTL)
                ),
            ));
        }
        if self.fail_safe_throttle.is_zero() || self.fail_safe_throttle > TierTable::MAX_L1_TTL {
            return Err(ConfigError::invalid(
                format!("tiers.{name}.fail_safe_throttle"),
                "must be above 0s and at most a day",
            ));
        }
        for (field, t) in [
            ("soft_timeout", self.soft_timeout),
            ("hard_timeout", self.hard_timeout),
        ] {
            if t.is_some_and(|t| t.is_zero() || t > TierTable::MAX_L1_TTL) {
                return Err(ConfigError::invalid(
                    format!("tiers.{name}.{field}"),
                    "must be above 0s and at most a day",
                ));
            }
        }
        if let (Some(soft), Some(hard)) = (self.soft_timeout, self.hard_timeout)
            && soft >= hard
        {
            return Err(ConfigError::invalid(
                format!("tiers.{name}.soft_timeout"),
                "must be shorter than hard_timeout",
            ));
        }
        if self.refresh_ahead.is_some_and(|f| !(f > 0.0 && f < 1.0)) {
            return Err(ConfigError::invalid(
                format!("tiers.{name}.refresh_ahead"),
                "must be a fraction of the TTL between 0 and 1 (exclusive)",
            ));
        }
        Ok(())
    }
}

impl Default for TierTable {
    fn default() -> Self {
        TierTable {
            default: BUILTIN,
            types: BTreeMap::new(),
        }
    }
}

/// The policy of a type nobody configured: no copy in process.
const BUILTIN: TierPolicy = TierPolicy {
    l1: false,
    l1_max_ttl: Duration::from_secs(300),
    max_stale: Duration::ZERO,
    fail_safe_throttle: Duration::from_secs(30),
    soft_timeout: None,
    hard_timeout: None,
    refresh_ahead: None,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    l1: Option<bool>,
    l1_max_ttl: Option<String>,
    max_stale: Option<String>,
    fail_safe_throttle: Option<String>,
    /// A duration, or `"off"`.
    soft_timeout: Option<String>,
    /// A duration, or `"off"`.
    hard_timeout: Option<String>,
    /// A fraction, or 0 for off.
    refresh_ahead: Option<f64>,
}

impl Entry {
    fn over(self, base: TierPolicy, name: &str) -> Result<TierPolicy, String> {
        let parse = |field: &str, text: Option<String>, base: Duration| match text {
            None => Ok(base),
            Some(t) => duration::parse(&t).map_err(|e| format!("tiers.{name}.{field}: {e}")),
        };
        let optional = |field: &str, text: Option<String>, base: Option<Duration>| match text {
            None => Ok(base),
            Some(t) if t == "off" => Ok(None),
            Some(t) => duration::parse(&t)
                .map(Some)
                .map_err(|e| format!("tiers.{name}.{field}: {e}")),
        };
        Ok(TierPolicy {
            l1: self.l1.unwrap_or(base.l1),
            l1_max_ttl: parse("l1_max_ttl", self.l1_max_ttl, base.l1_max_ttl)?,
            max_stale: parse("max_stale", self.max_stale, base.max_stale)?,
            fail_safe_throttle: parse(
                "fail_safe_throttle",
                self.fail_safe_throttle,
                base.fail_safe_throttle,
            )?,
            soft_timeout: optional("soft_timeout", self.soft_timeout, base.soft_timeout)?,
            hard_timeout: optional("hard_timeout", self.hard_timeout, base.hard_timeout)?,
            refresh_ahead: match self.refresh_ahead {
                None => base.refresh_ahead,
                Some(0.0) => None,
                Some(f) => Some(f),
            },
        })
    }
}

impl<'de> Deserialize<'de> for TierTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut raw = BTreeMap::<String, Entry>::deserialize(d)?;
        let default = match raw.remove("default") {
            Some(e) => e.over(BUILTIN, "default").map_err(D::Error::custom)?,
            None => BUILTIN,
        };
        let mut types = BTreeMap::new();
        for (name, entry) in raw {
            let t = CacheType::new(name.clone())
                .map_err(|e| D::Error::custom(format!("tiers.{name}: {e}")))?;
            types.insert(t, entry.over(default, &name).map_err(D::Error::custom)?);
        }
        Ok(TierTable { default, types })
    }
}
