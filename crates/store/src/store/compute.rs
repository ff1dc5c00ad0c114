//! The compute engine of `get_or_compute` / `get_or_compute_with` (`get_or_compute.rs`, `detached.rs`) and of
//! the `#[cached]` runtime: read, else single-flight compute, store when the policy says so, and share the
//! outcome with every waiter; fall back on a stale value when the computation fails or outlives the hard timeout
//! (design 0014).

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use fernando_cache_config::{CacheType, FlightMode, FlightPolicy, TtlTable};
use fernando_cache_keys::{CacheKey, Scope};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{Instrument, debug_span};

use super::{
    Store,
    lease::{self, Attempt},
    read::{Gens, key_buffer},
    route::Lane,
    write::{EntryTags, Stamp},
};
use crate::{
    ComputeError, StoreError,
    codec::{self},
    flight::{LeaderGuard, Role, Shared, follow},
};

/// How [`Store::compute_with`] treats computed values and errors.
pub(crate) struct ComputePolicy<'t, T, E> {
    /// Tags a computed value (or a fail-safe copy) is written with (design 0014).
    pub(crate) tags: EntryTags<'t>,
    /// The entry's TTL; `None` uses the cache type's.
    pub(crate) ttl: Option<Duration>,
    /// Whether a computed value is written (it is shared with concurrent waiters either way).
    pub(crate) should_cache: fn(&T) -> bool,
    /// A copy of an error for concurrent waiters, when the error type allows one.
    pub(crate) share_error: fn(&E) -> Option<Shared>,
    /// A waiter's own error back from the shared copy.
    pub(crate) unshare_error: fn(&Shared) -> Option<E>,
    /// Whether to bound the computation by the cache type's `hard_timeout` (the caller can report a timeout).
    pub(crate) hard_timeout: bool,
    /// Whether an error only says the computation outlived its soft timeout (it goes on in the background, so
    /// no fail-safe copy is written over what it will write).
    pub(crate) is_soft: fn(&E) -> bool,
    /// Whether the caller refreshes ahead (the detached mode): only then does a hit look up the type's
    /// `refresh_ahead` point and read the clock.
    pub(crate) refresh_ahead: bool,
}

/// A value, and whether it is stale: served by fail-safe because its computation failed or was slow, or a
/// fail-safe copy within its throttle period (design 0014).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Served<T> {
    /// The value.
    pub value: T,
    /// Whether the value is past its TTL.
    pub stale: bool,
}

/// The public error of an engine outcome; `own` recovers the caller's error (`None`: a soft timeout, which
/// can only be seen without a stale value — never, since a soft timeout needs one — and is then a timeout).
pub(super) fn compute_error<T, X, E>(
    outcome: Result<Served<T>, Failure<X>>,
    own: impl FnOnce(X) -> Option<Arc<E>>,
) -> Result<Served<T>, ComputeError<E>> {
    match outcome {
        Ok(served) => Ok(served),
        Err(Failure::Compute(e)) => match own(e) {
            Some(e) => Err(ComputeError::Compute(e)),
            None => Err(ComputeError::TimedOut(Duration::ZERO)),
        },
        Err(Failure::Store(e)) => Err(ComputeError::Store(e)),
        Err(Failure::TimedOut(after)) => Err(ComputeError::TimedOut(after)),
    }
}

/// What the engine shares with followers when the leader's computation ran out of time.
#[derive(Debug, Clone, Copy)]
pub(super) struct TimedOut(pub(super) Duration);

/// Why [`Store::compute_with`] returned no value.
pub(crate) enum Failure<E> {
    /// The computation's own error (the leader's, or a shared copy).
    Compute(E),
    /// The call was refused before anything was computed.
    Store(StoreError),
    /// The computation outlived the cache type's hard timeout.
    TimedOut(Duration),
}

/// Whether and how a computed value is written.
#[derive(Clone, Copy)]
enum Write<'a> {
    /// A plain write.
    Plain,
    /// Only while this `(lease key, token)` holds the lease.
    Fenced(&'a str, &'a str),
    /// Not at all: computed without the lease another process holds, so not ours to write.
    Skip,
}

/// Where a computed value goes.
struct StoreCtx<'a> {
    /// The backend of the scope (design 0023).
    lane: &'a Lane,
    scope: &'a Scope,
    cache_type: &'a CacheType,
    key: &'a CacheKey,
    generations: Option<[u64; 2]>,
    /// Bound on the computation, if any.
    hard_timeout: Option<Duration>,
}

impl Store {
    /// The engine of [`Store::get_or_compute_with`] and of the `#[cached]` runtime: read, else single-flight
    /// compute, store when `policy.should_cache` says so, and share the outcome with the waiters.
    ///
    /// A [`Failure::Store`] is only ever returned before `compute` is called, so a caller can still run its
    /// computation itself. `compute` is told whether a stale value is at hand to fall back on. The `bool`
    /// returned with a fresh hit says that the entry is past its type's `refresh_ahead` point (asked only with
    /// `policy.refresh_ahead`).
    pub(crate) async fn compute_with<T, E, F, Fut>(
        &self,
        scope: Scope,
        cache_type: &CacheType,
        key: &str,
        policy: &ComputePolicy<'_, T, E>,
        compute: F,
    ) -> Result<(Served<T>, bool), Failure<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce(bool) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let span = debug_span!(
            "cache.get_or_compute",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        // As in `get`: without a subscriber for the span, no `Instrumented` wrapper (it would move the whole
        // engine future once more per call, hits included).
        if span.is_disabled() {
            self.compute_inner(scope, cache_type, key, policy, compute)
                .await
        } else {
            self.compute_inner(scope, cache_type, key, policy, compute)
                .instrument(span)
                .await
        }
    }

    async fn compute_inner<T, E, F, Fut>(
        &self,
        scope: Scope,
        cache_type: &CacheType,
        key: &str,
        policy: &ComputePolicy<'_, T, E>,
        compute: F,
    ) -> Result<(Served<T>, bool), Failure<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce(bool) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(t) = policy.ttl.filter(|t| !TtlTable::in_bounds(*t)) {
            return Err(Failure::Store(StoreError::InvalidTtl(t)));
        }
        let lane = self.lane((&scope).into());
        let (k, g) = self
            .key_pair(&lane, (&scope).into(), cache_type, key)
            .map_err(Failure::Store)?;
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        let first = self
            .lookup(
                &lane,
                &k,
                &g,
                &series,
                codec::typed_decoder::<T>(),
                false,
                self.inner.l1.as_ref().and_then(|l1| l1.life_of(cache_type)),
            )
            .await;
        if let Some(value) = first.value {
            key_buffer::give_back(k);
            let stale = first.header.is_some_and(|h| h.fail_safe);
            // The type's tier policy and the clock only for a caller that refreshes ahead.
            let due = policy.refresh_ahead
                && !stale
                && self
                    .inner
                    .tiers
                    .get(cache_type)
                    .refresh_ahead
                    .zip(first.header)
                    .is_some_and(|(f, h)| h.is_past(f, codec::now_ms()));
            return Ok((Served { value, stale }, due));
        }
        // A type with no TTL can hold no entry, so a hit never needs this lookup; a miss must not compute for
        // a value it cannot store.
        if policy.ttl.is_none() && self.inner.ttl.get(cache_type).is_none() {
            key_buffer::give_back(k);
            return Err(Failure::Store(StoreError::UnknownCacheType(
                cache_type.clone(),
            )));
        }
        let tier = self.inner.tiers.get(cache_type);
        let stale = first.stale;
        let ctx = StoreCtx {
            lane: &lane,
            scope: &scope,
            cache_type,
            key: &k,
            generations: first.generations,
            hard_timeout: tier.hard_timeout.filter(|_| policy.hard_timeout),
        };
        // The miss path is boxed so a hit's future stays small: hits are the hot path.
        let has_stale = stale.is_some();
        let mut pending = Some(move || compute(has_stale));
        let missed = Box::pin(self.after_miss(ctx, &g, policy, &mut pending)).await;
        let outcome = match (missed, stale) {
            (Ok(value), _) => Ok((
                Served {
                    value,
                    stale: false,
                },
                false,
            )),
            (Err(Failure::Compute(e)), Some(value)) => {
                let copy = (!(policy.is_soft)(&e)).then_some(tier.fail_safe_throttle);
                let tags = policy.tags.for_copy(&mut pending);
                Box::pin(self.serve_stale(&scope, cache_type, &k, &value, copy, &tags)).await;
                Ok((Served { value, stale: true }, false))
            }
            (Err(Failure::TimedOut(_)), Some(value)) => {
                let copy = Some(tier.fail_safe_throttle);
                let tags = policy.tags.for_copy(&mut pending);
                Box::pin(self.serve_stale(&scope, cache_type, &k, &value, copy, &tags)).await;
                Ok((Served { value, stale: true }, false))
            }
            (Err(e), _) => Err(e),
        };
        key_buffer::give_back(k);
        outcome
    }

    /// Single-flight computation after a first read missed. `compute` is taken only if this call computes.
    async fn after_miss<T, E, F, Fut>(
        &self,
        ctx: StoreCtx<'_>,
        g: &Gens,
        policy: &ComputePolicy<'_, T, E>,
        compute: &mut Option<F>,
    ) -> Result<T, Failure<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let StoreCtx {
            lane,
            scope,
            cache_type,
            key: k,
            generations: first_generations,
            hard_timeout,
        } = ctx;
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        loop {
            match self.inner.flights.join(k.as_str()) {
                Role::Follower(rx) => {
                    if let Some(outcome) = follow(rx).await {
                        match outcome {
                            Ok(v) => {
                                if let Some(v) = v.downcast_ref::<T>() {
                                    return Ok(v.clone());
                                }
                            }
                            Err(Some(e)) => {
                                if let Some(&TimedOut(after)) = e.downcast_ref::<TimedOut>() {
                                    return Err(Failure::TimedOut(after));
                                }
                                if let Some(e) = (policy.unshare_error)(&e) {
                                    return Err(Failure::Compute(e));
                                }
                            }
                            // The leader's error cannot be shared: each waiter computes for itself.
                            Err(None) => {}
                        }
                        // Same key, another type, or an unshared error: compute for ourselves, outside the
                        // flight.
                        let f = compute.take().expect("compute is only taken once");
                        let ctx = StoreCtx {
                            lane,
                            scope,
                            cache_type,
                            key: k,
                            generations: first_generations,
                            hard_timeout,
                        };
                        return self
                            .compute_and_store(ctx, policy, f, None, Write::Plain)
                            .await;
                    }
                    // The leader vanished: go round and maybe lead.
                }
                Role::Leader(guard) => {
                    let flight = self.inner.single_flight.get(cache_type);
                    if flight.mode == FlightMode::Distributed {
                        let f = compute.take().expect("compute is only taken once");
                        let ctx = StoreCtx {
                            lane,
                            scope,
                            cache_type,
                            key: k,
                            generations: first_generations,
                            hard_timeout,
                        };
                        let lead = self.lead_across_processes(ctx, g, flight, policy, f, &guard);
                        return Box::pin(lead).await;
                    }
                    // A flight that finished between our read and now may have filled the cache.
                    // This read also tells a key of another Redis type from an absent one, so such an entry
                    // is counted and removed before the computed value replaces it.
                    let again = self
                        .lookup(lane, k, g, &series, codec::typed_decoder::<T>(), true, None)
                        .await;
                    if let Some(v) = again.value {
                        guard.publish(Ok(Arc::new(v.clone())));
                        return Ok(v);
                    }
                    let f = compute.take().expect("compute is only taken once");
                    let ctx = StoreCtx {
                        lane,
                        scope,
                        cache_type,
                        key: k,
                        generations: again.generations.or(first_generations),
                        hard_timeout,
                    };
                    return self
                        .compute_and_store(ctx, policy, f, Some(&guard), Write::Plain)
                        .await;
                }
            }
        }
    }

    /// The process leader of a distributed cache type: compute under the key's lease, or wait for the process
    /// that holds it and take its value — or the lease, once it lapses (design 0011).
    async fn lead_across_processes<T, E, F, Fut>(
        &self,
        mut ctx: StoreCtx<'_>,
        g: &Gens,
        flight: FlightPolicy,
        policy: &ComputePolicy<'_, T, E>,
        compute: F,
        guard: &LeaderGuard<'_>,
    ) -> Result<T, Failure<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let series = self
            .inner
            .metrics
            .series(ctx.scope.label(), ctx.cache_type.as_str());
        let lease_key = self.inner.keys.lease_key(ctx.key);
        let deadline = Instant::now() + flight.max_wait;
        loop {
            // The value may be there already (another process wrote it); this read also tells a key of another
            // Redis type from an absent one.
            let again = self
                .lookup(
                    ctx.lane,
                    ctx.key,
                    g,
                    &series,
                    codec::typed_decoder::<T>(),
                    true,
                    None,
                )
                .await;
            if let Some(v) = again.value {
                guard.publish(Ok(Arc::new(v.clone())));
                return Ok(v);
            }
            ctx.generations = again.generations.or(ctx.generations);
            match self
                .try_lease(ctx.lane, ctx.scope, &lease_key, flight.lease_ttl)
                .await
            {
                (Attempt::Held(held), _) => {
                    // Looked at again under the lease: a process that wrote its value and released the lease
                    // between the read above and this lease has left the value, which is taken, not computed
                    // a second time.
                    let under_lease = self
                        .lookup(
                            ctx.lane,
                            ctx.key,
                            g,
                            &series,
                            codec::typed_decoder::<T>(),
                            true,
                            None,
                        )
                        .await;
                    if let Some(v) = under_lease.value {
                        self.release(held).await;
                        guard.publish(Ok(Arc::new(v.clone())));
                        return Ok(v);
                    }
                    ctx.generations = under_lease.generations.or(ctx.generations);
                    let fence = Write::Fenced(&held.key, &held.token);
                    let outcome = self
                        .compute_and_store(ctx, policy, compute, Some(guard), fence)
                        .await;
                    self.release(held).await;
                    return outcome;
                }
                (Attempt::Unavailable, _) => {
                    return self
                        .compute_and_store(ctx, policy, compute, Some(guard), Write::Plain)
                        .await;
                }
                (Attempt::Busy, _) if Instant::now() >= deadline => {
                    tracing::debug!(
                        "waited max_wait for another process's value; computing unstored"
                    );
                    return self
                        .compute_and_store(ctx, policy, compute, Some(guard), Write::Skip)
                        .await;
                }
                (Attempt::Busy, wake) => {
                    lease::wait(wake, lease::slice(flight.lease_ttl, deadline)).await;
                }
            }
        }
    }

    async fn compute_and_store<T, E, F, Fut>(
        &self,
        ctx: StoreCtx<'_>,
        policy: &ComputePolicy<'_, T, E>,
        compute: F,
        guard: Option<&LeaderGuard<'_>>,
        write: Write<'_>,
    ) -> Result<T, Failure<E>>
    where
        T: Serialize + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let series = self
            .inner
            .metrics
            .series(ctx.scope.label(), ctx.cache_type.as_str());
        let computed = match ctx.hard_timeout {
            None => compute().await,
            Some(limit) => match tokio::time::timeout(limit, compute()).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    if let Some(g) = guard {
                        g.publish(Err(Some(Arc::new(TimedOut(limit)) as Shared)));
                    }
                    return Err(Failure::TimedOut(limit));
                }
            },
        };
        match computed {
            Ok(value) => {
                if let Some(g) = guard {
                    g.publish(Ok(Arc::new(value.clone()) as Shared));
                }
                let fence = match write {
                    Write::Plain => Some(None),
                    Write::Fenced(key, token) => Some(Some((key, token))),
                    Write::Skip => None,
                };
                if let Some(fence) = fence
                    && (policy.should_cache)(&value)
                {
                    let encoded = self
                        .encode_value(ctx.scope, ctx.cache_type, ctx.key, &value, policy.ttl)
                        .await;
                    let tags = policy.tags.names();
                    let encoded = match encoded {
                        Ok(e) => self.tagged(ctx.scope, ctx.key, e, &tags).await,
                        Err(e) => Err(StoreError::Encode(e)),
                    };
                    match encoded {
                        Ok(encoded) => {
                            // A dropped write is already counted as degraded; the caller gets its value.
                            let written = self
                                .write_key(
                                    ctx.scope,
                                    ctx.cache_type,
                                    ctx.key,
                                    encoded,
                                    policy.ttl,
                                    Stamp {
                                        generations: ctx.generations,
                                        fence,
                                        ..Stamp::default()
                                    },
                                    &series,
                                )
                                .await;
                            if let Err(e) = written {
                                tracing::warn!(error = %e, "computed value not cached");
                            }
                        }
                        Err(e) => {
                            series.add(|c| &c.errors, 1);
                            tracing::warn!(error = %e, "computed value not cached");
                        }
                    }
                }
                Ok(value)
            }
            Err(e) => {
                if let Some(g) = guard {
                    g.publish(Err((policy.share_error)(&e)));
                }
                Err(Failure::Compute(e))
            }
        }
    }
}
