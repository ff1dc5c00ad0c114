//! The hot path's connections: one multiplexed connection per slot, replaced when it breaks.
//!
//! redis-rs's `ConnectionManager` does the same, but every request through it clones a shared connect future
//! and the connection inside it (four reference counts that the worker threads bounce between cores) — on a
//! 100-byte hit that was ~15 % of the store's client time (docs/benchmarks.md). Here a request costs one
//! `arc-swap` load, and the connection handle comes from a per-thread stack of clones and goes back to it, so
//! in the steady state no reference count is touched at all.

use std::{
    cell::RefCell,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use arc_swap::ArcSwapOption;
use redis::{AsyncConnectionConfig, RedisError, RedisResult, aio::MultiplexedConnection};

use super::{endpoint::Endpoint, error::conn_err, queue::Queue};
use crate::BackendError;

/// One slot of the hot path.
pub(crate) struct HotConn {
    endpoint: Arc<Endpoint>,
    config: AsyncConnectionConfig,
    current: ArcSwapOption<Installed>,
    /// One connect at a time per slot; later callers wait for it (within their own timeout).
    connecting: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    /// Called each time a new connection is installed (generation tracking must start over on it).
    on_install: Option<Box<dyn Fn() + Send + Sync>>,
    /// The user a new connection becomes once it tracks (an `acl` tenant's lane), if any.
    switch: Option<Arc<SwitchUser>>,
    /// `GET`s and `SET`s waiting to be sent together (auto-pipelining, see `batch.rs`).
    pub(crate) queue: Queue,
    /// Clones of the current connection handed back by finished requests, per thread.
    spare: thread_local::ThreadLocal<RefCell<Vec<(u64, MultiplexedConnection)>>>,
}

/// The Redis user a hot connection becomes once it tracks: an `acl` tenant's (design 0023). The connection
/// opens with the deployment's own credentials, turns on `CLIENT TRACKING ON OPTIN` — which the tenant's user
/// may not run: a user allowed `CLIENT TRACKING` could ask for `BCAST` and hear every key name on the server —
/// and only then `AUTH`s as the tenant's user, which tracking survives. From then on the server announces on
/// that connection the next change of each key the connection read after `CLIENT CACHING YES`, and the tenant's
/// user cannot widen that. A connection whose switch fails is dropped before anything is sent on it.
pub(crate) struct SwitchUser {
    user: String,
    password: String,
}

impl SwitchUser {
    /// Connections that become `user`, authenticated by `password`.
    pub(crate) fn new(user: &str, password: &str) -> Self {
        SwitchUser {
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// Turns key tracking on (OPTIN) on `conn`, still as the deployment's user, then becomes the tenant's
    /// user. Either fails → the error, and the caller drops `conn`.
    async fn switch(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        let replies: Vec<redis::Value> = redis::pipe()
            // Each reply answers for itself, so a refused `AUTH` is told as such (`WRONGPASS`: the credentials,
            // which the store counts as the lane's unavailability), not as a failed pipeline.
            .ignore_errors()
            .cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("OPTIN")
            .cmd("AUTH")
            .arg(&self.user)
            .arg(&self.password)
            .query_async(conn)
            .await?;
        for reply in replies {
            if let redis::Value::ServerError(e) = reply {
                return Err(e.into());
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for SwitchUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchUser")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Spare clones kept per thread: about the number of requests a thread has in flight on one slot.
const SPARE_PER_THREAD: usize = 64;

struct Installed {
    id: u64,
    conn: MultiplexedConnection,
}

/// A connection taken for one request; report how the request went with [`Lease::check`], and hand the
/// connection back to this thread's spares with [`Lease::release`] (dropping it instead is fine, only slower).
pub(crate) struct Lease<'a> {
    hot: &'a HotConn,
    id: u64,
    /// The connection to send on.
    pub(crate) conn: MultiplexedConnection,
}

impl HotConn {
    /// A slot that connects on first use with `config` (whose timeouts bound the connect), becoming the user
    /// `switch` names once it tracks, if any.
    pub(crate) fn new(
        endpoint: Arc<Endpoint>,
        config: AsyncConnectionConfig,
        on_install: Option<Box<dyn Fn() + Send + Sync>>,
        switch: Option<Arc<SwitchUser>>,
    ) -> Self {
        HotConn {
            endpoint,
            config,
            switch,
            current: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            on_install,
            queue: Queue::default(),
            spare: thread_local::ThreadLocal::new(),
        }
    }

    /// The current connection, if there is one.
    pub(crate) fn current(&self) -> Option<Lease<'_>> {
        let installed = self.current.load();
        let i = installed.as_ref()?;
        let spare = self.spare.get_or_default();
        let conn = loop {
            match spare.borrow_mut().pop() {
                Some((id, conn)) if id == i.id => break conn,
                // A clone of a replaced connection: drop it.
                Some(_) => continue,
                None => break i.conn.clone(),
            }
        };
        Some(Lease {
            hot: self,
            id: i.id,
            conn,
        })
    }

    /// Whether a connection is installed (the next request will not have to connect).
    pub(crate) fn is_connected(&self) -> bool {
        self.current.load().is_some()
    }

    /// The current connection, connecting first if there is none.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, BackendError> {
        match self.current() {
            Some(lease) => Ok(lease),
            // Boxed: the connect's state machine is large and rarely needed; it must not weigh on every call.
            None => Box::pin(self.connect()).await.map_err(conn_err),
        }
    }

    async fn connect(&self) -> RedisResult<Lease<'_>> {
        let _one = self.connecting.lock().await;
        if let Some(i) = &*self.current.load() {
            return Ok(Lease {
                hot: self,
                id: i.id,
                conn: i.conn.clone(),
            });
        }
        // Under Sentinel this asks the sentinels for the primary of the moment.
        let mut conn = self
            .endpoint
            .client()
            .await?
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        if let Some(switch) = &self.switch {
            // Dropped on failure: a connection still authenticated as the deployment's user never serves a
            // tenant's call.
            switch.switch(&mut conn).await?;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = &self.on_install {
            f();
        }
        self.current.store(Some(Arc::new(Installed {
            id,
            conn: conn.clone(),
        })));
        Ok(Lease {
            hot: self,
            id,
            conn,
        })
    }

    /// Forgets connection `id` if it is still the current one, so the next request connects afresh.
    fn forget(&self, id: u64) {
        let current = self.current.load();
        if current.as_ref().is_some_and(|i| i.id == id) {
            // Only swap out the very connection that failed, never one a concurrent request just installed.
            let _ = self.current.compare_and_swap(&current, None);
        }
    }
}

impl Lease<'_> {
    /// Whether this lease's connection is still the slot's current one.
    pub(crate) fn is_current(&self) -> bool {
        self.hot
            .current
            .load()
            .as_ref()
            .is_some_and(|i| i.id == self.id)
    }

    /// Keeps the connection handle for this thread's next request, if it is still the current connection.
    pub(crate) fn release(self) {
        if self.is_current() {
            let mut spare = self.hot.spare.get_or_default().borrow_mut();
            if spare.len() < SPARE_PER_THREAD {
                spare.push((self.id, self.conn));
            }
        }
    }

    /// Passes a reply through as the backend's result, forgetting the connection when the error says it is
    /// broken.
    pub(crate) fn check<T>(&self, reply: RedisResult<T>) -> Result<T, BackendError> {
        reply.map_err(|e| {
            if broken(&e) {
                self.hot.forget(self.id);
            }
            conn_err(e)
        })
    }
}

/// Whether an error means the connection must be replaced: it broke, or its server is no longer a primary
/// (`READONLY` after a failover demoted it: the next connection asks the sentinels again).
fn broken(e: &RedisError) -> bool {
    e.is_connection_dropped()
        || e.is_io_error()
        || e.is_unrecoverable_error()
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}
