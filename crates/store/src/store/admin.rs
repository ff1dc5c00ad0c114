//! [`Admin`]: what operators and health checks ask a store — is the backend there, what it holds, how long an
//! entry has left, a tenant's quota use and plan, which isolation each tenant runs and its Redis user's rules,
//! the exact keys, a tenant's erasure and export — kept off the cache API. The calls themselves live beside the
//! code they share (reads in `read.rs`, quotas in `quota.rs`, plans in `plans.rs`, isolation in `route/`,
//! erasure and export in `erasure.rs` and `export.rs`); this is their one public face.

use std::time::Duration;

use fernando_cache_config::{CacheType, SecretSource, TenantPlan, TenantPlans};
use fernando_cache_keys::{AsScope, KeyBuilder, TenantId};

use super::{Erasure, ExportCursor, ExportPage, Isolations, QuotaUsage, Store, TrainedDictionary};
use crate::{BackendInfo, KeyTtl, StoreError};

/// The operator calls of a [`Store`], taken with [`Store::admin`]: they go through the same breaker and
/// command timeout as cache traffic, but unlike cache reads they report an unavailable backend as an error —
/// an operator needs the truth, not a miss.
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a> {
    store: &'a Store,
}

impl Store {
    /// The operator calls: ping, backend facts, an entry's existence and remaining life, configured TTLs,
    /// quota use and plans, the key builder, and a tenant's erasure and export.
    pub fn admin(&self) -> Admin<'_> {
        Admin { store: self }
    }
}

impl<'a> Admin<'a> {
    /// Why the backend last could not be reached (a refused connection, a timeout), as its error reads, or
    /// `None` if every call reached it. Cache reads and writes degrade silently (a miss, a dropped write); this
    /// is what a program shows its user afterwards, so the degradation is not silent to them.
    pub fn last_unavailable(self) -> Option<String> {
        self.store.last_unavailable()
    }

    /// Pings the shared backend (through the breaker and timeout) and returns the round-trip time.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not answer in time.
    pub async fn ping(self) -> Result<Duration, StoreError> {
        self.store.ping().await
    }

    /// Server facts (memory, eviction policy, key count; per node on a cluster) for operators and health
    /// checks.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend does not answer in time.
    pub async fn backend_info(self) -> Result<BackendInfo, StoreError> {
        self.store.backend_info().await
    }

    /// How far behind each region of `regions.from` this one is, from what its replicators noted on this
    /// region's backend (design 0026); empty when this deployment is no region.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend does not answer in time.
    pub async fn regions(self) -> Result<Vec<crate::RegionStatus>, StoreError> {
        self.store.regions().await
    }

    /// The backend's kind: `redis`, `memory`, `disk`, or what a backend of your own calls itself.
    pub fn backend_kind(self) -> &'static str {
        self.store.backend_kind()
    }

    /// Whether a live entry exists (it may still be hidden by a lazy invalidation).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot answer; an invalid tenant or key.
    pub async fn exists(
        self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<bool, StoreError> {
        self.store.exists(scope, cache_type, key).await
    }

    /// The remaining fresh life of an entry. The backend keeps it `types.<name>.max_stale` longer (fail-safe),
    /// which is not counted here; an entry kept only as a stale fallback answers a zero life.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot answer; an invalid tenant or key.
    pub async fn remaining_ttl(
        self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
    ) -> Result<KeyTtl, StoreError> {
        self.store.ttl(scope, cache_type, key).await
    }

    /// The TTL configured for a cache type (`types.<name>.ttl`); `None` for a type the settings do not name, which
    /// the store refuses to write.
    pub fn configured_ttl(self, cache_type: &CacheType) -> Option<Duration> {
        self.store.ttl_of(cache_type)
    }

    /// A tenant's use of its quotas now: stored bytes and requests in the current window, with the limits.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot answer (or keeps no ledgers); an over-long tenant.
    pub async fn quota_usage(self, tenant: &TenantId) -> Result<QuotaUsage, StoreError> {
        self.store.quota_usage(tenant).await
    }

    /// The key builder of this store, for callers that need the exact keys it writes (operators inspecting
    /// the backend, tests).
    pub fn keys(self) -> &'a KeyBuilder {
        &self.store.inner.keys
    }

    /// Which isolation strategy each tenant runs (`namespace`, `acl`, `dedicated`; design 0023): the default
    /// and every tenant with a table of its own. Names only, for `stats`, `/metrics` and the dashboard.
    pub fn isolations(self) -> Isolations {
        self.store.isolations()
    }

    /// The isolation strategy `tenant` runs, by name.
    pub fn isolation(self, tenant: &TenantId) -> &'static str {
        self.store.isolation_of(tenant)
    }

    /// The Redis user an `acl` tenant runs as, and where its password is read from; `None` for a tenant under
    /// another strategy.
    pub fn acl_user(self, tenant: &TenantId) -> Option<(String, SecretSource)> {
        self.store.acl_user(tenant)
    }

    /// The exact `ACL SETUSER <user>` rules of `tenant`'s Redis user, without its password (`>password`, the
    /// operator's, goes last): `on`, selectors cleared, its keys reset to every glob its keys match
    /// ([`KeyBuilder::tenant_globs`]) and nothing else, no pub/sub channel, every command removed and then those
    /// its connections send allowed — not `SCAN`, `KEYS`, `CLIENT TRACKING`, `SUBSCRIBE` or `PUBLISH`, which would
    /// show other tenants' key names (design 0023). Applying them again leaves the user exactly so.
    pub fn acl_rules(self, tenant: &TenantId) -> Vec<String> {
        self.store.acl_rules(tenant)
    }

    /// Makes (or remakes) `tenant`'s Redis user `user` with [`Admin::acl_rules`] and the password read from
    /// `password`, over the shared deployment: its server, the Sentinel-named primary (each replica keeps users
    /// of its own: provision them too, or use an ACL file), or every node of a cluster. The password is read
    /// here and never shown.
    ///
    /// # Errors
    /// [`StoreError::Setup`] when the user name cannot be used or the password cannot be read (naming the
    /// source); [`StoreError::Unavailable`] when the deployment refuses or does not answer, or is not Redis.
    pub async fn apply_acl(
        self,
        tenant: &TenantId,
        user: &str,
        password: &SecretSource,
    ) -> Result<(), StoreError> {
        self.store.apply_acl(tenant, user, password).await
    }

    /// Every tenant's plan as this store applies it (`[tenants.<id>]` over `[tenants.default]` over the
    /// deployment-wide settings): what `stats`, `/v1/cache/stats` and `/metrics` show, and the per-process
    /// rates the HTTP edge keeps.
    pub fn plans(self) -> &'a TenantPlans {
        self.store.inner.plans.all()
    }

    /// The plan of `tenant`: its own table, or the default one for a tenant not listed.
    pub fn plan(self, tenant: &TenantId) -> TenantPlan {
        self.store.inner.plans.all().get(tenant.as_str())
    }

    /// Removes every key of `tenant` from the backend — entries of every cache type (HTTP copies included),
    /// invalidation generations, leases, quota ledgers — on every primary of a cluster, and drops what this
    /// store holds of it in process (L1 copies, computations in flight). Every entry is hidden first, for every
    /// process sharing the backend, by a bump of the tenant's generation that their L1 tiers hear of (on a
    /// backend that announces changes; elsewhere their copies live out `l1.untracked_ttl`). Running it again
    /// finds nothing and succeeds. The statistics database is not the store's: `fernando_cache_ops::erasure`
    /// erases both. In a region (design 0026) it leaves, once the keys are gone, an invalidation mark per
    /// replicated type under the tenant's id — a version and no data, kept `regions.stream_max_age` and a
    /// minute — so that a value another region wrote before the erasure (or up to a minute after it, by a
    /// clock that may run ahead) is not applied after it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot take it (some keys may be gone; run it again); an
    /// over-long tenant.
    pub async fn erase_tenant(self, tenant: &TenantId) -> Result<Erasure, StoreError> {
        let erased = self.store.erase_tenant(tenant).await?;
        let scope = fernando_cache_keys::Scope::Tenant(tenant.clone());
        // Marked after the erasure removed its keys: another region's value of the tenant written before it is
        // not applied after it (design 0026).
        Box::pin(self.store.mark_erased(&scope)).await?;
        // Other regions erase it too (design 0026); one that cannot be told is an error: run it again.
        Box::pin(self.store.replicate_erasure(&scope)).await?;
        Ok(erased)
    }

    /// One page of what the backend holds for `tenant` (about `count` entries, from `from`): each entry's cache
    /// type, key, size, age and remaining life, and with `values` its envelope as stored (sealed values stay
    /// sealed). Start with `ExportCursor::default()` and go on with each page's `next` until it is `None`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot answer or cannot list its keys (a backend of your
    /// own without [`Storage::scan`](crate::Storage::scan)); an over-long tenant.
    pub async fn export_tenant(
        self,
        tenant: &TenantId,
        from: &ExportCursor,
        count: usize,
        values: bool,
    ) -> Result<ExportPage, StoreError> {
        self.store.export_tenant(tenant, from, count, values).await
    }

    /// Trains the compression dictionary of `scope`'s `cache_type` from up to 2 000 of its values and makes it
    /// current in each of its groups (design 0025): its small values written from now on (by every process
    /// within 30 s) are compressed with it; values made with an earlier one stay readable. The report says what
    /// it does to the values it was trained on.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the values cannot be listed or the dictionary cannot be stored;
    /// [`StoreError::Encode`] when the values do not make a dictionary (fewer than 32, or too alike).
    pub async fn train_dictionary(
        self,
        scope: impl AsScope,
        cache_type: &CacheType,
    ) -> Result<TrainedDictionary, StoreError> {
        let scope = scope.as_scope().to_scope();
        self.store.train_dictionary(&scope, cache_type).await
    }
}
