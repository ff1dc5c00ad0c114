//! Shared helpers: a store on a private redis-server, call counters, and the keys a server holds.

use std::sync::atomic::{AtomicUsize, Ordering};

use fernando_cache_store::{
    Store,
    config::{Environment, LoadOptions, Settings},
};
use fernando_cache_testkit::{FAST_FAILURE, RedisServer};

/// Test-profile settings on the Redis backend at `url` (a child process knows only the url; in process, a
/// server's own `overrides()` say the same), with short timeouts so fault tests stay fast.
pub(crate) fn redis_settings(url: &str) -> Settings {
    redis_settings_with(url, &[])
}

/// [`redis_settings`] with `extra` overrides on top.
fn redis_settings_with(url: &str, extra: &[(&str, &str)]) -> Settings {
    let server = [("backend", "redis"), ("redis.url", url)];
    Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server)
            .set_all(FAST_FAILURE.iter().copied())
            .set_all(extra.iter().copied()),
    )
    .expect("test settings load")
}

/// A store on a fresh private redis-server.
pub(crate) fn redis_store() -> (RedisServer, Store) {
    redis_store_with(&[])
}

/// A store on a fresh private redis-server, with `extra` settings (say, a cache type's fail-safe).
pub(crate) fn redis_store_with(extra: &[(&str, &str)]) -> (RedisServer, Store) {
    let server = RedisServer::start();
    let store = Store::from_settings(&redis_settings_with(&server.url(), extra)).expect("store");
    (server, store)
}

/// The entry keys a server holds (generation keys left out), sorted.
pub(crate) fn entry_keys(server: &RedisServer) -> Vec<String> {
    let out = server.command(&["KEYS", "*"]).expect("KEYS");
    let mut keys: Vec<String> = out
        .lines()
        .filter(|l| !(l.is_empty() || l.starts_with('*') || l.starts_with('$')))
        .filter(|l| !l.contains(":_gen:"))
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

/// Counts how often a function body ran.
#[derive(Debug, Default)]
pub(crate) struct Calls(AtomicUsize);

impl Calls {
    pub(crate) const fn new() -> Self {
        Calls(AtomicUsize::new(0))
    }

    pub(crate) fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
