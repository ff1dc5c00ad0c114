//! A tenant's rows, erased (issue 31, item 4): every table with a tenant column, in one transaction, counted
//! table by table, with the audit event that says so written in the same transaction. The tables without a
//! tenant column hold nothing of one tenant: `cache_performance_metrics` is per operation and cache type over
//! every tenant, `cache_health_status` and `cache_recorder_flushes` are the deployment's; the rollups summed
//! over every tenant (`tenant_id` = [`crate::ALL_TENANTS`]) keep their sums, which name no tenant.

use diesel::prelude::*;

use crate::{
    Db, EventRecord, ModelError,
    schema::{
        cache_access_history, cache_event_log, cache_invalidation_rules,
        cache_pending_invalidations, cache_reference_data, cache_statistics,
        cache_statistics_rollups, cache_warmup_jobs,
    },
};

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

/// Removes every row of `tenant` from the tables with a tenant column and appends the event `audit` makes of
/// the counts, all in one transaction: either the tenant is gone and the audit says so, or nothing changed. The
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
    per_backend!(db, |conn| conn.transaction::<_, ModelError, _>(|conn| {
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
