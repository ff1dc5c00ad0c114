//! Persistent statistics of fernando-cache: the Diesel schema and models of the six tables (statistics,
//! invalidation rules, performance metrics, health status, warmup jobs, event log), their migrations for
//! PostgreSQL and SQLite, the repository functions the recorder and the `stats` command use, and a tenant's
//! erasure from every table that names it.
//!
//! One code base serves both databases through [`Db`], chosen from the URL's scheme (`postgres://…`,
//! `sqlite://path` or a plain path); an unknown scheme is an error, never a silently created file. Calls are
//! blocking (Diesel): async callers run them behind one `spawn_blocking` boundary.
//!
//! This crate must not depend on any fernando-cache crate other than configuration (it currently needs none),
//! and in particular not on the store: the binary wires store metrics into these tables.

/// Runs `$body` with `$conn` bound to whichever connection `$db` holds (one code path, both databases).
macro_rules! per_backend {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            Db::Postgresql($conn) => $body,
            Db::Sqlite($conn) => $body,
        }
    };
}

mod db;
mod erasure;
mod error;
mod journal;
mod migrate;
pub mod models;
mod pending;
mod repo;
pub mod schema;
mod series;
mod warming;

pub use db::{Db, DbKind, describe_url};
pub use erasure::{TenantRows, erase_tenant};
pub use error::ModelError;
pub use journal::{
    EventRecord, Pruned, Retention, Severity, health_rows, insert_event, insert_health,
    list_events, prune, recent_events,
};
pub use migrate::{MigrationStatus, revert_last, run_pending, status};
pub use pending::{
    NewPendingInvalidation, PendingInvalidation, claim_due_invalidations, finish_invalidation,
    pending_invalidations, schedule_invalidation,
};
pub use repo::{
    FlushBatch, PerformanceDelta, StatisticsDelta, StatisticsSummary, apply_flush,
    invalidation_rules, performance_since, rule_event_types, statistics_since, upsert_performance,
    upsert_statistics,
};
pub use series::{
    ALL_TENANTS, DAY, HOUR, Resolution, Series, SeriesPoint, SeriesQuery, WINDOW, series,
};
pub use warming::{
    AccessCount, access_history, claim_warmup_run, record_accesses, record_warmup_run,
    reference_data, warmup_jobs,
};
