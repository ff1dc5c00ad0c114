//! The recorder's collect: a metrics snapshot, less the previous one per (tenant, cache type), merged into the
//! buffered `cache_statistics` and `cache_performance_metrics` rows of the current window.

use std::{collections::BTreeMap, sync::atomic::Ordering, time::Duration};

use chrono::{DateTime, NaiveDateTime, Utc};
use fernando_cache_models::{PerformanceDelta, Severity, StatisticsDelta};
use fernando_cache_store::{
    BreakerState, Counters, LatencyHistogram, MetricsSnapshot, SeriesSnapshot,
};

use super::{State, queue_event};
use crate::health;

impl State {
    /// Adds the metrics accumulated since the previous snapshot to the buffer.
    pub(super) fn collect(&mut self) {
        let snapshot: MetricsSnapshot = self.store.metrics();
        let now = Utc::now();
        let window = window_start(now, self.options.window);
        if snapshot.breaker != self.breaker {
            let (event, severity) = match snapshot.breaker {
                BreakerState::Open => ("degradation.on", Severity::Warning),
                BreakerState::Closed => ("degradation.off", Severity::Info),
                BreakerState::HalfOpen => ("degradation.probe", Severity::Info),
            };
            queue_event(
                &self.shared,
                health::event(
                    event,
                    severity,
                    None,
                    None,
                    &format!("circuit breaker {}", snapshot.breaker.as_str()),
                ),
            );
            self.breaker = snapshot.breaker;
        }
        // Per (operation, cache type), over all tenants: merged latency and errors.
        let mut per_op: BTreeMap<(&'static str, String), (LatencyHistogram, u64)> = BTreeMap::new();
        for series in snapshot.series {
            let key = (series.tenant.clone(), series.cache_type.clone());
            let news = match self.previous.get(&key) {
                Some(prev) => since(prev, &series),
                None => since(&Seen::default(), &series),
            };
            self.previous.insert(
                key,
                (series.counters, series.get_latency, series.set_latency),
            );
            let Some((c, h, hs)) = news else {
                continue;
            };
            for (op, hist, errors) in [("get", &h, c.read_errors), ("set", &hs, c.write_errors)] {
                if hist.count() > 0 || errors > 0 {
                    let slot = per_op.entry((op, series.cache_type.clone())).or_default();
                    slot.0.add(hist);
                    slot.1 += errors;
                }
            }
            if c == Counters::default() {
                // Only latencies of operations counted in an earlier collect: they are in the rows above.
                continue;
            }
            if let Some(thresholds) = &self.options.alerts {
                // Judged only on enough reads: a quiet series neither raises nor clears its alert.
                let announced = match health::hit_ratio_alert(
                    &series.tenant,
                    &series.cache_type,
                    c.hits,
                    c.misses,
                    thresholds,
                ) {
                    Some(alert) => self.alerts.raise(alert),
                    None if c.hits + c.misses >= thresholds.min_reads => self.alerts.clear(
                        "alert.hit_ratio",
                        Some(&series.tenant),
                        Some(&series.cache_type),
                    ),
                    None => None,
                };
                if let Some(event) = announced {
                    queue_event(&self.shared, event);
                }
            }
            let delta = StatisticsDelta {
                tenant_id: series.tenant.clone(),
                cache_type: series.cache_type.clone(),
                window_start: window,
                window_seconds: i32::try_from(self.options.window.as_secs()).unwrap_or(i32::MAX),
                hits: to_i64(c.hits),
                misses: to_i64(c.misses),
                sets: to_i64(c.sets),
                deletes: to_i64(c.deletes),
                errors: to_i64(c.errors),
                degraded: to_i64(c.degraded),
                raw_bytes: to_i64(c.raw_bytes),
                stored_bytes: to_i64(c.stored_bytes),
                latency_p50_us: micros(h.quantile(0.50)),
                latency_p95_us: micros(h.quantile(0.95)),
                latency_p99_us: micros(h.quantile(0.99)),
                updated_at: now.naive_utc(),
                compute_spent_ms: to_i64(c.compute_spent_ms),
                compute_saved_ms: to_i64(c.compute_saved_ms),
                tokens_spent: to_i64(c.tokens_spent),
                tokens_saved: to_i64(c.tokens_saved),
                money_spent_micros: to_i64(c.money_spent_micros),
                money_saved_micros: to_i64(c.money_saved_micros),
            };
            self.buffer
                .entry((window, series.tenant, series.cache_type))
                .and_modify(|row| row.absorb(&delta))
                .or_insert(delta);
        }
        for ((op, cache_type), (hist, errors)) in per_op {
            let row = PerformanceDelta {
                window_start: window,
                operation: op.to_owned(),
                cache_type: cache_type.clone(),
                count: to_i64(hist.count()),
                errors: to_i64(errors),
                p50_us: micros(hist.quantile(0.50)),
                p95_us: micros(hist.quantile(0.95)),
                p99_us: micros(hist.quantile(0.99)),
                max_us: micros(hist.max()),
                updated_at: now.naive_utc(),
            };
            self.performance
                .entry((window, op.to_owned(), cache_type))
                .and_modify(|r| {
                    r.count += row.count;
                    r.errors += row.errors;
                    r.p50_us = r.p50_us.max(row.p50_us);
                    r.p95_us = r.p95_us.max(row.p95_us);
                    r.p99_us = r.p99_us.max(row.p99_us);
                    r.max_us = r.max_us.max(row.max_us);
                    r.updated_at = row.updated_at;
                })
                .or_insert(row);
        }
        while self.performance.len() > self.options.buffer_max_rows {
            self.performance.pop_first();
            self.shared.rows_dropped.fetch_add(1, Ordering::Relaxed);
        }
        while self.buffer.len() > self.options.buffer_max_rows {
            self.buffer.pop_first();
            self.shared.rows_dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.rows_buffered.store(
            (self.buffer.len() + self.pending.as_ref().map_or(0, |p| p.statistics.len())) as u64,
            Ordering::Relaxed,
        );
    }
}

/// A series as the previous collect saw it: counters, read latencies, write latencies.
pub(super) type Seen = (Counters, LatencyHistogram, LatencyHistogram);

/// What `series` did since `prev`, or `None` when nothing moved. An operation is counted, then timed, on separate
/// atomics, so a collect can fall between the two: the next one then finds the counters still but a latency
/// more, and that latency is news too (it used to be skipped with the quiet counters, and lost).
fn since(prev: &Seen, series: &SeriesSnapshot) -> Option<Seen> {
    let (counters, reads, writes) = prev;
    let news = (
        series.counters.since(counters),
        series.get_latency.since(reads),
        series.set_latency.since(writes),
    );
    (news.0 != Counters::default() || news.1.count() > 0 || news.2.count() > 0).then_some(news)
}

fn window_start(now: DateTime<Utc>, window: Duration) -> NaiveDateTime {
    let w = window.as_secs().max(1) as i64;
    let ts = now.timestamp();
    DateTime::from_timestamp(ts - ts.rem_euclid(w), 0)
        .unwrap_or(now)
        .naive_utc()
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collect that fell between a write's count and its timing: the next one still counts the latency.
    #[tokio::test]
    async fn a_latency_recorded_after_its_count_was_collected_is_not_lost() {
        use fernando_cache_config::{Environment, LoadOptions, Settings};
        use fernando_cache_keys::{CacheType, TenantId};
        let settings =
            Settings::load(LoadOptions::isolated(Environment::Test).set("backend", "memory"))
                .unwrap();
        let store = fernando_cache_store::Store::from_settings(&settings).unwrap();
        let acme = TenantId::new("acme").unwrap();
        assert_eq!(
            store
                .set(&acme, &CacheType::SESSION, "k", &1u8)
                .await
                .unwrap(),
            fernando_cache_store::WriteOutcome::Stored
        );
        let snapshot = store.metrics();
        let series = snapshot
            .series
            .iter()
            .find(|s| s.counters.sets == 1)
            .expect("the write's series");
        let counted_not_timed = (
            series.counters,
            series.get_latency.clone(),
            LatencyHistogram::default(),
        );
        let (counters, _, writes) =
            since(&counted_not_timed, series).expect("the write's latency is news");
        assert_eq!(counters, Counters::default());
        assert_eq!(writes.count(), 1);
        let all_seen = (
            series.counters,
            series.get_latency.clone(),
            series.set_latency.clone(),
        );
        assert!(since(&all_seen, series).is_none());
    }

    #[test]
    fn windows_are_aligned() {
        let t = DateTime::from_timestamp(1_764_072_345, 0).unwrap();
        let w = window_start(t, Duration::from_secs(60));
        assert_eq!(w.and_utc().timestamp() % 60, 0);
        assert!(w.and_utc().timestamp() <= t.timestamp());
    }
}
