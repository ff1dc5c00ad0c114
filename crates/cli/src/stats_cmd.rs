//! `fernando-cache stats` and `fernando-cache event`, and the database plumbing the commands share.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use fernando_cache::{
    events::{CacheEvent, apply},
    health::AlertThresholds,
    recorder::{Recorder, RecorderOptions},
};
use fernando_cache_config::{ExposeSecret, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_models::{Db, StatisticsSummary, run_pending, statistics_since};
use fernando_cache_store::Store;

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 15m, 24h or 7d ({e})"))
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

/// Opens the statistics database off the runtime, applying pending migrations when configured to.
async fn open(settings: &Settings) -> anyhow::Result<String> {
    let url = database_url(settings)?;
    let migrate = settings.statistics.run_migrations_at_start;
    let check = url.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut db = Db::open(&check)?;
        if migrate {
            run_pending(&mut db)?;
        }
        Ok(())
    })
    .await
    .context("database task")??;
    Ok(url)
}

/// Starts the recorder for `store` when statistics are enabled; a database that cannot be opened is a warning,
/// not a failure of the command.
pub(crate) async fn start_recorder(settings: &Settings, store: &Store) -> Option<Recorder> {
    if !settings.statistics.enabled {
        return None;
    }
    match open(settings).await {
        Ok(url) => {
            let st = &settings.statistics;
            Some(Recorder::spawn(
                store.clone(),
                RecorderOptions::new(url)
                    .flush_interval(st.flush_interval)
                    .window(st.window)
                    .buffer_max_rows(st.buffer_max_rows)
                    .alerts(AlertThresholds::new(
                        st.hit_ratio_alert,
                        st.memory_alert_ratio,
                    )),
            ))
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "statistics are not recorded");
            None
        }
    }
}

pub(crate) async fn stats(
    settings: &Settings,
    since: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let url = open(settings).await?;
    let from = chrono::Utc::now().naive_utc()
        - chrono::Duration::from_std(since).context("--since is too long")?;
    let rows: Vec<StatisticsSummary> = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok(statistics_since(&mut Db::open(&url)?, from)?)
    })
    .await
    .context("database task")??;
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "tenant": r.tenant_id, "cache_type": r.cache_type, "hits": r.hits, "misses": r.misses,
                    "hit_ratio": r.hit_ratio(), "sets": r.sets, "deletes": r.deletes, "errors": r.errors,
                    "degraded": r.degraded, "raw_bytes": r.raw_bytes, "stored_bytes": r.stored_bytes,
                    "p95_us": r.max_p95_us, "p99_us": r.max_p99_us,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
        return Ok(ExitCode::SUCCESS);
    }
    let header = [
        "tenant",
        "type",
        "hits",
        "misses",
        "hit ratio",
        "sets",
        "deletes",
        "errors",
        "degraded",
        "stored/raw",
        "p95",
        "p99",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    for r in &rows {
        table.push(vec![
            r.tenant_id.clone(),
            r.cache_type.clone(),
            r.hits.to_string(),
            r.misses.to_string(),
            r.hit_ratio()
                .map_or_else(|| "-".to_owned(), |h| format!("{:.1} %", h * 100.0)),
            r.sets.to_string(),
            r.deletes.to_string(),
            r.errors.to_string(),
            r.degraded.to_string(),
            if r.raw_bytes > 0 {
                format!("{:.2}", r.stored_bytes as f64 / r.raw_bytes as f64)
            } else {
                "-".to_owned()
            },
            format!("{}µs", r.max_p95_us),
            format!("{}µs", r.max_p99_us),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c < 2 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    if rows.is_empty() {
        eprintln!(
            "fernando-cache: no statistics recorded in the last {}",
            humantime::format_duration(since)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn event(
    settings: &Settings,
    event_type: &str,
    tenant: Option<&str>,
    subject: Option<String>,
) -> anyhow::Result<ExitCode> {
    let url = open(settings).await?;
    let store = Store::from_settings(settings)?;
    // clap requires --tenant unless --global is given.
    let mut ev = match tenant {
        Some(t) => CacheEvent::new(event_type, TenantId::new(t).context("--tenant")?),
        None => CacheEvent::global(event_type),
    };
    if let Some(s) = subject {
        ev = ev.subject(s);
    }
    let applied = apply(&store, &url, &ev).await?;
    if applied.is_empty() {
        println!("no enabled rule matches {event_type} for {}", ev.scope);
    }
    for a in applied {
        println!(
            "{}: {} {}{}",
            a.rule,
            a.cache_type,
            a.strategy.as_str(),
            if a.delayed {
                " (delayed)".to_owned()
            } else {
                format!(", {} keys deleted", a.deleted)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
