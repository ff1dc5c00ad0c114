//! Warming in the server: hot documents refreshed every `processor.warm_interval`, and the scheduled jobs of
//! `cache_warmup_jobs` (reference data at start, then on their interval), each due run claimed by one replica
//! (`claim_warmup_run`) and recorded on its job row and in the event log.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use fernando_cache_config::Settings;
use fernando_cache_keys::{Scope, TenantId};
use fernando_cache_models::{Db, Severity, claim_warmup_run, record_warmup_run, warmup_jobs};
use fernando_cache_ops::recorder::Recorder;
use fernando_cache_processor::{DocumentProcessor, ReferenceSource, Warmer};
use serde_json::json;
use tokio::task::JoinHandle;

/// Built-in reference data: currencies and EU standard VAT rates the extractors and dashboards use.
pub(crate) struct BuiltInReference;

#[async_trait]
impl ReferenceSource for BuiltInReference {
    async fn load(&self) -> Result<Vec<(String, serde_json::Value)>, String> {
        let mut out = Vec::new();
        for (code, name, minor) in [
            ("EUR", "Euro", 2),
            ("USD", "US Dollar", 2),
            ("GBP", "Pound Sterling", 2),
            ("CHF", "Swiss Franc", 2),
            ("JPY", "Yen", 0),
        ] {
            out.push((
                format!("currency:{code}"),
                json!({"name": name, "minor_units": minor}),
            ));
        }
        for (country, rate) in [
            ("AT", 20.0),
            ("BE", 21.0),
            ("DE", 19.0),
            ("ES", 21.0),
            ("FR", 20.0),
            ("IT", 22.0),
            ("NL", 21.0),
            ("PL", 23.0),
            ("SE", 25.0),
        ] {
            out.push((format!("vat_rate:{country}"), json!({"standard": rate})));
        }
        Ok(out)
    }
}

/// Starts the warming task.
pub(crate) fn start(
    settings: &Settings,
    processor: DocumentProcessor,
    database_url: Option<String>,
    recorder: Option<Arc<Recorder>>,
) -> JoinHandle<()> {
    let warmer = Warmer::new(processor, settings.processor.warm_min_hits);
    let interval = settings.processor.warm_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            if let Some(url) = &database_url {
                run_due_jobs(&warmer, url, recorder.as_deref()).await;
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

async fn run_due_jobs(warmer: &Warmer, url: &str, recorder: Option<&Recorder>) {
    let u = url.to_owned();
    let jobs = match tokio::task::spawn_blocking(move || {
        Db::open(&u).and_then(|mut db| warmup_jobs(&mut db))
    })
    .await
    {
        Ok(Ok(jobs)) => jobs,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "warmup jobs could not be read");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "warmup jobs could not be read");
            return;
        }
    };
    let now = Utc::now().naive_utc();
    for job in jobs {
        let due = job.next_run_at.is_none_or(|at| at <= now);
        // Frequency jobs are the hot-document warmer, which runs on its own clock.
        if !job.enabled || !due || job.strategy != "scheduled" || job.cache_type != "reference_data"
        {
            continue;
        }
        let scope = match &job.tenant_id {
            None => Scope::Global,
            Some(t) => match TenantId::new(t) {
                Ok(t) => Scope::Tenant(t),
                Err(e) => {
                    tracing::warn!(job = job.name, error = %e, "warmup job skipped");
                    continue;
                }
            },
        };
        // One replica runs each due run: the one whose claim moves `next_run_at` first.
        let next = now + chrono::Duration::seconds(i64::from(job.interval_seconds.max(60)));
        let (u, id, seen) = (url.to_owned(), job.id, job.next_run_at);
        let claimed = tokio::task::spawn_blocking(move || {
            Db::open(&u).and_then(|mut db| claim_warmup_run(&mut db, id, seen, next))
        })
        .await;
        match claimed {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => continue,
            Ok(Err(e)) => {
                tracing::warn!(job = job.name, error = %e, "warmup job not claimed");
                continue;
            }
            Err(e) => {
                tracing::warn!(job = job.name, error = %e, "warmup job not claimed");
                continue;
            }
        }
        let (status, warmed) = match warmer.warm_reference(scope, &BuiltInReference).await {
            Ok(r) => (
                format!("ok: {} of {} keys", r.refreshed, r.checked),
                r.refreshed,
            ),
            Err(e) => (format!("failed: {e}"), 0),
        };
        let (u, id, st) = (url.to_owned(), job.id, status.clone());
        let recorded = tokio::task::spawn_blocking(move || {
            Db::open(&u).and_then(|mut db| {
                record_warmup_run(
                    &mut db,
                    id,
                    now,
                    &st,
                    i64::try_from(warmed).unwrap_or(i64::MAX),
                    next,
                )
            })
        })
        .await;
        if !matches!(recorded, Ok(Ok(()))) {
            tracing::warn!(job = job.name, "warmup run could not be recorded");
        }
        if let Some(r) = recorder {
            r.event(
                "warmup.run",
                Severity::Info,
                job.tenant_id.as_deref(),
                Some(&job.cache_type),
                format!("{}: {status}", job.name),
            );
        }
        tracing::info!(job = job.name, status, "warmup job ran");
    }
}
