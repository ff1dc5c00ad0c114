//! `fernando-cache stats`: hit ratio, traffic, latency, and the engine time, tokens and money spent and saved
//! per tenant and cache type from the statistics database, as a table or JSON; each tenant's plan (its
//! isolation strategy, design 0023; its quotas, rate and TTL cap, `[tenants.<id>]`); when quotas are set,
//! each tenant's use of them as the backend's ledgers say now; and how far behind each region of
//! `[regions.from]` this one is (design 0026). It names the database it read, and a SQLite
//! database that does not exist yet is reported, never created empty.

use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use anyhow::Context;
use fernando_cache_config::{Prices, Settings, TenantPlan, TenantPlans};
use fernando_cache_keys::TenantId;
use fernando_cache_models::{Db, DbKind, StatisticsSummary, statistics_since};
use fernando_cache_store::{Isolations, QuotaUsage, Store};

use crate::{output::outln, wiring::open};

/// `stats --help`'s closing text: where the figures come from, and what the global options change here.
pub(crate) const HELP: &str = "\
The figures come from the statistics database (statistics.database_url), which process, serve and cache
commands write to when statistics are on. --env and --config-dir choose that database like any setting;
--redis-url matters here only for the tenant quota lines, read from the cache backend when quotas are set
(quotas.tenant_bytes, quotas.shared_requests, or a tenant's plan in [tenants.<id>]), and for how far behind
the regions of [regions.from] this region is, which their replicators note on it.";

/// Whether any tenant quota is set — deployment-wide or in a tenant's plan: only then does `stats` read the
/// cache backend.
fn quotas_set(plans: &TenantPlans) -> bool {
    std::iter::once(plans.default_plan())
        .chain(plans.listed().map(|(_, p)| p))
        .any(|p| p.tenant_bytes > 0 || p.shared_requests > 0)
}

/// A tenant's plan as `stats --json` and `GET /v1/cache/stats` show it: its quotas, its per-process rate and
/// its TTL cap (`null`: the cache types' own), and whether it has a table of its own (`[tenants.<id>]`).
pub(crate) fn plan_json(plans: &TenantPlans, tenant: &str) -> serde_json::Value {
    let plan = plans.get(tenant);
    serde_json::json!({
        "own": plans.listed().any(|(id, _)| id == tenant),
        "byte_limit": plan.tenant_bytes,
        "request_limit": plan.shared_requests,
        "per_process_rate": plan.per_process_rate,
        "per_process_burst": plan.per_process_burst,
        "max_ttl_seconds": plan.max_ttl.map(|d| d.as_secs_f64()),
    })
}

/// One plan in words, for the table's closing lines.
fn plan_line(plan: &TenantPlan) -> String {
    let limit = |n: u64, unit: &str| {
        if n == 0 {
            format!("{unit} unlimited")
        } else {
            format!("{unit} {n}")
        }
    };
    let rate = if plan.per_process_rate == 0 {
        "rate unlimited".to_owned()
    } else {
        format!(
            "rate {}/s (burst {}) per process",
            plan.per_process_rate, plan.per_process_burst
        )
    };
    let ttl = plan.max_ttl.map_or_else(
        || "ttl as each type's".to_owned(),
        |d| format!("ttl at most {}", humantime::format_duration(d)),
    );
    format!(
        "{}  {} per window  {rate}  {ttl}",
        limit(plan.tenant_bytes, "bytes"),
        limit(plan.shared_requests, "requests")
    )
}

/// Prints the statistics of the last `since`; `redis_url_given` says whether `--redis-url` was passed, which
/// only the quota lines use.
pub(crate) async fn run(
    settings: &Settings,
    since: Duration,
    json: bool,
    redis_url_given: bool,
) -> anyhow::Result<ExitCode> {
    // Checked when the settings were loaded.
    let plans = settings.tenant_plans()?;
    if redis_url_given && !quotas_set(&plans) && settings.regions.from.is_empty() {
        eprintln!(
            "fernando-cache: note: --redis-url changes nothing for stats without quotas or regions: its figures \
             come from the statistics database (statistics.database_url)"
        );
    }
    // Read off the cache backend, statistics or not.
    if !json {
        region_lines(settings).await;
    }
    let location = crate::wiring::Whereabouts::of(settings)
        .statistics
        .unwrap_or_default();
    // Only `process`, `serve` and the other writers create the database: an empty one made here would hide
    // where the real one is.
    if let Ok((DbKind::Sqlite, path)) = DbKind::parse(&crate::wiring::database_url(settings)?)
        && !std::path::Path::new(&path).exists()
    {
        if json {
            outln!("[]");
        }
        eprintln!(
            "fernando-cache: no statistics recorded yet: there is no statistics database at {location} \
             (process, serve and the cache commands create it there; --data-dir or \
             statistics.database_url point at another)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let url = open(settings).await?;
    let from = chrono::Duration::from_std(since)
        .ok()
        .and_then(|d| chrono::Utc::now().naive_utc().checked_sub_signed(d))
        .context("--since is too long")?;
    let rows: Vec<StatisticsSummary> = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok(statistics_since(&mut Db::open(&url)?, from)?)
    })
    .await
    .context("database task")??;
    let quotas = quota_usage(settings, &plans, &rows).await?;
    // Names only: the plans as the settings give them, read without a backend.
    let isolations = Isolations::of(&plans);
    let quota_json = |tenant: &str| {
        quotas.get(tenant).map(|q| {
            serde_json::json!({
                "stored_bytes": q.stored_bytes, "byte_limit": q.byte_limit,
                "requests": q.requests, "request_limit": q.request_limit,
            })
        })
    };
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "tenant": r.tenant_id, "cache_type": r.cache_type, "hits": r.hits, "misses": r.misses,
                    "hit_ratio": r.hit_ratio(), "sets": r.sets, "deletes": r.deletes, "errors": r.errors,
                    "degraded": r.degraded, "raw_bytes": r.raw_bytes, "stored_bytes": r.stored_bytes,
                    "p95_us": r.max_p95_us, "p99_us": r.max_p99_us,
                    "compute_spent_ms": r.compute_spent_ms, "compute_saved_ms": r.compute_saved_ms,
                    "tokens_spent": r.tokens_spent, "tokens_saved": r.tokens_saved,
                    "money_spent_micros": r.money_spent_micros, "money_saved_micros": r.money_saved_micros,
                    "currency": settings.prices.currency,
                    "quota": quota_json(&r.tenant_id),
                    "isolation": isolations.of_tenant(&r.tenant_id),
                    "plan": plan_json(&plans, &r.tenant_id),
                })
            })
            .collect();
        outln!("{}", serde_json::Value::Array(out));
        return Ok(ExitCode::SUCCESS);
    }
    let saved_money = format!("saved {}", settings.prices.currency);
    let spent_money = format!("spent {}", settings.prices.currency);
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
        "time saved",
        "tokens saved",
        "tokens spent",
        &saved_money,
        &spent_money,
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
            humantime::format_duration(Duration::from_millis(r.compute_saved_ms.max(0) as u64))
                .to_string(),
            r.tokens_saved.to_string(),
            r.tokens_spent.to_string(),
            Prices::decimal(r.money_saved_micros.max(0) as u64),
            Prices::decimal(r.money_spent_micros.max(0) as u64),
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
        outln!("{}", line.join("  ").trim_end());
    }
    if !quotas.is_empty() {
        outln!();
        outln!("tenant quotas (now)");
        for (tenant, q) in &quotas {
            let limit = |n: u64| {
                if n == 0 {
                    "unlimited".to_owned()
                } else {
                    n.to_string()
                }
            };
            outln!(
                "{tenant}  stored {} of {} bytes  requests {} of {} per {}",
                q.stored_bytes,
                limit(q.byte_limit),
                q.requests,
                limit(q.request_limit),
                humantime::format_duration(q.request_window)
            );
        }
    }
    outln!();
    outln!("tenant isolation");
    outln!("(default)  {}", isolations.default);
    for (tenant, isolation) in &isolations.listed {
        outln!("{tenant}  {isolation}");
    }
    if plans.listed().next().is_some() {
        outln!();
        outln!("tenant plans");
        let width = plans
            .listed()
            .map(|(id, _)| id.chars().count())
            .max()
            .unwrap_or(0)
            .max("(default)".len());
        outln!(
            "{:<width$}  {}",
            "(default)",
            plan_line(plans.default_plan())
        );
        for (id, plan) in plans.listed() {
            outln!("{id:<width$}  {}", plan_line(plan));
        }
    }
    if rows.is_empty() {
        eprintln!(
            "fernando-cache: no statistics recorded in the last {} in {location}",
            humantime::format_duration(since)
        );
    } else {
        outln!();
        outln!("statistics from {location}");
    }
    Ok(ExitCode::SUCCESS)
}

/// How far behind each region of `regions.from` this one is, as its replicators noted it on this region's
/// backend; nothing when there are none. A backend that cannot answer is reported on stderr.
async fn region_lines(settings: &Settings) {
    if settings.regions.from.is_empty() {
        return;
    }
    let statuses = match Store::from_settings(settings) {
        Ok(store) => store.admin().regions().await.map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    match statuses {
        Ok(statuses) => {
            outln!("regions applied here");
            for status in &statuses {
                outln!("{}", region_line(status));
            }
            outln!();
        }
        Err(e) => eprintln!("fernando-cache: regions: {e}"),
    }
}

/// One region's line: what was applied, how far behind, the losses met.
pub(crate) fn region_line(status: &fernando_cache_store::RegionStatus) -> String {
    let (Some(p), Some(lag)) = (&status.progress, status.lag) else {
        return format!("{}  nothing noted yet (no replicator has run)", status.name);
    };
    let entries = p
        .behind
        .map_or_else(|| "? entries".to_owned(), |n| format!("{n} entries"));
    format!(
        "{}  behind {} ({entries})  last applied {}  losses {}",
        status.name,
        humantime::format_duration(Duration::from_millis(lag.as_millis() as u64)),
        p.applied,
        p.gaps
    )
}

/// Each tenant's quota use, from the backend, when any quota is set (empty otherwise). A backend that cannot
/// answer is reported on stderr; the statistics are still printed.
async fn quota_usage(
    settings: &Settings,
    plans: &TenantPlans,
    rows: &[StatisticsSummary],
) -> anyhow::Result<BTreeMap<String, QuotaUsage>> {
    let mut out = BTreeMap::new();
    if !quotas_set(plans) {
        return Ok(out);
    }
    let store = Store::from_settings(settings)?;
    // `_global`, `_overflow`: not tenants.
    for row in rows.iter().filter(|r| !r.tenant_id.starts_with('_')) {
        let Ok(tenant) = TenantId::new(&row.tenant_id) else {
            continue;
        };
        if out.contains_key(tenant.as_str()) {
            continue;
        }
        match store.admin().quota_usage(&tenant).await {
            Ok(q) => {
                out.insert(tenant.as_str().to_owned(), q);
            }
            Err(e) => {
                eprintln!("fernando-cache: quotas of {}: {e}", tenant.as_str());
                break;
            }
        }
    }
    Ok(out)
}
