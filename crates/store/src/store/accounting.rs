//! What cached work cost and what hits saved — engine time, model tokens and money — counted per tenant and
//! cache type next to the hit and miss counts, so the recorder writes them with the same exactness.
//!
//! The store does not price anything: the caller that ran the work knows what it cost (an LLM answer's
//! `usage`, a price list) and stores that [`Cost`] with the value it caches, so a later hit can say what it
//! saved even after prices change.

use fernando_cache_config::CacheType;
use fernando_cache_keys::AsScope;
use serde::{Deserialize, Serialize};

use super::Store;
use crate::metrics::AtomicCounters;

/// What computing one value cost. Money is counted in millionths of the configured currency unit (integers
/// add up exactly; a price is rounded once per computation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cost {
    /// Engine time, in milliseconds.
    pub compute_ms: u64,
    /// Model tokens (prompt and completion).
    pub tokens: u64,
    /// Money, in millionths of the currency unit.
    pub money_micros: u64,
}

impl Cost {
    /// Both costs together (saturating).
    #[must_use]
    pub fn plus(self, other: Cost) -> Cost {
        Cost {
            compute_ms: self.compute_ms.saturating_add(other.compute_ms),
            tokens: self.tokens.saturating_add(other.tokens),
            money_micros: self.money_micros.saturating_add(other.money_micros),
        }
    }

    /// The larger of each figure: what a value cost at most, of two reports of it.
    #[must_use]
    pub fn largest(self, other: Cost) -> Cost {
        Cost {
            compute_ms: self.compute_ms.max(other.compute_ms),
            tokens: self.tokens.max(other.tokens),
            money_micros: self.money_micros.max(other.money_micros),
        }
    }
}

impl Store {
    /// Counts `cost` as spent on computing a value of `cache_type` (a miss's work) for `scope`; public as
    /// [`super::Coordinator::record_spent`].
    pub(super) fn record_spent(&self, scope: impl AsScope, cache_type: &CacheType, cost: Cost) {
        self.account(scope, cache_type, |c| c.add_spent(cost));
    }

    /// Counts `cost` as saved by a hit on a value of `cache_type` for `scope`; public as
    /// [`super::Coordinator::record_saved`].
    pub(super) fn record_saved(&self, scope: impl AsScope, cache_type: &CacheType, cost: Cost) {
        self.account(scope, cache_type, |c| c.add_saved(cost));
    }

    fn account(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        add: impl FnOnce(&AtomicCounters),
    ) {
        let scope = scope.as_scope();
        self.inner
            .metrics
            .series(scope.label(), cache_type.as_str())
            .apply(|s| add(&s.counters));
    }
}
