//! A circuit breaker: after a run of failed backend calls it opens, and calls return at once (degraded) until a
//! single probe call succeeds. Each backend a store reaches has its own (design 0023): the shared one, and a
//! tenant's own connections under `acl` or `dedicated` isolation, so one tenant's dead server never opens the
//! breaker every other tenant goes through.

use std::{
    sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
    time::{Duration, Instant},
};

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go to the backend.
    Closed,
    /// Calls are refused at once; the backend is presumed down.
    Open,
    /// One probe call is in flight to see whether the backend is back.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    open_for: Duration,
    epoch: Instant,
    state: AtomicU8,
    failures: AtomicU32,
    opened_at_ms: AtomicU64,
    opened_total: AtomicU64,
    /// The tenant whose own connections it guards, for the log; `None` for the shared backend's.
    owner: Option<Box<str>>,
}

/// Permission to make one call; report its outcome with [`Permit::success`] or [`Permit::failure`]. A probe
/// permit dropped without an outcome (its call was cancelled) re-opens the breaker rather than leaving it stuck.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            open_for,
            epoch: Instant::now(),
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            opened_at_ms: AtomicU64::new(0),
            opened_total: AtomicU64::new(0),
            owner: None,
        }
    }

    /// The breaker of `tenant`'s own connections: the same, with the tenant named in its log lines.
    pub(crate) fn owned_by(mut self, tenant: &str) -> Self {
        self.owner = Some(format!("tenant {tenant:?}").into());
        self
    }

    /// Whose backend it guards, as its log lines name it: `shared`, or `tenant "acme"`.
    fn owner(&self) -> &str {
        self.owner.as_deref().unwrap_or("shared")
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(crate) fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// How many times the breaker has opened.
    pub(crate) fn opened_total(&self) -> u64 {
        self.opened_total.load(Ordering::Relaxed)
    }

    /// A permit, or `None` when the call must not be made.
    pub(crate) fn acquire(&self) -> Option<Permit<'_>> {
        match self.state.load(Ordering::Acquire) {
            CLOSED => Some(Permit {
                breaker: self,
                probe: false,
                settled: false,
            }),
            OPEN => {
                let since = self
                    .now_ms()
                    .saturating_sub(self.opened_at_ms.load(Ordering::Acquire));
                if since >= self.open_for.as_millis() as u64
                    && self
                        .state
                        .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    tracing::info!(
                        backend = self.owner(),
                        "cache backend circuit breaker half-open: probing"
                    );
                    Some(Permit {
                        breaker: self,
                        probe: true,
                        settled: false,
                    })
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn open(&self) {
        self.opened_at_ms.store(self.now_ms(), Ordering::Release);
        self.state.store(OPEN, Ordering::Release);
    }
}

impl Permit<'_> {
    pub(crate) fn success(mut self) {
        self.settled = true;
        let b = self.breaker;
        if b.failures.load(Ordering::Relaxed) != 0 {
            b.failures.store(0, Ordering::Relaxed);
        }
        if self.probe {
            b.state.store(CLOSED, Ordering::Release);
            tracing::info!(
                backend = b.owner(),
                "cache backend recovered: circuit breaker closed"
            );
        }
    }

    pub(crate) fn failure(mut self) {
        self.settled = true;
        let b = self.breaker;
        if self.probe {
            b.open();
            return;
        }
        let failures = b.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= b.threshold
            && b.state
                .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            b.opened_at_ms.store(b.now_ms(), Ordering::Release);
            b.failures.store(0, Ordering::Relaxed);
            b.opened_total.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                failures,
                backend = b.owner(),
                open_for = ?b.open_for,
                "cache backend failing: circuit breaker open, operating degraded"
            );
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.open();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_after_a_successful_probe() {
        let b = Breaker::new(3, Duration::from_millis(20));
        for _ in 0..2 {
            b.acquire().unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.acquire().is_none());
        std::thread::sleep(Duration::from_millis(30));
        let probe = b.acquire().unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.acquire().is_none(), "only one probe at a time");
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(30));
        b.acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.opened_total(), 1);
    }

    #[test]
    fn a_cancelled_probe_reopens() {
        let b = Breaker::new(1, Duration::from_millis(1));
        b.acquire().unwrap().failure();
        std::thread::sleep(Duration::from_millis(5));
        drop(b.acquire().unwrap());
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn successes_reset_the_failure_run() {
        let b = Breaker::new(2, Duration::from_secs(1));
        b.acquire().unwrap().failure();
        b.acquire().unwrap().success();
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
