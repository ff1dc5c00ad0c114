//! The hybrid logical clock replicated values are versioned by (design 0026): 48 bits of wall-clock ms and a
//! 16-bit counter in one `u64`, never going back, and advanced past every version this process applies — so a
//! write made here after another region's value was applied here is newer than it, whatever the two regions'
//! clocks say.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

use crate::codec;

/// The last clock value given or seen by this process.
static LAST: AtomicU64 = AtomicU64::new(0);

/// A version further ahead of this clock than this is not followed (a clock ahead by more is a fault, and
/// following it would make every later write of this process as wrong).
pub(super) const MAX_AHEAD_MS: u64 = 60_000;

/// The environment variable that shifts this process's clock by a signed number of ms (at most a day either
/// way) — for tests of regions whose clocks disagree; nothing else reads it.
const SKEW_VARIABLE: &str = "FERNANDO_CACHE_FAULT_CLOCK_SKEW_MS";

fn skew_ms() -> i64 {
    static SKEW: OnceLock<i64> = OnceLock::new();
    *SKEW.get_or_init(|| {
        let Ok(text) = std::env::var(SKEW_VARIABLE) else {
            return 0;
        };
        match text.trim().parse::<i64>() {
            Ok(ms) => {
                let ms = ms.clamp(-86_400_000, 86_400_000);
                tracing::warn!(
                    skew_ms = ms,
                    "{SKEW_VARIABLE} is set: this process stamps replicated values with a clock shifted for tests"
                );
                ms
            }
            Err(_) => {
                tracing::warn!(
                    "{SKEW_VARIABLE} is not a whole number of ms; the clock is not shifted"
                );
                0
            }
        }
    })
}

/// Wall-clock ms since the Unix epoch as this process's clock reads it.
fn wall_ms() -> u64 {
    codec::now_ms().saturating_add_signed(skew_ms())
}

/// The clock value for a write made now: past every value given or seen before.
pub(super) fn tick() -> u64 {
    let physical = wall_ms() << 16;
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = physical.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// Advances the clock past `hlc`, a version applied here — unless it is more than [`MAX_AHEAD_MS`] ahead of
/// this process's wall clock (the caller refuses such a value).
pub(super) fn observe(hlc: u64) {
    if hlc >> 16 <= wall_ms().saturating_add(MAX_AHEAD_MS) {
        LAST.fetch_max(hlc, Ordering::Relaxed);
    }
}

/// Whether `hlc` is more than [`MAX_AHEAD_MS`] ahead of this process's wall clock.
pub(super) fn too_far_ahead(hlc: u64) -> bool {
    hlc >> 16 > wall_ms().saturating_add(MAX_AHEAD_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_never_goes_back_and_moves_past_what_it_saw() {
        let a = tick();
        let b = tick();
        assert!(b > a);
        // Seen from another region a little ahead: the next tick is past it.
        let ahead = (wall_ms() + 5_000) << 16;
        observe(ahead);
        assert!(tick() > ahead);
        // Too far ahead: not followed.
        let far = (wall_ms() + MAX_AHEAD_MS + 60_000) << 16;
        assert!(too_far_ahead(far));
        observe(far);
        assert!(tick() < far);
    }
}
