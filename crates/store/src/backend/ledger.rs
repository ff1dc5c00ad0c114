//! Quota ledgers kept in process, for the in-process backend: the same semantics as the Redis scripts in
//! `redis/commands/limits.rs` (`CHARGE`, `COUNT_IN_WINDOW`), one process being the only replica.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{Charge, WindowCount};

/// Every ledger and windowed counter of one backend.
#[derive(Debug, Default)]
pub(crate) struct Ledgers {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ledgers: HashMap<String, Ledger>,
    windows: HashMap<String, (u64, Instant)>,
}

#[derive(Debug, Default)]
struct Ledger {
    /// member → (bytes, expiry)
    members: HashMap<String, (u64, Instant)>,
    /// (expiry, member), to sweep the expired in order.
    by_expiry: BTreeSet<(Instant, String)>,
    total: u64,
}

impl Ledger {
    fn sweep(&mut self, now: Instant) {
        while let Some((at, _)) = self.by_expiry.first() {
            if *at > now {
                break;
            }
            let Some((_, member)) = self.by_expiry.pop_first() else {
                break;
            };
            if let Some((bytes, _)) = self.members.remove(&member) {
                self.total = self.total.saturating_sub(bytes);
            }
        }
    }
}

impl Ledgers {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counts that are still counts: keep using them.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// See `Coordination::charge`.
    pub(crate) fn charge(
        &self,
        ledger: &str,
        member: &str,
        bytes: u64,
        expires_in: Duration,
        limit: u64,
    ) -> Charge {
        let now = Instant::now();
        let mut state = self.state();
        if member.is_empty() {
            // Only a look: a ledger that does not exist is not made.
            let total = state.ledgers.get_mut(ledger).map_or(0, |l| {
                l.sweep(now);
                l.total
            });
            return Charge {
                admitted: true,
                total,
            };
        }
        let l = state.ledgers.entry(ledger.to_owned()).or_default();
        l.sweep(now);
        let old = l.members.get(member).map_or(0, |(b, _)| *b);
        let after = l.total - old + bytes;
        if limit > 0 && bytes > old && after > limit {
            return Charge {
                admitted: false,
                total: l.total,
            };
        }
        let expires_at = now + expires_in;
        if let Some((_, at)) = l.members.insert(member.to_owned(), (bytes, expires_at)) {
            l.by_expiry.remove(&(at, member.to_owned()));
        }
        l.by_expiry.insert((expires_at, member.to_owned()));
        l.total = after;
        Charge {
            admitted: true,
            total: after,
        }
    }

    /// Removes deleted entries' `members` from `ledger` (see `Storage::delete_matching`).
    pub(crate) fn release<'a>(&self, ledger: &str, members: impl IntoIterator<Item = &'a str>) {
        let mut state = self.state();
        let Some(l) = state.ledgers.get_mut(ledger) else {
            return;
        };
        for member in members {
            if let Some((bytes, at)) = l.members.remove(member) {
                l.by_expiry.remove(&(at, member.to_owned()));
                l.total = l.total.saturating_sub(bytes);
            }
        }
    }

    /// Removes every ledger and windowed counter whose key matches the Redis glob `pattern` (see
    /// `Storage::delete_matching`); returns how many.
    pub(crate) fn remove_matching(&self, pattern: &str) -> u64 {
        let matches = |key: &String| super::glob_match(pattern.as_bytes(), key.as_bytes());
        let mut state = self.state();
        let before = state.ledgers.len() + state.windows.len();
        state.ledgers.retain(|key, _| !matches(key));
        state.windows.retain(|key, _| !matches(key));
        (before - state.ledgers.len() - state.windows.len()) as u64
    }

    /// See `Coordination::count_in_window`.
    pub(crate) fn count_in_window(&self, key: &str, add: u64, window: Duration) -> WindowCount {
        let now = Instant::now();
        let mut state = self.state();
        state.windows.retain(|_, (_, ends)| *ends > now);
        if add == 0 {
            // Only a look: a window that has not started is not started.
            return match state.windows.get(key) {
                Some((count, ends)) => WindowCount {
                    count: *count,
                    resets_in: ends.saturating_duration_since(now),
                },
                None => WindowCount {
                    count: 0,
                    resets_in: window,
                },
            };
        }
        let (count, ends) = state
            .windows
            .entry(key.to_owned())
            .or_insert((0, now + window));
        *count += add;
        WindowCount {
            count: *count,
            resets_in: ends.saturating_duration_since(now),
        }
    }
}
