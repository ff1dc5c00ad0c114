//! What reads found, counted: one read's outcome ([`Found`]) and a tally of many ([`Tally`]), applied to a
//! metrics series in one go — so a batch of reads touches its series once, not once a key.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use crate::metrics::SeriesRef;

/// What one read found.
pub(super) enum Found {
    Value,
    Absent,
    Stale,
    Expired,
    Corrupt,
    Unavailable { refused: bool },
}

/// Outcomes of reads, to add to a series.
#[derive(Default)]
pub(super) struct Tally {
    hits: u64,
    misses: u64,
    stale: u64,
    corrupt: u64,
    degraded: u64,
    errors: u64,
}

impl Tally {
    /// Counts what one read found. A leader's re-check (`checked`) belongs to a call whose first read was
    /// already counted as a miss: it counts what it finds, but not a second hit or miss.
    pub(super) fn add(&mut self, found: &Found, checked: bool) {
        let counted = u64::from(!checked);
        match found {
            Found::Value => self.hits += counted,
            Found::Absent | Found::Expired => self.misses += counted,
            Found::Stale => {
                self.misses += counted;
                self.stale += 1;
            }
            Found::Corrupt => {
                self.misses += counted;
                self.corrupt += 1;
            }
            Found::Unavailable { refused } => {
                self.misses += counted;
                self.degraded += 1;
                if !refused {
                    self.errors += 1;
                }
            }
        }
    }

    /// Adds the tally to `series`, with one latency sample when `latency` is given (one logical read, or one
    /// batch: a re-check is part of its call's read).
    pub(super) fn apply(&self, series: &SeriesRef<'_>, latency: Option<Duration>) {
        series.apply(|s| {
            let c = &s.counters;
            let add = |counter: &AtomicU64, n: u64| {
                if n != 0 {
                    counter.fetch_add(n, Ordering::Relaxed);
                }
            };
            add(&c.hits, self.hits);
            add(&c.misses, self.misses);
            add(&c.stale, self.stale);
            add(&c.corrupt, self.corrupt);
            add(&c.degraded, self.degraded);
            add(&c.errors, self.errors);
            add(&c.read_errors, self.errors);
            if let Some(latency) = latency {
                s.get_latency.record(latency);
            }
        });
    }
}
