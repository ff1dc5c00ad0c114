//! A tenant's rows, erased (issue 31, item 4): every table with a tenant column, in one transaction, counted
//! table by table, with the audit event that says so written in the same transaction. The tables without a
//! tenant column hold nothing of one tenant: `cache_performance_metrics` is per operation and cache type over
//! every tenant, `cache_health_status` and `cache_recorder_flushes` are the deployment's; the rollups summed
//! over every tenant (`tenant_id` = [`crate::ALL_TENANTS`]) keep their sums, which name no tenant.
//!
//! Other processes may still hold what they recorded of the tenant before it was erased (a replica's recorder
//! flushes every few seconds, its read history with it). So the erasure leaves a tombstone —
//! `cache_tenant_erasures`: the tenant and when — and every writer of rows naming tenants reads the tombstones
//! inside its own transaction and drops what it recorded of an erased tenant before the erasure
//! ([`hold_off_erasures`]). The two are ordered: on PostgreSQL writers hold a shared transaction-level advisory
//! lock that the erasure takes exclusively; on SQLite both hold the one write lock from their first statement.
//! Windows are stamped by the recording process's clock and the tombstone by the erasing one's: clocks kept in
//! step (NTP) are assumed, as the statistics windows already assume. A row is judged by its window's (or read
//! history bucket's) start, so the window that holds the erasure is dropped whole, what was done in it after
//! the erasure included (up to `statistics.window`, and `warming.history_bucket` of read history): a row that
//! cannot say which side of the erasure it is from is not written back.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::{connection::SimpleConnection, prelude::*};

use crate::{
    Db, EventRecord, ModelError,
    schema::{
        cache_access_history, cache_event_log, cache_invalidation_rules,
        cache_pending_invalidations, cache_reference_data, cache_statistics,
        cache_statistics_rollups, cache_tenant_erasures, cache_warmup_jobs,
    },
};

/// The PostgreSQL advisory lock that orders erasures against writers of rows naming tenants: each writer holds
/// it shared for its transaction, an erasure exclusively for its own ("FCERASE" in ASCII).
const ERASURE_LOCK: i64 = 0x0046_4345_5241_5345;

/// When each tenant erased since some moment was last erased.
#[derive(Debug, Default)]
pub(crate) struct Tombstones(HashMap<String, NaiveDateTime>);

impl Tombstones {
    /// Whether what `tenant` did at `at` (a window's or a bucket's start, an event's moment) was recorded before
    /// an erasure of the tenant, and so must not be written.
    pub(crate) fn covers(&self, tenant: &str, at: NaiveDateTime) -> bool {
        self.0.get(tenant).is_some_and(|erased| at <= *erased)
    }
}

/// `rows` without those recorded of a tenant before its last erasure (`stamp`: the tenant a row names and the
/// moment it was recorded at, or `None` for a row that names none). Call it inside the transaction that writes
/// the rows: from here on no erasure commits until that transaction ends (see [`hold_off_erasures`]).
///
/// # Errors
/// [`ModelError::Query`].
pub(crate) fn without_erased<'a, T: Clone>(
    db: &mut Db,
    rows: &'a [T],
    stamp: impl Fn(&T) -> Option<(&str, NaiveDateTime)>,
) -> Result<std::borrow::Cow<'a, [T]>, ModelError> {
    use std::borrow::Cow;
    let Some(since) = rows.iter().filter_map(|r| stamp(r).map(|(_, at)| at)).min() else {
        return Ok(Cow::Borrowed(rows));
    };
    let erased = hold_off_erasures(db, since)?;
    if erased.0.is_empty() {
        return Ok(Cow::Borrowed(rows));
    }
    let kept: Vec<T> = rows
        .iter()
        .filter(|r| !stamp(r).is_some_and(|(tenant, at)| erased.covers(tenant, at)))
        .cloned()
        .collect();
    Ok(Cow::Owned(kept))
}

/// Inside a transaction that writes rows naming tenants (a recorder's flush, the read history): waits for an
/// erasure being committed and keeps any other from committing until the transaction ends, then reads the
/// tenants erased at or after `since` (the oldest moment among the rows to write), whose earlier rows the caller
/// drops.
///
/// # Errors
/// [`ModelError::Query`].
pub(crate) fn hold_off_erasures(
    db: &mut Db,
    since: NaiveDateTime,
) -> Result<Tombstones, ModelError> {
    match db {
        Db::Postgresql(conn) => conn.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock_shared({ERASURE_LOCK})"
        ))?,
        // A write first: SQLite's one write lock is the transaction's from here on, so no erasure commits
        // between the read below and the rows written.
        Db::Sqlite(conn) => conn.batch_execute("DELETE FROM cache_tenant_erasures WHERE 0")?,
    }
    let rows: Vec<(String, NaiveDateTime)> = cache_tenant_erasures::table
        .filter(cache_tenant_erasures::erased_at.ge(since))
        .select((
            cache_tenant_erasures::tenant_id,
            cache_tenant_erasures::erased_at,
        ))
        .load(db)?;
    Ok(Tombstones(rows.into_iter().collect()))
}

/// Rows [`erase_tenant`] removed, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantRows {
    /// `cache_statistics`.
    pub statistics: usize,
    /// `cache_statistics_rollups` of the tenant (not the all-tenant sums).
    pub rollups: usize,
    /// `cache_access_history`: the warmer's read history.
    pub access_history: usize,
    /// `cache_warmup_jobs` of the tenant.
    pub warmup_jobs: usize,
    /// `cache_event_log` rows about the tenant.
    pub events: usize,
    /// `cache_invalidation_rules` of the tenant (rules for every tenant stay).
    pub invalidation_rules: usize,
    /// `cache_pending_invalidations` of the tenant.
    pub pending_invalidations: usize,
    /// `cache_reference_data` of the tenant (the shared reference data stays).
    pub reference_data: usize,
}

impl TenantRows {
    /// Each table and the rows removed from it, in one order.
    pub fn by_table(&self) -> [(&'static str, usize); 8] {
        [
            ("cache_statistics", self.statistics),
            ("cache_statistics_rollups", self.rollups),
            ("cache_access_history", self.access_history),
            ("cache_warmup_jobs", self.warmup_jobs),
            ("cache_event_log", self.events),
            ("cache_invalidation_rules", self.invalidation_rules),
            ("cache_pending_invalidations", self.pending_invalidations),
            ("cache_reference_data", self.reference_data),
        ]
    }

    /// Rows removed, of every table.
    pub fn total(&self) -> usize {
        self.by_table().iter().map(|(_, n)| n).sum()
    }
}

/// Removes every row of `tenant` from the tables with a tenant column, leaves its tombstone (so that no other
/// process writes back what it recorded of the tenant before now) and appends the event `audit` makes of the
/// counts, all in one transaction: either the tenant is gone and the audit says so, or nothing changed. The
/// audit event must not name the tenant in its `tenant_id` (an erasure run again would erase its own record);
/// its details may.
///
/// # Errors
/// [`ModelError::Query`]; nothing is removed then.
pub fn erase_tenant(
    db: &mut Db,
    tenant: &str,
    audit: impl FnOnce(&TenantRows) -> EventRecord,
) -> Result<TenantRows, ModelError> {
    // Writers of the tenant's rows finish first, and wait for this transaction (see `hold_off_erasures`).
    let lock = matches!(db, Db::Postgresql(_))
        .then(|| format!("SELECT pg_advisory_xact_lock({ERASURE_LOCK})"));
    per_backend!(db, |conn| conn.transaction::<_, ModelError, _>(|conn| {
        if let Some(lock) = &lock {
            conn.batch_execute(lock)?;
        }
        let erased_at = chrono::Utc::now().naive_utc();
        diesel::insert_into(cache_tenant_erasures::table)
            .values((
                cache_tenant_erasures::tenant_id.eq(tenant),
                cache_tenant_erasures::erased_at.eq(erased_at),
            ))
            .on_conflict(cache_tenant_erasures::tenant_id)
            .do_update()
            .set(cache_tenant_erasures::erased_at.eq(erased_at))
            .execute(conn)?;
        let rows = TenantRows {
            statistics: diesel::delete(
                cache_statistics::table.filter(cache_statistics::tenant_id.eq(tenant)),
            )
            .execute(conn)?,
            rollups: diesel::delete(
                cache_statistics_rollups::table
                    .filter(cache_statistics_rollups::tenant_id.eq(tenant)),
            )
            .execute(conn)?,
            access_history: diesel::delete(
                cache_access_history::table.filter(cache_access_history::tenant_id.eq(tenant)),
            )
            .execute(conn)?,
            warmup_jobs: diesel::delete(
                cache_warmup_jobs::table.filter(cache_warmup_jobs::tenant_id.eq(tenant)),
            )
            .execute(conn)?,
            events: diesel::delete(
                cache_event_log::table.filter(cache_event_log::tenant_id.eq(tenant)),
            )
            .execute(conn)?,
            invalidation_rules: diesel::delete(
                cache_invalidation_rules::table
                    .filter(cache_invalidation_rules::tenant_id.eq(tenant)),
            )
            .execute(conn)?,
            pending_invalidations: diesel::delete(
                cache_pending_invalidations::table
                    .filter(cache_pending_invalidations::tenant_id.eq(tenant)),
            )
            .execute(conn)?,
            reference_data: diesel::delete(
                cache_reference_data::table.filter(cache_reference_data::tenant_id.eq(tenant)),
            )
            .execute(conn)?,
        };
        let event = audit(&rows);
        diesel::insert_into(cache_event_log::table)
            .values(std::slice::from_ref(&event))
            .execute(conn)?;
        Ok(rows)
    }))
}
