//! `[types.<name>]`: everything about one cache type in one table — its TTL, how far single-flight reaches and
//! its lease (design 0011), whether reads keep a copy in process (design 0013), fail-safe, timeouts and
//! refresh-ahead (design 0014), whether its values are sealed (design 0018) and replicated to other regions
//! (design 0026).
//!
//! `[types.default]` gives every field but `ttl`, `sealed` and `replicate` to the types not listed, and to the
//! fields a listed type leaves out; a field `default` leaves out is the built-in one. Those three are never
//! inherited: a type nobody gave a TTL cannot be written (the cache never stores immortal keys), and sealing (as
//! replication) is asked for type by type (or for all document data, `encryption.document_data`). The table is
//! read here once, into three views the store keeps — [`TtlTable`], [`SingleFlightTable`], [`TierTable`] — so
//! that a field's fallback to `default` is decided in one place.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde::{Deserialize, Deserializer, de::Error as _};

use crate::{
    CacheType, ConfigError, FlightMode, FlightPolicy, SingleFlightTable, TierPolicy, TierTable,
    TtlTable, UnknownName, duration,
};

/// Everything configured for one cache type, with `types.default` and the built-in defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TypePolicy {
    /// `ttl`: how long the type's entries live; `None` when the type has no TTL, and then writing it is an error.
    pub ttl: Option<Duration>,
    /// `single_flight`, `lease_ttl` and `max_wait`.
    pub flight: FlightPolicy,
    /// `l1`, `l1_max_ttl`, `max_stale`, `fail_safe_throttle`, `soft_timeout`, `hard_timeout` and
    /// `refresh_ahead`.
    pub tier: TierPolicy,
    /// `sealed`: the type's own choice. Whether its values are sealed also depends on `encryption.document_data`
    /// ([`crate::Settings::seals`]).
    pub sealed: bool,
    /// `replicate`: the type's values are appended to the region's replication stream (design 0026), when the
    /// deployment is a region (`regions.name`). Invalidations always are.
    pub replicate: bool,
}

/// `[types]`: the `default` table and one table per listed cache type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeTable {
    ttl: TtlTable,
    single_flight: SingleFlightTable,
    tiers: TierTable,
    /// Types whose own `sealed` is true.
    sealed: BTreeSet<CacheType>,
    /// Types whose own `replicate` is true.
    replicated: BTreeSet<CacheType>,
    /// Every type with a table of its own.
    listed: BTreeSet<CacheType>,
}

impl TypeTable {
    /// Everything configured for `cache_type` (`types.default` for what its table leaves out, or for a type
    /// not listed).
    pub fn get(&self, cache_type: &CacheType) -> TypePolicy {
        TypePolicy {
            ttl: self.ttl.get(cache_type),
            flight: self.single_flight.get(cache_type),
            tier: self.tiers.get(cache_type),
            sealed: self.sealed.contains(cache_type),
            replicate: self.replicated.contains(cache_type),
        }
    }

    /// The types with a table of their own, in name order.
    pub fn listed(&self) -> impl Iterator<Item = &CacheType> {
        self.listed.iter()
    }

    /// Every cache type a user may name: the eight built-in ones and those with a `[types.<name>]` table, in
    /// name order.
    pub fn known(&self) -> Vec<CacheType> {
        let mut known: BTreeSet<CacheType> = CacheType::BUILT_IN.into_iter().collect();
        known.extend(self.listed.iter().cloned());
        known.into_iter().collect()
    }

    /// The cache type a user named (`--type`, a request's `cache_type`), if it is known ([`TypeTable::known`]).
    /// A known name is always a valid one, so there is no other check to make.
    ///
    /// # Errors
    /// [`UnknownName`] listing the known types and suggesting the nearest (`sessoin`: did you mean `session`?),
    /// so a typo is an error rather than a read that always misses or a write nobody reads.
    pub fn resolve(&self, name: &str) -> Result<CacheType, UnknownName> {
        let known = self.known();
        match known.iter().find(|t| t.as_str() == name) {
            Some(t) => Ok(t.clone()),
            None => Err(UnknownName::new(
                "cache type",
                name,
                known.iter().map(CacheType::as_str),
            )),
        }
    }

    /// Every type's `ttl`.
    pub fn ttl(&self) -> &TtlTable {
        &self.ttl
    }

    /// Every type's `single_flight`, `lease_ttl` and `max_wait`.
    pub fn single_flight(&self) -> &SingleFlightTable {
        &self.single_flight
    }

    /// Every type's `l1`, `l1_max_ttl`, `max_stale`, `fail_safe_throttle`, `soft_timeout`, `hard_timeout` and
    /// `refresh_ahead`.
    pub fn tiers(&self) -> &TierTable {
        &self.tiers
    }

    /// The types whose own `sealed` is true, in name order (without the document data that
    /// `encryption.document_data` seals: [`crate::Settings::sealed_types`] has both).
    pub fn sealed(&self) -> impl Iterator<Item = &CacheType> {
        self.sealed.iter()
    }

    /// Checks every field of every table, naming it `types.<name>.<field>`.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.ttl.validate()?;
        self.single_flight.validate()?;
        self.tiers.validate()
    }
}

/// One `[types.<name>]` table as written: every field may be left out.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Entry {
    ttl: Option<String>,
    single_flight: Option<FlightMode>,
    lease_ttl: Option<String>,
    max_wait: Option<String>,
    l1: Option<bool>,
    l1_max_ttl: Option<String>,
    max_stale: Option<String>,
    fail_safe_throttle: Option<String>,
    /// A duration, or `"off"`.
    soft_timeout: Option<String>,
    /// A duration, or `"off"`.
    hard_timeout: Option<String>,
    /// A fraction of the TTL, or 0 for off.
    refresh_ahead: Option<f64>,
    sealed: Option<bool>,
    replicate: Option<bool>,
}

/// Parses a duration field, or keeps `base` when the field is left out.
fn field(name: &str, key: &str, text: Option<&str>, base: Duration) -> Result<Duration, String> {
    match text {
        None => Ok(base),
        Some(t) => duration::parse(t).map_err(|e| format!("types.{name}.{key}: {e}")),
    }
}

/// Parses a duration-or-`"off"` field, or keeps `base` when the field is left out.
fn optional(
    name: &str,
    key: &str,
    text: Option<&str>,
    base: Option<Duration>,
) -> Result<Option<Duration>, String> {
    match text {
        None => Ok(base),
        Some("off") => Ok(None),
        Some(t) => duration::parse(t)
            .map(Some)
            .map_err(|e| format!("types.{name}.{key}: {e}")),
    }
}

impl Entry {
    /// The single-flight policy of this table over `base`.
    fn flight(&self, base: FlightPolicy, name: &str) -> Result<FlightPolicy, String> {
        Ok(FlightPolicy {
            mode: self.single_flight.unwrap_or(base.mode),
            lease_ttl: field(name, "lease_ttl", self.lease_ttl.as_deref(), base.lease_ttl)?,
            max_wait: field(name, "max_wait", self.max_wait.as_deref(), base.max_wait)?,
        })
    }

    /// The tiering policy of this table over `base`.
    fn tier(&self, base: TierPolicy, name: &str) -> Result<TierPolicy, String> {
        Ok(TierPolicy {
            l1: self.l1.unwrap_or(base.l1),
            l1_max_ttl: field(
                name,
                "l1_max_ttl",
                self.l1_max_ttl.as_deref(),
                base.l1_max_ttl,
            )?,
            max_stale: field(name, "max_stale", self.max_stale.as_deref(), base.max_stale)?,
            fail_safe_throttle: field(
                name,
                "fail_safe_throttle",
                self.fail_safe_throttle.as_deref(),
                base.fail_safe_throttle,
            )?,
            soft_timeout: optional(
                name,
                "soft_timeout",
                self.soft_timeout.as_deref(),
                base.soft_timeout,
            )?,
            hard_timeout: optional(
                name,
                "hard_timeout",
                self.hard_timeout.as_deref(),
                base.hard_timeout,
            )?,
            refresh_ahead: match self.refresh_ahead {
                None => base.refresh_ahead,
                Some(0.0) => None,
                Some(f) => Some(f),
            },
        })
    }
}

impl<'de> Deserialize<'de> for TypeTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut raw = BTreeMap::<String, Entry>::deserialize(d)?;
        let base = raw.remove("default").unwrap_or_default();
        if base.ttl.is_some() {
            return Err(D::Error::custom(
                "types.default.ttl: a TTL is never inherited; give each type its own types.<name>.ttl",
            ));
        }
        if base.sealed.is_some() {
            return Err(D::Error::custom(
                "types.default.sealed: sealing is chosen per type (types.<name>.sealed), or for all document \
                 data (encryption.document_data)",
            ));
        }
        if base.replicate.is_some() {
            return Err(D::Error::custom(
                "types.default.replicate: replication is chosen per type (types.<name>.replicate)",
            ));
        }
        let flight = base
            .flight(SingleFlightTable::BUILTIN, "default")
            .map_err(D::Error::custom)?;
        let tier = base
            .tier(TierTable::BUILTIN, "default")
            .map_err(D::Error::custom)?;
        let (mut ttls, mut flights, mut tiers) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let (mut sealed, mut listed, mut replicated) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for (name, entry) in raw {
            let t = CacheType::new(name.clone())
                .map_err(|e| D::Error::custom(format!("types.{name}: {e}")))?;
            if let Some(text) = &entry.ttl {
                let ttl = duration::parse(text)
                    .and_then(|ttl| TtlTable::check_typed(text, ttl))
                    .map_err(|e| D::Error::custom(format!("types.{name}.ttl: {e}")))?;
                ttls.insert(t.clone(), ttl);
            }
            flights.insert(
                t.clone(),
                entry.flight(flight, &name).map_err(D::Error::custom)?,
            );
            tiers.insert(
                t.clone(),
                entry.tier(tier, &name).map_err(D::Error::custom)?,
            );
            if entry.sealed == Some(true) {
                sealed.insert(t.clone());
            }
            if entry.replicate == Some(true) {
                replicated.insert(t.clone());
            }
            listed.insert(t);
        }
        Ok(TypeTable {
            ttl: TtlTable::new(ttls),
            single_flight: SingleFlightTable::new(flight, flights),
            tiers: TierTable::new(tier, tiers),
            sealed,
            replicated,
            listed,
        })
    }
}
