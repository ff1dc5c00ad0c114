//! Time to live per cache type — the [`TtlTable`] view of the `ttl` fields of `[types]` (`types.rs` reads the
//! table) — and the bounds every TTL the cache writes is held to.

use std::{collections::BTreeMap, time::Duration};

use serde::{Serialize, Serializer, ser::SerializeMap};

use crate::{CacheType, ConfigError, duration};

/// Time to live per cache type (`types.<name>.ttl`). Every key the library writes has a TTL, so every type used
/// must have one: a TTL is never inherited from `types.default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlTable(BTreeMap<CacheType, Duration>);

impl TtlTable {
    /// The shortest TTL anything may have (Redis's resolution).
    pub const MIN_TTL: Duration = Duration::from_millis(1);

    /// The longest TTL anything may have (Redis accepts more, but a year is already a bug).
    pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

    /// Whether `ttl` is within [`Self::MIN_TTL`]..=[`Self::MAX_TTL`]: the one check every TTL passes — the
    /// table's, an explicit one given to the store, and a `#[cached]` function's (at compile time; hence
    /// `const`).
    pub const fn in_bounds(ttl: Duration) -> bool {
        ttl.as_nanos() >= Self::MIN_TTL.as_nanos() && ttl.as_nanos() <= Self::MAX_TTL.as_nanos()
    }

    /// The table of the configured TTLs.
    pub(crate) fn new(ttls: BTreeMap<CacheType, Duration>) -> Self {
        TtlTable(ttls)
    }

    /// The TTL of `cache_type`, if configured.
    pub fn get(&self, cache_type: &CacheType) -> Option<Duration> {
        self.0.get(cache_type).copied()
    }

    /// The longest TTL in the table (zero for an empty table).
    pub fn max(&self) -> Duration {
        self.0.values().copied().max().unwrap_or_default()
    }

    /// Adds or replaces the TTL of a type.
    pub fn insert(&mut self, cache_type: CacheType, ttl: Duration) {
        self.0.insert(cache_type, ttl);
    }

    /// Iterates over `(type, ttl)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&CacheType, Duration)> {
        self.0.iter().map(|(k, v)| (k, *v))
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for builtin in CacheType::BUILT_IN {
            if !self.0.contains_key(&builtin) {
                return Err(ConfigError::invalid(
                    format!("types.{builtin}.ttl"),
                    "missing: every built-in cache type needs a TTL",
                ));
            }
        }
        for (t, ttl) in &self.0 {
            if ttl.is_zero() {
                return Err(ConfigError::invalid(
                    format!("types.{t}.ttl"),
                    "must be longer than zero (the cache never stores immortal keys)",
                ));
            }
            if !Self::in_bounds(*ttl) {
                return Err(ConfigError::invalid(
                    format!("types.{t}.ttl"),
                    format!(
                        "{} is not between {} and {}",
                        duration::format(*ttl),
                        duration::format(Self::MIN_TTL),
                        duration::format(Self::MAX_TTL)
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Serialize for TtlTable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_str(), &duration::format(*v))?;
        }
        map.end()
    }
}
