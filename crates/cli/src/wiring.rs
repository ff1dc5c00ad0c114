//! The wiring the commands share: from settings to the statistics database (opened off the runtime, migrated
//! when configured) and to the recorder that feeds it from a store; where the cache and the statistics live,
//! as the commands print it; the document parsers' child process.

use std::time::Duration;

use anyhow::Context;
use fernando_cache_config::{BackendKind, ExposeSecret, Settings};
use fernando_cache_models::{Db, run_pending};
use fernando_cache_ops::{
    health::AlertThresholds,
    recorder::{Recorder, RecorderOptions},
};
use fernando_cache_processor::ParserHost;
use fernando_cache_store::Store;

use crate::output::outln;

/// The hidden command word that makes this program a document parser child: `fernando-cache __parse <request>`
/// parses one HTML or PDF document from stdin under its budget (`processor.parse_memory_bytes`,
/// `parse_timeout`, `max_text_bytes`), so a hostile document costs its child, never the server.
pub(crate) const PARSE_COMMAND: &str = "__parse";

/// Where the pipeline parses HTML and PDF documents: in a child of this very program, one per document.
pub(crate) fn parser_host() -> anyhow::Result<ParserHost> {
    ParserHost::this_program([PARSE_COMMAND])
        .context("finding this program, to parse documents in a child process of it")
}

pub(crate) fn database_url(settings: &Settings) -> anyhow::Result<String> {
    if !settings.statistics.enabled {
        anyhow::bail!(
            "statistics are disabled in the {} profile (statistics.enabled = false)",
            settings.environment
        );
    }
    Ok(settings.statistics.database_url.expose_secret().to_owned())
}

/// Where a command's cache and statistics live, as a person reads them (`process` prints it in its summary,
/// `stats` beside its figures): so that a user sees which files — or which server — a run used, and why a run
/// from another folder, or with other settings, finds what it finds.
#[derive(Debug, Clone)]
pub(crate) struct Whereabouts {
    /// `memory`, `disk` or `redis`.
    pub(crate) backend: &'static str,
    /// The disk backend's file (absolute), the Redis URL (password hidden), or that it is this process's memory.
    pub(crate) cache: String,
    /// The statistics database: a SQLite file (absolute) or the URL (password hidden); `None` when statistics
    /// are off.
    pub(crate) statistics: Option<String>,
}

impl Whereabouts {
    pub(crate) fn of(settings: &Settings) -> Whereabouts {
        let absolute = |path: &str| {
            std::path::absolute(path).map_or_else(|_| path.to_owned(), |p| p.display().to_string())
        };
        let (backend, cache) = match settings.backend {
            BackendKind::Memory => (
                "memory",
                "this process's memory (gone when it exits)".to_owned(),
            ),
            BackendKind::Disk => ("disk", absolute(&settings.disk.path)),
            BackendKind::Redis => ("redis", settings.redis.url.redacted()),
        };
        let statistics = database_url(settings).ok().map(|url| {
            match fernando_cache_models::DbKind::parse(&url) {
                Ok((fernando_cache_models::DbKind::Sqlite, path)) => absolute(&path),
                _ => fernando_cache_models::describe_url(&url),
            }
        });
        Whereabouts {
            backend,
            cache,
            statistics,
        }
    }

    /// The JSON of a summary: `{"backend", "cache", "statistics"}`.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "backend": self.backend,
            "cache": self.cache,
            "statistics": self.statistics,
        })
    }

    /// The summary's lines, aligned as `process` aligns its own.
    pub(crate) fn print(&self) {
        outln!("cache             {}, {}", self.backend, self.cache);
        match &self.statistics {
            Some(at) => outln!("statistics        {at}"),
            None => outln!("statistics        off (statistics.enabled = false)"),
        }
    }
}

/// Opens the statistics database off the runtime, applying pending migrations when configured to.
pub(crate) async fn open(settings: &Settings) -> anyhow::Result<String> {
    let url = database_url(settings)?;
    let migrate = settings.statistics.run_migrations_at_start;
    let check = url.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut db = Db::reuse(&check)?;
        if migrate {
            run_pending(&mut db)?;
        }
        // Kept for the read history and the recorder, which would otherwise open the file again.
        db.put_back(&check);
        Ok(())
    })
    .await
    .context("database task")??;
    Ok(url)
}

/// Starts the recorder for `store` when statistics are enabled; a database that cannot be opened is a warning,
/// not a failure of the command.
pub(crate) async fn start_recorder(settings: &Settings, store: &Store) -> Option<Recorder> {
    start_recorder_with(settings, store, |o| o).await
}

/// [`start_recorder`] for the long-running `serve`: it also checks health every `statistics.health_interval`
/// (recording rows and raising alerts) and removes rows past their retention.
pub(crate) async fn start_serving_recorder(settings: &Settings, store: &Store) -> Option<Recorder> {
    let st = &settings.statistics;
    let age = |d: std::time::Duration| {
        (!d.is_zero())
            .then(|| chrono::Duration::from_std(d).ok())
            .flatten()
    };
    let retention = fernando_cache_models::Retention {
        statistics: age(st.retention.statistics),
        performance: age(st.retention.performance),
        health: age(st.retention.health),
        events: age(st.retention.events),
    };
    let (health, every) = (st.health_interval, st.retention.interval);
    let webhook = if st.alert_webhook.is_empty() {
        None
    } else {
        match fernando_cache_ops::alerts::Webhook::new(&st.alert_webhook, Duration::from_secs(5)) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "alerts are not posted to the webhook");
                None
            }
        }
    };
    start_recorder_with(settings, store, move |o| {
        let o = o.health_interval(health).retention(retention, every);
        match webhook {
            Some(w) => o.webhook(w),
            None => o,
        }
    })
    .await
}

async fn start_recorder_with(
    settings: &Settings,
    store: &Store,
    extra: impl FnOnce(RecorderOptions) -> RecorderOptions,
) -> Option<Recorder> {
    if !settings.statistics.enabled {
        return None;
    }
    match open(settings).await {
        Ok(url) => {
            let st = &settings.statistics;
            Some(Recorder::spawn(
                store.clone(),
                extra(
                    RecorderOptions::new(url)
                        .flush_interval(st.flush_interval)
                        .window(st.window)
                        .buffer_max_rows(st.buffer_max_rows)
                        .alerts(
                            AlertThresholds::new(st.hit_ratio_alert, st.memory_alert_ratio)
                                .region_lag(settings.regions.max_lag),
                        ),
                ),
            ))
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "statistics are not recorded");
            None
        }
    }
}

/// Starts exporting the store's metrics over OTLP when `telemetry.otlp_endpoint` is set.
pub(crate) fn start_metrics_export(
    settings: &Settings,
    store: &Store,
) -> anyhow::Result<Option<fernando_cache_ops::telemetry::MetricsExport>> {
    Ok(fernando_cache_ops::telemetry::export_metrics(
        &settings.telemetry,
        store,
        settings.prices.currency.as_str(),
        &tokio::runtime::Handle::current(),
    )?)
}

/// Exports the last metrics and stops (on a blocking thread: the SDK waits for its export).
pub(crate) async fn stop_metrics_export(
    export: Option<fernando_cache_ops::telemetry::MetricsExport>,
) {
    if let Some(e) = export {
        let _ = tokio::task::spawn_blocking(move || e.shutdown()).await;
    }
}
