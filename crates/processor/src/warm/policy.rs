//! Which documents to recompute before they are read: a pure decision over each document's read history, so
//! one code path serves the warmup jobs (real time, history from every replica) and [`replay`] (virtual time,
//! to compare policies on a trace).
//!
//! Both policies consider only documents whose entry is gone or expires within the horizon — a refresh of an
//! entry that will still be there is wasted — and spend a budget of engine time (and money) per run, most
//! valuable first:
//! - **frequency-based** ranks by reads weighted with a half-life (popular now);
//! - **predictive** ranks by the probability of a read within the horizon: the larger of what the recent read
//!   rate says and what the same moment of past periods (a day, a week) says, so a document read every morning
//!   is refreshed just before the morning and not all day long.

use std::time::Duration;

/// Reads of one document: (bucket start in seconds since the epoch, reads), oldest first.
pub type History = [(u64, u32)];

/// How the warmer chooses.
#[derive(Debug, Clone, PartialEq)]
pub enum WarmPolicy {
    /// Nothing is refreshed (the baseline).
    None,
    /// Reads weighted by recency, with this half-life.
    FrequencyBased {
        /// A read's weight halves after this long.
        half_life: Duration,
    },
    /// The probability of a read within the horizon, from recency, decayed frequency and periodicity.
    Predictive {
        /// A read's weight halves after this long (the rate estimate).
        half_life: Duration,
        /// Rhythms looked for in the reads (a day, a week).
        periods: Vec<Duration>,
        /// Documents less likely than this to be read within the horizon are left alone.
        min_probability: f64,
    },
}

/// What refreshing one document costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshCost {
    /// Engine milliseconds.
    pub ms: u64,
    /// Millionths of the currency unit.
    pub micros: u64,
}

/// What one run may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Engine milliseconds.
    pub ms: u64,
    /// Millionths of the currency unit; `None`: no limit.
    pub micros: Option<u64>,
}

/// One document the warmer may refresh.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Its reads.
    pub history: &'a History,
    /// What recomputing it costs.
    pub cost: RefreshCost,
    /// When its entry expires (seconds since the epoch); `None` when there is none.
    pub cached_until: Option<u64>,
}

impl WarmPolicy {
    /// How much refreshing a document with `history` is worth at `now` (seconds) for the `horizon`: the
    /// predictive policy's probability of a read, the frequency policy's weighted reads; 0 means never.
    pub fn score(&self, history: &History, now: u64, horizon: Duration) -> f64 {
        match self {
            WarmPolicy::None => 0.0,
            WarmPolicy::FrequencyBased { half_life } => decayed_reads(history, now, *half_life),
            WarmPolicy::Predictive {
                half_life,
                periods,
                min_probability,
            } => {
                let h = horizon.as_secs_f64();
                // Rate: decayed reads over the decay's effective window (half-life / ln 2).
                let window = half_life.as_secs_f64() / std::f64::consts::LN_2;
                let rate = decayed_reads(history, now, *half_life) / window.max(1.0);
                let by_rate = 1.0 - (-rate * h).exp();
                let by_period = periods
                    .iter()
                    .map(|p| periodic(history, now, p.as_secs(), horizon.as_secs()))
                    .fold(0.0, f64::max);
                let p = by_rate.max(by_period);
                if p < *min_probability { 0.0 } else { p }
            }
        }
    }

    /// The candidates to refresh at `now`, in order: those gone or expiring within `horizon`, scored above
    /// zero, best first (ties: cheaper first), as many as `budget` pays for (one too dear is skipped, cheaper
    /// ones after it may still fit).
    pub fn plan(
        &self,
        candidates: &[Candidate<'_>],
        now: u64,
        horizon: Duration,
        budget: Budget,
    ) -> Vec<usize> {
        let until = now + horizon.as_secs();
        let mut scored: Vec<(usize, f64)> = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.cached_until.is_none_or(|t| t < until))
            .map(|(i, c)| (i, self.score(c.history, now, horizon)))
            .filter(|(_, s)| *s > 0.0)
            .collect();
        scored.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(candidates[a.0].cost.ms.cmp(&candidates[b.0].cost.ms))
        });
        let (mut ms, mut micros) = (budget.ms, budget.micros);
        let mut chosen = Vec::new();
        for (i, _) in scored {
            let c = candidates[i].cost;
            if c.ms > ms || micros.is_some_and(|m| c.micros > m) {
                continue;
            }
            ms -= c.ms;
            micros = micros.map(|m| m - c.micros);
            chosen.push(i);
        }
        chosen
    }
}

/// Reads weighted by 2^(-age / half-life).
fn decayed_reads(history: &History, now: u64, half_life: Duration) -> f64 {
    let hl = half_life.as_secs_f64().max(1.0);
    history
        .iter()
        .filter(|(at, _)| *at <= now)
        .map(|(at, n)| f64::from(*n) * (-((now - at) as f64) / hl).exp2())
        .sum()
}

/// The share of past periods (the last one weighing most) in which the document was read in the window that
/// corresponds to `[now, now + horizon)`; shrunk towards 0 while few periods have been seen.
fn periodic(history: &History, now: u64, period: u64, horizon: u64) -> f64 {
    let Some(first) = history.first().map(|(at, _)| *at) else {
        return 0.0;
    };
    if period == 0 {
        return 0.0;
    }
    let (mut hit, mut seen, mut weight) = (0.0, 0.0, 1.0);
    let mut k = 1;
    while let Some(start) = now.checked_sub(k * period) {
        if start + horizon <= first {
            break;
        }
        let read = history
            .iter()
            .any(|(at, n)| *n > 0 && *at >= start && *at < start + horizon);
        if read {
            hit += weight;
        }
        seen += weight;
        weight *= 0.7;
        k += 1;
        if k > 32 {
            break;
        }
    }
    // One pseudo-period without a read: a single observation is not yet a rhythm.
    hit / (seen + 0.5)
}

/// One read of a trace: when (seconds) and which document (an index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRead {
    /// Seconds since the trace's start.
    pub at: u64,
    /// The document read.
    pub doc: usize,
}

/// The cache a trace is replayed against: entries live `ttl`, the warmer runs every `tick` with `budget`.
#[derive(Debug, Clone)]
pub struct ReplaySetup {
    /// Entry lifetime (a read does not extend it, as in Redis).
    pub ttl: Duration,
    /// Time between two warmer runs.
    pub tick: Duration,
    /// History bucket length.
    pub bucket: Duration,
    /// Horizon passed to the policy.
    pub horizon: Duration,
    /// Budget of each run.
    pub budget: Budget,
    /// What computing each document costs.
    pub costs: Vec<RefreshCost>,
}

/// What a replay measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Reads replayed.
    pub reads: u64,
    /// Reads answered by an entry.
    pub hits: u64,
    /// Engine milliseconds spent computing misses.
    pub miss_ms: u64,
    /// Engine milliseconds the warmer spent.
    pub warm_ms: u64,
    /// Documents the warmer recomputed.
    pub refreshed: u64,
}

impl ReplayOutcome {
    /// Hits over reads.
    pub fn hit_ratio(&self) -> f64 {
        if self.reads == 0 {
            0.0
        } else {
            self.hits as f64 / self.reads as f64
        }
    }
}

/// Replays `trace` (sorted by time) in virtual time against an expiring cache, with `policy` warming it:
/// what the warmer decides uses exactly [`WarmPolicy::plan`], fed the history the trace has built so far.
pub fn replay(trace: &[TraceRead], policy: &WarmPolicy, setup: &ReplaySetup) -> ReplayOutcome {
    let docs = setup.costs.len();
    let mut expires: Vec<Option<u64>> = vec![None; docs];
    let mut history: Vec<Vec<(u64, u32)>> = vec![Vec::new(); docs];
    let (ttl, tick, bucket) = (
        setup.ttl.as_secs(),
        setup.tick.as_secs().max(1),
        setup.bucket.as_secs().max(1),
    );
    let mut out = ReplayOutcome::default();
    let mut next_tick = tick;
    let mut reads = trace.iter().peekable();
    let end = trace.last().map_or(0, |r| r.at);
    while next_tick <= end + tick {
        while let Some(r) = reads.next_if(|r| r.at < next_tick) {
            if r.doc >= docs {
                continue;
            }
            out.reads += 1;
            if expires[r.doc].is_some_and(|t| t > r.at) {
                out.hits += 1;
            } else {
                out.miss_ms += setup.costs[r.doc].ms;
                expires[r.doc] = Some(r.at + ttl);
            }
            let b = r.at / bucket * bucket;
            let h = &mut history[r.doc];
            match h.last_mut() {
                Some((at, n)) if *at == b => *n += 1,
                _ => h.push((b, 1)),
            }
        }
        let now = next_tick;
        let read: Vec<usize> = (0..docs).filter(|d| !history[*d].is_empty()).collect();
        let candidates: Vec<Candidate<'_>> = read
            .iter()
            .map(|d| Candidate {
                history: &history[*d],
                cost: setup.costs[*d],
                cached_until: expires[*d].filter(|t| *t > now),
            })
            .collect();
        for i in policy.plan(&candidates, now, setup.horizon, setup.budget) {
            let d = read[i];
            expires[d] = Some(now + ttl);
            out.warm_ms += setup.costs[d].ms;
            out.refreshed += 1;
        }
        next_tick += tick;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;

    fn predictive() -> WarmPolicy {
        WarmPolicy::Predictive {
            half_life: Duration::from_secs(DAY),
            periods: vec![Duration::from_secs(DAY)],
            min_probability: 0.3,
        }
    }

    #[test]
    fn a_morning_document_is_likely_before_the_morning_and_not_in_the_afternoon() {
        // Read at 9:10 on each of five days.
        let history: Vec<(u64, u32)> = (0..5).map(|d| (d * DAY + 9 * HOUR + 600, 1)).collect();
        let p = predictive();
        let h = Duration::from_secs(HOUR);
        let before = p.score(&history, 5 * DAY + 8 * HOUR + 45 * 60, h);
        let afternoon = p.score(&history, 5 * DAY + 15 * HOUR, h);
        assert!(before > 0.8, "{before}");
        assert_eq!(afternoon, 0.0, "below min_probability");
    }

    #[test]
    fn the_plan_skips_live_entries_and_stays_within_the_budget() {
        let history = [(0u64, 10u32)];
        let c = |ms, cached_until| Candidate {
            history: &history,
            cost: RefreshCost { ms, micros: ms },
            cached_until,
        };
        let candidates = [
            c(400, None),
            c(300, Some(10 * HOUR)),
            c(700, None),
            c(100, Some(60)),
        ];
        let p = WarmPolicy::FrequencyBased {
            half_life: Duration::from_secs(DAY),
        };
        let budget = Budget {
            ms: 600,
            micros: None,
        };
        // Index 1 lives past the horizon; 0 (400) and 3 (100) fit, 2 (700) never does.
        let plan = p.plan(&candidates, 100, Duration::from_secs(HOUR), budget);
        assert_eq!(plan, [3, 0]);
        let poorer = Budget {
            ms: 600,
            micros: Some(150),
        };
        assert_eq!(
            p.plan(&candidates, 100, Duration::from_secs(HOUR), poorer),
            [3]
        );
        assert!(
            WarmPolicy::None
                .plan(&candidates, 100, Duration::from_secs(HOUR), budget)
                .is_empty()
        );
    }
}
