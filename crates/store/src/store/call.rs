//! Every backend call goes through here: the circuit breaker of its lane, then the command deadline (enforced by
//! the per-store watchdog, design 0002). Each lane — the shared backend, a tenant's own (design 0023) — has its
//! own breaker, so one tenant's dead deployment never opens the shared one's. Backends in process skip both. A
//! call of the backend's [`Coordination`] goes through here too, and on a backend without coordination answers
//! the error its callers treat as an unavailable backend.

use std::{future::Future, time::Instant};

use super::{Store, route::Lane};
use crate::{BackendError, Coordination};

impl Store {
    /// One call to `lane`'s backend through its breaker and the command timeout.
    pub(super) async fn call<T>(
        &self,
        lane: &Lane,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.call_from(lane, Instant::now(), fut).await
    }

    /// [`Store::call`] for a call that started at `start` (a clock read the caller already made).
    pub(super) async fn call_from<T>(
        &self,
        lane: &Lane,
        start: Instant,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let Some(deadlines) = &lane.deadlines else {
            return fut.await;
        };
        let Some(permit) = lane.breaker.acquire() else {
            return Err(BackendError::CircuitOpen);
        };
        let result = deadlines
            .run(start + self.inner.timeout, fut)
            .await
            .unwrap_or(Err(BackendError::Timeout(self.inner.timeout)));
        match &result {
            Err(e) if e.is_unavailability() => {
                permit.failure();
                self.note_unavailable(lane, e);
            }
            _ => permit.success(),
        }
        result
    }

    /// Remembers why a backend could not be reached, for [`super::Admin::last_unavailable`]: a tenant's own
    /// backend says whose it is.
    pub(super) fn note_unavailable(&self, lane: &Lane, e: &BackendError) {
        if matches!(e, BackendError::Credentials(_)) {
            lane.refuse();
        }
        let why = match lane.role {
            super::route::Role::Shared => e.to_string(),
            super::route::Role::Acl => format!("a tenant's acl connections: {e}"),
            super::route::Role::Dedicated => format!("a tenant's dedicated deployment: {e}"),
        };
        let mut last = self
            .inner
            .last_unavailable
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *last = Some(why);
    }

    /// Why a backend last could not be reached, if one ever was not.
    pub(super) fn last_unavailable(&self) -> Option<String> {
        self.inner
            .last_unavailable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One call of `lane`'s [`Coordination`] through [`Store::call`]. A backend without coordination answers
    /// that it keeps no `what` (`"quota ledgers"`…), which each caller treats as it treats an unavailable
    /// backend.
    pub(super) async fn coordinate<'l, T, Fut>(
        &self,
        lane: &'l Lane,
        what: &str,
        call: impl FnOnce(&'l dyn Coordination) -> Fut,
    ) -> Result<T, BackendError>
    where
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let backend = &lane.backend;
        self.call(
            lane,
            async move { call(backend.coordination_for(what)?).await },
        )
        .await
    }
}
