//! The compute engine's public face: [`Store::get_or_compute`], and [`Store::get_or_compute_with`] with its
//! options ([`Compute`]) — whether a computed value is stored, and whether the computation may outlive the call
//! ([`Detached`]: soft timeout and eager refresh, design 0014). The engine is `compute.rs`; the detached mode is
//! `detached.rs`.
//!
//! The mode is a type, not a flag: only a computation that owns what it uses (`Send + 'static`) can go on after
//! the call returns, and a flag could not ask that of some callers and not of others.

use std::{fmt, future::Future, marker::PhantomData, sync::Arc};

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, Scope};
use serde::{Serialize, de::DeserializeOwned};
use tokio::task::JoinHandle;

use super::{
    Store,
    compute::{ComputePolicy, Served, compute_error},
    write::EntryTags,
};
use crate::{ComputeError, flight::Shared};

/// The options of [`Store::get_or_compute_with`]. `Compute::default()` stores every computed value and runs
/// the computation within the call ([`Attached`]) — what [`Store::get_or_compute`] does.
///
/// ```
/// use fernando_cache_store::Compute;
///
/// // Store only complete results; let the computation outlive the call (soft timeout, eager refresh).
/// let options = Compute::default().store_if(|v: &Vec<u32>| !v.is_empty()).detached();
/// ```
pub struct Compute<T, M = Attached> {
    store_if: fn(&T) -> bool,
    mode: PhantomData<fn() -> M>,
}

impl<T> Default for Compute<T> {
    fn default() -> Self {
        Compute {
            store_if: |_| true,
            mode: PhantomData,
        }
    }
}

impl<T, M> Compute<T, M> {
    /// Stores a computed value only when `store_if` says so — for a result built on a stale part, say. The
    /// value is returned (and shared with concurrent waiters) either way. Default: every value is stored.
    #[must_use]
    pub fn store_if(self, store_if: fn(&T) -> bool) -> Self {
        Compute { store_if, ..self }
    }
}

impl<T> Compute<T, Attached> {
    /// Runs the computation as a task of its own, so that it can go on after the call returns. That enables
    /// the cache type's `types.<name>.soft_timeout` — with a stale value at hand, a computation that outlives
    /// it leaves the caller with the stale value and completes in the background, updating the cache — and
    /// `types.<name>.refresh_ahead`: a hit on an entry past that fraction of its TTL is answered at once and
    /// refreshes the entry in the background, once per key at a time in this process. The computation must
    /// own what it uses (`Send + 'static`).
    #[must_use]
    pub fn detached(self) -> Compute<T, Detached> {
        Compute {
            store_if: self.store_if,
            mode: PhantomData,
        }
    }
}

impl<T, M> Clone for Compute<T, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, M> Copy for Compute<T, M> {}

impl<T, M> fmt::Debug for Compute<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compute")
            .field("mode", &std::any::type_name::<M>())
            .finish_non_exhaustive()
    }
}

/// The computation runs within the call and may borrow from the caller (the default mode of [`Compute`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Attached;

/// The computation runs as a task of its own and may outlive the call ([`Compute::detached`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Detached;

/// How a detached computation `F` is started as a task of its own.
type Spawner<T, E, F> = fn(F) -> JoinHandle<Result<T, E>>;

mod sealed {
    /// Only the store's own modes.
    #[allow(unreachable_pub)]
    pub trait Sealed {}
    impl Sealed for super::Attached {}
    impl Sealed for super::Detached {}
}

/// A mode of [`Store::get_or_compute_with`] that can run a computation `F` producing `Result<T, E>`:
/// [`Attached`] runs any; [`Detached`] runs one that owns what it uses (`F` and its future `Send + 'static`).
/// Sealed: the store's two modes are the only ones.
#[diagnostic::on_unimplemented(
    message = "this computation cannot run in the mode `{Self}`",
    label = "a detached computation must own what it uses",
    note = "with `Compute::detached()`, the closure and its future must be `Send + 'static`: move clones into an `async move` block"
)]
pub trait ComputeMode<T, E, F>: sealed::Sealed {
    /// How the detached mode starts the computation as a task; `None` in the attached mode.
    #[doc(hidden)]
    fn spawner() -> Option<Spawner<T, E, F>>;
}

impl<T, E, F> ComputeMode<T, E, F> for Attached {
    fn spawner() -> Option<Spawner<T, E, F>> {
        None
    }
}

impl<T, E, F, Fut> ComputeMode<T, E, F> for Detached
where
    T: Send + 'static,
    E: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    fn spawner() -> Option<Spawner<T, E, F>> {
        Some(|compute: F| tokio::spawn(compute()))
    }
}

impl Store {
    /// Returns the cached value, or computes, stores and returns it.
    ///
    /// Concurrent misses on one key in this process run `compute` once (across processes too for a cache
    /// type with `types.<name>.single_flight = "distributed"`); the others wait for its outcome. An `Err` is handed
    /// to every waiter and not cached. With the backend unavailable, `compute` simply runs. A computed value
    /// that cannot be encoded is still returned (the failed write is logged and counted as an error).
    ///
    /// With fail-safe on for the cache type (`types.<name>.max_stale`), a computation that fails — or outlives
    /// `hard_timeout` — while an expired value is still kept returns that value instead (counted). To be told
    /// that a value is stale, to store only some values, or for `soft_timeout` and `refresh_ahead` (which need
    /// a computation that can go on after the call returns): [`Store::get_or_compute_with`].
    ///
    /// # Errors
    /// [`ComputeError::Compute`] with the computation's error; [`ComputeError::TimedOut`] past the type's
    /// `hard_timeout`; [`ComputeError::Store`] for an invalid tenant, key or cache type — always before
    /// `compute` runs.
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
        self.get_or_compute_with(scope, cache_type, key, Compute::default(), compute)
            .await
            .map(|served| served.value)
    }

    /// [`Store::get_or_compute`] as `options` say ([`Compute`]: which values are stored, and whether the
    /// computation may outlive the call), returning the value with whether it is stale — served by fail-safe
    /// because its computation failed or was slow, or a fail-safe copy within its throttle period.
    ///
    /// # Errors
    /// As [`Store::get_or_compute`].
    ///
    /// # Panics
    /// In the detached mode, a panic of the computation is resumed in the caller.
    pub async fn get_or_compute_with<T, E, F, Fut, M>(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        options: Compute<T, M>,
        compute: F,
    ) -> Result<Served<T>, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        M: ComputeMode<T, E, F>,
    {
        let scope = scope.as_scope().to_scope();
        match M::spawner() {
            None => {
                self.compute_attached(scope, cache_type, key, options.store_if, compute)
                    .await
            }
            // Boxed: the detached path's state would otherwise enlarge every attached call's future too.
            Some(spawn) => {
                Box::pin(self.compute_detached(
                    scope,
                    cache_type,
                    key,
                    options.store_if,
                    spawn,
                    compute,
                ))
                .await
            }
        }
    }

    /// The attached mode: the engine with the computation's error shared with waiters as an `Arc`.
    async fn compute_attached<T, E, F, Fut>(
        &self,
        scope: Scope,
        cache_type: &CacheType,
        key: &str,
        store_if: fn(&T) -> bool,
        compute: F,
    ) -> Result<Served<T>, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = ComputePolicy {
            tags: EntryTags::Given(&[]),
            ttl: None,
            should_cache: store_if,
            share_error: |e: &Arc<E>| Some(Arc::new(e.clone()) as Shared),
            unshare_error: |s: &Shared| s.downcast_ref::<Arc<E>>().cloned(),
            hard_timeout: true,
            is_soft: |_| false,
            refresh_ahead: false,
        };
        let compute = |_| async { compute().await.map_err(Arc::new) };
        let outcome = self
            .compute_with(scope, cache_type, key, &policy, compute)
            .await;
        compute_error(outcome.map(|(served, _)| served), Some)
    }
}
