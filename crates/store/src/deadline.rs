//! Command timeouts without a tokio timer per call.
//!
//! Every backend call is bounded by `command_timeout`. A `tokio::time::timeout` per call clones the
//! runtime handle (a reference count every worker thread shares) and inserts into and removes from the timer
//! wheel under a lock; on a 100-byte hit that measured ~0.6 µs of the ~4 µs a call costs the client
//! (docs/benchmarks.md). Here a pending call puts its deadline and waker in its thread's shard (an uncontended
//! lock) and one watchdog thread per store wakes calls whose deadline has passed, checking every
//! tick ([`tick_for`]). A call therefore returns at most one tick after its deadline; the tick is a sixteenth of
//! the timeout, between 1 and 10 ms.

use std::{
    future::Future,
    pin::pin,
    sync::{Arc, Mutex, Weak},
    task::{Poll, Waker},
    time::{Duration, Instant},
};

/// The pending calls of one store, sharded by the thread that first polled them.
#[derive(Debug)]
pub(crate) struct Deadlines {
    shards: thread_local::ThreadLocal<Mutex<Shard>>,
    /// False if the watchdog thread could not be started: calls then fall back to a tokio timer each.
    watched: bool,
}

#[derive(Debug, Default)]
struct Shard {
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
}

#[derive(Debug)]
struct Entry {
    deadline: Instant,
    /// Taken by the watchdog when it wakes the call.
    waker: Option<Waker>,
}

impl Deadlines {
    /// Deadlines for calls bounded by `timeout`, with their watchdog thread (which ends when the returned value
    /// is dropped).
    pub(crate) fn start(timeout: Duration) -> Arc<Self> {
        let tick = tick_for(timeout);
        Arc::new_cyclic(|weak: &Weak<Deadlines>| {
            let weak = weak.clone();
            let spawned = std::thread::Builder::new()
                .name("fernando-cache-deadlines".into())
                .spawn(move || watchdog(&weak, tick));
            if let Err(e) = &spawned {
                tracing::warn!(error = %e, "no command-timeout watchdog thread; using a timer per call");
            }
            Deadlines {
                shards: thread_local::ThreadLocal::new(),
                watched: spawned.is_ok(),
            }
        })
    }

    /// Runs `fut` until it completes (`Some`) or `deadline` passes (`None`).
    pub(crate) async fn run<F: Future>(&self, deadline: Instant, fut: F) -> Option<F::Output> {
        if !self.watched {
            return tokio::time::timeout_at(deadline.into(), fut).await.ok();
        }
        let mut fut = pin!(fut);
        let mut registration = Registration {
            deadlines: self,
            slot: None,
        };
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            // Only a woken call reads the clock: the first poll has just been given its deadline.
            if registration.slot.is_some() && Instant::now() >= deadline {
                return Poll::Ready(None);
            }
            registration.set(deadline, cx.waker());
            Poll::Pending
        })
        .await
    }
}

/// How late past its deadline a call may return at most: a sixteenth of the timeout, between 1 and 10 ms.
fn tick_for(timeout: Duration) -> Duration {
    (timeout / 16).clamp(Duration::from_millis(1), Duration::from_millis(10))
}

/// A pending call's entry; removed when the call finishes, times out or is dropped.
struct Registration<'a> {
    deadlines: &'a Deadlines,
    slot: Option<(&'a Mutex<Shard>, usize)>,
}

impl Registration<'_> {
    fn set(&mut self, deadline: Instant, waker: &Waker) {
        match self.slot {
            Some((shard, i)) => {
                let mut shard = lock(shard);
                if let Some(Some(entry)) = shard.entries.get_mut(i)
                    && !entry.waker.as_ref().is_some_and(|w| w.will_wake(waker))
                {
                    entry.waker = Some(waker.clone());
                }
            }
            None => {
                let shard = self.deadlines.shards.get_or_default();
                let entry = Some(Entry {
                    deadline,
                    waker: Some(waker.clone()),
                });
                let mut s = lock(shard);
                let i = match s.free.pop() {
                    Some(i) => {
                        s.entries[i] = entry;
                        i
                    }
                    None => {
                        s.entries.push(entry);
                        s.entries.len() - 1
                    }
                };
                drop(s);
                self.slot = Some((shard, i));
            }
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some((shard, i)) = self.slot.take() {
            let mut s = lock(shard);
            if let Some(entry) = s.entries.get_mut(i) {
                *entry = None;
                s.free.push(i);
            }
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // A panic while holding a shard cannot leave it inconsistent (every update is one assignment).
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wakes every call whose deadline has passed, every `tick`, until the deadlines are dropped.
fn watchdog(deadlines: &Weak<Deadlines>, tick: Duration) {
    let mut due = Vec::new();
    loop {
        std::thread::sleep(tick);
        let Some(d) = deadlines.upgrade() else {
            return;
        };
        let now = Instant::now();
        for shard in d.shards.iter() {
            let mut s = lock(shard);
            for entry in s.entries.iter_mut().flatten() {
                if entry.deadline <= now
                    && let Some(w) = entry.waker.take()
                {
                    due.push(w);
                }
            }
        }
        drop(d);
        // Woken outside the locks: a woken call may run at once on another thread and deregister.
        for w in due.drain(..) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_finishes_in_time_returns_its_value_and_leaves_nothing_behind() {
        let d = Deadlines::start(Duration::from_millis(200));
        let v = d
            .run(Instant::now() + Duration::from_millis(200), async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                7
            })
            .await;
        assert_eq!(v, Some(7));
        let left: usize = d
            .shards
            .iter()
            .map(|s| lock(s).entries.iter().flatten().count())
            .sum();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn a_call_that_never_finishes_returns_within_a_tick_of_its_deadline() {
        let d = Deadlines::start(Duration::from_millis(80));
        let start = Instant::now();
        let v = d
            .run(
                start + Duration::from_millis(80),
                std::future::pending::<()>(),
            )
            .await;
        let took = start.elapsed();
        assert_eq!(v, None);
        assert!(took >= Duration::from_millis(80), "{took:?}");
        // One tick of lateness, plus scheduling slack for a loaded machine.
        assert!(
            took < Duration::from_millis(80)
                + tick_for(Duration::from_millis(80))
                + Duration::from_millis(200),
            "{took:?}"
        );
    }
}
