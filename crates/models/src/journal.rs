//! The operational journal: the event log and health rows, and their pruning by age (the seed's background
//! cleanup).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::{
    Db, ModelError,
    models::HealthRow,
    schema::{
        cache_access_history, cache_event_log, cache_health_status, cache_performance_metrics,
        cache_statistics, cache_statistics_rollups,
    },
};

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Routine.
    Info,
    /// Worth a look (degradation, a noeviction policy, a low hit ratio).
    Warning,
    /// Something failed.
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A row of `cache_event_log`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Insertable)]
#[diesel(table_name = cache_event_log)]
pub struct EventRecord {
    /// When (UTC).
    pub occurred_at: NaiveDateTime,
    /// e.g. `invalidation`, `degradation.on`, `alert.hit_ratio`.
    pub event_type: String,
    /// `info`, `warning` or `error`.
    pub severity: String,
    /// Tenant, if the event concerns one.
    pub tenant_id: Option<String>,
    /// Cache type, if the event concerns one.
    pub cache_type: Option<String>,
    /// Free text.
    pub details: String,
}

/// Appends events.
///
/// # Errors
/// [`ModelError::Query`].
pub fn insert_event(db: &mut Db, events: &[EventRecord]) -> Result<(), ModelError> {
    if events.is_empty() {
        return Ok(());
    }
    db.transaction::<_, ModelError, _>(|db| {
        // Not an event about a tenant that another process erased since (see erasure.rs).
        let events = &*crate::erasure::without_erased(db, events, |e| {
            e.tenant_id.as_deref().map(|t| (t, e.occurred_at))
        })?;
        if !events.is_empty() {
            per_backend!(db, |conn| {
                diesel::insert_into(cache_event_log::table)
                    .values(events)
                    .execute(conn)?;
            });
        }
        Ok(())
    })
}

/// Events at or after `since`, optionally of one type, oldest first.
///
/// # Errors
/// [`ModelError::Query`].
pub fn list_events(
    db: &mut Db,
    since: NaiveDateTime,
    event_type: Option<&str>,
) -> Result<Vec<EventRecord>, ModelError> {
    use cache_event_log::dsl as e;
    let mut q = e::cache_event_log
        .filter(e::occurred_at.ge(since))
        .select((
            e::occurred_at,
            e::event_type,
            e::severity,
            e::tenant_id,
            e::cache_type,
            e::details,
        ))
        .order(e::id.asc())
        .into_boxed();
    if let Some(t) = event_type {
        q = q.filter(e::event_type.eq(t.to_owned()));
    }
    Ok(q.load(db)?)
}

/// The newest `limit` events at or after `since`, newest first (what a dashboard's event log shows).
///
/// # Errors
/// [`ModelError::Query`].
pub fn recent_events(
    db: &mut Db,
    since: NaiveDateTime,
    limit: i64,
) -> Result<Vec<EventRecord>, ModelError> {
    use cache_event_log::dsl as e;
    Ok(e::cache_event_log
        .filter(e::occurred_at.ge(since))
        .select((
            e::occurred_at,
            e::event_type,
            e::severity,
            e::tenant_id,
            e::cache_type,
            e::details,
        ))
        .order(e::id.desc())
        .limit(limit)
        .load(db)?)
}

/// Records a health check.
///
/// # Errors
/// [`ModelError::Query`].
pub fn insert_health(db: &mut Db, row: &HealthRow) -> Result<(), ModelError> {
    per_backend!(db, |conn| {
        diesel::insert_into(cache_health_status::table)
            .values(row)
            .execute(conn)?;
    });
    Ok(())
}

/// Health rows of a component, newest first.
///
/// # Errors
/// [`ModelError::Query`].
pub fn health_rows(db: &mut Db, component: &str, limit: i64) -> Result<Vec<HealthRow>, ModelError> {
    use cache_health_status::dsl as h;
    Ok(h::cache_health_status
        .filter(h::component.eq(component))
        .order(h::id.desc())
        .limit(limit)
        .select(HealthRow::as_select())
        .load(db)?)
}

/// Ages past which rows are removed (`None`: kept forever).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// `cache_statistics` by window start, and the read history (`cache_access_history`) by bucket start.
    pub statistics: Option<chrono::Duration>,
    /// `cache_performance_metrics`, by window start.
    pub performance: Option<chrono::Duration>,
    /// `cache_health_status`, by check time.
    pub health: Option<chrono::Duration>,
    /// `cache_event_log`, by occurrence.
    pub events: Option<chrono::Duration>,
}

/// Rows removed by [`prune`], per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// From `cache_statistics`.
    pub statistics: usize,
    /// From `cache_statistics_rollups`: buckets wholly before the statistics cutoff.
    pub rollups: usize,
    /// From `cache_access_history`.
    pub access_history: usize,
    /// From `cache_performance_metrics`.
    pub performance: usize,
    /// From `cache_health_status`.
    pub health: usize,
    /// From `cache_event_log`.
    pub events: usize,
}

/// Removes the rows older than `retention` says, as of `now` (the seed's background cleanup), each table in one
/// statement; rows at the cutoff or newer stay.
///
/// # Errors
/// [`ModelError::Query`].
pub fn prune(db: &mut Db, retention: &Retention, now: NaiveDateTime) -> Result<Pruned, ModelError> {
    let cutoff = |age: Option<chrono::Duration>| age.map(|a| now - a);
    let mut pruned = Pruned::default();
    per_backend!(db, |conn| {
        if let Some(before) = cutoff(retention.statistics) {
            pruned.statistics = diesel::delete(
                cache_statistics::table.filter(cache_statistics::window_start.lt(before)),
            )
            .execute(conn)?;
            for (resolution, length) in [
                (crate::series::WINDOW, chrono::Duration::zero()),
                (crate::HOUR, chrono::Duration::hours(1)),
                (crate::DAY, chrono::Duration::days(1)),
            ] {
                pruned.rollups += diesel::delete(
                    cache_statistics_rollups::table
                        .filter(cache_statistics_rollups::resolution.eq(resolution))
                        .filter(cache_statistics_rollups::bucket_start.lt(before - length)),
                )
                .execute(conn)?;
            }
            pruned.access_history = diesel::delete(
                cache_access_history::table.filter(cache_access_history::bucket_start.lt(before)),
            )
            .execute(conn)?;
        }
        if let Some(before) = cutoff(retention.performance) {
            pruned.performance = diesel::delete(
                cache_performance_metrics::table
                    .filter(cache_performance_metrics::window_start.lt(before)),
            )
            .execute(conn)?;
        }
        if let Some(before) = cutoff(retention.health) {
            pruned.health = diesel::delete(
                cache_health_status::table.filter(cache_health_status::checked_at.lt(before)),
            )
            .execute(conn)?;
        }
        if let Some(before) = cutoff(retention.events) {
            pruned.events = diesel::delete(
                cache_event_log::table.filter(cache_event_log::occurred_at.lt(before)),
            )
            .execute(conn)?;
        }
    });
    Ok(pruned)
}
