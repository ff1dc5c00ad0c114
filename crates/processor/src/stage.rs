//! One cached stage of a document: read, else compute once across concurrent callers, with what computing it
//! cost stored beside its output.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use fernando_cache_config::CacheType;
use fernando_cache_keys::TenantId;
use fernando_cache_store::{Cause, Compute, ComputeError, Cost};
use serde::{Deserialize, Serialize};

use crate::{EngineError, ProcessError, StageOutcome, processor::Shared};

/// A stage's output and what computing it cost (what a later hit saves): stored with the output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Costed<T> {
    pub(crate) value: T,
    pub(crate) cost: Cost,
}

/// What each stage of one document did.
#[derive(Default)]
pub(crate) struct Ran {
    computed: AtomicBool,
    stale: AtomicBool,
}

impl Ran {
    pub(crate) fn outcome(&self) -> StageOutcome {
        if self.stale.load(Ordering::Relaxed) {
            StageOutcome::Stale
        } else if self.computed.load(Ordering::Relaxed) {
            StageOutcome::Miss
        } else {
            StageOutcome::Hit
        }
    }
}

/// One cached stage: read, else compute (once across concurrent callers), timing the work and noting that it
/// ran. The work answers its value and what it cost beyond engine time (tokens, money); the whole cost is
/// stored with the value and counted as spent when the work completes — in the background too, past the
/// type's soft timeout (fail-safe, design 0014) — and as saved by each fresh hit on it.
pub(crate) async fn costed_stage<T, F, Fut>(
    shared: &Shared,
    tenant: &TenantId,
    cache_type: &CacheType,
    key: &str,
    ran: &Ran,
    work: F,
) -> Result<Costed<T>, ProcessError>
where
    T: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(T, Cost), EngineError>> + Send + 'static,
{
    let computed = Arc::new(AtomicBool::new(false));
    let flag = computed.clone();
    let (store, owner, ty) = (shared.store.clone(), tenant.clone(), cache_type.clone());
    let served = shared
        .store
        .get_or_compute_with(
            tenant,
            cache_type,
            key,
            Compute::default().detached(),
            move || async move {
                flag.store(true, Ordering::Relaxed);
                let t = Instant::now();
                let (value, extra) = work().await?;
                let cost = Cost {
                    compute_ms: t.elapsed().as_millis() as u64,
                    ..extra
                };
                store.coordinator().record_spent(&owner, &ty, cost);
                Ok::<_, ProcessError>(Costed { value, cost })
            },
        )
        .await
        .map_err(flatten)?;
    if served.stale {
        ran.stale.store(true, Ordering::Relaxed);
    } else if computed.load(Ordering::Relaxed) {
        ran.computed.store(true, Ordering::Relaxed);
    } else {
        shared
            .store
            .coordinator()
            .record_saved(tenant, cache_type, served.value.cost);
    }
    Ok(served.value)
}

/// An inner stage's error, shared by concurrent callers, back to an owned error.
pub(crate) fn flatten(e: ComputeError<ProcessError>) -> ProcessError {
    match e {
        ComputeError::Compute(e) => (*e).clone(),
        ComputeError::Store(e) => ProcessError::Store(Cause::new(e)),
        ComputeError::TimedOut(after) => ProcessError::TimedOut(after),
    }
}
