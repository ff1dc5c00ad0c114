//! The document API's queue in front of engine work: a bounded number of documents at once, each tenant within
//! half of the slots and half of the queue, a slot held until the work it admitted has ended. It stays with
//! `serve` rather than the listener (only the document API runs engines) or the processor (it answers in HTTP,
//! which the processor must not know).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use fernando_cache_config::ServerLimits;
use fernando_cache_keys::TenantId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error;

/// The queue in front of engine work: `concurrency` documents at once and `queue` more waiting, of which one
/// tenant may hold at most half (rounded up), so that no tenant fills the queue for all; beyond that a request is
/// turned away at once (503 + `Retry-After`) instead of holding memory. A slot stays taken until the work it
/// admitted has ended: the stages a document starts go on when its client hangs up, and keep the slot
/// ([`DocumentProcessor::process_holding`](fernando_cache_processor::DocumentProcessor::process_holding)).
pub(crate) struct EngineGate {
    slots: Arc<Semaphore>,
    /// Each tenant's share of the slots (half of them, rounded up): one tenant's long documents cannot take
    /// every engine while another's wait.
    tenant_slots: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
    share: usize,
    waiting: Mutex<Waiting>,
    queue: usize,
}

/// An engine slot, and the tenant's share it counts against; both given back when dropped.
pub(crate) struct EngineSlot {
    _slot: OwnedSemaphorePermit,
    _share: OwnedSemaphorePermit,
}

/// Who waits for a slot.
#[derive(Default)]
struct Waiting {
    total: usize,
    by_tenant: HashMap<TenantId, usize>,
}

/// Why the gate turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// The queue is full.
    Full,
    /// The tenant already holds its share of the queue.
    TenantShare,
}

impl EngineGate {
    pub(crate) fn new(limits: &ServerLimits) -> EngineGate {
        EngineGate {
            slots: Arc::new(Semaphore::new(limits.engine_concurrency)),
            tenant_slots: Mutex::default(),
            share: limits.engine_concurrency.div_ceil(2).max(1),
            waiting: Mutex::new(Waiting::default()),
            queue: limits.engine_queue,
        }
    }

    /// A slot for `tenant` within its share of the slots, after waiting in the queue if there is room in it and
    /// in the tenant's share of it.
    pub(crate) async fn enter(&self, tenant: &TenantId) -> Result<EngineSlot, Busy> {
        let share = {
            let mut shares = self
                .tenant_slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if shares.len() >= 10_000 {
                // Forget the shares nobody holds or waits for: invented tenants cannot grow this map.
                shares.retain(|_, s| Arc::strong_count(s) > 1);
            }
            shares
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.share)))
                .clone()
        };
        if let Ok(mine) = share.clone().try_acquire_owned()
            && let Ok(slot) = self.slots.clone().try_acquire_owned()
        {
            return Ok(EngineSlot {
                _slot: slot,
                _share: mine,
            });
        }
        // Given back however the wait ends: with a slot, or with the client gone.
        let _place = self.join_queue(tenant)?;
        let mine = share.acquire_owned().await.map_err(|_| Busy::Full)?;
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Busy::Full)?;
        Ok(EngineSlot {
            _slot: slot,
            _share: mine,
        })
    }

    fn join_queue(&self, tenant: &TenantId) -> Result<QueuePlace<'_>, Busy> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.total >= self.queue {
            return Err(Busy::Full);
        }
        let mine = waiting.by_tenant.get(tenant).copied().unwrap_or(0);
        if mine >= self.queue.div_ceil(2) {
            return Err(Busy::TenantShare);
        }
        waiting.total += 1;
        *waiting.by_tenant.entry(tenant.clone()).or_insert(0) += 1;
        Ok(QueuePlace {
            gate: self,
            tenant: tenant.clone(),
        })
    }

    /// The answer to a request the gate turned away.
    pub(crate) fn busy(why: Busy) -> Response {
        let message = match why {
            Busy::Full => "the document engines are busy; retry later",
            Busy::TenantShare => {
                "this tenant's documents already fill its share of the engine queue; retry later"
            }
        };
        let mut r = error(StatusCode::SERVICE_UNAVAILABLE, message);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    }
}

/// A tenant's place in the engine queue, given back when dropped.
struct QueuePlace<'a> {
    gate: &'a EngineGate,
    tenant: TenantId,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        let mut waiting = self
            .gate
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        waiting.total = waiting.total.saturating_sub(1);
        let left = match waiting.by_tenant.get_mut(&self.tenant) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => return,
        };
        if left == 0 {
            waiting.by_tenant.remove(&self.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A gate of `concurrency` slots and `queue` places, as the settings make it.
    fn gate(concurrency: usize, queue: usize) -> Arc<EngineGate> {
        let settings = fernando_cache_config::Settings::load(
            fernando_cache_config::LoadOptions::isolated(fernando_cache_config::Environment::Test)
                .set(
                    "server.limits.engine_concurrency",
                    concurrency.to_string().as_str(),
                )
                .set("server.limits.engine_queue", queue.to_string().as_str()),
        )
        .unwrap();
        Arc::new(EngineGate::new(&settings.server.limits))
    }

    #[tokio::test]
    async fn no_tenant_holds_more_than_half_the_engine_slots() {
        let gate = gate(4, 8);
        let (acme, globex): (TenantId, TenantId) =
            ("acme".parse().unwrap(), "globex".parse().unwrap());
        let held = [
            gate.enter(&acme).await.ok().unwrap(),
            gate.enter(&acme).await.ok().unwrap(),
        ];
        // A third of acme's waits, although two slots are free…
        let third = {
            let (gate, acme) = (gate.clone(), acme.clone());
            tokio::spawn(async move { gate.enter(&acme).await.is_ok() })
        };
        while gate.waiting.lock().unwrap().total < 1 {
            tokio::task::yield_now().await;
        }
        assert!(!third.is_finished());
        // …while globex gets one at once.
        let theirs = tokio::time::timeout(Duration::from_secs(5), gate.enter(&globex))
            .await
            .expect("globex waited behind acme")
            .ok()
            .unwrap();
        drop(held);
        assert!(third.await.unwrap());
        drop(theirs);
    }

    #[tokio::test]
    async fn no_tenant_fills_the_engine_queue_and_a_place_is_given_back_when_its_waiter_goes() {
        let gate = gate(1, 3);
        let (acme, globex): (TenantId, TenantId) =
            ("acme".parse().unwrap(), "globex".parse().unwrap());
        let slot = gate.enter(&acme).await.ok().unwrap();
        // Acme may wait in two of the three places; the third is globex's.
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (gate, acme) = (gate.clone(), acme.clone());
                tokio::spawn(async move { gate.enter(&acme).await.is_ok() })
            })
            .collect();
        while gate.waiting.lock().unwrap().total < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.enter(&acme).await.err(), Some(Busy::TenantShare));
        let other = {
            let (gate, globex) = (gate.clone(), globex.clone());
            tokio::spawn(async move { gate.enter(&globex).await.is_ok() })
        };
        while gate.waiting.lock().unwrap().total < 3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.enter(&globex).await.err(), Some(Busy::Full));
        // A waiter whose client is gone gives its place back.
        other.abort();
        let _ = other.await;
        assert_eq!(gate.waiting.lock().unwrap().total, 2);
        assert!(!gate.waiting.lock().unwrap().by_tenant.contains_key(&globex));
        drop(slot);
        for w in waiters {
            assert!(w.await.unwrap());
        }
        assert_eq!(gate.waiting.lock().unwrap().total, 0);
    }
}
