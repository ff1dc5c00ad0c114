//! Synthetic access traces for warming tests and benchmarks: Zipf popularity over documents, each read in its
//! own hour of the day — the shape of an inbox where each customer's documents are opened at their office hours.

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Index sampler for a Zipf(s) distribution over `n` items (item 0 the most popular).
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Zipf over `n` items with exponent `s`.
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf = Vec::with_capacity(n);
        for k in 1..=n {
            acc += 1.0 / (k as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    /// One item.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

/// `days` days of `reads_per_day` reads over `docs` documents, Zipf(`s`) popular; each document is read within
/// its own hour of the day (drawn once). Returns (seconds since the start, document), in time order.
pub fn zipf_daily(
    docs: usize,
    days: u64,
    reads_per_day: usize,
    s: f64,
    seed: u64,
) -> Vec<(u64, usize)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let hour_of: Vec<u64> = (0..docs).map(|_| rng.random_range(0..24)).collect();
    let zipf = Zipf::new(docs, s);
    let mut reads = Vec::with_capacity(days as usize * reads_per_day);
    for day in 0..days {
        for _ in 0..reads_per_day {
            let d = zipf.sample(&mut rng);
            let at = day * 86_400 + hour_of[d] * 3_600 + rng.random_range(0..3_600);
            reads.push((at, d));
        }
    }
    reads.sort_unstable();
    reads
}
