//! Cross-process single-flight (design 0011): the process that takes a key's lease computes, renews the
//! lease while it lives and writes fenced by it; the others wait for the announcement of its release (one
//! subscription per store, waking only the waiters of that key), look again, and take the lease over when it
//! lapses. With the backend unavailable, single-flight stays per process.
//!
//! Leases live on the backend of their scope (design 0023). An `acl` tenant takes, renews and writes under its
//! leases as its own Redis user, but its user may use no channel (the lease channel carries every tenant's lease
//! keys): its releases, and the waits for them, go over the shared connection — the key a release deletes is
//! one the tenant's user could take, so nothing reaches past what Redis lets the tenant do.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use fernando_cache_config::CacheType;
use fernando_cache_keys::{AsScope, Scope};
use tokio::sync::Notify;

use super::{Store, route::Lane};
use crate::{Backend, Leases, StoreError};

/// Waiters per lease key, woken by the lease channel's messages.
#[derive(Debug, Default)]
pub(crate) struct LeaseEvents {
    waiting: Mutex<HashMap<String, Weak<Notify>>>,
}

/// Keys remembered before dead entries are swept out of the map.
const SWEEP_ABOVE: usize = 4096;

impl LeaseEvents {
    /// Wakes the waiters of the lease named by a message.
    fn announce(&self, payload: &[u8]) {
        let Ok(key) = std::str::from_utf8(payload) else {
            return;
        };
        let map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(notify) = map.get(key).and_then(Weak::upgrade) {
            notify.notify_waiters();
        }
    }

    /// The wake-up of `key`'s waiters; hold it while waiting.
    fn register(&self, key: &str) -> Arc<Notify> {
        let mut map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(key).and_then(Weak::upgrade) {
            return n;
        }
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let n = Arc::new(Notify::new());
        map.insert(key.to_owned(), Arc::downgrade(&n));
        n
    }
}

/// A lease this process holds: renewed in the background until dropped.
pub(super) struct HeldLease {
    pub(super) key: String,
    pub(super) token: String,
    /// Whose lease it is, so its release goes to the backend of that scope.
    scope: Scope,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// What an attempt at a key's lease gave.
pub(super) enum Attempt {
    /// This process holds the lease: compute, write fenced, release.
    Held(HeldLease),
    /// Another process holds it: wait (at most until the deadline) and look again.
    Busy,
    /// The backend cannot be asked: single-flight per process only.
    Unavailable,
}

/// A fresh random lease token (128 bits).
fn new_token() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

impl Store {
    /// `lane`'s shared leases and the lease events its waiters wait on, subscribing on first use; `None` when
    /// the backend shares no leases. An `acl` lane's waiters wait on the shared lane's events, whose
    /// subscription is the shared user's.
    fn lease_events<'l>(
        &'l self,
        lane: &'l Lane,
    ) -> Option<(&'l dyn Leases, &'l Arc<LeaseEvents>)> {
        let leases = lane.leases()?;
        let announced_on = self.own_users_lane(lane);
        let listener = announced_on.leases()?;
        let events = announced_on.lease_events.get_or_init(|| {
            let events = Arc::new(LeaseEvents::default());
            let weak = Arc::downgrade(&events);
            let on_message = Arc::new(move |payload: &[u8]| {
                if let Some(e) = weak.upgrade() {
                    e.announce(payload);
                }
            });
            if let Err(e) = listener.listen(&self.inner.keys.lease_channel(), on_message) {
                tracing::warn!(error = %e, "lease announcements unavailable; waiters poll");
            }
            events
        });
        Some((leases, events))
    }

    /// Tries to take `lease_key` of `scope` on its `lane`; registers as a waiter first, so an announcement
    /// between the attempt and the wait is not lost. Returns the attempt and the wake-up to wait on when busy.
    pub(super) async fn try_lease(
        &self,
        lane: &Lane,
        scope: &Scope,
        lease_key: &str,
        ttl: Duration,
    ) -> (Attempt, Option<Arc<Notify>>) {
        let Some((leases, events)) = self.lease_events(lane) else {
            return (Attempt::Unavailable, None);
        };
        let wake = events.register(lease_key);
        let token = new_token();
        match self
            .call(lane, leases.acquire_lease(lease_key, &token, ttl))
            .await
        {
            Ok(true) => {
                let renewal = renew_until_dropped(
                    lane.backend.clone(),
                    lease_key.to_owned(),
                    token.clone(),
                    ttl,
                );
                (
                    Attempt::Held(HeldLease {
                        key: lease_key.to_owned(),
                        token,
                        scope: scope.clone(),
                        renewal,
                    }),
                    None,
                )
            }
            Ok(false) => (Attempt::Busy, Some(wake)),
            Err(e) => {
                tracing::debug!(error = %e, "lease unavailable; single-flight stays in process");
                (Attempt::Unavailable, None)
            }
        }
    }

    /// Ends a lease this process holds and announces it, so the waiters look again at once: on the backend of
    /// its scope, or for an `acl` tenant over the shared connection, whose user may announce.
    pub(super) async fn release(&self, lease: HeldLease) {
        let lane = self.lane((&lease.scope).into());
        let lane = self.own_users_lane(&lane);
        // A held lease was taken from the backend's leases: they are there.
        let Some(leases) = lane.leases() else {
            return;
        };
        let channel = self.inner.keys.lease_channel();
        let released = self
            .call(
                lane,
                leases.release_lease(&lease.key, &lease.token, &channel),
            )
            .await;
        if let Err(e) = released {
            // The lease lapses by itself; waiters take over then.
            tracing::debug!(error = %e, "lease not released");
        }
    }
}

/// A claim on the background refresh of one entry (a stale HTTP response revalidated behind its answer, for
/// example), taken with [`crate::Coordinator::claim_refresh`]. While a process holds it, every other process on the backend
/// is refused the same claim; [`RefreshClaim::release`] ends it, and a claim dropped without it lapses with its
/// lease.
#[derive(Debug)]
#[must_use = "release the claim when the refresh is done, or the entry's refresh waits for the lease to lapse"]
pub struct RefreshClaim {
    store: Store,
    /// `None` when the backend shares no leases (or could not be asked): the claim binds the caller alone.
    lease: Option<HeldLease>,
}

impl std::fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLease")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl RefreshClaim {
    /// Whether the claim is shared by every process on the backend (else it binds this process only).
    pub fn is_shared(&self) -> bool {
        self.lease.is_some()
    }

    /// Ends the claim and announces it.
    pub async fn release(self) {
        if let Some(lease) = self.lease {
            self.store.release(lease).await;
        }
    }
}

impl Store {
    /// Claims the background refresh of an entry for every process on the backend: the entry's lease (design
    /// 0011, the one `get_or_compute` takes to compute it), held for `ttl` and renewed while the claim lives;
    /// public as [`super::Coordinator::claim_refresh`].
    pub(super) async fn claim_refresh(
        &self,
        scope: impl AsScope,
        cache_type: &CacheType,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<RefreshClaim>, StoreError> {
        let scope = scope.as_scope().to_scope();
        let entry = self.inner.keys.key(&scope, cache_type, key)?;
        let lease_key = self.inner.keys.lease_key(&entry);
        let lane = self.lane((&scope).into());
        let lease = match self.try_lease(&lane, &scope, &lease_key, ttl).await.0 {
            Attempt::Held(held) => Some(held),
            Attempt::Busy => return Ok(None),
            Attempt::Unavailable => None,
        };
        Ok(Some(RefreshClaim {
            store: self.clone(),
            lease,
        }))
    }
}

/// Waits for an announcement about the lease, or `slice`, whichever comes first: a waiter looks again at
/// least every slice, so a holder that died is taken over within a slice of its lease lapsing, and a lost
/// announcement costs at most one slice.
pub(in crate::store) async fn wait(wake: Option<Arc<Notify>>, slice: Duration) {
    match wake {
        Some(n) => {
            let _ = tokio::time::timeout(slice, n.notified()).await;
        }
        None => tokio::time::sleep(slice).await,
    }
}

/// The slice of a wait for a lease of `ttl`, never past `deadline`.
pub(super) fn slice(ttl: Duration, deadline: Instant) -> Duration {
    (ttl / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1))
        .min(deadline.saturating_duration_since(Instant::now()))
}

/// Renews the lease a third of its life after each renewal, until aborted or lost. A renewal that fails or
/// does not answer is retried at once (after a short pause), each attempt bounded by what is left of the lease,
/// so one slow round trip does not cost the lease: only a backend (or a process) stalled for the rest of the
/// lease's life lets it lapse.
fn renew_until_dropped(
    backend: Backend,
    key: String,
    token: String,
    ttl: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Only a lease taken from the backend's leases is renewed: they are there.
        let Some(leases) = backend.leases() else {
            return;
        };
        let every = ttl / 3;
        let retry = (ttl / 20).max(Duration::from_millis(5));
        let mut expires = Instant::now() + ttl;
        let mut next = Instant::now() + every;
        loop {
            tokio::time::sleep_until(next.into()).await;
            let left = expires.saturating_duration_since(Instant::now());
            let asked = Instant::now();
            let bound = left.max(retry);
            match tokio::time::timeout(bound, leases.renew_lease(&key, &token, ttl)).await {
                Ok(Ok(true)) => {
                    // The server's clock started the new life no earlier than the request left.
                    expires = asked + ttl;
                    next = asked + every;
                }
                // Lost to another process: stop; the fenced write will say so.
                Ok(Ok(false)) => return,
                // Failed or unanswered: try again soon; the lease may lapse meanwhile.
                _ => next = Instant::now() + retry,
            }
        }
    })
}
