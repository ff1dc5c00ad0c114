//! The warming schedule of a running deployment: each process's document reads are added to the shared access
//! history (`cache_access_history`, summed over every replica; [`flush_accesses`]); a server keeps hot
//! documents alive every `warming.interval` and runs the due jobs of `cache_warmup_jobs` ([`start`]) —
//! `scheduled` (reference data from `warming.reference_file` or the `cache_reference_data` table),
//! `frequency_based` and `predictive` (documents recomputed from `warming.documents_dir` as the policy decides,
//! within the budget) — each due run claimed by one replica (`claim_warmup_run`) and recorded on its job row and
//! in the event log. What to warm and how is the processor's [`Warmer`]; this module owns when, and the
//! database rows around it.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use async_trait::async_trait;
use chrono::{NaiveDateTime, Utc};
use fernando_cache_config::{Settings, WarmingSettings};
use fernando_cache_keys::{Scope, TenantId};
use fernando_cache_models::models::WarmupJob;
use fernando_cache_models::{
    AccessCount, Db, ModelError, Severity, access_history, claim_warmup_run, record_accesses,
    record_warmup_run, reference_data, warmup_jobs,
};
use fernando_cache_processor::{
    Budget, DocumentFolder, DocumentHistory, DocumentProcessor, ReferenceSource, RefreshCost,
    WarmPolicy, Warmer,
};
use tokio::task::JoinHandle;

use crate::recorder::Recorder;

/// Reference data from a JSON file: an object `{"key": value, …}`.
struct ReferenceFile(PathBuf);

/// Most bytes a reference data file may have.
const MAX_REFERENCE_FILE: u64 = 16 << 20;

#[async_trait]
impl ReferenceSource for ReferenceFile {
    async fn load(&self) -> Result<Vec<(String, serde_json::Value)>, String> {
        let path = &self.0;
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        if len > MAX_REFERENCE_FILE {
            return Err(format!(
                "{}: {len} bytes, more than the {MAX_REFERENCE_FILE} a reference file may have",
                path.display()
            ));
        }
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not a JSON object of key → value ({e})", path.display()))?;
        Ok(map.into_iter().collect())
    }
}

/// Reference data from the `cache_reference_data` table: one tenant's rows, or the global ones.
struct ReferenceTable {
    url: String,
    tenant: Option<String>,
}

#[async_trait]
impl ReferenceSource for ReferenceTable {
    async fn load(&self) -> Result<Vec<(String, serde_json::Value)>, String> {
        let (url, tenant) = (self.url.clone(), self.tenant.clone());
        let rows = blocking(move || {
            Db::open(&url).and_then(|mut db| reference_data(&mut db, tenant.as_deref()))
        })
        .await
        .map_err(|e| format!("reference data could not be read: {e}"))?;
        rows.into_iter()
            .map(|(k, v)| {
                serde_json::from_str(&v)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| format!("reference data {k:?} is not JSON: {e}"))
            })
            .collect()
    }
}

/// Why database work of the schedule failed; only ever logged, or written into a job's status line.
#[derive(Debug, thiserror::Error)]
enum DbTaskError {
    #[error(transparent)]
    Database(#[from] ModelError),
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs database work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
) -> Result<T, DbTaskError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

fn seconds(at: NaiveDateTime) -> u64 {
    u64::try_from(at.and_utc().timestamp()).unwrap_or(0)
}

/// Adds the reads `processor` saw since the last call to the shared history (the database at `url`), in
/// buckets of `warming.history_bucket`. Never fails: reads that could not be written are given back to
/// `processor` for the next call, and the failure is logged.
pub async fn flush_accesses(processor: &DocumentProcessor, url: &str, warming: &WarmingSettings) {
    let (reads, dropped) = processor.drain_accesses(warming.history_bucket);
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "reads not added to the access history (too many pending)"
        );
    }
    if reads.is_empty() {
        return;
    }
    let rows: Vec<AccessCount> = reads
        .iter()
        .map(|r| AccessCount {
            tenant_id: r.tenant.as_str().to_owned(),
            doc_key: r.doc_key.clone(),
            fingerprint: r.fingerprint.to_string(),
            bucket_start: chrono::DateTime::from_timestamp(
                i64::try_from(r.bucket_start).unwrap_or(i64::MAX),
                0,
            )
            .unwrap_or_default()
            .naive_utc(),
            reads: i64::from(r.reads),
            cost_ms: i64::try_from(r.cost.compute_ms).unwrap_or(i64::MAX),
            cost_micros: i64::try_from(r.cost.money_micros).unwrap_or(i64::MAX),
        })
        .collect();
    let u = url.to_owned();
    if let Err(e) = blocking(move || {
        let mut db = Db::reuse(&u)?;
        let written = record_accesses(&mut db, &rows);
        // Put back only when it worked: a failed connection may be the broken part.
        if written.is_ok() {
            db.put_back(&u);
        }
        written
    })
    .await
    {
        // One transaction, so nothing of it was written (unless the commit succeeded and only its reply was
        // lost: then these reads count twice, which only ranks a document higher for warming). They wait for
        // the next flush.
        tracing::warn!(
            error = %e,
            reads = reads.len(),
            "the access history could not be written; kept for the next flush"
        );
        processor.restore_accesses(reads);
    }
}

/// What a job run needs besides the job.
struct Jobs {
    warmer: Warmer,
    url: String,
    warming: WarmingSettings,
    folder: Option<Arc<DocumentFolder>>,
    recorder: Option<Arc<Recorder>>,
}

/// Starts the warming task on the current runtime: every `warming.interval` it keeps `processor`'s hot
/// documents alive and, with a statistics database (`database_url`), flushes the reads to the shared history
/// and runs the due warmup jobs; runs and refreshes are announced through `recorder`'s event log when there is
/// one. The task runs until aborted (or the runtime ends).
pub fn start(
    settings: &Settings,
    processor: DocumentProcessor,
    database_url: Option<String>,
    recorder: Option<Arc<Recorder>>,
) -> JoinHandle<()> {
    let warmer = Warmer::new(processor.clone(), settings.warming.min_hits);
    let interval = settings.warming.interval;
    let folder = settings.warming.documents_dir.as_ref().map(|dir| {
        Arc::new(DocumentFolder::new(
            dir,
            settings.processor.max_document_bytes,
        ))
    });
    let jobs = database_url.map(|url| Jobs {
        warmer: warmer.clone(),
        url,
        warming: settings.warming.clone(),
        folder,
        recorder: recorder.clone(),
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            if let Some(jobs) = &jobs {
                flush_accesses(&processor, &jobs.url, &jobs.warming).await;
                jobs.run_due().await;
            }
            tick.tick().await;
            let report = warmer.warm_hot().await;
            if report.refreshed > 0
                && let Some(r) = &recorder
            {
                r.event(
                    "warmup.hot_documents",
                    Severity::Info,
                    None,
                    Some("doc_hash"),
                    format!(
                        "refreshed {} of {} entries",
                        report.refreshed, report.checked
                    ),
                );
            }
        }
    })
}

impl Jobs {
    async fn run_due(&self) {
        let u = self.url.clone();
        let jobs =
            match blocking(move || Db::open(&u).and_then(|mut db| warmup_jobs(&mut db))).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "warmup jobs could not be read");
                    return;
                }
            };
        let now = Utc::now().naive_utc();
        for job in jobs {
            if !job.enabled || job.next_run_at.is_some_and(|at| at > now) {
                continue;
            }
            // One replica runs each due run: the one whose claim moves `next_run_at` first.
            let next = now + chrono::Duration::seconds(i64::from(job.interval_seconds.max(1)));
            let (u, id, seen) = (self.url.clone(), job.id, job.next_run_at);
            match blocking(move || {
                Db::open(&u).and_then(|mut db| claim_warmup_run(&mut db, id, seen, next))
            })
            .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(job = job.name, error = %e, "warmup job not claimed");
                    continue;
                }
            }
            let (status, warmed) = self.run(&job, now).await;
            let (u, id, st) = (self.url.clone(), job.id, status.clone());
            let warmed_rows = i64::try_from(warmed).unwrap_or(i64::MAX);
            if let Err(e) = blocking(move || {
                Db::open(&u)
                    .and_then(|mut db| record_warmup_run(&mut db, id, now, &st, warmed_rows, next))
            })
            .await
            {
                tracing::warn!(job = job.name, error = %e, "warmup run could not be recorded");
            }
            if let Some(r) = &self.recorder {
                r.event(
                    "warmup.run",
                    Severity::Info,
                    job.tenant_id.as_deref(),
                    Some(&job.cache_type),
                    format!("{} ({}): {status}", job.name, job.strategy),
                );
            }
            tracing::info!(
                job = job.name,
                strategy = job.strategy,
                status,
                "warmup job ran"
            );
        }
    }

    /// Runs one job: its status line and how many keys it warmed.
    async fn run(&self, job: &WarmupJob, now: NaiveDateTime) -> (String, u64) {
        let tenant = match job.tenant_id.as_deref().map(TenantId::new).transpose() {
            Ok(t) => t,
            Err(e) => return (format!("skipped: tenant: {e}"), 0),
        };
        match (job.strategy.as_str(), job.cache_type.as_str()) {
            ("scheduled", "reference_data") => {
                let scope = tenant.map_or(Scope::Global, Scope::Tenant);
                let source: Box<dyn ReferenceSource> = match &self.warming.reference_file {
                    Some(path) => Box::new(ReferenceFile(path.clone())),
                    None => Box::new(ReferenceTable {
                        url: self.url.clone(),
                        tenant: job.tenant_id.clone(),
                    }),
                };
                match self.warmer.warm_reference(scope, source.as_ref()).await {
                    Ok(r) => (
                        format!("ok: {} of {} keys", r.refreshed, r.checked),
                        r.refreshed,
                    ),
                    Err(e) => (format!("failed: {e}"), 0),
                }
            }
            ("frequency_based" | "predictive", "doc_hash") => {
                let Some(folder) = &self.folder else {
                    return ("skipped: warming.documents_dir is not set, so no document can be read again".to_owned(), 0);
                };
                let w = &self.warming;
                let policy = if job.strategy == "predictive" {
                    WarmPolicy::Predictive {
                        half_life: w.half_life,
                        periods: w.periods.clone(),
                        min_probability: w.min_probability,
                    }
                } else {
                    WarmPolicy::FrequencyBased {
                        half_life: w.half_life,
                    }
                };
                let since = now
                    - chrono::Duration::from_std(w.history_window)
                        .unwrap_or(chrono::Duration::days(14));
                let (u, t) = (self.url.clone(), job.tenant_id.clone());
                let rows = match blocking(move || {
                    Db::open(&u).and_then(|mut db| access_history(&mut db, t.as_deref(), since))
                })
                .await
                {
                    Ok(rows) => rows,
                    Err(e) => {
                        return (
                            format!("failed: the access history could not be read: {e}"),
                            0,
                        );
                    }
                };
                let history = documents(rows);
                let f = folder.clone();
                let indexed = tokio::task::spawn_blocking(move || f.rescan())
                    .await
                    .unwrap_or(0);
                let budget = Budget {
                    ms: w.budget_ms,
                    micros: w.budget_micros(),
                };
                let r = self
                    .warmer
                    .warm_documents(&policy, &history, folder, w.horizon, budget)
                    .await;
                (
                    format!(
                        "ok: {} of {} documents recomputed ({} ms), {} not in the folder of {indexed}",
                        r.refreshed, r.checked, r.spent_ms, r.not_found
                    ),
                    r.refreshed,
                )
            }
            (strategy, cache_type) => (
                format!(
                    "skipped: a {strategy} job cannot warm {cache_type} (scheduled warms reference_data; frequency_based and predictive warm doc_hash)"
                ),
                0,
            ),
        }
    }
}

/// The history rows grouped per (tenant, document), in bucket order.
fn documents(rows: Vec<AccessCount>) -> Vec<DocumentHistory> {
    let mut by_doc: BTreeMap<(String, String), DocumentHistory> = BTreeMap::new();
    for row in rows {
        let (Ok(tenant), Ok(fingerprint)) =
            (TenantId::new(&row.tenant_id), row.fingerprint.parse())
        else {
            continue;
        };
        let d = by_doc
            .entry((row.tenant_id.clone(), row.doc_key.clone()))
            .or_insert_with(|| DocumentHistory {
                tenant,
                doc_key: row.doc_key.clone(),
                fingerprint,
                reads: Vec::new(),
                cost: RefreshCost::default(),
            });
        d.reads.push((
            seconds(row.bucket_start),
            u32::try_from(row.reads).unwrap_or(u32::MAX),
        ));
        d.cost.ms = d.cost.ms.max(u64::try_from(row.cost_ms).unwrap_or(0));
        d.cost.micros = d
            .cost
            .micros
            .max(u64::try_from(row.cost_micros).unwrap_or(0));
    }
    by_doc.into_values().collect()
}
