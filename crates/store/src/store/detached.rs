//! What needs a computation that can outlive its call, and fail-safe's write-back (design 0014): the detached
//! mode of `get_or_compute_with` (`Compute::detached`; the soft timeout: the caller gets the stale value, the
//! computation completes in the background), eager refresh, and the fail-safe copy written when a stale value
//! is served.

use std::{sync::Arc, time::Duration};

use fernando_cache_config::CacheType;
use fernando_cache_keys::{CacheKey, Scope};
use serde::{Serialize, de::DeserializeOwned};
use tokio::task::JoinHandle;

use super::{
    Store,
    compute::{ComputePolicy, Served, compute_error},
    write::{EntryTags, Stamp},
};
use crate::{ComputeError, StoreError, flight::Shared};

/// A detached computation's failure: its own error, or only that it outlived the soft timeout.
enum DetachedError<E> {
    Failed(Arc<E>),
    Soft,
}

impl<E> Clone for DetachedError<E> {
    fn clone(&self) -> Self {
        match self {
            DetachedError::Failed(e) => DetachedError::Failed(e.clone()),
            DetachedError::Soft => DetachedError::Soft,
        }
    }
}

impl Store {
    /// `get_or_compute_with` in the detached mode: `spawn` starts the computation as a task of its own (the
    /// mode proves the computation can be spawned), so it can go on after the call returns. That enables the
    /// cache type's `soft_timeout` — with a stale value at hand, a computation that outlives it leaves the
    /// caller with the stale value and completes in the background, updating the cache — and `refresh_ahead`:
    /// a hit on an entry past that fraction of its TTL is answered at once and refreshes the entry in the
    /// background, once per key at a time in this process. `store_if` decides every write, the background
    /// ones too.
    ///
    /// A panic of the computation is resumed in the caller.
    pub(super) async fn compute_detached<T, E, F>(
        &self,
        scope: Scope,
        cache_type: &CacheType,
        key: &str,
        store_if: fn(&T) -> bool,
        spawn: fn(F) -> JoinHandle<Result<T, E>>,
        compute: F,
    ) -> Result<Served<T>, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let soft = self.inner.tiers.get(cache_type).soft_timeout;
        let policy = ComputePolicy {
            tags: EntryTags::Given(&[]),
            ttl: None,
            should_cache: store_if,
            share_error: |e: &DetachedError<E>| Some(Arc::new(e.clone()) as Shared),
            unshare_error: |s: &Shared| s.downcast_ref::<DetachedError<E>>().cloned(),
            hard_timeout: true,
            is_soft: |e| matches!(e, DetachedError::Soft),
            refresh_ahead: true,
        };
        let mut slot = Some(compute);
        let outcome = {
            let slot = &mut slot;
            let (store, scope, cache_type, key) = (
                self.clone(),
                scope.clone(),
                cache_type.clone(),
                key.to_owned(),
            );
            self.compute_with(
                scope.clone(),
                &cache_type.clone(),
                &key.clone(),
                &policy,
                move |has_stale| {
                    let compute = slot.take().expect("the computation is taken once");
                    async move {
                        let mut running = spawn(compute);
                        let soft = soft.filter(|_| has_stale);
                        let joined = match soft {
                            None => (&mut running).await,
                            Some(limit) => match tokio::time::timeout(limit, &mut running).await {
                                Ok(joined) => joined,
                                Err(_) => {
                                    tokio::spawn(async move {
                                        if let Ok(Ok(value)) = running.await
                                            && store_if(&value)
                                        {
                                            let _ =
                                                store.set(&scope, &cache_type, &key, &value).await;
                                        }
                                    });
                                    return Err(DetachedError::Soft);
                                }
                            },
                        };
                        match joined {
                            Ok(result) => result.map_err(|e| DetachedError::Failed(Arc::new(e))),
                            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                            Err(_) => Err(DetachedError::Soft),
                        }
                    }
                },
            )
            .await
        };
        if let Ok((_, true)) = &outcome
            && let Some(compute) = slot.take()
        {
            self.refresh_ahead(scope, cache_type, key, store_if, spawn, compute);
        }
        compute_error(outcome.map(|(served, _)| served), |e| match e {
            DetachedError::Failed(e) => Some(e),
            DetachedError::Soft => None,
        })
    }

    /// Recomputes an entry in the background (eager refresh), unless this process is refreshing it already.
    fn refresh_ahead<T, E, F>(
        &self,
        scope: Scope,
        cache_type: &CacheType,
        key: &str,
        store_if: fn(&T) -> bool,
        spawn: fn(F) -> JoinHandle<Result<T, E>>,
        compute: F,
    ) where
        T: Serialize + Send + Sync + 'static,
        E: Send + 'static,
    {
        let Ok(entry) = self.inner.keys.key(&scope, cache_type, key) else {
            return;
        };
        let entry = entry.into_string();
        if !self
            .inner
            .refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(entry.clone())
        {
            return;
        }
        let (store, cache_type, key) = (self.clone(), cache_type.clone(), key.to_owned());
        let limit = self.inner.tiers.get(&cache_type).hard_timeout;
        // Started as a task of its own: past the hard timeout it is aborted, as a dropped future would stop.
        let mut running = spawn(compute);
        tokio::spawn(async move {
            let series = store
                .inner
                .metrics
                .series(scope.label(), cache_type.as_str());
            series.add(|c| &c.refreshes, 1);
            let computed = match limit {
                None => Some((&mut running).await),
                Some(limit) => match tokio::time::timeout(limit, &mut running).await {
                    Ok(joined) => Some(joined),
                    Err(_) => {
                        running.abort();
                        None
                    }
                },
            };
            match computed {
                Some(Ok(Ok(value))) => {
                    if store_if(&value) {
                        let _ = store.set(&scope, &cache_type, &key, &value).await;
                    }
                }
                // A panicking refresh is a failed one: the entry stays, and the key can be refreshed again.
                Some(Ok(Err(_)) | Err(_)) => tracing::info!(
                    key,
                    "eager refresh failed; the entry stays until it expires"
                ),
                None => tracing::info!(key, "eager refresh timed out"),
            }
            store
                .inner
                .refreshing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&entry);
        });
    }

    /// Fail-safe: a stale value is being served instead of a failed computation. Counted; with `copy`
    /// (the throttle period), the value is written back as a fail-safe copy, so the computation is not tried
    /// again — by any process — before the period ends.
    pub(super) async fn serve_stale<T: Serialize>(
        &self,
        scope: &Scope,
        cache_type: &CacheType,
        key: &CacheKey,
        value: &T,
        copy: Option<Duration>,
        tags: &[&str],
    ) {
        let series = self
            .inner
            .metrics
            .series(scope.label(), cache_type.as_str());
        series.add(|c| &c.stale_served, 1);
        tracing::info!(
            key = key.as_str(),
            "computation failed or timed out; serving the stale value"
        );
        let Some(throttle) = copy else { return };
        let encoded = match self
            .encode_value(scope, cache_type, key, value, Some(throttle))
            .await
        {
            Ok(e) => self.tagged(scope, key, e, tags).await,
            Err(e) => Err(StoreError::Encode(e)),
        };
        match encoded {
            Ok(encoded) => {
                let stamp = Stamp {
                    generations: None,
                    fence: None,
                    fail_safe: Some(throttle),
                    ..Stamp::default()
                };
                if let Err(e) = self
                    .write_key(scope, cache_type, key, encoded, None, stamp, &series)
                    .await
                {
                    tracing::debug!(error = %e, "fail-safe copy not written");
                }
            }
            Err(e) => tracing::debug!(error = %e, "fail-safe copy not encoded"),
        }
    }
}
