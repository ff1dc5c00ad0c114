//! Every backend call goes through here: the circuit breaker, then the command deadline (enforced by the
//! per-store watchdog, design 0002). Backends in process skip both.

use std::{future::Future, time::Instant};

use super::Store;
use crate::BackendError;

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
            Err(e) if e.is_unavailability() => permit.failure(),
            _ => permit.success(),
        }
        result
    }
}
