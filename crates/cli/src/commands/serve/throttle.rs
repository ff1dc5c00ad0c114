//! Failed credentials, throttled per client address: API keys, the admin token, the metrics token and the
//! console's sign-in all count against one budget per address, so a key cannot be guessed at line rate. Past
//! the budget the address is answered 429 with `Retry-After` before its credential is even looked at, until its
//! window ends. Failures and refusals are counted (`/metrics`) and logged with the address, never the credential.
//! Only a credential presented and refused counts: a request without one (a browser fetching `/favicon.ico`, a
//! probe) is answered 401 but spends nothing, so nobody can lock an address out without guessing. An IPv6
//! address is budgeted by its /64 ([`RateKey::of`]), the block one subscriber can rotate through at will.

use fernando_cache_http::server::RateKey;
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Failed credentials one address may present per window.
pub(crate) const FAILURES_PER_WINDOW: u32 = 10;
/// The window failures are counted in.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// The most addresses followed at once; past it, the oldest windows are forgotten first.
const MAX_ADDRESSES: usize = 10_000;

/// One address's failures in its current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// The failure budgets of every address, and the counts `/metrics` shows.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    windows: Mutex<HashMap<RateKey, Window>>,
    /// Credentials that were wrong or missing.
    pub(crate) failures: AtomicU64,
    /// Requests refused because their address was over its budget.
    pub(crate) refused: AtomicU64,
}

impl Throttle {
    /// How long `addr` must wait before presenting a credential again, if it is over its budget.
    pub(crate) fn wait(&self, addr: Option<IpAddr>) -> Option<Duration> {
        let key = RateKey::of(addr?);
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.get(&key)?;
        let elapsed = w.started.elapsed();
        if w.failures >= FAILURES_PER_WINDOW && elapsed < WINDOW {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Some(WINDOW - elapsed);
        }
        None
    }

    /// Counts a failed credential from `addr` (what was presented: "tenant API key", "admin token", …).
    pub(crate) fn failed(&self, addr: Option<IpAddr>, what: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let shown = addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        tracing::warn!(client = %shown, credential = what, "a credential was refused");
        let Some(addr) = addr.map(RateKey::of) else {
            return;
        };
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if windows.len() >= MAX_ADDRESSES && !windows.contains_key(&addr) {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
            if windows.len() >= MAX_ADDRESSES
                && let Some(oldest) = windows
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(a, _)| *a)
            {
                windows.remove(&oldest);
            }
        }
        let w = windows.entry(addr).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(w.started) >= WINDOW {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_budget_waits_and_others_do_not() {
        let t = Throttle::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..FAILURES_PER_WINDOW - 1 {
            t.failed(Some(a), "test");
        }
        assert!(t.wait(Some(a)).is_none());
        t.failed(Some(a), "test");
        let wait = t.wait(Some(a)).expect("over budget");
        assert!(wait <= WINDOW && wait > WINDOW - Duration::from_secs(5));
        assert!(t.wait(Some(b)).is_none());
        assert!(t.wait(None).is_none());
        assert_eq!(
            t.failures.load(Ordering::Relaxed),
            u64::from(FAILURES_PER_WINDOW)
        );
        assert_eq!(t.refused.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_ipv6_client_rotating_within_its_64_shares_one_budget() {
        let t = Throttle::default();
        for i in 0..FAILURES_PER_WINDOW {
            let ip: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            t.failed(Some(ip), "test");
        }
        let fresh: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(t.wait(Some(fresh)).is_some(), "another address of the /64");
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(t.wait(Some(other)).is_none(), "another /64");
    }

    #[test]
    fn the_addresses_followed_are_bounded() {
        let t = Throttle::default();
        for i in 0..(MAX_ADDRESSES + 50) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            t.failed(Some(ip), "test");
        }
        assert!(t.windows.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
