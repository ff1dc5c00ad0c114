//! In-process metrics per (tenant, cache type): counters and latency histograms, readable as a snapshot.
//!
//! Recording is lock-free: finding a series reads an `arc-swap` snapshot (no shared write, no allocation once
//! the series exists) and counting is a relaxed atomic add. The number of series is bounded: past
//! `metrics.max_series`, new tenants are counted under `_other`. The counters themselves are declared once, in
//! `counters.rs`, with the table ([`COUNTERS`]) every exporter reads.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;

use crate::BreakerState;

mod counters;

pub(crate) use counters::AtomicCounters;
pub use counters::{COUNTERS, CounterInfo, CounterUnit, Counters};

/// Tenant label of series folded together once `metrics.max_series` is reached.
pub const OVERFLOW_TENANT: &str = "_other";

const BUCKETS: usize = 128;

/// A log-linear histogram of microseconds: four buckets per power of two, so a percentile read from it is
/// within 25 % of the true value. Lock-free.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn bucket_of(micros: u64) -> usize {
    if micros < 4 {
        return micros as usize;
    }
    let exp = 63 - micros.leading_zeros() as usize; // >= 2
    let sub = ((micros >> (exp - 2)) & 3) as usize;
    ((exp - 1) * 4 + sub).min(BUCKETS - 1)
}

/// The largest value that lands in `bucket` (its upper bound, in microseconds).
fn bucket_upper(bucket: usize) -> u64 {
    if bucket < 4 {
        return bucket as u64;
    }
    let exp = bucket / 4 + 1;
    let sub = (bucket % 4) as u64;
    ((4 + sub + 1) << (exp - 2)) - 1
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(test)]
    fn snapshot(&self) -> LatencyHistogram {
        LatencyHistogram {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A copy of a latency histogram; subtract two to get the latencies of the interval between them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
}

impl LatencyHistogram {
    /// Number of recorded operations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The latency at quantile `q` (0.0 to 1.0), within 25 %; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_micros(bucket_upper(i));
            }
        }
        Duration::from_micros(bucket_upper(self.buckets.len().saturating_sub(1)))
    }

    /// The highest non-empty bucket's upper bound.
    pub fn max(&self) -> Duration {
        self.buckets
            .iter()
            .rposition(|n| *n > 0)
            .map_or(Duration::ZERO, |i| Duration::from_micros(bucket_upper(i)))
    }

    /// Adds another histogram's counts (to combine series).
    pub fn add(&mut self, other: &LatencyHistogram) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    /// The operations recorded since `earlier` was taken.
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        LatencyHistogram {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }
}

/// One thread group's share of a series. Aligned to its own cache lines so threads counting into different
/// stripes never write a line another stripe lives on.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Stripe {
    pub(crate) counters: AtomicCounters,
    pub(crate) get_latency: Histogram,
    pub(crate) set_latency: Histogram,
}

/// The counters of one (tenant, cache type), striped by thread: on a hot key every operation counts a hit and
/// a latency bucket, and one shared counter would bounce between cores on each of them. A stripe (~2 KiB of
/// histograms) is allocated the first time a thread of its group counts into the series, so a series few
/// threads touch stays small.
#[derive(Debug)]
pub(crate) struct Series {
    stripes: Box<[std::sync::OnceLock<Box<Stripe>>]>,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            stripes: (0..stripe_count())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        }
    }
}

/// Stripes per series: one per core, at most 8.
fn stripe_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, 8)
    })
}

impl Series {
    /// This thread's stripe.
    fn stripe(&self) -> &Stripe {
        thread_local! {
            // `const`-initialised: reading it is a plain thread-local load, with no lazy-init check.
            static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let index = INDEX.with(|i| {
            if i.get() == usize::MAX {
                i.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            i.get()
        });
        self.stripes[index % self.stripes.len()].get_or_init(Box::default)
    }

    fn stripes(&self) -> impl Iterator<Item = &Stripe> {
        self.stripes.iter().filter_map(|s| s.get().map(|s| &**s))
    }

    fn counters(&self) -> Counters {
        let mut total = Counters::default();
        for s in self.stripes() {
            total.add(&s.counters.snapshot());
        }
        total
    }

    fn latency(&self, pick: impl Fn(&Stripe) -> &Histogram) -> LatencyHistogram {
        let mut buckets = vec![0; BUCKETS];
        for s in self.stripes() {
            for (sum, b) in buckets.iter_mut().zip(pick(s).buckets.iter()) {
                *sum += b.load(Ordering::Relaxed);
            }
        }
        LatencyHistogram { buckets }
    }
}

/// The metrics of one (tenant, cache type).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SeriesSnapshot {
    /// The tenant id, `_global` for global data, or `_other` for tenants past the series limit.
    pub tenant: String,
    /// The cache type, or `_all` for whole-tenant invalidations.
    pub cache_type: String,
    /// Cumulative counts.
    pub counters: Counters,
    /// Latency of reads.
    pub get_latency: LatencyHistogram,
    /// Latency of writes.
    pub set_latency: LatencyHistogram,
}

/// Everything the store has counted since it started.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// When the snapshot was taken.
    pub taken_at: SystemTime,
    /// The backend's kind (`redis`, `memory`).
    pub backend: &'static str,
    /// The circuit breaker's state.
    pub breaker: BreakerState,
    /// How many times the breaker has opened.
    pub breaker_opened: u64,
    /// One entry per (tenant, cache type), sorted.
    pub series: Vec<SeriesSnapshot>,
}

impl MetricsSnapshot {
    /// The sum of every series' counters.
    pub fn totals(&self) -> Counters {
        let mut total = Counters::default();
        for s in &self.series {
            total.add(&s.counters);
        }
        total
    }

    /// The series of one tenant and type, if it exists.
    pub fn series(&self, tenant: &str, cache_type: &str) -> Option<&SeriesSnapshot> {
        self.series
            .iter()
            .find(|s| s.tenant == tenant && s.cache_type == cache_type)
    }
}

// foldhash: a few times faster than SipHash on these short keys, and seeded per process; the maps are
// bounded by `metrics.max_series`, so even colliding names cannot make a lookup expensive.
type ByTenant = HashMap<Arc<str>, Arc<Series>, foldhash::fast::RandomState>;
type ByType = HashMap<Arc<str>, ByTenant, foldhash::fast::RandomState>;

/// All series. Reads take a snapshot of the map through `arc-swap`, which writes nothing shared, so the hot
/// path has no lock and no reference count to bounce between cores; a new series copies the map (rare).
#[derive(Debug)]
pub(crate) struct Metrics {
    max_series: usize,
    by_type: ArcSwap<ByType>,
    insert: Mutex<()>,
}

/// A (tenant, cache type) to record into; resolving it to its counters happens when something is recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesRef<'a> {
    metrics: &'a Metrics,
    tenant: &'a str,
    cache_type: &'a str,
}

impl SeriesRef<'_> {
    /// Applies `f` to this thread's stripe of the series' counters and histograms (creating the series if
    /// needed).
    pub(crate) fn apply(&self, f: impl FnOnce(&Stripe)) {
        {
            let map = self.metrics.by_type.load();
            if let Some(s) = map.get(self.cache_type).and_then(|m| m.get(self.tenant)) {
                f(s.stripe());
                return;
            }
        }
        f(self.metrics.insert(self.tenant, self.cache_type).stripe());
    }

    /// Adds `n` to one counter.
    pub(crate) fn add(&self, pick: impl FnOnce(&AtomicCounters) -> &AtomicU64, n: u64) {
        self.apply(|s| {
            pick(&s.counters).fetch_add(n, Ordering::Relaxed);
        });
    }
}

impl Metrics {
    pub(crate) fn new(max_series: usize) -> Self {
        Metrics {
            max_series: max_series.max(1),
            by_type: ArcSwap::from_pointee(ByType::default()),
            insert: Mutex::new(()),
        }
    }

    pub(crate) fn series<'a>(&'a self, tenant: &'a str, cache_type: &'a str) -> SeriesRef<'a> {
        SeriesRef {
            metrics: self,
            tenant,
            cache_type,
        }
    }

    fn insert(&self, tenant: &str, cache_type: &str) -> Arc<Series> {
        let _guard = self.insert.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.by_type.load_full();
        if let Some(s) = current.get(cache_type).and_then(|m| m.get(tenant)) {
            return s.clone();
        }
        let total: usize = current.values().map(HashMap::len).sum();
        let tenant = if total >= self.max_series {
            OVERFLOW_TENANT
        } else {
            tenant
        };
        let mut next = (*current).clone();
        let series = next
            .entry(Arc::from(cache_type))
            .or_default()
            .entry(Arc::from(tenant))
            .or_default()
            .clone();
        self.by_type.store(Arc::new(next));
        series
    }

    pub(crate) fn snapshot(&self) -> Vec<SeriesSnapshot> {
        let map = self.by_type.load();
        let mut out: Vec<SeriesSnapshot> = map
            .iter()
            .flat_map(|(ty, tenants)| {
                tenants.iter().map(move |(tenant, s)| SeriesSnapshot {
                    tenant: tenant.to_string(),
                    cache_type: ty.to_string(),
                    counters: s.counters(),
                    get_latency: s.latency(|s| &s.get_latency),
                    set_latency: s.latency(|s| &s.set_latency),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.tenant, &a.cache_type).cmp(&(&b.tenant, &b.cache_type)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for v in [0u64, 1, 3, 4, 5, 7, 8, 100, 1_000, 65_535, 1 << 30] {
            let b = bucket_of(v);
            assert!(b >= last);
            assert!(
                bucket_upper(b) >= v,
                "{v} in bucket {b} bounded by {}",
                bucket_upper(b)
            );
            assert!(
                bucket_upper(b) as f64 <= (v as f64 * 1.25).max(3.0),
                "{v}: {}",
                bucket_upper(b)
            );
            last = b;
        }
    }

    #[test]
    fn quantiles_within_a_quarter() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 1000);
        for (q, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = s.quantile(q).as_micros() as f64;
            assert!(got >= want && got <= want * 1.25, "q{q}: {got}");
        }
        assert_eq!(s.since(&s).count(), 0);
    }

    #[test]
    fn series_are_bounded() {
        let m = Metrics::new(2);
        for (tenant, ty) in [
            ("a", "session"),
            ("b", "session"),
            ("c", "session"),
            ("d", "billing"),
        ] {
            m.series(tenant, ty).add(|c| &c.hits, 1);
        }
        let tenants: Vec<_> = m.snapshot().into_iter().map(|s| s.tenant).collect();
        assert_eq!(tenants, vec!["_other", "_other", "a", "b"]);
    }
}
