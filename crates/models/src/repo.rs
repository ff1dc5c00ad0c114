//! Repository functions over [`Db`]: what the recorder writes and what the `stats` command reads.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::{prelude::*, upsert::excluded};

use crate::{
    Db, EventRecord, ModelError,
    journal::{insert_event, insert_health},
    models::{HealthRow, InvalidationRule},
    schema::{
        cache_invalidation_rules, cache_performance_metrics, cache_recorder_flushes,
        cache_statistics,
    },
};

/// Counts of one (tenant, cache type, window) to add to `cache_statistics`.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = cache_statistics)]
pub struct StatisticsDelta {
    /// Tenant label (`_global`, `_other` included).
    pub tenant_id: String,
    /// Cache type.
    pub cache_type: String,
    /// Start of the window (UTC).
    pub window_start: NaiveDateTime,
    /// Window length.
    pub window_seconds: i32,
    /// Reads that hit.
    pub hits: i64,
    /// Reads that missed.
    pub misses: i64,
    /// Writes stored.
    pub sets: i64,
    /// Keys deleted.
    pub deletes: i64,
    /// Backend errors.
    pub errors: i64,
    /// Operations completed without the backend.
    pub degraded: i64,
    /// Bytes before compression.
    pub raw_bytes: i64,
    /// Bytes stored.
    pub stored_bytes: i64,
    /// Read latency p50 in this delta, microseconds.
    pub latency_p50_us: i64,
    /// Read latency p95.
    pub latency_p95_us: i64,
    /// Read latency p99.
    pub latency_p99_us: i64,
    /// When it was written (UTC).
    pub updated_at: NaiveDateTime,
    /// Engine time spent on misses' computations, milliseconds.
    pub compute_spent_ms: i64,
    /// Engine time hits saved, milliseconds.
    pub compute_saved_ms: i64,
    /// Model tokens spent.
    pub tokens_spent: i64,
    /// Model tokens hits saved.
    pub tokens_saved: i64,
    /// Money spent, millionths of the currency unit.
    pub money_spent_micros: i64,
    /// Money hits saved, millionths of the currency unit.
    pub money_saved_micros: i64,
}

impl StatisticsDelta {
    /// Adds `more` (of the same row, or of rows summed together) into this one, as the upsert adds them in the
    /// database: counts add (saturating), latency percentiles keep the larger, `updated_at` the later.
    pub fn absorb(&mut self, more: &StatisticsDelta) {
        for (sum, add) in [
            (&mut self.hits, more.hits),
            (&mut self.misses, more.misses),
            (&mut self.sets, more.sets),
            (&mut self.deletes, more.deletes),
            (&mut self.errors, more.errors),
            (&mut self.degraded, more.degraded),
            (&mut self.raw_bytes, more.raw_bytes),
            (&mut self.stored_bytes, more.stored_bytes),
            (&mut self.compute_spent_ms, more.compute_spent_ms),
            (&mut self.compute_saved_ms, more.compute_saved_ms),
            (&mut self.tokens_spent, more.tokens_spent),
            (&mut self.tokens_saved, more.tokens_saved),
            (&mut self.money_spent_micros, more.money_spent_micros),
            (&mut self.money_saved_micros, more.money_saved_micros),
        ] {
            *sum = sum.saturating_add(add);
        }
        self.latency_p50_us = self.latency_p50_us.max(more.latency_p50_us);
        self.latency_p95_us = self.latency_p95_us.max(more.latency_p95_us);
        self.latency_p99_us = self.latency_p99_us.max(more.latency_p99_us);
        self.updated_at = self.updated_at.max(more.updated_at);
    }
}

/// Adds deltas to their windows' rows (creating them) and to their hourly and daily rollups, in one transaction.
/// Counts add up; latency percentiles keep the larger of the stored and the new value (percentiles cannot be
/// added).
///
/// # Errors
/// [`ModelError::Query`]; nothing is written when any row fails.
pub fn upsert_statistics(db: &mut Db, deltas: &[StatisticsDelta]) -> Result<(), ModelError> {
    use cache_statistics::dsl as s;
    if deltas.is_empty() {
        return Ok(());
    }
    db.transaction::<_, ModelError, _>(|db| {
        // Not what another process erased since it was recorded (the tenant's rows are gone; design: erasure.rs).
        let deltas = &*crate::erasure::without_erased(db, deltas, |d| {
            Some((d.tenant_id.as_str(), d.window_start))
        })?;
        let ordered = crate::db::in_lock_order(deltas, |d| {
            (d.tenant_id.clone(), d.cache_type.clone(), d.window_start)
        });
        per_backend!(db, |conn| for d in &ordered {
            diesel::insert_into(s::cache_statistics)
                .values(*d)
                .on_conflict((s::tenant_id, s::cache_type, s::window_start))
                .do_update()
                .set((
                    s::hits.eq(s::hits + excluded(s::hits)),
                    s::misses.eq(s::misses + excluded(s::misses)),
                    s::sets.eq(s::sets + excluded(s::sets)),
                    s::deletes.eq(s::deletes + excluded(s::deletes)),
                    s::errors.eq(s::errors + excluded(s::errors)),
                    s::degraded.eq(s::degraded + excluded(s::degraded)),
                    s::raw_bytes.eq(s::raw_bytes + excluded(s::raw_bytes)),
                    s::stored_bytes.eq(s::stored_bytes + excluded(s::stored_bytes)),
                    s::compute_spent_ms.eq(s::compute_spent_ms + excluded(s::compute_spent_ms)),
                    s::compute_saved_ms.eq(s::compute_saved_ms + excluded(s::compute_saved_ms)),
                    s::tokens_spent.eq(s::tokens_spent + excluded(s::tokens_spent)),
                    s::tokens_saved.eq(s::tokens_saved + excluded(s::tokens_saved)),
                    s::money_spent_micros
                        .eq(s::money_spent_micros + excluded(s::money_spent_micros)),
                    s::money_saved_micros
                        .eq(s::money_saved_micros + excluded(s::money_saved_micros)),
                    s::latency_p50_us.eq(diesel::dsl::case_when(
                        excluded(s::latency_p50_us).gt(s::latency_p50_us),
                        excluded(s::latency_p50_us),
                    )
                    .otherwise(s::latency_p50_us)),
                    s::latency_p95_us.eq(diesel::dsl::case_when(
                        excluded(s::latency_p95_us).gt(s::latency_p95_us),
                        excluded(s::latency_p95_us),
                    )
                    .otherwise(s::latency_p95_us)),
                    s::latency_p99_us.eq(diesel::dsl::case_when(
                        excluded(s::latency_p99_us).gt(s::latency_p99_us),
                        excluded(s::latency_p99_us),
                    )
                    .otherwise(s::latency_p99_us)),
                    s::updated_at.eq(excluded(s::updated_at)),
                ))
                .execute(conn)?;
        });
        crate::series::upsert_rollups(db, deltas)
    })
}

/// Latency of one operation (`get`, `set`) on one cache type in one window, over all tenants.
#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable)]
#[diesel(table_name = cache_performance_metrics)]
pub struct PerformanceDelta {
    /// Start of the window (UTC).
    pub window_start: NaiveDateTime,
    /// `get` or `set`.
    pub operation: String,
    /// Cache type.
    pub cache_type: String,
    /// Operations.
    pub count: i64,
    /// Operations whose backend call failed.
    pub errors: i64,
    /// p50, microseconds.
    pub p50_us: i64,
    /// p95, microseconds.
    pub p95_us: i64,
    /// p99, microseconds.
    pub p99_us: i64,
    /// Slowest, microseconds (bucket bound).
    pub max_us: i64,
    /// When it was written (UTC).
    pub updated_at: NaiveDateTime,
}

/// Adds per-operation latency rows, in one transaction and in key order: counts add up, percentiles keep the
/// larger value.
///
/// # Errors
/// [`ModelError::Query`].
pub fn upsert_performance(db: &mut Db, deltas: &[PerformanceDelta]) -> Result<(), ModelError> {
    use cache_performance_metrics::dsl as m;
    if deltas.is_empty() {
        return Ok(());
    }
    macro_rules! keep_larger {
        ($col:expr) => {
            diesel::dsl::case_when(excluded($col).gt($col), excluded($col)).otherwise($col)
        };
    }
    let ordered = crate::db::in_lock_order(deltas, |d| {
        (d.operation.clone(), d.cache_type.clone(), d.window_start)
    });
    per_backend!(db, |conn| conn.transaction::<_, ModelError, _>(|conn| {
        for d in &ordered {
            diesel::insert_into(m::cache_performance_metrics)
                .values(*d)
                .on_conflict((m::operation, m::cache_type, m::window_start))
                .do_update()
                .set((
                    m::count.eq(m::count + excluded(m::count)),
                    m::errors.eq(m::errors + excluded(m::errors)),
                    m::p50_us.eq(keep_larger!(m::p50_us)),
                    m::p95_us.eq(keep_larger!(m::p95_us)),
                    m::p99_us.eq(keep_larger!(m::p99_us)),
                    m::max_us.eq(keep_larger!(m::max_us)),
                    m::updated_at.eq(excluded(m::updated_at)),
                ))
                .execute(conn)?;
        }
        Ok(())
    }))
}

/// Per-operation rows of every window starting at or after `since`.
///
/// # Errors
/// [`ModelError::Query`].
pub fn performance_since(
    db: &mut Db,
    since: NaiveDateTime,
) -> Result<Vec<PerformanceDelta>, ModelError> {
    use cache_performance_metrics::dsl as m;
    Ok(m::cache_performance_metrics
        .filter(m::window_start.ge(since))
        .order((
            m::window_start.asc(),
            m::operation.asc(),
            m::cache_type.asc(),
        ))
        .select((
            m::window_start,
            m::operation,
            m::cache_type,
            m::count,
            m::errors,
            m::p50_us,
            m::p95_us,
            m::p99_us,
            m::max_us,
            m::updated_at,
        ))
        .load(db)?)
}

/// Totals of one (tenant, cache type) over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatisticsSummary {
    /// Tenant label.
    pub tenant_id: String,
    /// Cache type.
    pub cache_type: String,
    /// Summed counters.
    pub hits: i64,
    /// Summed misses.
    pub misses: i64,
    /// Summed sets.
    pub sets: i64,
    /// Summed deletes.
    pub deletes: i64,
    /// Summed errors.
    pub errors: i64,
    /// Summed degraded operations.
    pub degraded: i64,
    /// Summed raw bytes.
    pub raw_bytes: i64,
    /// Summed stored bytes.
    pub stored_bytes: i64,
    /// Largest window p95 read latency, microseconds.
    pub max_p95_us: i64,
    /// Largest window p99 read latency, microseconds.
    pub max_p99_us: i64,
    /// Summed engine time spent, milliseconds.
    pub compute_spent_ms: i64,
    /// Summed engine time saved, milliseconds.
    pub compute_saved_ms: i64,
    /// Summed tokens spent.
    pub tokens_spent: i64,
    /// Summed tokens saved.
    pub tokens_saved: i64,
    /// Summed money spent, millionths of the currency unit.
    pub money_spent_micros: i64,
    /// Summed money saved, millionths of the currency unit.
    pub money_saved_micros: i64,
}

impl StatisticsSummary {
    /// Hits over reads, if any read happened.
    pub fn hit_ratio(&self) -> Option<f64> {
        let reads = self.hits + self.misses;
        (reads > 0).then(|| self.hits as f64 / reads as f64)
    }
}

/// One window row as [`statistics_since`] reads it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = cache_statistics)]
struct StatRow {
    tenant_id: String,
    cache_type: String,
    hits: i64,
    misses: i64,
    sets: i64,
    deletes: i64,
    errors: i64,
    degraded: i64,
    raw_bytes: i64,
    stored_bytes: i64,
    latency_p95_us: i64,
    latency_p99_us: i64,
    compute_spent_ms: i64,
    compute_saved_ms: i64,
    tokens_spent: i64,
    tokens_saved: i64,
    money_spent_micros: i64,
    money_saved_micros: i64,
}

/// Sums per (tenant, cache type) of every window starting at or after `since`, sorted by tenant and type.
///
/// # Errors
/// [`ModelError::Query`].
pub fn statistics_since(
    db: &mut Db,
    since: NaiveDateTime,
) -> Result<Vec<StatisticsSummary>, ModelError> {
    use cache_statistics::dsl as s;
    let rows: Vec<StatRow> = s::cache_statistics
        .filter(s::window_start.ge(since))
        .select(StatRow::as_select())
        .load(db)?;
    let mut by_key: BTreeMap<(String, String), StatisticsSummary> = BTreeMap::new();
    for r in rows {
        let e = by_key
            .entry((r.tenant_id.clone(), r.cache_type.clone()))
            .or_insert_with(|| StatisticsSummary {
                tenant_id: r.tenant_id,
                cache_type: r.cache_type,
                ..StatisticsSummary::default()
            });
        e.hits += r.hits;
        e.misses += r.misses;
        e.sets += r.sets;
        e.deletes += r.deletes;
        e.errors += r.errors;
        e.degraded += r.degraded;
        e.raw_bytes += r.raw_bytes;
        e.stored_bytes += r.stored_bytes;
        e.max_p95_us = e.max_p95_us.max(r.latency_p95_us);
        e.max_p99_us = e.max_p99_us.max(r.latency_p99_us);
        e.compute_spent_ms += r.compute_spent_ms;
        e.compute_saved_ms += r.compute_saved_ms;
        e.tokens_spent += r.tokens_spent;
        e.tokens_saved += r.tokens_saved;
        e.money_spent_micros += r.money_spent_micros;
        e.money_saved_micros += r.money_saved_micros;
    }
    Ok(by_key.into_values().collect())
}

/// Enabled rules for an event type that apply to `tenant` (rules for every tenant included); with no tenant (a
/// global event), only the rules for every tenant.
///
/// # Errors
/// [`ModelError::Query`].
pub fn invalidation_rules(
    db: &mut Db,
    event_type: &str,
    tenant: Option<&str>,
) -> Result<Vec<InvalidationRule>, ModelError> {
    use cache_invalidation_rules::dsl as r;
    let query = r::cache_invalidation_rules
        .filter(r::event_type.eq(event_type))
        .filter(r::enabled.eq(true))
        .order(r::id.asc())
        .select(InvalidationRule::as_select());
    Ok(match tenant {
        Some(t) => query
            .filter(r::tenant_id.is_null().or(r::tenant_id.eq(t)))
            .load(db)?,
        None => query.filter(r::tenant_id.is_null()).load(db)?,
    })
}

/// Every event type an invalidation rule of `tenant` or of every tenant (no tenant) names, enabled or not:
/// sorted, once each — what such an event may be called besides the built-in ones. Other tenants' rules are not read.
///
/// # Errors
/// [`ModelError::Query`].
pub fn rule_event_types(db: &mut Db, tenant: Option<&str>) -> Result<Vec<String>, ModelError> {
    use cache_invalidation_rules::dsl as r;
    // Another tenant's rules are its own business: their event names are neither known nor suggested here.
    let names: Vec<String> = match tenant {
        Some(t) => r::cache_invalidation_rules
            .filter(r::tenant_id.is_null().or(r::tenant_id.eq(t)))
            .select(r::event_type)
            .load(db)?,
        None => r::cache_invalidation_rules
            .filter(r::tenant_id.is_null())
            .select(r::event_type)
            .load(db)?,
    };
    Ok(names
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect())
}

/// One statistics flush: everything the recorder writes at once.
#[derive(Debug, Clone, Default)]
pub struct FlushBatch {
    /// Unique per batch, and the same on every retry of it.
    pub flush_id: String,
    /// Statistics deltas.
    pub statistics: Vec<StatisticsDelta>,
    /// Per-operation deltas.
    pub performance: Vec<PerformanceDelta>,
    /// Events.
    pub events: Vec<EventRecord>,
    /// Health rows.
    pub health: Vec<HealthRow>,
}

/// Applies a flush exactly once: in one transaction, the batch is written and its id recorded; a batch whose
/// id is already recorded (an earlier attempt committed, but its reply was lost) is not written again. Ids
/// older than a week are pruned. Returns whether this call wrote the batch.
///
/// # Errors
/// [`ModelError::Query`]; nothing is written when any part fails.
pub fn apply_flush(db: &mut Db, batch: &FlushBatch) -> Result<bool, ModelError> {
    use cache_recorder_flushes::dsl as f;
    db.transaction::<_, ModelError, _>(|db| {
        let seen: i64 = f::cache_recorder_flushes
            .filter(f::flush_id.eq(&batch.flush_id))
            .count()
            .get_result(db)?;
        if seen > 0 {
            return Ok(false);
        }
        upsert_statistics(db, &batch.statistics)?;
        upsert_performance(db, &batch.performance)?;
        insert_event(db, &batch.events)?;
        for row in &batch.health {
            insert_health(db, row)?;
        }
        let now = chrono::Utc::now().naive_utc();
        diesel::insert_into(f::cache_recorder_flushes)
            .values((f::flush_id.eq(&batch.flush_id), f::applied_at.eq(now)))
            .execute(db)?;
        diesel::delete(
            f::cache_recorder_flushes.filter(f::applied_at.lt(now - chrono::Duration::days(7))),
        )
        .execute(db)?;
        Ok(true)
    })
}
