//! Per cache type: how an entry is tiered — whether reads keep a copy in process (L1, in front of the
//! configured backend) and for how long at most (design 0013) — and the size of that in-process tier.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierPolicy {
    /// Keep a copy of values read in process, in front of the backend.
    pub l1: bool,
    /// Longest an in-process copy lives, even while the backend announces no change.
    pub l1_max_ttl: Duration,
}

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
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    l1: Option<bool>,
    l1_max_ttl: Option<String>,
}

impl Entry {
    fn over(self, base: TierPolicy, name: &str) -> Result<TierPolicy, String> {
        Ok(TierPolicy {
            l1: self.l1.unwrap_or(base.l1),
            l1_max_ttl: match self.l1_max_ttl {
                None => base.l1_max_ttl,
                Some(t) => {
                    duration::parse(&t).map_err(|e| format!("tiers.{name}.l1_max_ttl: {e}"))?
                }
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
