//! Row types of the statistics tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::*;

/// An invalidation rule: when `event_type` happens (for `tenant_id`, or any tenant when `None`), invalidate
/// `cache_types` with `strategy` after `delay_seconds`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = cache_invalidation_rules)]
pub struct InvalidationRule {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Event that triggers it, e.g. `document.updated`.
    pub event_type: String,
    /// Only this tenant's events, or every tenant's.
    pub tenant_id: Option<String>,
    /// Comma-separated cache types to invalidate.
    pub cache_types: String,
    /// `eager`, `lazy` or `hybrid`.
    pub strategy: String,
    /// Delay before applying it.
    pub delay_seconds: i32,
    /// Whether it applies.
    pub enabled: bool,
    /// When it was created (UTC).
    pub created_at: NaiveDateTime,
}

impl InvalidationRule {
    /// The cache types, split.
    pub fn cache_type_list(&self) -> impl Iterator<Item = &str> {
        self.cache_types
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// A cache warming job.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = cache_warmup_jobs)]
pub struct WarmupJob {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Only this tenant, or every tenant.
    pub tenant_id: Option<String>,
    /// The cache type it warms.
    pub cache_type: String,
    /// `scheduled`, `frequency_based` or `predictive`.
    pub strategy: String,
    /// Seconds between runs.
    pub interval_seconds: i32,
    /// Higher runs first.
    pub priority: i32,
    /// Whether it runs.
    pub enabled: bool,
    /// Last run (UTC).
    pub last_run_at: Option<NaiveDateTime>,
    /// Next run (UTC).
    pub next_run_at: Option<NaiveDateTime>,
    /// Outcome of the last run.
    pub last_status: Option<String>,
    /// Keys warmed by the last run.
    pub keys_warmed: i64,
}

/// A health check result.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = cache_health_status)]
pub struct HealthRow {
    /// Row id (ignored on insert).
    #[diesel(skip_insertion)]
    pub id: i64,
    /// When (UTC).
    pub checked_at: NaiveDateTime,
    /// `redis`, `memory` or `database`.
    pub component: String,
    /// `healthy`, `degraded` or `down`.
    pub status: String,
    /// Round trip of the check.
    pub latency_us: Option<i64>,
    /// Bytes in use.
    pub used_memory: Option<i64>,
    /// Memory limit (0 = none).
    pub max_memory: Option<i64>,
    /// Eviction policy.
    pub eviction_policy: Option<String>,
    /// Keys evicted since the server started.
    pub evicted_keys: Option<i64>,
    /// Connected clients.
    pub connected_clients: Option<i64>,
    /// Warnings or the error.
    pub message: String,
}
