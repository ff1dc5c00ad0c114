//! `/v1/admin/…`: the JSON the dashboard reads, usable on its own (admin token). `GET /v1/admin/series` answers
//! a time series of the recorded statistics, downsampled by the range (design 0019).

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

use super::{AppState, error, internal_error};

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
                to - TimeDelta::from_std(d).map_err(|_| "range is too long".to_owned())?
            }
        };
        if from >= to {
            return Err("from must be before to".into());
        }
        if to - from > TimeDelta::days(MAX_RANGE_DAYS) {
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
    State(state): State<AppState>,
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
