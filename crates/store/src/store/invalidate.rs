//! Invalidation: one [`Store::invalidate`] of a [`Target`] — a scope, one cache type in it, a key pattern, a
//! subject or a tag — eager (SCAN + UNLINK), lazy (one generation bump) or hybrid, as each target allows.
//!
//! A tenant spread over shards (design 0024) has generations per shard: a lazy invalidation of it, or of a tag,
//! bumps one key per shard, all sent at once — still independent of how many entries it holds. Its sweeps scan
//! two patterns, its one-tag layout and every shard, in one turn of the tenant's sweeps.

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, Scope, ScopeRef, layout};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug_span};

use super::{
    ALL_TYPES, Store,
    route::{Lane, Role},
    sweeps,
};
use crate::{BackendError, StoreError};

/// How an invalidation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationStrategy {
    /// Every matching key is deleted (SCAN + UNLINK) before the call returns.
    Eager,
    /// One O(1) write bumps a generation (one per shard of a tenant spread over shards, design 0024); readers
    /// stop seeing the old entries at once, and their storage is reclaimed by TTL.
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

/// What an invalidation reaches, always within one scope (a tenant, or the global scope): the whole scope or
/// one cache type in it, the keys matching a pattern, everything about a subject, or the entries written with a
/// tag. Build it with [`Target::entries`], [`Target::pattern`], [`Target::subject`] or [`Target::tag`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Target<'a> {
    /// Every entry of the scope, or of one cache type in it (`None`: every type). Takes any strategy.
    Entries {
        /// The scope.
        scope: ScopeRef<'a>,
        /// One cache type, or every one.
        cache_type: Option<&'a CacheType>,
    },
    /// The entries whose specific key matches a glob (`*`, `?`, `[…]`), in one type or every one; the glob
    /// cannot reach outside the scope. Always eager: SCAN + UNLINK in batches, never `KEYS`.
    Pattern {
        /// The scope.
        scope: ScopeRef<'a>,
        /// One cache type, or every one.
        cache_type: Option<&'a CacheType>,
        /// The glob over specific keys.
        glob: &'a str,
    },
    /// Every entry about a subject — a document fingerprint, a session id: the entry keyed by the subject
    /// itself and every key under `{subject}/` (the document pipeline's stages for every engine, the HTTP copies
    /// of routes that name it; see [`fernando_cache_keys::layout`]), in one type or every one. Always eager,
    /// because generations exist per type, not per key.
    Subject {
        /// The scope.
        scope: ScopeRef<'a>,
        /// One cache type, or every one.
        cache_type: Option<&'a CacheType>,
        /// The subject.
        subject: &'a str,
    },
    /// Every entry of the scope written with a tag ([`crate::Write::tags`], `#[cached(tag = …)]`), of every
    /// cache type. Always lazy: the tag's generation changes in O(1), and entries stamped with the old one read
    /// as misses (design 0014).
    Tag {
        /// The scope.
        scope: ScopeRef<'a>,
        /// The tag.
        tag: &'a str,
    },
}

impl<'a> Target<'a> {
    /// Every entry of `scope` (a `&TenantId` or a `&Scope`), or of one cache type in it: `Target::entries(&tenant,
    /// None)`, `Target::entries(&tenant, &CacheType::OCR_RESULT)`.
    pub fn entries(
        scope: impl Into<ScopeRef<'a>>,
        cache_type: impl Into<Option<&'a CacheType>>,
    ) -> Self {
        Target::Entries {
            scope: scope.into(),
            cache_type: cache_type.into(),
        }
    }

    /// The entries of `scope` (in one cache type, or every one) whose specific key matches `glob`.
    pub fn pattern(
        scope: impl Into<ScopeRef<'a>>,
        cache_type: impl Into<Option<&'a CacheType>>,
        glob: &'a str,
    ) -> Self {
        Target::Pattern {
            scope: scope.into(),
            cache_type: cache_type.into(),
            glob,
        }
    }

    /// Every entry of `scope` (in one cache type, or every one) about `subject`.
    pub fn subject(
        scope: impl Into<ScopeRef<'a>>,
        cache_type: impl Into<Option<&'a CacheType>>,
        subject: &'a str,
    ) -> Self {
        Target::Subject {
            scope: scope.into(),
            cache_type: cache_type.into(),
            subject,
        }
    }

    /// Every entry of `scope` written with `tag`, of every cache type.
    pub fn tag(scope: impl Into<ScopeRef<'a>>, tag: &'a str) -> Self {
        Target::Tag {
            scope: scope.into(),
            tag,
        }
    }
}

/// What an invalidation did.
#[derive(Debug)]
#[non_exhaustive]
pub struct Invalidation {
    /// The strategy applied: the one asked for, or the only one the target allows (eager for a pattern or a
    /// subject, lazy for a tag).
    pub strategy: InvalidationStrategy,
    /// Keys deleted before the call returned (eager only).
    pub deleted: u64,
    /// The background sweep of the hybrid strategy; it yields the number of keys it deleted.
    pub sweep: Option<JoinHandle<Result<u64, StoreError>>>,
}

impl Invalidation {
    /// Whether the entries were hidden at once by a generation change (the lazy and hybrid strategies, and a
    /// tag): each reads as a miss from now on, whatever [`Invalidation::deleted`] says — their keys stay until
    /// their TTL, or until the hybrid strategy's [`Invalidation::sweep`] deletes them. A summary that showed only
    /// `deleted` would say "0 keys deleted" about entries that are in fact gone for every reader.
    pub fn hidden(&self) -> bool {
        self.strategy != InvalidationStrategy::Eager
    }

    fn eager(deleted: u64) -> Invalidation {
        Invalidation {
            strategy: InvalidationStrategy::Eager,
            deleted,
            sweep: None,
        }
    }
}

impl Store {
    /// Invalidates `target` with `strategy`: [`InvalidationStrategy::Eager`] deletes every matching key before
    /// returning, [`InvalidationStrategy::Lazy`] hides them all in O(1) (their storage is reclaimed by TTL), and
    /// [`InvalidationStrategy::Hybrid`] hides them now and sweeps them in the background
    /// ([`Invalidation::sweep`]). A pattern or a subject is always swept eagerly and a tag always bumped lazily,
    /// whatever the strategy: [`Invalidation::strategy`] says what was applied. Copies held in process (L1) of
    /// this store are dropped at once; other processes' as the backend announces the change.
    ///
    /// ```
    /// use fernando_cache_store::{InvalidationStrategy, Store, Target, config::{CacheType, Environment, Settings}};
    /// use fernando_cache_store::keys::TenantId;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Store::from_settings(&Settings::embedded(Environment::Test)?)?;
    /// let tenant = TenantId::new("acme")?;
    /// // The tenant's OCR results: hidden at once, storage reclaimed in the background.
    /// store.invalidate(Target::entries(&tenant, &CacheType::OCR_RESULT), InvalidationStrategy::Hybrid).await?;
    /// // Everything about one document, in every cache type.
    /// store.invalidate(Target::subject(&tenant, None, "9f86d081"), InvalidationStrategy::Eager).await?;
    /// // Every entry written with a tag.
    /// store.invalidate(Target::tag(&tenant, "customer:42"), InvalidationStrategy::Lazy).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend cannot take the invalidation — never silently skipped; an
    /// invalid tenant or tag.
    pub async fn invalidate(
        &self,
        target: Target<'_>,
        strategy: InvalidationStrategy,
    ) -> Result<Invalidation, StoreError> {
        // Boxed: not a hot path, and the sweeps behind it nest deep enough (a tenant's lane, its shards, the
        // acl split of scan and delete) that a caller's own future — an `#[invalidates]` function's — would
        // otherwise overflow the compiler's layout depth.
        let done = Box::pin(self.invalidate_target(target, strategy)).await?;
        // A value another region wrote before this must not be applied after it (design 0026). A tag hides no
        // replicated value: those are applied untagged.
        let marked = async {
            match target {
                Target::Entries { scope, cache_type }
                | Target::Pattern {
                    scope, cache_type, ..
                }
                | Target::Subject {
                    scope, cache_type, ..
                } => self.mark_invalidated(&scope.to_scope(), cache_type).await,
                Target::Tag { .. } => Ok(()),
            }
        };
        // Other regions invalidate it too (design 0026): one that cannot be told is an error, so the caller
        // invalidates again rather than leave another region serving it. Side by side with the marks: one
        // round trip's wait, not two.
        futures_util::try_join!(
            Box::pin(marked),
            Box::pin(self.replicate_invalidation(&target, strategy))
        )?;
        Ok(done)
    }

    async fn invalidate_target(
        &self,
        target: Target<'_>,
        strategy: InvalidationStrategy,
    ) -> Result<Invalidation, StoreError> {
        match target {
            Target::Entries { scope, cache_type } => {
                let done = self.invalidate_entries(scope, cache_type, strategy).await;
                // The groups' dictionaries are hidden (or deleted) with their values: this process stops
                // compressing with them at once (others within the 30 s they trust what they read).
                self.forget_dictionaries(&scope.to_scope(), cache_type);
                done
            }
            Target::Pattern {
                scope,
                cache_type,
                glob,
            } => Ok(Invalidation::eager(
                self.delete_pattern(scope, cache_type, glob).await?,
            )),
            Target::Subject {
                scope,
                cache_type,
                subject,
            } => Ok(Invalidation::eager(
                self.invalidate_subject(scope, cache_type, subject).await?,
            )),
            Target::Tag { scope, tag } => {
                self.invalidate_tag(scope, tag).await?;
                Ok(Invalidation {
                    strategy: InvalidationStrategy::Lazy,
                    deleted: 0,
                    sweep: None,
                })
            }
        }
    }

    /// Invalidates a scope's entries, or one cache type's, with the given strategy.
    async fn invalidate_entries(
        &self,
        scope: ScopeRef<'_>,
        cache_type: Option<&CacheType>,
        strategy: InvalidationStrategy,
    ) -> Result<Invalidation, StoreError> {
        let scope = scope.to_scope();
        let type_label = cache_type.map_or(ALL_TYPES, CacheType::as_str);
        let span = debug_span!(
            "cache.invalidate",
            tenant = scope.label(),
            cache_type = type_label,
            strategy = strategy.as_str()
        );
        async {
            let patterns = self.inner.keys.scan_patterns(&scope, cache_type);
            let mut result = Invalidation {
                strategy,
                deleted: 0,
                sweep: None,
            };
            if strategy == InvalidationStrategy::Eager {
                result.deleted = self.delete_matching(&scope, type_label, &patterns).await?;
            } else {
                // Any cache type works for the scope-level keys. One per shard (one for most scopes).
                let per_shard = self
                    .inner
                    .keys
                    .generation_keys_per_shard(&scope, cache_type.unwrap_or(&CacheType::SESSION))?;
                let gen_keys: Vec<&str> = per_shard
                    .iter()
                    .map(|g| {
                        if cache_type.is_some() {
                            g.cache_type()
                        } else {
                            g.scope()
                        }
                    })
                    .collect();
                let lane = self.lane((&scope).into());
                self.bump_generations(&lane, &gen_keys, "invalidate")
                    .await?;
                if strategy == InvalidationStrategy::Hybrid {
                    let store = self.clone();
                    let type_label = type_label.to_owned();
                    let delay = self.inner.hybrid_delay;
                    result.sweep = Some(tokio::spawn(
                        async move {
                            tokio::time::sleep(delay).await;
                            store.delete_matching(&scope, &type_label, &patterns).await
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
    async fn delete_pattern(
        &self,
        scope: impl AsScope,
        cache_type: Option<&CacheType>,
        key_glob: &str,
    ) -> Result<u64, StoreError> {
        let scope = scope.as_scope().to_scope();
        let patterns = self.inner.keys.key_patterns(&scope, cache_type, key_glob);
        let type_label = cache_type.map_or(ALL_TYPES, CacheType::as_str);
        self.delete_matching(&scope, type_label, &patterns)
            .instrument(debug_span!(
                "cache.delete_pattern",
                tenant = scope.label(),
                cache_type = type_label
            ))
            .await
    }

    /// Deletes every entry about `subject` in a scope, in one cache type or in all of them ([`Target::Subject`]);
    /// returns how many keys were deleted.
    async fn invalidate_subject(
        &self,
        scope: impl AsScope,
        cache_type: Option<&CacheType>,
        subject: &str,
    ) -> Result<u64, StoreError> {
        let scope = scope.as_scope();
        // A subject names keys, and is refused as a key would be: the store's own entries are no caller's
        // subject (`fc.dictionary.current` would delete a group's dictionaries, and with them every value made
        // with them), and one longer than any key names none (yet would scan with a pattern that long).
        fernando_cache_keys::KeyBuilder::check_specific(subject)?;
        let mut deleted = 0;
        for glob in layout::subject_globs(subject) {
            deleted += self.delete_pattern(scope, cache_type, &glob).await?;
        }
        Ok(deleted)
    }

    /// Deletes the keys matching any of `patterns` in `scope` (one, or two for a tenant spread over shards),
    /// within the tenant's sweep bounds ([`sweeps`]): in turn, at the tenant's rate, and joining the same sweep
    /// when it is still waiting. The patterns of one target are one sweep: one turn, scanned one after the other.
    async fn delete_matching(
        &self,
        scope: &Scope,
        type_label: &str,
        patterns: &[String],
    ) -> Result<u64, StoreError> {
        let series = self.inner.metrics.series(scope.label(), type_label);
        // A sweep is known by its patterns (the first names its target; a second follows from it).
        let name = patterns.join("\n");
        let leader = loop {
            match self.inner.sweeps.enter(scope.label(), &name) {
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
        let mut outcome: Result<u64, StoreError> = Ok(0);
        for pattern in patterns {
            match self.sweep_now(scope, &series, pattern).await {
                Ok(n) => outcome = outcome.map(|before| before + n),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        leader.finish(
            turn,
            outcome.as_ref().map(|n| *n).map_err(ToString::to_string),
        );
        outcome
    }

    /// One sweep of `pattern` on the scope's backend, through its breaker. An `acl` tenant's keys are found by
    /// the shared user's `SCAN` (which the tenant's user may not run: it would show other tenants' key names)
    /// and deleted as the tenant's user (design 0023).
    /// Deletes every key matching `pattern` on `lane` (every primary of a cluster), releasing each from its
    /// ledger in `ledgers`. An `acl` tenant's keys are found by the shared user's `SCAN` — not filtered by key
    /// patterns, so the tenant's own user may not run it — and deleted as the tenant (design 0023).
    pub(super) async fn delete_on(
        &self,
        lane: &Lane,
        pattern: &str,
        ledgers: Option<&crate::ByteLedgers>,
    ) -> Result<u64, BackendError> {
        let (batch, step) = (self.inner.scan_batch, self.inner.timeout);
        match lane.role {
            Role::Acl => {
                self.shared_lane()
                    .backend
                    .delete_matching_as(&lane.backend, pattern, batch, step, ledgers)
                    .await
            }
            Role::Shared | Role::Dedicated => {
                lane.storage()
                    .delete_matching(pattern, batch, step, ledgers)
                    .await
            }
        }
    }

    async fn sweep_now(
        &self,
        scope: &Scope,
        series: &crate::metrics::SeriesRef<'_>,
        pattern: &str,
    ) -> Result<u64, StoreError> {
        let lane = self.lane(scope.into());
        let Some(permit) = lane.breaker.acquire() else {
            return Err(StoreError::Unavailable {
                op: "invalidate",
                source: BackendError::CircuitOpen,
            });
        };
        let ledger = self.byte_ledger(scope);
        let r = self.delete_on(&lane, pattern, ledger.as_ref()).await;
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
                    self.note_unavailable(&lane, &source);
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
    async fn invalidate_tag(&self, scope: impl AsScope, tag: &str) -> Result<(), StoreError> {
        let scope = scope.as_scope().to_scope();
        let span = debug_span!("cache.invalidate_tag", tenant = scope.label());
        async {
            // The tag key hangs off the scope's generation key — each shard's, for a tenant spread over shards
            // (a tagged entry reads its tags in its own slot); any cache type names it.
            let keys = self
                .inner
                .keys
                .generation_keys_per_shard(&scope, &CacheType::SESSION)?
                .iter()
                .map(|g| g.tag(tag))
                .collect::<Result<Vec<_>, _>>()?;
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let lane = self.lane((&scope).into());
            self.bump_generations(&lane, &keys, "invalidate_tag")
                .await?;
            if let Some(l1) = &self.inner.l1 {
                l1.changed_all();
            }
            tracing::info!(tag, "tag invalidated");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Bumps generation keys — one, or one per shard of a tenant spread over shards — all sent at once, so it
    /// takes about one round trip (the backend pipelines them; on a cluster, each goes to its shard's primary).
    /// Any failure fails the call: an invalidation is never silently partial, and repeating it is harmless.
    pub(super) async fn bump_generations(
        &self,
        lane: &Lane,
        keys: &[&str],
        op: &'static str,
    ) -> Result<(), StoreError> {
        let storage = lane.storage();
        let ttl = self.inner.generation_ttl;
        futures_util::future::try_join_all(
            keys.iter()
                .map(|key| self.call(lane, storage.bump_generation(key, ttl))),
        )
        .await
        .map_err(|source| StoreError::Unavailable { op, source })?;
        Ok(())
    }
}
