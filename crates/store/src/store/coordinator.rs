//! [`Coordinator`]: what the services built on the store share through it besides cached values — the HTTP
//! edge's bounded admission sets and per-tenant request quotas, refresh claims across replicas, and the
//! document pipeline's cost ledger. The calls live beside the code they share (`quota.rs`, `lease.rs`,
//! `accounting.rs`); this is their one public face.

use std::time::Duration;

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, TenantId};

use super::{Cost, RefreshClaim, RequestQuota, Store};
use crate::StoreError;

/// Coordination between the replicas sharing a store's backend, taken with [`Store::coordinator`]: admission
/// into bounded sets, request quotas, refresh claims and cost accounting. Every call is scoped to a tenant (or
/// the global scope) like the cache API, so replicas of one service share these bounds and no tenant reaches
/// another's.
#[derive(Debug, Clone, Copy)]
pub struct Coordinator<'a> {
    store: &'a Store,
}

impl Store {
    /// Coordination for the services on this store: [`Coordinator::admit`], [`Coordinator::count_request`],
    /// [`Coordinator::claim_refresh`], [`Coordinator::record_spent`] and [`Coordinator::record_saved`].
    pub fn coordinator(&self) -> Coordinator<'_> {
        Coordinator { store: self }
    }
}

impl Coordinator<'_> {
    /// Admits `member` into a bounded set of a scope and type (at most `limit` members, kept for `ttl` after
    /// the last addition), atomically on the backend, so every replica sharing it shares the bound. `Ok(true)`
    /// when `member` is in the set now (it was already, or there was room).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot answer or keeps no shared sets (the caller then falls
    /// back to a bound of its own); an invalid tenant or key.
    pub async fn admit(
        self,
        scope: impl AsScope,
        cache_type: &CacheType,
        set: &str,
        member: &[u8],
        limit: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.store
            .admit(scope, cache_type, set, member, limit, ttl)
            .await
    }

    /// Counts one request of `tenant` against its request quota (`quotas.shared_requests` per
    /// `quotas.shared_window`, shared by every replica on the backend). A backend that cannot count lets the
    /// request through (the edge's per-process rate limit still holds) and counts the operation as degraded; a
    /// refusal is counted as `requests_refused`.
    pub async fn count_request(self, tenant: &TenantId) -> RequestQuota {
        self.store.count_request(tenant).await
    }

    /// Claims the background refresh of an entry for every process on the backend: the entry's lease (design
    /// 0011, the one a computation of the entry takes), held for `ttl` and renewed while the claim lives.
    /// `Ok(None)` while another process holds it. A backend that shares no leases, or does not answer, gives a
    /// claim that binds no other process ([`RefreshClaim::is_shared`] is false): the caller's own bound is then
    /// the bound.
    ///
    /// # Errors
    /// [`StoreError::Key`] for a key the store cannot build (an over-long tenant).
    pub async fn claim_refresh(
        self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<RefreshClaim>, StoreError> {
        self.store.claim_refresh(scope, cache_type, key, ttl).await
    }

    /// Counts `cost` as spent on computing a value of `cache_type` (a miss's work) for `scope`, in the metrics
    /// beside the type's hits and misses.
    pub fn record_spent(self, scope: impl AsScope, cache_type: &CacheType, cost: Cost) {
        self.store.record_spent(scope, cache_type, cost);
    }

    /// Counts `cost` as saved by a hit on a value of `cache_type` for `scope`: what that value cost when it was
    /// computed (the caller stores the [`Cost`] with the value).
    pub fn record_saved(self, scope: impl AsScope, cache_type: &CacheType, cost: Cost) {
        self.store.record_saved(scope, cache_type, cost);
    }
}
