//! Operating fernando-cache: the statistics [`recorder`] (the store's in-process metrics, flushed into the
//! statistics database, buffered through outages, old rows pruned), [`health`] checks, [`alerts`] announced
//! once per condition (log, event log, webhook), and event-driven
//! invalidation ([`events`], the rules of `cache_invalidation_rules`), and [`telemetry`]: the log subscriber and
//! OpenTelemetry export.
//!
//! It sits between the libraries and the program: it depends on the store (for metrics and invalidation) and
//! on the models (for the tables), so that neither of those needs the other. It must not depend on the
//! processor, the HTTP layer, the decorators or the binary, and holds no caching logic of its own. Database
//! work runs behind `spawn_blocking`, never on a runtime thread.

pub mod alerts;
pub mod events;
pub mod health;
pub mod recorder;
pub mod telemetry;

/// The README's examples, compiled as doctests so they stay true. They live here because this is the lowest
/// crate whose dev-dependencies reach every library the README shows without a cycle (the binary's crate has no
/// library to doctest).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
