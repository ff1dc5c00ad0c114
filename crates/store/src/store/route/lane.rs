//! [`Lane`]: one backend a store reaches, with everything that is per backend rather than per store — its own
//! circuit breaker, its command deadlines, and its lease announcements (design 0023). The shared backend is one
//! lane; each `dedicated` tenant's deployment and each open `acl` tenant's connections are another.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};

use crate::{
    Backend, Leases, Storage, breaker::Breaker, deadline::Deadlines, store::lease::LeaseEvents,
};

/// Which backend a lane is, which decides where its lease releases are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The backend every `namespace` tenant and the global scope use.
    Shared,
    /// An `acl` tenant's connections to the shared deployment, as a Redis user that may touch only its keys and
    /// no channel: its lease releases and the waits for them go through the shared lane (design 0023).
    Acl,
    /// A `dedicated` tenant's own deployment.
    Dedicated,
}

/// One backend and what the store keeps per backend.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) backend: Backend,
    /// Bounds every call by the command timeout; `None` for a backend in process, whose calls go through
    /// neither a timeout nor the breaker.
    pub(crate) deadlines: Option<Arc<Deadlines>>,
    pub(crate) breaker: Breaker,
    pub(crate) role: Role,
    /// Waiters for other processes' leases on this backend, subscribed on first use (never on an `acl` lane).
    pub(crate) lease_events: OnceLock<Arc<LeaseEvents>>,
    /// The server refused this lane's credentials: an `acl` lane so marked is replaced on its tenant's next
    /// operation — its password read again, after a pause (design 0023).
    refused: AtomicBool,
}

impl Lane {
    pub(crate) fn new(
        backend: Backend,
        deadlines: Option<Arc<Deadlines>>,
        breaker: Breaker,
        role: Role,
    ) -> Lane {
        Lane {
            backend,
            deadlines,
            breaker,
            role,
            lease_events: OnceLock::new(),
            refused: AtomicBool::new(false),
        }
    }

    /// Marks the lane's credentials as refused by the server.
    pub(crate) fn refuse(&self) {
        self.refused.store(true, Ordering::Relaxed);
    }

    /// Whether the server refused the lane's credentials.
    pub(crate) fn is_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// Where entries and generations live.
    pub(crate) fn storage(&self) -> &dyn Storage {
        self.backend.storage()
    }

    /// The backend's shared leases, if it has them.
    pub(crate) fn leases(&self) -> Option<&dyn Leases> {
        self.backend.leases()
    }
}

/// The lane of one operation: borrowed from the store (the shared lane, a dedicated tenant's), or an `acl`
/// tenant's, held for the operation even if the bound on open tenants closes it meanwhile.
#[derive(Debug)]
pub(crate) enum LaneRef<'a> {
    Borrowed(&'a Lane),
    Held(Arc<Lane>),
}

impl std::ops::Deref for LaneRef<'_> {
    type Target = Lane;

    #[inline]
    fn deref(&self) -> &Lane {
        match self {
            LaneRef::Borrowed(lane) => lane,
            LaneRef::Held(lane) => lane,
        }
    }
}
