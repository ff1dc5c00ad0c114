//! `get_or_compute` and the engine it shares with the `#[cached]` runtime: read, else single-flight compute,
//! store when the policy says so, and share the outcome with every waiter.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use fernando_cache_config::{CacheType, FlightMode, FlightPolicy, TtlTable};
use fernando_cache_keys::{AsScope, CacheKey, Scope};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{Instrument, debug_span};

use super::{
    Store,
    lease::{self, Attempt},
    read::Gens,
    write::Stamp,
};
use crate::{
    ComputeError, StoreError,
    codec::{self},
    flight::{LeaderGuard, Role, Shared, follow},
};

/// How [`Store::compute_with`] treats computed values and errors.
pub(crate) struct ComputePolicy<T, E> {
    /// The entry's TTL; `None` uses the cache type's.
    pub(crate) ttl: Option<Duration>,
    /// Whether a computed value is written (it is shared with concurrent waiters either way).
    pub(crate) should_cache: fn(&T) -> bool,
    /// A copy of an error for concurrent waiters, when the error type allows one.
    pub(crate) share_error: fn(&E) -> Option<Shared>,
    /// A waiter's own error back from the shared copy.
    pub(crate) unshare_error: fn(&Shared) -> Option<E>,
}

/// Why [`Store::compute_with`] returned no value.
pub(crate) enum Failure<E> {
    /// The computation's own error (the leader's, or a shared copy).
    Compute(E),
    /// The call was refused before anything was computed.
    Store(StoreError),
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
    scope: &'a Scope,
    cache_type: &'a CacheType,
    key: &'a CacheKey,
    generations: Option<[u64; 2]>,
}

impl Store {
    /// Returns the cached value, or computes, stores and returns it.
    ///
    /// Concurrent misses on one key in this process run `compute` once; the others wait for its outcome. An
    /// `Err` is handed to every waiter and not cached. With the backend unavailable, `compute` simply runs. A
    /// computed value that cannot be encoded is still returned (the failed write is logged and counted as an
    /// error).
    ///
    /// # Errors
    /// [`ComputeError::Compute`] with the computation's error; [`ComputeError::Store`] for an invalid tenant,
    /// key or cache type — always before `compute` runs.
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        compute: F,
    ) -> Result<T, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = ComputePolicy {
            ttl: None,
            should_cache: |_: &T| true,
            share_error: |e: &Arc<E>| Some(Arc::new(e.clone()) as Shared),
            unshare_error: |s: &Shared| s.downcast_ref::<Arc<E>>().cloned(),
        };
        let compute = || async { compute().await.map_err(Arc::new) };
        match self
            .compute_with(
                scope.as_scope().to_scope(),
                cache_type,
                key,
                &policy,
                compute,
            )
            .await
        {
            Ok(v) => Ok(v),
            Err(Failure::Compute(e)) => Err(ComputeError::Compute(e)),
            Err(Failure::Store(e)) => Err(ComputeError::Store(e)),
        }
    }

    /// The engine of [`Store::get_or_compute`] and of the `#[cached]` runtime: read, else single-flight
    /// compute, store when `policy.should_cache` says so, and share the outcome with the waiters.
    ///
    /// A [`Failure::Store`] is only ever returned before `compute` is called, so a caller can still run its
    /// computation itself.
    pub(crate) async fn compute_with<T, E, F, Fut>(
        &self,
        scope: Scope,
        cache_type: &CacheType,
        key: &str,
        policy: &ComputePolicy<T, E>,
        compute: F,
    ) -> Result<T, Failure<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let span = debug_span!(
            "cache.get_or_compute",
            tenant = scope.label(),
            cache_type = cache_type.as_str()
        );
        self.compute_inner(scope, cache_type, key, policy, compute)
            .instrument(span)
            .await
    }

    async fn compute_inner<T, E, F, Fut>(
        &self,
        scope: Scope,
        cache_type: &CacheType,
        key: &str,
        policy: &ComputePolicy<T, E>,
        compute: F,
    ) -> Result<T, Failure<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match policy.ttl {
            Some(t) if !TtlTable::in_bounds(t) => {
                return Err(Failure::Store(StoreError::InvalidTtl(t)));
            }
            Some(_) => {}
            None if self.inner.ttl.get(cache_type).is_none() => {
                return Err(Failure::Store(StoreError::UnknownCacheType(
                    cache_type.clone(),
                )));
            }
            None => {}
        }
        let (k, g) = self
            .key_pair((&scope).into(), cache_type, key)
            .map_err(Failure::Store)?;
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        let first = self
            .lookup(
                &k,
                &g,
                &series,
                codec::decode_typed::<T>,
                false,
                self.inner.l1.as_ref().and_then(|l1| l1.life_of(cache_type)),
            )
            .await;
        if let Some(v) = first.value {
            return Ok(v);
        }
        // The miss path is boxed so a hit's future stays small: hits are the hot path.
        let miss = self.after_miss(
            &scope,
            cache_type,
            (&k, &g),
            first.generations,
            policy,
            compute,
        );
        Box::pin(miss).await
    }

    /// Single-flight computation after a first read missed.
    async fn after_miss<T, E, F, Fut>(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        (k, g): (&CacheKey, &Gens<'_>),
        first_generations: Option<[u64; 2]>,
        policy: &ComputePolicy<T, E>,
        compute: F,
    ) -> Result<T, Failure<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        let mut compute = Some(compute);
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
                            scope,
                            cache_type,
                            key: k,
                            generations: first_generations,
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
                            scope,
                            cache_type,
                            key: k,
                            generations: first_generations,
                        };
                        let lead = self.lead_across_processes(ctx, g, flight, policy, f, &guard);
                        return Box::pin(lead).await;
                    }
                    // A flight that finished between our read and now may have filled the cache.
                    // This read also tells a key of another Redis type from an absent one, so such an entry
                    // is counted and removed before the computed value replaces it.
                    let again = self
                        .lookup(k, g, &series, codec::decode_typed::<T>, true, None)
                        .await;
                    if let Some(v) = again.value {
                        guard.publish(Ok(Arc::new(v.clone())));
                        return Ok(v);
                    }
                    let f = compute.take().expect("compute is only taken once");
                    let ctx = StoreCtx {
                        scope,
                        cache_type,
                        key: k,
                        generations: again.generations.or(first_generations),
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
        g: &Gens<'_>,
        flight: FlightPolicy,
        policy: &ComputePolicy<T, E>,
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
                .lookup(ctx.key, g, &series, codec::decode_typed::<T>, true, None)
                .await;
            if let Some(v) = again.value {
                guard.publish(Ok(Arc::new(v.clone())));
                return Ok(v);
            }
            ctx.generations = again.generations.or(ctx.generations);
            match self.try_lease(&lease_key, flight.lease_ttl).await {
                (Attempt::Held(held), _) => {
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
        policy: &ComputePolicy<T, E>,
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
        match compute().await {
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
                    match codec::encode_typed(&value, [0, 0], &self.inner.policy) {
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
                            tracing::warn!(error = %e, "computed value cannot be encoded; not cached");
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
