//! Operating fernando-cache: the statistics [`recorder`] (the store's in-process metrics, flushed into the
//! statistics database, buffered through outages, old rows pruned), [`health`] checks, [`alerts`] announced
//! once per condition (log, event log, webhook), event-driven invalidation ([`events`], the rules of
//! `cache_invalidation_rules`) and the words an invalidation's outcome is told in ([`summary`]), the
//! [`warming`] schedule (access history, due warmup jobs claimed by one replica), [`telemetry`]: the log
//! subscriber and OpenTelemetry export, and a tenant's [`erasure`] from the cache and the database at once.
//!
//! It sits between the libraries and the program: it depends on the store (for metrics and invalidation), on
//! the models (for the tables), so that neither of those needs the other, and on the processor (whose `Warmer`
//! the warming schedule runs). It must not depend on the HTTP layer, the decorators or the binary, and the
//! processor must not depend on it; it holds no caching logic of its own. Database work runs behind
//! `spawn_blocking`, never on a runtime thread.

pub mod alerts;
pub mod erasure;
pub mod events;
pub mod health;
pub mod recorder;
pub mod summary;
pub mod telemetry;
pub mod warming;

/// The README's examples, compiled as doctests so they stay true. They live here because this is the lowest
/// crate whose dev-dependencies reach every library the README shows without a cycle (the binary's crate has no
/// library to doctest).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
