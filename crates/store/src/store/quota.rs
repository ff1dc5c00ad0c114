//! Per-tenant quotas (design 0017): the bytes of live entries a tenant holds, charged on every write to a
//! ledger on the backend (so every replica shares it) and refused past the tenant's byte quota; and the
//! tenant's requests per fixed window, counted for the HTTP edge. Each tenant's bounds are its plan's
//! (`[tenants.<id>]`, else `[tenants.default]`, else `quotas.*`; issue 31).
//!
//! Policy: a write past the byte quota is refused and counted (`quota_refused`), never stored; the tenant's
//! entries expire as usual and make room again. Evicting the tenant's own least recently used entries instead
//! would need a recency index per tenant on the backend, a write per read — refusing costs one round trip per
//! write and nothing per read. A deleted entry is released from the ledger, and so is every entry a sweep (an
//! eager or hybrid invalidation: of a scope, a type, a pattern, a subject) deletes, batch by batch; entries
//! hidden by a lazy invalidation still occupy the backend until they expire, and are counted until then.
//!
//! A tenant spread over shards (design 0024) has a byte ledger per shard, in the shard's slot, each bounded by
//! the tenant's limit divided by the shard count (rounded up): entries spread evenly by hash, so the shards fill
//! alike, and a shard that fills first refuses a little before the tenant's total reaches its limit. Its use
//! is the sum over its ledgers; its request counter stays one.

use std::{sync::atomic::Ordering, time::Duration};

use fernando_cache_keys::{AsScope, CacheKey, Scope, TenantId};
use futures_util::future::try_join_all;
use tracing::{Instrument, debug_span};

use super::{ALL_TYPES, Store, WriteOutcome, route::Lane};
use crate::{ByteLedgers, StoreError, metrics::SeriesRef};

/// What a backend without [`Coordination`](crate::Coordination) is said to keep none of, when a byte quota
/// needs its ledger.
const QUOTA_LEDGERS: &str = "quota ledgers";
/// The same, when a request quota needs its counter.
const WINDOWED_COUNTERS: &str = "windowed counters";

/// A tenant's use of its quotas, as the backend's ledgers say now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaUsage {
    /// Bytes of the tenant's live entries (over all its ledgers, for a tenant spread over shards).
    pub stored_bytes: u64,
    /// The tenant's byte quota: its plan's `tenant_bytes`, else `quotas.tenant_bytes` (0: no limit) — the whole
    /// tenant's; each of its shards may hold this divided by the shard count, rounded up.
    pub byte_limit: u64,
    /// Requests counted in the current window.
    pub requests: u64,
    /// The tenant's request quota: its plan's `shared_requests`, else `quotas.shared_requests` (0: no limit).
    pub request_limit: u64,
    /// `quotas.shared_window`.
    pub request_window: Duration,
}

/// Whether a tenant's request is within its request quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestQuota {
    /// Within the quota (or none is set, or the backend could not count it).
    Allowed,
    /// Over the quota until the window ends.
    Refused {
        /// When the window ends.
        retry_after: Duration,
    },
}

impl Store {
    /// Charges a tenant's write of `bytes` kept for `kept` to its byte ledger, on the tenant's `lane`. `None`:
    /// go on and write; otherwise the outcome of a write that must not happen (over the quota, or the ledger
    /// unreachable — a quota that cannot be checked is not waived).
    pub(super) async fn charge_quota(
        &self,
        lane: &Lane,
        scope: &Scope,
        key: &CacheKey,
        bytes: usize,
        kept: Duration,
        series: &SeriesRef<'_>,
    ) -> Option<WriteOutcome> {
        // The tenant's own plan, or the default (issue 31); 0 for the global scope and while no plan sets one.
        let limit = self.inner.plans.tenant_bytes(scope);
        if limit == 0 {
            return None;
        }
        // The entry's key was built by the same builder, so this cannot fail; if it did, the quota could not be
        // checked, and an unchecked quota is not waived.
        let Some(ledger) = self.inner.keys.byte_ledger_of(key.as_str()) else {
            series.add(|c| &c.dropped_sets, 1);
            return Some(WriteOutcome::Dropped);
        };
        // The entry's shard's ledger holds its share of the limit.
        let shard_limit = limit.div_ceil(u64::from(self.inner.keys.shards(scope)));
        let member = crate::backend::ledger_member(key.as_str());
        let charged = self
            .coordinate(lane, QUOTA_LEDGERS, |c| {
                c.charge(&ledger, &member, bytes as u64, kept, shard_limit)
            })
            .await;
        match charged {
            Ok(c) if c.admitted => None,
            Ok(c) => {
                series.add(|c| &c.quota_refused, 1);
                tracing::debug!(
                    tenant = scope.label(),
                    stored = c.total,
                    limit,
                    shard_limit,
                    "write refused: tenant byte quota"
                );
                Some(WriteOutcome::OverQuota)
            }
            Err(e) => {
                series.apply(|s| {
                    let c = &s.counters;
                    c.dropped_sets.fetch_add(1, Ordering::Relaxed);
                    c.degraded.fetch_add(1, Ordering::Relaxed);
                    if !matches!(e, crate::BackendError::CircuitOpen) {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        c.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                });
                Some(WriteOutcome::Dropped)
            }
        }
    }

    /// The byte ledgers deletions in `scope` release from (a single delete, or a sweep): each entry's own —
    /// the tenant's, or its shard's — when the tenant has a byte quota.
    pub(super) fn byte_ledger(&self, scope: &Scope) -> Option<ByteLedgers> {
        if self.inner.plans.tenant_bytes(scope) == 0 {
            return None;
        }
        Some(ByteLedgers::new(self.inner.keys.clone()))
    }

    /// Releases a deleted entry from its tenant's byte ledger on the tenant's `lane` (best effort: a failure
    /// leaves it counted until it would have expired).
    pub(super) async fn release_quota(&self, lane: &Lane, scope: &Scope, key: &CacheKey) {
        let Some(ledger) = self.byte_ledger(scope).and_then(|l| l.of(key.as_str())) else {
            return;
        };
        let member = crate::backend::ledger_member(key.as_str());
        // Size 0, expiring at once: the next charge sweeps it out.
        let _ = self
            .coordinate(lane, QUOTA_LEDGERS, |c| {
                c.charge(&ledger, &member, 0, Duration::from_millis(1), 0)
            })
            .await;
    }

    /// A tenant's use of its quotas now; public as [`super::Admin::quota_usage`].
    pub(super) async fn quota_usage(&self, tenant: &TenantId) -> Result<QuotaUsage, StoreError> {
        let q = &self.inner.quotas;
        let limits = self.inner.plans.of(tenant.as_str());
        let scope = tenant.as_scope();
        let [_, requests] = self.inner.keys.quota_keys(scope)?;
        // One ledger, or one per shard (and the one-tag ledger of what was written before the tenant was
        // sharded, until it expires): read at once.
        let ledgers = self.inner.keys.byte_ledgers(scope)?;
        let unavailable = |source| StoreError::Unavailable {
            op: "quota_usage",
            source,
        };
        let lane = self.lane(scope);
        let stored: u64 = try_join_all(ledgers.iter().map(|ledger| {
            self.coordinate(&lane, QUOTA_LEDGERS, move |c| {
                c.charge(ledger, "", 0, Duration::ZERO, 0)
            })
        }))
        .instrument(debug_span!("cache.quota_usage", tenant = tenant.as_str()))
        .await
        .map_err(unavailable)?
        .iter()
        .map(|charge| charge.total)
        .sum();
        let counted = self
            .coordinate(&lane, WINDOWED_COUNTERS, |c| {
                c.count_in_window(&requests, 0, q.shared_window)
            })
            .await
            .map_err(unavailable)?;
        Ok(QuotaUsage {
            stored_bytes: stored,
            byte_limit: limits.tenant_bytes,
            requests: counted.count,
            request_limit: limits.shared_requests,
            request_window: q.shared_window,
        })
    }

    /// Counts one request of `tenant` against its request quota; public as
    /// [`super::Coordinator::count_request`].
    pub(super) async fn count_request(&self, tenant: &TenantId) -> RequestQuota {
        let q = &self.inner.quotas;
        let limit = self.inner.plans.shared_requests(tenant.as_str());
        if limit == 0 {
            return RequestQuota::Allowed;
        }
        let series = self.inner.metrics.series(tenant.as_str(), ALL_TYPES);
        let Ok([_, key]) = self.inner.keys.quota_keys(tenant.as_scope()) else {
            return RequestQuota::Allowed;
        };
        let lane = self.lane(tenant.as_scope());
        let counted = self
            .coordinate(&lane, WINDOWED_COUNTERS, |c| {
                c.count_in_window(&key, 1, q.shared_window)
            })
            .instrument(debug_span!("cache.count_request", tenant = tenant.as_str()))
            .await;
        match counted {
            Ok(c) if c.count > limit => {
                series.add(|c| &c.requests_refused, 1);
                RequestQuota::Refused {
                    retry_after: c.resets_in.max(Duration::from_secs(1)),
                }
            }
            Ok(_) => RequestQuota::Allowed,
            Err(_) => {
                series.add(|c| &c.degraded, 1);
                RequestQuota::Allowed
            }
        }
    }
}
