//! Erasing a tenant in one step (issue 31, item 4): every key of it on the backend — entries of every cache
//! type (the HTTP layer's copies, sets and epochs among them), generation keys, leases, quota ledgers and
//! request counters — by the globs the key builder gives for it ([`KeyBuilder::tenant_globs`]), on every
//! primary of a cluster; and what this process holds of it (L1 copies, computations in flight).
//!
//! The order is the argument. First the tenant's scope generation is bumped: every entry is hidden at once,
//! for every process — the bump is announced to the other processes' tracked generations and L1 copies as
//! any lazy invalidation is (designs 0007, 0013), so a second process serves misses from then on. Then the
//! entries, leases and ledgers are deleted. The generation keys go last: a missing generation reads as 0, the
//! generation of an entry written before any invalidation, so deleting the scope's generation before the
//! entries it hides would show them again. Erasing again finds nothing and succeeds (a generation key the bump
//! made is not counted; one it wrote over, the tenant's own, is). Writes of the tenant racing the erasure may leave entries written after its
//! sweep passed; stop the tenant's traffic first (revoke its keys), or erase again.
//!
//! Around it all, the deployment's erasure count (`KeyBuilder::erasures_key`, a number naming no tenant) is
//! bumped before anything goes and again when all is gone: samples another process held of the tenant's values
//! are then never trained into a compression dictionary (design 0025).
//!
//! An erasure is an operator's one action, not a tenant's traffic, so its sweeps do not wait for the tenant's
//! sweep turn (`sweeps.rs`); each goes through the circuit breaker like any sweep.

use fernando_cache_config::CacheType;
use fernando_cache_keys::{KeyBuilder, Scope, TenantId, escape_glob, glob_match};
use tracing::{Instrument, debug_span};

use super::{Store, route::Lane};
use crate::{BackendError, StoreError};

/// What [`Admin::erase_tenant`](super::Admin::erase_tenant) removed from the backend, by kind of key (on the
/// disk and memory backends, which keep ledgers in tables of their own, a ledger counts as one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Erasure {
    /// Entries of every cache type: values, the HTTP layer's stored responses, its variant sets and epochs.
    pub entries: u64,
    /// Invalidation generations of the tenant's scope, types and tags.
    pub generations: u64,
    /// Leases of computations across processes (design 0011).
    pub leases: u64,
    /// The byte ledger and the request counter of its quotas (design 0017).
    pub quota: u64,
}

impl Erasure {
    /// Keys removed, of every kind.
    pub fn total(&self) -> u64 {
        self.entries + self.generations + self.leases + self.quota
    }
}

/// What one of [`KeyBuilder::tenant_globs`] reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Area {
    Entries,
    Generations,
    Leases,
    Quota,
}

impl Area {
    /// The area of a glob `keys` made: told by what follows its (glob-escaped) prefix.
    pub(super) fn of(keys: &KeyBuilder, glob: &str) -> Area {
        let prefix = escape_glob(keys.prefix());
        let rest = glob.strip_prefix(&*prefix).unwrap_or(glob);
        if rest.starts_with("_gen:") {
            Area::Generations
        } else if rest.starts_with("_lease:") {
            Area::Leases
        } else if rest.starts_with("_quota:") {
            Area::Quota
        } else {
            Area::Entries
        }
    }
}

impl Store {
    /// Erases every key of `tenant` on the backend and what this process holds of it; public as
    /// [`super::Admin::erase_tenant`].
    pub(super) async fn erase_tenant(&self, tenant: &TenantId) -> Result<Erasure, StoreError> {
        let span = debug_span!("cache.erase_tenant", tenant = tenant.as_str());
        async {
            let keys = &self.inner.keys;
            let scope = Scope::Tenant(tenant.clone());
            // Any cache type names the scope's own generation keys: one, or one per shard (design 0024). An
            // over-long tenant is refused here: it cannot have keys.
            let per_shard = keys.generation_keys_per_shard(&scope, &CacheType::SESSION)?;
            let bumps: Vec<&str> = per_shard.iter().map(|g| g.scope()).collect();
            let lane = self.lane((&scope).into());
            // Which of them the tenant had (an earlier invalidation wrote them): they count as erased, though the
            // bump below writes over them first.
            let had = self
                .call(&lane, lane.storage().read_generations(&bumps))
                .await
                .map_err(|source| StoreError::Unavailable {
                    op: "erase_tenant",
                    source,
                })?
                .iter()
                .filter(|g| **g != 0)
                .count() as u64;
            // Counted before anything goes, and again when all is gone: a process holding samples of the
            // tenant's values from before sees the count move, and trains no dictionary on them (design 0025).
            let erasures = keys.erasures_key();
            let own = self.own_users_lane(&lane);
            self.bump_erasures(own, &erasures).await?;
            self.bump_generations(&lane, &bumps, "erase_tenant").await?;
            self.drop_held(tenant);
            let mut globs = keys.tenant_globs(tenant);
            // Stable: the generation keys last, every other glob in the builder's order.
            globs.sort_by_key(|g| Area::of(keys, g) == Area::Generations);
            let mut erased = Erasure::default();
            for glob in &globs {
                let n = self.erase_matching(&lane, glob).await?;
                match Area::of(keys, glob) {
                    Area::Entries => erased.entries += n,
                    Area::Generations => erased.generations += n,
                    Area::Leases => erased.leases += n,
                    Area::Quota => erased.quota += n,
                }
            }
            // The generation keys the bumps above made are the erasure's, not the tenant's; those it wrote over
            // were the tenant's.
            erased.generations = erased.generations.saturating_sub(bumps.len() as u64) + had;
            self.bump_erasures(own, &erasures).await?;
            // Copies read while the keys were going, and computations started meanwhile, go too.
            self.drop_held(tenant);
            tracing::info!(
                entries = erased.entries,
                generations = erased.generations,
                leases = erased.leases,
                quota = erased.quota,
                "tenant erased from the cache"
            );
            Ok(erased)
        }
        .instrument(span)
        .await
    }

    /// Sets the deployment's erasure count (`key`) to a fresh value, kept for
    /// [`ERASURES_KEPT`](super::dictionaries::ERASURES_KEPT).
    async fn bump_erasures(&self, lane: &Lane, key: &str) -> Result<(), StoreError> {
        let storage = lane.storage();
        self.call(
            lane,
            storage.bump_generation(key, super::dictionaries::ERASURES_KEPT),
        )
        .await
        .map(drop)
        .map_err(|source| StoreError::Unavailable {
            op: "erase_tenant",
            source,
        })
    }

    /// Drops what this process holds of `tenant`: every L1 copy (the tier keeps no index by tenant, and an
    /// erasure is rare), its computations in flight, which later callers no longer join, and its groups'
    /// compression dictionaries and samples (made of its values).
    fn drop_held(&self, tenant: &TenantId) {
        if let Some(l1) = &self.inner.l1 {
            l1.changed_all();
        }
        let globs = self.inner.keys.tenant_globs(tenant);
        let of_tenant = |key: &str| {
            globs
                .iter()
                .any(|g| glob_match(g.as_bytes(), key.as_bytes()))
        };
        self.inner.flights.forget(of_tenant);
        // A group is `{prefix}{scope}:{type}`: one of the tenant's when an entry key in it would be.
        self.inner
            .dictionaries
            .forget(|group| of_tenant(&format!("{group}:x")));
    }

    /// Deletes every key matching `pattern` (on every primary of a cluster), through the circuit breaker; no
    /// ledger is released, since the erasure deletes the ledgers themselves.
    async fn erase_matching(&self, lane: &Lane, pattern: &str) -> Result<u64, StoreError> {
        let unavailable = |source| StoreError::Unavailable {
            op: "erase_tenant",
            source,
        };
        let Some(permit) = lane.breaker.acquire() else {
            return Err(unavailable(BackendError::CircuitOpen));
        };
        let deleted = self.delete_on(lane, pattern, None).await;
        match deleted {
            Ok(n) => {
                permit.success();
                Ok(n)
            }
            Err(source) => {
                if source.is_unavailability() {
                    permit.failure();
                } else {
                    permit.success();
                }
                Err(unavailable(source))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use fernando_cache_config::Environment;

    use super::*;

    #[test]
    fn every_tenant_glob_falls_in_one_area_and_each_area_is_reached() {
        let keys = KeyBuilder::new("fer*n", Environment::Production, 128);
        let tenant = TenantId::new("_gen:x").unwrap();
        let areas: Vec<Area> = keys
            .tenant_globs(&tenant)
            .iter()
            .map(|g| Area::of(&keys, g))
            .collect();
        for area in [Area::Entries, Area::Generations, Area::Leases, Area::Quota] {
            assert!(areas.contains(&area), "{area:?} in {areas:?}");
        }
        // A tenant named like an area stays in the area its glob is in: the tag comes after the area.
        let entry_globs = areas.iter().filter(|a| **a == Area::Entries).count();
        assert_eq!(entry_globs, 2, "one tag and the shards: {areas:?}");
    }
}
