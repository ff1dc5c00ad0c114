//! Erasing a tenant in one step (issue 31, item 4): its keys on the cache backend (every primary of a
//! cluster; [`fernando_cache_store::Admin::erase_tenant`]), its rows in the statistics database (every table
//! that names it, one transaction; [`fernando_cache_models::erase_tenant`]), and what this process still
//! holds of it for those (the recorder's unwritten rows, the pipeline's unwritten reads) — then one audit
//! event that says what was removed, with counts per place, and nothing of what it was.
//!
//! The order: this process forgets first (so nothing of the tenant is written after), then the cache, then the
//! database with the audit event in its transaction. If the cache cannot be erased, nothing else is and no
//! audit claims it; if the database cannot, the cache is already erased and the error says so: erasing again
//! is safe, and finds what is left.

use fernando_cache_keys::TenantId;
use fernando_cache_models::{Db, EventRecord, ModelError, Severity, TenantRows};
use fernando_cache_processor::DocumentProcessor;
use fernando_cache_store::{Erasure, Store, StoreError};

use crate::recorder::Recorder;

/// The event type of the audit record.
pub const AUDIT_EVENT: &str = "tenant.erased";

/// What else to erase beside the cache, built with its methods: `EraseOptions::default().database(url)`.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct EraseOptions<'a> {
    /// The statistics database, when statistics are on.
    pub database_url: Option<&'a str>,
    /// This process's recorder, whose unwritten rows of the tenant are dropped.
    pub recorder: Option<&'a Recorder>,
    /// This process's pipeline, whose unwritten reads of the tenant are dropped.
    pub processor: Option<&'a DocumentProcessor>,
}

impl<'a> EraseOptions<'a> {
    /// Erases the tenant's rows from the statistics database at `url` too, and writes the audit event there.
    #[must_use]
    pub fn database(self, url: &'a str) -> Self {
        EraseOptions {
            database_url: Some(url),
            ..self
        }
    }

    /// Drops the tenant's rows `recorder` has not written yet.
    #[must_use]
    pub fn recorder(self, recorder: &'a Recorder) -> Self {
        EraseOptions {
            recorder: Some(recorder),
            ..self
        }
    }

    /// Drops the tenant's reads `processor` has not added to the access history yet.
    #[must_use]
    pub fn processor(self, processor: &'a DocumentProcessor) -> Self {
        EraseOptions {
            processor: Some(processor),
            ..self
        }
    }
}

/// What an erasure removed, per place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Erased {
    /// Keys on the cache backend, by kind.
    pub cache: Erasure,
    /// Rows of the statistics database, per table; `None` without a database (statistics off).
    pub database: Option<TenantRows>,
}

impl Erased {
    /// What was removed, as the audit event and the commands' JSON say it (counts only, never data).
    pub fn json(&self, tenant: &TenantId) -> serde_json::Value {
        let c = &self.cache;
        serde_json::json!({
            "tenant": tenant.as_str(),
            "cache": {
                "entries": c.entries,
                "generations": c.generations,
                "leases": c.leases,
                "quota": c.quota,
            },
            "database": self.database.map(|rows| {
                rows.by_table()
                    .iter()
                    .map(|(table, n)| ((*table).to_owned(), serde_json::Value::from(*n)))
                    .collect::<serde_json::Map<_, _>>()
            }),
        })
    }

    /// One line for a person: what was removed, in numbers.
    pub fn summary(&self) -> String {
        let c = &self.cache;
        let keys = format!(
            "{} cache keys ({} entries, {} generations, {} leases, {} quota keys)",
            c.total(),
            c.entries,
            c.generations,
            c.leases,
            c.quota
        );
        match &self.database {
            Some(rows) => format!("{keys} and {} statistics rows", rows.total()),
            None => format!("{keys}; no statistics database"),
        }
    }
}

/// Why an erasure stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErasureError {
    /// The cache backend could not take it; the database was not touched.
    #[error("the tenant's cache data could not be erased: {0}")]
    Cache(#[source] StoreError),
    /// The database could not take it, after the cache was erased (its counts are kept here).
    #[error("the tenant's cache data was erased ({}), its statistics rows were not: {source}", .cache.total())]
    Database {
        /// What was erased from the cache.
        cache: Erasure,
        /// Why the database did not take it.
        #[source]
        source: ModelError,
    },
}

/// Erases every trace of `tenant`: its keys on the cache (through `store`), what `options` name (its rows in
/// the statistics database, what this process's recorder and pipeline hold of it), and writes one audit event
/// ([`AUDIT_EVENT`], no tenant in its tenant column, the counts in its details) — in the database's
/// transaction, or to the log without a database. Running it again finds nothing and succeeds.
///
/// # Errors
/// [`ErasureError::Cache`] when the backend cannot take it (nothing else was erased),
/// [`ErasureError::Database`] when the database cannot (the cache was): either way, erasing again is safe.
pub async fn erase_tenant(
    store: &Store,
    tenant: &TenantId,
    options: EraseOptions<'_>,
) -> Result<Erased, ErasureError> {
    if let Some(processor) = options.processor {
        processor.forget_tenant(tenant);
    }
    if let Some(recorder) = options.recorder {
        recorder.forget_tenant(tenant.as_str()).await;
    }
    let cache = store
        .admin()
        .erase_tenant(tenant)
        .await
        .map_err(ErasureError::Cache)?;
    let Some(url) = options.database_url else {
        let erased = Erased {
            cache,
            database: None,
        };
        tracing::info!(
            event = AUDIT_EVENT,
            details = %erased.json(tenant),
            "tenant erased (no statistics database to record it in)"
        );
        return Ok(erased);
    };
    let url = url.to_owned();
    let t = tenant.clone();
    let database = tokio::task::spawn_blocking(move || {
        let mut db = Db::open(&url)?;
        fernando_cache_models::erase_tenant(&mut db, t.as_str(), |rows| {
            let erased = Erased {
                cache,
                database: Some(*rows),
            };
            audit(&t, &erased)
        })
    })
    .await
    .unwrap_or_else(|e| {
        Err(ModelError::Migration(format!(
            "the erasure's database task failed: {e}"
        )))
    })
    .map_err(|source| ErasureError::Database { cache, source })?;
    let erased = Erased {
        cache,
        database: Some(database),
    };
    tracing::info!(summary = %erased.summary(), "tenant erased");
    Ok(erased)
}

/// The audit record: which tenant, what was removed where — counts, never data.
fn audit(tenant: &TenantId, erased: &Erased) -> EventRecord {
    crate::health::event(
        AUDIT_EVENT,
        Severity::Info,
        None,
        None,
        &erased.json(tenant).to_string(),
    )
}
