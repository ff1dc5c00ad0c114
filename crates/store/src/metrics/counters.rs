//! The store's counters, declared once by `counters!`: the atomics the hot path adds to, the [`Counters`]
//! snapshot, and [`COUNTERS`], the table `/metrics` and the OTLP export iterate (issue 28: a second, hand-kept
//! table had left six counters unexported).

use std::sync::atomic::{AtomicU64, Ordering};

/// The unit of a counter's figure, so that an exporter can state it in a base unit (Prometheus wants seconds,
/// and money in the currency unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CounterUnit {
    /// Events or items: reads, writes, keys, bytes, tokens.
    Count,
    /// Milliseconds (the fields ending `_ms`).
    Milliseconds,
    /// Millionths of the currency unit, `prices.currency` (the fields ending `_micros`).
    MoneyMicros,
}

/// One counter of [`Counters`], declared in the same list as the struct's field. Exporters (`/metrics`, OTLP)
/// iterate [`COUNTERS`], so a counter added to the store reaches them with no second list to keep in step.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CounterInfo {
    /// The field's name in [`Counters`]: `hits`, `compute_spent_ms`.
    pub name: &'static str,
    /// What it counts: the field's documentation, which leaves the unit to [`CounterInfo::unit`].
    pub help: &'static str,
    /// The unit of the figure.
    pub unit: CounterUnit,
    /// The figure in a snapshot.
    pub value: fn(&Counters) -> u64,
}

/// Declares the counters once: the atomic counters the hot path adds to, the [`Counters`] snapshot, and
/// [`COUNTERS`], the table every exporter reads. `name: "help"` counts events; `name in Unit: "help"` names
/// another [`CounterUnit`].
macro_rules! counters {
    (@unit) => {
        CounterUnit::Count
    };
    (@unit $unit:ident) => {
        CounterUnit::$unit
    };
    ($($name:ident $(in $unit:ident)?: $doc:literal),* $(,)?) => {
        #[derive(Debug, Default)]
        pub(crate) struct AtomicCounters { $(pub(crate) $name: AtomicU64,)* }

        /// Cumulative counters of one (tenant, cache type). Fields ending `_ms` are milliseconds, those ending
        /// `_micros` millionths of the currency unit (`prices.currency`); [`COUNTERS`] lists every field with its
        /// unit.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Counters { $(#[doc = $doc] pub $name: u64,)* }

        /// Every field of [`Counters`], in declaration order, with its help text and unit: the one table the
        /// exporters iterate.
        pub const COUNTERS: &[CounterInfo] = &[$(
            CounterInfo {
                name: stringify!($name),
                help: $doc,
                unit: counters!(@unit $($unit)?),
                value: |c| c.$name,
            },
        )*];

        impl AtomicCounters {
            pub(super) fn snapshot(&self) -> Counters {
                Counters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl Counters {
            /// The counts accumulated since `earlier`.
            pub fn since(&self, earlier: &Counters) -> Counters {
                Counters { $($name: self.$name.saturating_sub(earlier.$name),)* }
            }

            /// Adds another set of counts.
            pub fn add(&mut self, other: &Counters) {
                $(self.$name += other.$name;)*
            }
        }
    };
}

counters! {
    hits: "Reads that returned a value.",
    l1_hits: "Reads answered by the in-process tier, without the backend (part of `hits`).",
    misses: "Reads that returned nothing (absent, stale, corrupt, or degraded).",
    sets: "Writes stored.",
    dropped_sets: "Writes dropped because the backend was unavailable.",
    quota_refused: "Writes refused because the tenant's stored bytes would pass its quota.",
    requests_refused: "Requests refused because the tenant passed its request quota (cache type `_all`).",
    deletes: "Keys deleted (single deletes and invalidation sweeps).",
    sweeps: "Pattern sweeps run (SCAN and delete of a tenant's matching keys), one at a time per tenant and at \
             most `invalidation.max_sweeps_per_second`.",
    sweeps_coalesced: "Sweeps asked for while the same sweep was waiting for its turn, answered by it instead \
                       of scanning again.",
    errors: "Backend calls that failed (timeouts, refused connections, server errors).",
    read_errors: "Reads whose backend call failed (part of `errors`).",
    write_errors: "Writes whose backend call failed (part of `errors`).",
    degraded: "Operations completed without the backend (a miss, a dropped write, a computation uncached).",
    corrupt: "Stored values that could not be decoded (or held another type) and were removed.",
    unopened: "Sealed values that did not open — another key's ciphertext, a removed key, altered bytes or \
               header, the retired sealed format, or a value of a sealed type stored unsealed — and were removed \
               (part of `corrupt`).",
    stale: "Stored values hidden by a lazy invalidation.",
    stale_served: "Expired values served because their computation failed or was slow (fail-safe).",
    refreshes: "Entries recomputed in the background ahead of expiry (eager refresh).",
    raw_bytes: "Bytes of values written, before compression.",
    stored_bytes: "Bytes of envelopes written, after compression (and sealing).",
    compute_spent_ms in Milliseconds: "Engine time spent computing values, as the caller reported it.",
    compute_saved_ms in Milliseconds: "Engine time hits saved: what their values cost when computed.",
    tokens_spent: "Model tokens spent computing values.",
    tokens_saved: "Model tokens hits saved.",
    money_spent_micros in MoneyMicros: "Money spent computing values.",
    money_saved_micros in MoneyMicros: "Money hits saved.",
}

impl AtomicCounters {
    pub(crate) fn add_spent(&self, cost: crate::Cost) {
        self.compute_spent_ms
            .fetch_add(cost.compute_ms, Ordering::Relaxed);
        self.tokens_spent.fetch_add(cost.tokens, Ordering::Relaxed);
        self.money_spent_micros
            .fetch_add(cost.money_micros, Ordering::Relaxed);
    }

    pub(crate) fn add_saved(&self, cost: crate::Cost) {
        self.compute_saved_ms
            .fetch_add(cost.compute_ms, Ordering::Relaxed);
        self.tokens_saved.fetch_add(cost.tokens, Ordering::Relaxed);
        self.money_saved_micros
            .fetch_add(cost.money_micros, Ordering::Relaxed);
    }
}

impl Counters {
    /// Hits over reads, or `None` before the first read.
    pub fn hit_ratio(&self) -> Option<f64> {
        let reads = self.hits + self.misses;
        (reads > 0).then(|| self.hits as f64 / reads as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_table_lists_every_field_in_order_with_its_unit() {
        // The fields as `Debug` prints them: `Counters { hits: 0, l1_hits: 0, … }`.
        let debug = format!("{:?}", Counters::default());
        let fields: Vec<&str> = debug
            .trim_start_matches("Counters {")
            .trim_end_matches('}')
            .split(',')
            .filter_map(|f| f.split(':').next())
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        let names: Vec<&str> = COUNTERS.iter().map(|i| i.name).collect();
        assert_eq!(names, fields);
        for info in COUNTERS {
            let expected = if info.name.ends_with("_ms") {
                CounterUnit::Milliseconds
            } else if info.name.ends_with("_micros") {
                CounterUnit::MoneyMicros
            } else {
                CounterUnit::Count
            };
            assert_eq!(info.unit, expected, "{}", info.name);
            assert!(
                !info.help.is_empty() && !info.help.contains('\n'),
                "{}",
                info.name
            );
        }
        let value = |c: &Counters, name: &str| {
            COUNTERS
                .iter()
                .find(|i| i.name == name)
                .map(|i| (i.value)(c))
        };
        let c = Counters {
            stale_served: 3,
            money_saved_micros: 7,
            ..Counters::default()
        };
        assert_eq!(value(&c, "stale_served"), Some(3));
        assert_eq!(value(&c, "money_saved_micros"), Some(7));
        assert_eq!(value(&c, "hits"), Some(0));
    }
}
