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

    /// `ttl`, as `typed`, when it is within [`Self::MIN_TTL`]..=[`Self::MAX_TTL`]; otherwise why not, in the words
    /// the user typed it (`"9600h" is not between 1ms and 366d`): the one wording of the bounds, for the
    /// configuration and the command line alike.
    ///
    /// # Errors
    /// The message, for a zero TTL or one out of bounds.
    pub fn check_typed(typed: &str, ttl: Duration) -> Result<Duration, String> {
        if ttl.is_zero() {
            return Err(format!(
                "{typed:?} is zero: the cache never stores immortal keys; give a TTL of at least {}",
                Self::bounds().0
            ));
        }
        if !Self::in_bounds(ttl) {
            let (min, max) = Self::bounds();
            return Err(format!("{typed:?} is not between {min} and {max}"));
        }
        Ok(ttl)
    }

    /// The bounds as they are typed (`1ms`, `366d`): humantime would print the longest as `1year 18h`.
    fn bounds() -> (String, String) {
        (
            format!("{}ms", Self::MIN_TTL.as_millis()),
            format!("{}d", Self::MAX_TTL.as_secs() / 86_400),
        )
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
        // The configuration's TTLs were checked as typed when read (`types.rs`); these are the ones inserted
        // since.
        for (t, ttl) in &self.0 {
            Self::check_typed(&duration::format(*ttl), *ttl)
                .map_err(|why| ConfigError::invalid(format!("types.{t}.ttl"), why))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttl_out_of_bounds_is_refused_in_the_words_it_was_typed() {
        assert_eq!(
            TtlTable::check_typed("9600h", Duration::from_secs(9600 * 3600)).unwrap_err(),
            "\"9600h\" is not between 1ms and 366d"
        );
        let zero = TtlTable::check_typed("0s", Duration::ZERO).unwrap_err();
        assert!(zero.starts_with("\"0s\" is zero"), "{zero}");
        assert!(!zero.contains("0ns"), "{zero}");
        assert_eq!(
            TtlTable::check_typed("366d", TtlTable::MAX_TTL),
            Ok(TtlTable::MAX_TTL)
        );
    }
}
