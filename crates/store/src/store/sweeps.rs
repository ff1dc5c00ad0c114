//! Pattern sweeps (SCAN + delete), bounded per tenant: a tenant's sweeps run one at a time, at most
//! `invalidation.max_sweeps_per_second`, and with four times their own duration between them (a sweep's cost
//! grows with the whole keyspace, not the tenant's share of it); a sweep asked for while the same one is still
//! waiting for its turn joins it instead of scanning again — so a tenant posting events whose rules sweep cannot make the backend
//! scan its whole keyspace at line rate (issue 28). A joined sweep starts after the request that joined it, so
//! it deletes everything that request needed deleted.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

/// What a sweep ended with, as the requests that joined it see it.
pub(crate) type Outcome = Result<u64, String>;

/// One tenant's sweeps: the turn (holding when the next may start), and those waiting by pattern.
#[derive(Default)]
struct TenantSweeps {
    turn: Arc<tokio::sync::Mutex<Option<Instant>>>,
    waiting: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
}

/// The sweeps of every tenant of a store.
pub(crate) struct Sweeps {
    tenants: moka::sync::Cache<String, Arc<TenantSweeps>>,
    interval: Duration,
}

/// A request's place: it runs the sweep, or it waits for the one it joined.
pub(crate) enum Place {
    /// Run the sweep (after [`Leader::turn`]) and [`Leader::finish`] it.
    Lead(Leader),
    /// The same sweep is waiting for its turn: its outcome answers this request too.
    Joined(watch::Receiver<Option<Outcome>>),
}

/// A tenant's turn to sweep, held while the sweep runs.
pub(crate) struct Turn {
    next: tokio::sync::OwnedMutexGuard<Option<Instant>>,
    started: Instant,
}

/// The request that runs a sweep for everyone who joined it.
pub(crate) struct Leader {
    tenant: Arc<TenantSweeps>,
    pattern: String,
    done: watch::Sender<Option<Outcome>>,
    interval: Duration,
}

impl std::fmt::Debug for Sweeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeps")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Sweeps {
    /// At most `per_second` sweeps per tenant (0: no bound on the rate; still one at a time).
    pub(crate) fn new(per_second: u32) -> Sweeps {
        Sweeps {
            tenants: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            interval: match per_second {
                0 => Duration::ZERO,
                n => Duration::from_secs(1) / n,
            },
        }
    }

    /// Takes a place for a sweep of `pattern` in `tenant`'s keyspace.
    pub(crate) fn enter(&self, tenant: &str, pattern: &str) -> Place {
        let t = self.tenants.get_with(tenant.to_owned(), Arc::default);
        let mut waiting = t.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = waiting.get(pattern) {
            return Place::Joined(rx.clone());
        }
        let (done, rx) = watch::channel(None);
        waiting.insert(pattern.to_owned(), rx);
        drop(waiting);
        Place::Lead(Leader {
            tenant: t,
            pattern: pattern.to_owned(),
            done,
            interval: self.interval,
        })
    }
}

impl Leader {
    /// Waits for the tenant's turn, and until its next sweep may start; from then on, a new request for the
    /// same pattern starts a sweep of its own (it may need keys written after this one began deleted too).
    pub(crate) async fn turn(&self) -> Turn {
        let next = self.tenant.turn.clone().lock_owned().await;
        if let Some(at) = *next {
            tokio::time::sleep_until(at).await;
        }
        self.tenant
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.pattern);
        Turn {
            next,
            started: Instant::now(),
        }
    }

    /// Hands the outcome to every request that joined, and sets when the tenant's next sweep may start: after
    /// the rate's interval, and after four times as long as this sweep took — a tenant's sweeps take at most a
    /// fifth of the backend's time, however large the keyspace they scan.
    pub(crate) fn finish(self, mut turn: Turn, outcome: Outcome) {
        let took = turn.started.elapsed();
        *turn.next = Some(turn.started + self.interval.max(took * 5));
        drop(turn);
        let _ = self.done.send(Some(outcome));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        // A leader dropped before its turn (its request was cancelled): the pattern must not stay "waiting" on
        // a sweep that will never run. Those who joined see the channel close and run their own.
        let mut waiting = self
            .tenant
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if waiting
            .get(&self.pattern)
            .is_some_and(|rx| rx.same_channel(&self.done.subscribe()))
        {
            waiting.remove(&self.pattern);
        }
    }
}

/// The outcome of a joined sweep, or `None` when its leader went away before running it.
pub(crate) async fn joined(mut rx: watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    loop {
        if let Some(outcome) = rx.borrow_and_update().clone() {
            return Some(outcome);
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_sweep_is_joined_and_a_running_one_is_not() {
        let sweeps = Sweeps::new(1000);
        let Place::Lead(first) = sweeps.enter("t", "p") else {
            panic!("the first request leads");
        };
        let Place::Joined(rx) = sweeps.enter("t", "p") else {
            panic!("the same sweep, still waiting, is joined");
        };
        assert!(
            matches!(sweeps.enter("t", "q"), Place::Lead(_)),
            "another pattern"
        );
        assert!(
            matches!(sweeps.enter("u", "p"), Place::Lead(_)),
            "another tenant"
        );
        let turn = first.turn().await;
        assert!(
            matches!(sweeps.enter("t", "p"), Place::Lead(_)),
            "once running, a new request needs a sweep of its own"
        );
        first.finish(turn, Ok(7));
        assert_eq!(joined(rx).await, Some(Ok(7)));
    }

    #[tokio::test]
    async fn a_tenants_sweeps_keep_to_the_rate() {
        // A bound from below only: a slow machine cannot make it fail.
        let sweeps = Sweeps::new(50);
        let start = Instant::now();
        for i in 0..5 {
            let Place::Lead(l) = sweeps.enter("t", &format!("p{i}")) else {
                panic!("distinct patterns lead");
            };
            let turn = l.turn().await;
            l.finish(turn, Ok(0));
        }
        assert!(start.elapsed() >= Duration::from_millis(80));
    }

    #[tokio::test]
    async fn a_long_sweep_keeps_the_tenants_next_one_waiting_four_times_as_long() {
        let sweeps = Sweeps::new(0);
        let Place::Lead(l) = sweeps.enter("t", "a") else {
            panic!()
        };
        let turn = l.turn().await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        l.finish(turn, Ok(0));
        let Place::Lead(next) = sweeps.enter("t", "b") else {
            panic!()
        };
        let asked = Instant::now();
        let turn = next.turn().await;
        // A bound from below only: a slow machine cannot make it fail.
        assert!(asked.elapsed() >= Duration::from_millis(150));
        next.finish(turn, Ok(0));
    }

    #[tokio::test]
    async fn a_cancelled_leader_leaves_nothing_waiting() {
        let sweeps = Sweeps::new(0);
        let Place::Lead(l) = sweeps.enter("t", "p") else {
            panic!()
        };
        let Place::Joined(rx) = sweeps.enter("t", "p") else {
            panic!()
        };
        drop(l);
        assert_eq!(joined(rx).await, None);
        assert!(matches!(sweeps.enter("t", "p"), Place::Lead(_)));
    }
}
