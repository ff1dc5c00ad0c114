//! What warming reads and writes: the warmup jobs, each document's read history summed over every replica,
//! and the reference data the `scheduled` jobs load.

use chrono::NaiveDateTime;
use diesel::{prelude::*, upsert::excluded};

use crate::{
    Db, ModelError,
    models::WarmupJob,
    schema::{cache_access_history, cache_reference_data, cache_warmup_jobs},
};

/// Every warmup job, highest priority first.
///
/// # Errors
/// [`ModelError::Query`].
pub fn warmup_jobs(db: &mut Db) -> Result<Vec<WarmupJob>, ModelError> {
    use cache_warmup_jobs::dsl as w;
    Ok(w::cache_warmup_jobs
        .order((w::priority.desc(), w::id.asc()))
        .select(WarmupJob::as_select())
        .load(db)?)
}

/// Claims a warmup job's due run for this replica: moves its `next_run_at` from the value the replica read
/// (`seen`) to `next`, only if no other replica moved it first. Of several replicas finding the job due at once,
/// exactly one gets `true` and runs it (a replica that dies mid-run leaves the job for its next interval).
///
/// # Errors
/// [`ModelError::Query`].
pub fn claim_warmup_run(
    db: &mut Db,
    job_id: i64,
    seen: Option<NaiveDateTime>,
    next: NaiveDateTime,
) -> Result<bool, ModelError> {
    use cache_warmup_jobs::dsl as w;
    let target = w::cache_warmup_jobs.filter(w::id.eq(job_id));
    let changed = match seen {
        Some(at) => diesel::update(target.filter(w::next_run_at.eq(at)))
            .set(w::next_run_at.eq(Some(next)))
            .execute(db)?,
        None => diesel::update(target.filter(w::next_run_at.is_null()))
            .set(w::next_run_at.eq(Some(next)))
            .execute(db)?,
    };
    Ok(changed == 1)
}

/// Records a warmup job's run: when, the outcome, the keys it warmed (added to the total) and when it is due
/// next.
///
/// # Errors
/// [`ModelError::Query`].
pub fn record_warmup_run(
    db: &mut Db,
    job_id: i64,
    ran_at: NaiveDateTime,
    status: &str,
    keys_warmed: i64,
    next_run_at: NaiveDateTime,
) -> Result<(), ModelError> {
    use cache_warmup_jobs::dsl as w;
    diesel::update(w::cache_warmup_jobs.filter(w::id.eq(job_id)))
        .set((
            w::last_run_at.eq(Some(ran_at)),
            w::last_status.eq(Some(status)),
            w::keys_warmed.eq(w::keys_warmed + keys_warmed),
            w::next_run_at.eq(Some(next_run_at)),
        ))
        .execute(db)?;
    Ok(())
}

/// Reads of one document in one history bucket, as one replica counted them (added to what others counted).
#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable, Selectable)]
#[diesel(table_name = cache_access_history)]
pub struct AccessCount {
    /// Tenant label.
    pub tenant_id: String,
    /// The document's result key (`doc_hash`).
    pub doc_key: String,
    /// The document's SHA-256, hex: how the warmer finds it again.
    pub fingerprint: String,
    /// Start of the bucket (UTC).
    pub bucket_start: NaiveDateTime,
    /// Reads in the bucket.
    pub reads: i64,
    /// What computing the document last cost, engine milliseconds (the larger figure wins).
    pub cost_ms: i64,
    /// What it last cost in money, millionths of the currency unit (the larger figure wins).
    pub cost_micros: i64,
}

/// Adds reads to their buckets, in one transaction: several replicas counting the same document in the same
/// bucket add up. Rows are written in key order, so replicas flushing at once cannot deadlock.
///
/// # Errors
/// [`ModelError::Query`]; nothing is written when any row fails.
pub fn record_accesses(db: &mut Db, counts: &[AccessCount]) -> Result<(), ModelError> {
    use cache_access_history::dsl as a;
    if counts.is_empty() {
        return Ok(());
    }
    db.transaction::<_, ModelError, _>(|db| {
        // Not reads of a tenant that another process erased since they were counted (see erasure.rs).
        let counts = &*crate::erasure::without_erased(db, counts, |c| {
            Some((c.tenant_id.as_str(), c.bucket_start))
        })?;
        let ordered = crate::db::in_lock_order(counts, |c| {
            (c.tenant_id.clone(), c.doc_key.clone(), c.bucket_start)
        });
        per_backend!(db, |conn| for c in &ordered {
            diesel::insert_into(a::cache_access_history)
                .values(*c)
                .on_conflict((a::tenant_id, a::doc_key, a::bucket_start))
                .do_update()
                .set((
                    a::reads.eq(a::reads + excluded(a::reads)),
                    a::cost_ms.eq(diesel::dsl::case_when(
                        excluded(a::cost_ms).gt(a::cost_ms),
                        excluded(a::cost_ms),
                    )
                    .otherwise(a::cost_ms)),
                    a::cost_micros.eq(diesel::dsl::case_when(
                        excluded(a::cost_micros).gt(a::cost_micros),
                        excluded(a::cost_micros),
                    )
                    .otherwise(a::cost_micros)),
                ))
                .execute(conn)?;
        });
        Ok(())
    })
}

/// The read history since `since`, of one tenant or of all, ordered by tenant, document and bucket.
///
/// # Errors
/// [`ModelError::Query`].
pub fn access_history(
    db: &mut Db,
    tenant: Option<&str>,
    since: NaiveDateTime,
) -> Result<Vec<AccessCount>, ModelError> {
    use cache_access_history::dsl as a;
    let mut q = a::cache_access_history
        .filter(a::bucket_start.ge(since))
        .into_boxed();
    if let Some(t) = tenant {
        q = q.filter(a::tenant_id.eq(t.to_owned()));
    }
    Ok(q.order((a::tenant_id, a::doc_key, a::bucket_start))
        .select(AccessCount::as_select())
        .load(db)?)
}

/// The reference data of one tenant (`Some`) or the global rows (`None`): key and JSON value.
///
/// # Errors
/// [`ModelError::Query`].
pub fn reference_data(
    db: &mut Db,
    tenant: Option<&str>,
) -> Result<Vec<(String, String)>, ModelError> {
    use cache_reference_data::dsl as r;
    let q = r::cache_reference_data.select((r::key, r::value));
    Ok(match tenant {
        Some(t) => q
            .filter(r::tenant_id.eq(t.to_owned()))
            .order(r::key)
            .load(db)?,
        None => q.filter(r::tenant_id.is_null()).order(r::key).load(db)?,
    })
}
