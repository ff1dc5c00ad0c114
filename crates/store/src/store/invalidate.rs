//! Invalidation: eager (SCAN + UNLINK), lazy (one generation bump) and hybrid; by pattern, by subject, and the
//! seed's `clear_cache` and `invalidate_user_cache`.

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, Scope, TenantId, layout};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug_span};

use super::{ALL_TYPES, Store, sweeps};
use crate::{BackendError, StoreError};

/// How an invalidation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationStrategy {
    /// Every matching key is deleted (SCAN + UNLINK) before the call returns.
    Eager,
    /// One O(1) write bumps a generation; readers stop seeing the old entries at once, and their storage is
    /// reclaimed by TTL.
    Lazy,
    /// Lazy now, then an eager sweep in the background to reclaim storage early.
    Hybrid,
}

impl InvalidationStrategy {
    /// `eager`, `lazy` or `hybrid`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationStrategy::Eager => "eager",
            InvalidationStrategy::Lazy => "lazy",
            InvalidationStrategy::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for InvalidationStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "eager" => Ok(Self::Eager),
            "lazy" => Ok(Self::Lazy),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!(
                "unknown invalidation strategy {other:?}; expected eager, lazy or hybrid"
            )),
        }
    }
}

/// The result of an invalidation.
#[derive(Debug)]
#[non_exhaustive]
pub struct Invalidation {
    /// The strategy applied.
    pub strategy: InvalidationStrategy,
    /// Keys deleted before the call returned (eager only).
    pub deleted: u64,
    /// The background sweep of the hybrid strategy; it yields the number of keys it deleted.
    pub sweep: Option<JoinHandle<Result<u64, StoreError>>>,
}

impl Store {
    /// Invalidates a scope's entries, or one cache type's, with the given strategy.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot take the invalidation — never silently skipped.
    pub async fn invalidate(
        &self,
        scope: impl AsScope,
        cache_type: Option<&CacheType>,
        strategy: InvalidationStrategy,
    ) -> Result<Invalidation, StoreError> {
        let scope = scope.as_scope().to_scope();
        let type_label = cache_type.map_or(ALL_TYPES, CacheType::as_str);
        let span = debug_span!(
            "cache.invalidate",
            tenant = scope.label(),
            cache_type = type_label,
            strategy = strategy.as_str()
        );
        async {
            let pattern = self.inner.keys.scan_pattern(&scope, cache_type);
            let mut result = Invalidation {
                strategy,
                deleted: 0,
                sweep: None,
            };
            if strategy == InvalidationStrategy::Eager {
                result.deleted = self.delete_matching(&scope, type_label, &pattern).await?;
            } else {
                // Any cache type works for the scope-level key.
                let g = self
                    .inner
                    .keys
                    .generation_keys(&scope, cache_type.unwrap_or(&CacheType::SESSION))?;
                let gen_key = if cache_type.is_some() {
                    g.cache_type()
                } else {
                    g.scope()
                };
                self.call(
                    self.inner
                        .backend
                        .storage()
                        .bump_generation(gen_key, self.inner.generation_ttl),
                )
                .await
                .map_err(|source| StoreError::Unavailable {
                    op: "invalidate",
                    source,
                })?;
                if strategy == InvalidationStrategy::Hybrid {
                    let store = self.clone();
                    let type_label = type_label.to_owned();
                    let delay = self.inner.hybrid_delay;
                    result.sweep = Some(tokio::spawn(
                        async move {
                            tokio::time::sleep(delay).await;
                            store.delete_matching(&scope, &type_label, &pattern).await
                        }
                        .instrument(debug_span!("cache.hybrid_sweep")),
                    ));
                }
            }
            if let Some(l1) = &self.inner.l1 {
                l1.changed_all();
            }
            tracing::info!(deleted = result.deleted, "cache invalidated");
            Ok(result)
        }
        .instrument(span)
        .await
    }

    /// Deletes the entries of a scope (and optionally one type) whose specific key matches `key_glob`
    /// (`*`, `?`, `[…]`), with SCAN + UNLINK in batches — never `KEYS`. The glob cannot reach outside the scope.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot complete the sweep.
    pub async fn delete_pattern(
        &self,
        scope: impl AsScope,
        cache_type: Option<&CacheType>,
        key_glob: &str,
    ) -> Result<u64, StoreError> {
        let scope = scope.as_scope().to_scope();
        let pattern = self.inner.keys.key_pattern(&scope, cache_type, key_glob);
        let type_label = cache_type.map_or(ALL_TYPES, CacheType::as_str);
        self.delete_matching(&scope, type_label, &pattern)
            .instrument(debug_span!(
                "cache.delete_pattern",
                tenant = scope.label(),
                cache_type = type_label
            ))
            .await
    }

    /// Deletes every entry about `subject` — a document fingerprint, a session id — in a scope, in one cache
    /// type or in all of them: the entry keyed by the subject itself and every key under `{subject}/` (the
    /// document pipeline's stages for every engine, the HTTP copies of routes that name the subject; see
    /// [`fernando_cache_keys::layout`]). Eager, because generations exist per type, not per key. Returns how
    /// many keys were deleted.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot complete the sweep.
    pub async fn invalidate_subject(
        &self,
        scope: impl AsScope,
        cache_type: Option<&CacheType>,
        subject: &str,
    ) -> Result<u64, StoreError> {
        let scope = scope.as_scope();
        let mut deleted = 0;
        for glob in layout::subject_globs(subject) {
            deleted += self.delete_pattern(scope, cache_type, &glob).await?;
        }
        Ok(deleted)
    }

    /// Deletes every entry of a scope, or of one type in it (eager invalidation).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot complete the sweep.
    pub async fn clear_cache(
        &self,
        scope: impl AsScope,
        cache_type: Option<&CacheType>,
    ) -> Result<u64, StoreError> {
        Ok(self
            .invalidate(scope, cache_type, InvalidationStrategy::Eager)
            .await?
            .deleted)
    }

    /// Deletes the keys matching `pattern` in `scope`, within the tenant's sweep bounds ([`sweeps`]): in turn,
    /// at the tenant's rate, and joining the same sweep when it is still waiting.
    async fn delete_matching(
        &self,
        scope: &Scope,
        type_label: &str,
        pattern: &str,
    ) -> Result<u64, StoreError> {
        let series = self.inner.metrics.series(scope.label(), type_label);
        let leader = loop {
            match self.inner.sweeps.enter(scope.label(), pattern) {
                sweeps::Place::Lead(leader) => break leader,
                sweeps::Place::Joined(rx) => match sweeps::joined(rx).await {
                    Some(outcome) => {
                        series.add(|c| &c.sweeps_coalesced, 1);
                        return outcome.map_err(|message| StoreError::Unavailable {
                            op: "invalidate",
                            source: BackendError::Other(message),
                        });
                    }
                    // Its leader went away before running it: take a place again.
                    None => continue,
                },
            }
        };
        let turn = leader.turn().await;
        series.add(|c| &c.sweeps, 1);
        let outcome = self.sweep_now(scope, &series, pattern).await;
        leader.finish(
            turn,
            outcome.as_ref().map(|n| *n).map_err(ToString::to_string),
        );
        outcome
    }

    async fn sweep_now(
        &self,
        scope: &Scope,
        series: &crate::metrics::SeriesRef<'_>,
        pattern: &str,
    ) -> Result<u64, StoreError> {
        let Some(permit) = self.inner.breaker.acquire() else {
            return Err(StoreError::Unavailable {
                op: "invalidate",
                source: BackendError::CircuitOpen,
            });
        };
        let r = self
            .inner
            .backend
            .storage()
            .delete_matching(
                pattern,
                self.inner.scan_batch,
                self.inner.timeout,
                self.byte_ledger(scope).as_deref(),
            )
            .await;
        if let Some(l1) = &self.inner.l1 {
            l1.changed_all();
        }
        match r {
            Ok(n) => {
                permit.success();
                series.add(|c| &c.deletes, n);
                Ok(n)
            }
            Err(source) => {
                if source.is_unavailability() {
                    permit.failure();
                } else {
                    permit.success();
                }
                series.add(|c| &c.errors, 1);
                Err(StoreError::Unavailable {
                    op: "invalidate",
                    source,
                })
            }
        }
    }

    /// Hides every entry of the scope written with `tag`, of every cache type, in O(1): the tag's generation
    /// changes, and entries stamped with the old one read as misses (design 0014).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot take it; an invalid tag.
    pub async fn invalidate_tag(&self, scope: impl AsScope, tag: &str) -> Result<(), StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!("cache.invalidate_tag", tenant = scope.label());
        async {
            // The tag key hangs off the scope's generation key; any cache type names it.
            let key = self
                .inner
                .keys
                .generation_keys(&scope, &CacheType::SESSION)?
                .tag(tag)?;
            self.call(
                self.inner
                    .backend
                    .storage()
                    .bump_generation(&key, self.inner.generation_ttl),
            )
            .await
            .map_err(|source| StoreError::Unavailable {
                op: "invalidate_tag",
                source,
            })?;
            if let Some(l1) = &self.inner.l1 {
                l1.changed_all();
            }
            tracing::info!(tag, "tag invalidated");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Hides every entry of the scope, of every cache type, in O(1) (a lazy invalidation of the scope; the
    /// entries expire by their TTL).
    ///
    /// # Errors
    /// As [`Store::invalidate`].
    pub async fn clear(&self, scope: impl AsScope) -> Result<(), StoreError> {
        self.invalidate(scope, None, InvalidationStrategy::Lazy)
            .await
            .map(|_| ())
    }

    /// The seed's `invalidate_user_cache`: every entry of one tenant (user) becomes invisible now and is swept
    /// in the background (hybrid strategy).
    ///
    /// # Errors
    /// As [`Store::invalidate`].
    pub async fn invalidate_user_cache(
        &self,
        tenant: &TenantId,
    ) -> Result<Invalidation, StoreError> {
        self.invalidate(tenant, None, InvalidationStrategy::Hybrid)
            .await
    }
}
