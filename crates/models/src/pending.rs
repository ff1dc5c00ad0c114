//! `cache_pending_invalidations`: delayed invalidations as rows, so they survive a restart and run once across
//! replicas. A replica claims due rows with a random claim token (a conditional update: of two replicas racing
//! for a row, the second updates nothing), applies them, and marks them done; a claim older than the stale
//! limit (its replica died mid-way) may be taken over, so a row is applied at least once and, unless a replica
//! dies between applying and finishing, exactly once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::{Db, ModelError, schema::cache_pending_invalidations};

/// A delayed invalidation to schedule.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = cache_pending_invalidations)]
pub struct NewPendingInvalidation {
    /// The rule that asked for it.
    pub rule_name: String,
    /// The event that triggered the rule.
    pub event_type: String,
    /// The tenant; `None` for the global scope.
    pub tenant_id: Option<String>,
    /// The subject the event named, if any.
    pub subject: Option<String>,
    /// The cache type to invalidate.
    pub cache_type: String,
    /// `eager`, `lazy` or `hybrid`.
    pub strategy: String,
    /// When it is to run (UTC).
    pub due_at: NaiveDateTime,
    /// When it was scheduled (UTC).
    pub created_at: NaiveDateTime,
}

/// A claimed delayed invalidation, to apply and then [`finish_invalidation`].
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = cache_pending_invalidations)]
pub struct PendingInvalidation {
    /// Row id.
    pub id: i64,
    /// The rule that asked for it.
    pub rule_name: String,
    /// The event that triggered the rule.
    pub event_type: String,
    /// The tenant; `None` for the global scope.
    pub tenant_id: Option<String>,
    /// The subject the event named, if any.
    pub subject: Option<String>,
    /// The cache type to invalidate.
    pub cache_type: String,
    /// `eager`, `lazy` or `hybrid`.
    pub strategy: String,
    /// When it was due.
    pub due_at: NaiveDateTime,
}

/// Schedules a delayed invalidation.
///
/// # Errors
/// [`ModelError::Query`].
pub fn schedule_invalidation(db: &mut Db, row: &NewPendingInvalidation) -> Result<(), ModelError> {
    diesel::insert_into(cache_pending_invalidations::table)
        .values(row)
        .execute(db)?;
    Ok(())
}

/// Claims up to `limit` invalidations due at `now` that nobody holds (or whose claim is older than
/// `stale_before`), under `claim`, and returns them, earliest first.
///
/// # Errors
/// [`ModelError::Query`].
pub fn claim_due_invalidations(
    db: &mut Db,
    now: NaiveDateTime,
    stale_before: NaiveDateTime,
    claim: &str,
    limit: i64,
) -> Result<Vec<PendingInvalidation>, ModelError> {
    use cache_pending_invalidations::dsl as p;
    let ids: Vec<i64> = p::cache_pending_invalidations
        .filter(p::done_at.is_null())
        .filter(p::due_at.le(now))
        .filter(p::claimed_at.is_null().or(p::claimed_at.lt(stale_before)))
        .order(p::due_at.asc())
        .limit(limit)
        .select(p::id)
        .load(db)?;
    for id in ids {
        // The same condition again, in the update itself: a replica that claimed the row meanwhile wins, and
        // this update changes nothing.
        diesel::update(
            p::cache_pending_invalidations
                .filter(p::id.eq(id))
                .filter(p::done_at.is_null())
                .filter(p::claimed_at.is_null().or(p::claimed_at.lt(stale_before))),
        )
        .set((p::claim.eq(Some(claim)), p::claimed_at.eq(Some(now))))
        .execute(db)?;
    }
    Ok(p::cache_pending_invalidations
        .filter(p::claim.eq(claim))
        .filter(p::done_at.is_null())
        .order(p::due_at.asc())
        .select(PendingInvalidation::as_select())
        .load(db)?)
}

/// Marks a claimed invalidation done; `false` when the claim was lost to another replica meanwhile.
///
/// # Errors
/// [`ModelError::Query`].
pub fn finish_invalidation(
    db: &mut Db,
    id: i64,
    claim: &str,
    now: NaiveDateTime,
) -> Result<bool, ModelError> {
    use cache_pending_invalidations::dsl as p;
    let n = diesel::update(
        p::cache_pending_invalidations
            .filter(p::id.eq(id))
            .filter(p::claim.eq(claim)),
    )
    .set(p::done_at.eq(Some(now)))
    .execute(db)?;
    Ok(n == 1)
}

/// Invalidations not yet done (scheduled or claimed), for operators and tests.
///
/// # Errors
/// [`ModelError::Query`].
pub fn pending_invalidations(db: &mut Db) -> Result<i64, ModelError> {
    use cache_pending_invalidations::dsl as p;
    Ok(p::cache_pending_invalidations
        .filter(p::done_at.is_null())
        .count()
        .get_result(db)?)
}
