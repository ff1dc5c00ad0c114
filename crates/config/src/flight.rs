//! Per cache type: whether concurrent misses share one computation per process or across every process that
//! shares the cache, and the lease that marks a cross-process computation (design 0011) — the
//! [`SingleFlightTable`] view of `[types]` (`types.rs` reads the table).

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use crate::{CacheType, ConfigError, duration};

/// How far single-flight reaches for one cache type (`types.<name>.single_flight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum FlightMode {
    /// Concurrent misses in one process compute once; other processes compute for themselves.
    Process,
    /// Concurrent misses in every process sharing the cache compute once: a lease in the backend names the
    /// process computing, the others wait for its value. Falls back to `process` while the backend is down.
    Distributed,
}

impl FlightMode {
    /// Each mode under its name in the settings.
    const NAMES: [(&'static str, FlightMode); 2] = [
        ("process", FlightMode::Process),
        ("distributed", FlightMode::Distributed),
    ];
}

/// A mode by its name in the settings; an unknown name lists the valid ones and suggests the nearest.
impl TryFrom<String> for FlightMode {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        crate::choice::pick(&name, &Self::NAMES)
    }
}

/// The single-flight policy of one cache type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlightPolicy {
    /// How far single-flight reaches.
    pub mode: FlightMode,
    /// Life of a lease: a computing process renews it while it lives, so this is how long the others wait
    /// before taking over from a process that died.
    pub lease_ttl: Duration,
    /// Longest a waiting process waits for another's value before computing for itself.
    pub max_wait: Duration,
}

/// The single-flight fields of `[types]` (`single_flight`, `lease_ttl`, `max_wait`): the `types.default` policy
/// and each listed type's, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleFlightTable {
    default: FlightPolicy,
    types: BTreeMap<CacheType, FlightPolicy>,
}

impl SingleFlightTable {
    /// Shortest lease accepted: a renewal every third of it must fit in a round trip.
    pub const MIN_LEASE: Duration = Duration::from_millis(100);
    /// Longest lease accepted.
    pub const MAX_LEASE: Duration = Duration::from_secs(3600);

    /// The policy where `types.default` leaves a field out: once per process.
    pub(crate) const BUILTIN: FlightPolicy = FlightPolicy {
        mode: FlightMode::Process,
        lease_ttl: Duration::from_secs(30),
        max_wait: Duration::from_secs(120),
    };

    /// The table of `default` and the listed types' policies.
    pub(crate) fn new(default: FlightPolicy, types: BTreeMap<CacheType, FlightPolicy>) -> Self {
        SingleFlightTable { default, types }
    }

    /// The policy of a cache type (the default for types not listed).
    pub fn get(&self, cache_type: &CacheType) -> FlightPolicy {
        self.types.get(cache_type).copied().unwrap_or(self.default)
    }

    /// Checks every lease and wait.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let all = std::iter::once(("default", &self.default))
            .chain(self.types.iter().map(|(t, p)| (t.as_str(), p)));
        for (name, p) in all {
            if !(Self::MIN_LEASE..=Self::MAX_LEASE).contains(&p.lease_ttl) {
                return Err(ConfigError::invalid(
                    format!("types.{name}.lease_ttl"),
                    format!(
                        "{} is outside {}..={}",
                        duration::format(p.lease_ttl),
                        duration::format(Self::MIN_LEASE),
                        duration::format(Self::MAX_LEASE)
                    ),
                ));
            }
            if p.max_wait > Self::MAX_LEASE * 24 {
                return Err(ConfigError::invalid(
                    format!("types.{name}.max_wait"),
                    "must be at most a day",
                ));
            }
        }
        Ok(())
    }
}
