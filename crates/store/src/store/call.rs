//! Every backend call goes through here: the circuit breaker, then the command deadline (enforced by the
//! per-store watchdog, design 0002). Backends in process skip both. A call of the backend's
//! [`Coordination`] goes through here too, and on a backend without coordination answers the error its
//! callers treat as an unavailable backend.

use std::{future::Future, time::Instant};

use super::Store;
use crate::{BackendError, Coordination};

impl Store {
    /// One backend call through the breaker and the command timeout.
    pub(super) async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.call_from(Instant::now(), fut).await
    }

    /// [`Store::call`] for a call that started at `start` (a clock read the caller already made).
    pub(super) async fn call_from<T>(
        &self,
        start: Instant,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let Some(deadlines) = &self.inner.deadlines else {
            return fut.await;
        };
        let Some(permit) = self.inner.breaker.acquire() else {
            return Err(BackendError::CircuitOpen);
        };
        let result = deadlines
            .run(start + self.inner.timeout, fut)
            .await
            .unwrap_or(Err(BackendError::Timeout(self.inner.timeout)));
        match &result {
            Err(e) if e.is_unavailability() => {
                permit.failure();
                self.note_unavailable(e);
            }
            _ => permit.success(),
        }
        result
    }

    /// Remembers why the backend could not be reached, for [`super::Admin::last_unavailable`].
    fn note_unavailable(&self, e: &BackendError) {
        let mut last = self
            .inner
            .last_unavailable
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *last = Some(e.to_string());
    }

    /// Why the backend last could not be reached, if it ever was not.
    pub(super) fn last_unavailable(&self) -> Option<String> {
        self.inner
            .last_unavailable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One call of the backend's [`Coordination`] through [`Store::call`]. A backend without coordination
    /// answers that it keeps no `what` (`"quota ledgers"`…), which each caller treats as it treats an
    /// unavailable backend.
    pub(super) async fn coordinate<'s, T, Fut>(
        &'s self,
        what: &str,
        call: impl FnOnce(&'s dyn Coordination) -> Fut,
    ) -> Result<T, BackendError>
    where
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let backend = &self.inner.backend;
        self.call(async move { call(backend.coordination_for(what)?).await })
            .await
    }
}
