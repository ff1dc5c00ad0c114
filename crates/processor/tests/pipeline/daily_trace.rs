//! The daily trace the warming test and `cargo xtask bench pipeline` replay (the bench includes this file), so
//! both measure the same thing.

use std::time::Duration;

use fernando_cache_processor::{
    Budget, RefreshCost, ReplayOutcome, ReplaySetup, TraceRead, WarmPolicy, replay,
};

/// The trace both the test and `cargo xtask bench pipeline` replay: 300 documents, Zipf(1.0) popular, each read
/// in its own hour of the day, 600 reads a day for 14 days; entries live 2 h (shorter than the daily period),
/// the warmer runs every 15 minutes with 1.5 s of engine time, documents cost 0.2–2 s to compute.
pub(crate) fn daily_replay(policy: &WarmPolicy) -> ReplayOutcome {
    let trace: Vec<TraceRead> = fernando_cache_testkit::trace::zipf_daily(300, 14, 600, 1.0, 7)
        .into_iter()
        .map(|(at, doc)| TraceRead { at, doc })
        .collect();
    let setup = ReplaySetup {
        ttl: Duration::from_secs(2 * 3600),
        tick: Duration::from_secs(15 * 60),
        bucket: Duration::from_secs(15 * 60),
        horizon: Duration::from_secs(3600),
        budget: Budget {
            ms: 1_500,
            micros: None,
        },
        costs: (0..300u64)
            .map(|i| RefreshCost {
                ms: 200 + (i * 7_919) % 1_800,
                micros: 0,
            })
            .collect(),
    };
    replay(&trace, policy, &setup)
}
