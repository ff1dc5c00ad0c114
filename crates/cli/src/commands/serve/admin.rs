//! `/v1/admin/…`: the JSON the dashboard reads, usable on its own (admin token). `GET /v1/admin/series` answers
//! a time series of the recorded statistics, downsampled by the range (design 0019); `GET /v1/admin/overview`
//! the health history, the event log, the warmup jobs and the live counters.

use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use fernando_cache_models::{Db, Resolution, SeriesQuery, series};
use serde::Deserialize;
use serde_json::json;

use super::{ConsoleState, error, internal_error};

/// The longest range one request may read.
const MAX_RANGE_DAYS: i64 = 400;
/// The longest tenant or cache type name accepted as a filter.
const MAX_NAME: usize = 256;

/// Query of `GET /v1/admin/series`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeriesParams {
    /// Start (RFC 3339), inclusive; default `to` minus `range`.
    from: Option<String>,
    /// End (RFC 3339), exclusive; default now.
    to: Option<String>,
    /// A length such as `6h` or `30d` when `from` is not given; default `24h`.
    range: Option<String>,
    tenant: Option<String>,
    cache_type: Option<String>,
    /// `window`, `hour` or `day`; default chosen by the range.
    resolution: Option<String>,
}

fn instant(text: &str, name: &str) -> Result<NaiveDateTime, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc).naive_utc())
        .map_err(|_| format!("{name} is not an RFC 3339 time such as 2026-12-01T00:00:00Z"))
}

impl SeriesParams {
    fn query(self) -> Result<SeriesQuery, String> {
        let to = match &self.to {
            Some(t) => instant(t, "to")?,
            None => Utc::now().naive_utc(),
        };
        let from = match (&self.from, &self.range) {
            (Some(f), None) => instant(f, "from")?,
            (Some(_), Some(_)) => return Err("give from or range, not both".into()),
            (None, r) => {
                let r = r.as_deref().unwrap_or("24h");
                let d = humantime::parse_duration(r)
                    .map_err(|_| "range is not a length such as 6h or 30d".to_owned())?;
                let d = TimeDelta::from_std(d).map_err(|_| "range is too long".to_owned())?;
                // A range reaching before the calendar's start is refused, not computed.
                to.checked_sub_signed(d)
                    .ok_or_else(|| format!("a range is at most {MAX_RANGE_DAYS} days"))?
            }
        };
        if from >= to {
            return Err("from must be before to".into());
        }
        if to.signed_duration_since(from) > TimeDelta::days(MAX_RANGE_DAYS) {
            return Err(format!("a range is at most {MAX_RANGE_DAYS} days"));
        }
        for (name, v) in [("tenant", &self.tenant), ("cache_type", &self.cache_type)] {
            if v.as_ref()
                .is_some_and(|v| v.is_empty() || v.len() > MAX_NAME)
            {
                return Err(format!("{name} must be 1 to {MAX_NAME} bytes"));
            }
        }
        let resolution = match self.resolution.as_deref() {
            None => None,
            Some("window") => Some(Resolution::Window),
            Some("hour") => Some(Resolution::Hour),
            Some("day") => Some(Resolution::Day),
            Some(_) => return Err("resolution is window, hour or day".into()),
        };
        Ok(SeriesQuery {
            from,
            to,
            tenant: self.tenant,
            cache_type: self.cache_type,
            resolution,
        })
    }
}

fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `GET /v1/admin/series?range=7d&tenant=acme&cache_type=ocr_result`: sums per bucket (hits, misses, hit ratio,
/// traffic, bytes raw and stored, latency, engine time, tokens and money spent and saved).
pub(crate) async fn series_route(
    State(state): State<ConsoleState>,
    Query(params): Query<SeriesParams>,
) -> Response {
    let Some(url) = state.database_url.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the series need the statistics database (statistics.enabled)",
        );
    };
    let query = match params.query() {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let (from, to) = (query.from, query.to);
    let read = tokio::task::spawn_blocking(move || series(&mut Db::open(&url)?, &query)).await;
    let series = match read {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return internal_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the statistics database is unavailable",
                &e,
            );
        }
        Err(e) => {
            return internal_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the series could not be read",
                &e,
            );
        }
    };
    let ms = |us: i64| us as f64 / 1e3;
    let points: Vec<_> = series
        .points
        .iter()
        .map(|p| {
            let reads = p.hits + p.misses;
            json!({
                "t": rfc3339(p.bucket_start),
                "hits": p.hits,
                "misses": p.misses,
                "hit_ratio": (reads > 0).then(|| p.hits as f64 / reads as f64),
                "sets": p.sets,
                "errors": p.errors,
                "degraded": p.degraded,
                "raw_bytes": p.raw_bytes,
                "stored_bytes": p.stored_bytes,
                "p50_ms": ms(p.latency_p50_us),
                "p95_ms": ms(p.latency_p95_us),
                "p99_ms": ms(p.latency_p99_us),
                "compute_spent_ms": p.compute_spent_ms,
                "compute_saved_ms": p.compute_saved_ms,
                "tokens_spent": p.tokens_spent,
                "tokens_saved": p.tokens_saved,
                "money_spent_micros": p.money_spent_micros,
                "money_saved_micros": p.money_saved_micros,
            })
        })
        .collect();
    let mut r = Json(json!({
        "from": rfc3339(from),
        "to": rfc3339(to),
        "resolution": match series.resolution {
            Resolution::Window => "window",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        },
        "resolution_seconds": series.resolution.seconds(),
        "currency": &*state.currency,
        "points": points,
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Query of `GET /v1/admin/overview`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverviewParams {
    /// How far back the event log and health history reach, e.g. `24h` (default); at most 400 days.
    range: Option<String>,
}

/// Rows of each list the overview returns, at most.
const OVERVIEW_ROWS: i64 = 200;

/// `GET /v1/admin/overview`: what the dashboard shows beside the series — the health history per component, the
/// event log (alerts included, newest first), the warmup jobs with their last run, this process's live
/// counters per tenant and type (L1 and backend hits since start), and which isolation strategy each tenant
/// runs (design 0023).
pub(crate) async fn overview_route(
    State(state): State<ConsoleState>,
    Query(params): Query<OverviewParams>,
) -> Response {
    let range = params.range.as_deref().unwrap_or("24h");
    let since = match humantime::parse_duration(range)
        .ok()
        .and_then(|d| TimeDelta::from_std(d).ok())
        .filter(|d| *d <= TimeDelta::days(MAX_RANGE_DAYS))
    {
        Some(d) => Utc::now().naive_utc() - d,
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("range is a length such as 24h or 7d, at most {MAX_RANGE_DAYS} days"),
            );
        }
    };
    let snapshot = state.store.metrics();
    let isolations = state.store.admin().isolations();
    let live: Vec<_> = snapshot
        .series
        .iter()
        .map(|s| {
            let c = &s.counters;
            json!({
                "tenant": s.tenant, "cache_type": s.cache_type,
                "isolation": isolations.of_tenant(&s.tenant),
                "hits": c.hits, "l1_hits": c.l1_hits, "l2_hits": c.hits - c.l1_hits.min(c.hits),
                "misses": c.misses, "hit_ratio": c.hit_ratio(),
            })
        })
        .collect();
    let isolation = json!({
        "default": isolations.default,
        "tenants": isolations
            .listed
            .iter()
            .map(|(t, i)| (t.clone(), serde_json::Value::from(*i)))
            .collect::<serde_json::Map<_, _>>(),
    });
    // How far behind each region of [regions.from] this one is (design 0026): names and figures, never URLs.
    let regions: Vec<_> = state
        .store
        .admin()
        .regions()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let p = r.progress.as_ref();
            json!({
                "region": r.name,
                "behind_seconds": r.lag.map(|l| l.as_secs_f64()),
                "behind_entries": p.and_then(|p| p.behind),
                "losses": p.map(|p| p.gaps),
                "applied": p.map(|p| p.applied.clone()),
            })
        })
        .collect();
    let Some(url) = state.database_url.clone() else {
        return Json(
            json!({ "live": live, "isolation": isolation, "regions": regions, "database": null }),
        )
        .into_response();
    };
    let read = tokio::task::spawn_blocking(move || {
        let mut db = Db::open(&url)?;
        let mut health = serde_json::Map::new();
        for component in ["redis", "memory", "disk", "database"] {
            let rows = fernando_cache_models::health_rows(&mut db, component, OVERVIEW_ROWS)?;
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| r.checked_at >= since)
                .map(|r| {
                    json!({
                        "t": rfc3339(r.checked_at), "status": r.status, "latency_us": r.latency_us,
                        "used_memory": r.used_memory, "max_memory": r.max_memory, "message": r.message,
                    })
                })
                .collect();
            if !rows.is_empty() {
                health.insert(component.to_owned(), rows.into());
            }
        }
        let events: Vec<_> = fernando_cache_models::recent_events(&mut db, since, OVERVIEW_ROWS)?
            .into_iter()
            .map(|e| {
                json!({
                    "t": rfc3339(e.occurred_at), "event_type": e.event_type, "severity": e.severity,
                    "tenant": e.tenant_id, "cache_type": e.cache_type, "details": e.details,
                })
            })
            .collect();
        let jobs: Vec<_> = fernando_cache_models::warmup_jobs(&mut db)?
            .into_iter()
            .map(|j| {
                json!({
                    "name": j.name, "tenant": j.tenant_id, "cache_type": j.cache_type,
                    "strategy": j.strategy, "enabled": j.enabled,
                    "last_run": j.last_run_at.map(rfc3339), "next_run": j.next_run_at.map(rfc3339),
                    "last_status": j.last_status, "keys_warmed": j.keys_warmed,
                })
            })
            .collect();
        Ok::<_, fernando_cache_models::ModelError>(json!({
            "health": health, "events": events, "warmup_jobs": jobs,
        }))
    })
    .await;
    match read {
        Ok(Ok(mut body)) => {
            body["live"] = live.into();
            body["isolation"] = isolation;
            body["regions"] = regions.into();
            let mut r = Json(body).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(Err(e)) => internal_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the statistics database is unavailable",
            &e,
        ),
        Err(e) => internal_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the overview could not be read",
            &e,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::SeriesParams;

    fn params(range: &str, to: Option<&str>) -> SeriesParams {
        SeriesParams {
            from: None,
            to: to.map(str::to_owned),
            range: Some(range.to_owned()),
            tenant: None,
            cache_type: None,
            resolution: None,
        }
    }

    #[test]
    fn a_range_reaching_before_the_calendar_is_an_error_not_a_panic() {
        for (range, to) in [
            ("99999999d", None),
            ("100000000d", None),
            ("400d", Some("-262143-01-02T00:00:00Z")),
        ] {
            assert!(params(range, to).query().is_err(), "{range} before {to:?}");
        }
        assert!(params("30d", None).query().is_ok());
    }
}
