//! The partition rule (design 0026, decision 5): when entries of another region's stream are lost before they
//! were applied here — trimmed unread past the stream's bound, deleted, or gone with a stream or group that was
//! lost — this region cannot know which tenants they touched, so it treats every one as touched: the entries of
//! every type it replicates, of every scope that holds any and of every tenant its plans name, are invalidated
//! (lazily: their generations bumped, so none is served from that moment). A miss costs a recomputation; a value
//! another region invalidated and this one still served would cost correctness.

use std::collections::HashSet;

use fernando_cache_keys::{Scope, TenantId};

use super::APPLYING;
use crate::{BackendError, InvalidationStrategy, ScanCursor, StoreError, store::Store};

/// Keys a page of the search for scopes asks for.
const PAGE: usize = 1000;

impl Store {
    /// Invalidates every scope's entries of the types this region replicates; how many scopes. The search goes
    /// through the shared deployment's keys (`SCAN`, names only) — tenants on a deployment of their own are
    /// named by the plans, and invalidated whether they hold any or not.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when this region's backend cannot be reached: nothing is lost, the caller
    /// tries again before applying anything after the loss.
    ///
    /// `(shard, shards)`: the loss was on shard `shard` of a stream of `shards` — only the scopes whose
    /// operations go to that shard are invalidated (each scope's operations go to one shard: `shard_of`).
    pub(crate) async fn invalidate_replicated_everywhere(
        &self,
        (shard, shards): (usize, usize),
    ) -> Result<u64, StoreError> {
        let Some(region) = &self.inner.region else {
            return Ok(0);
        };
        let keys = &self.inner.keys;
        let unavailable = |source: BackendError| StoreError::Unavailable {
            op: "replicate",
            source,
        };
        let mut scopes: HashSet<Scope> = self
            .inner
            .plans
            .all()
            .listed()
            .filter_map(|(id, _)| TenantId::new(id).ok().map(Scope::Tenant))
            .collect();
        let lane = self.shared_lane();
        for cache_type in &region.replicated {
            let pattern = keys.type_pattern(cache_type);
            let mut cursor = ScanCursor::default();
            loop {
                let page = self
                    .call(lane, lane.storage().scan(&pattern, &cursor, PAGE, 0))
                    .await
                    .map_err(unavailable)?;
                scopes.extend(
                    page.keys
                        .iter()
                        .filter_map(|listed| keys.scope_of(&listed.key))
                        .map(|(scope, _)| scope),
                );
                match page.next {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
        }
        scopes.retain(|scope| super::shard_of(scope, shards) == shard);
        for scope in &scopes {
            for cache_type in &region.replicated {
                let target = super::super::Target::entries(scope, cache_type);
                APPLYING
                    .scope(
                        None,
                        Box::pin(self.invalidate(target, InvalidationStrategy::Lazy)),
                    )
                    .await?;
            }
        }
        Ok(scopes.len() as u64)
    }
}
