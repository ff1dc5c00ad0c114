//! Shared helpers: settings pointing at a private redis-server, and a tenant constructor.

use std::time::{Duration, Instant};

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::Store;
use fernando_cache_testkit::{FAST_FAILURE, RedisServer};

/// The command timeout the fault tests use.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_millis(200);

/// Test-profile settings on the Redis backend at `server`.
pub(crate) fn redis_settings(server: &RedisServer) -> Settings {
    redis_settings_with(server, &[])
}

/// [`redis_settings`] with `overrides` (`(key, value)` pairs) applied last.
pub(crate) fn redis_settings_with(server: &RedisServer, overrides: &[(&str, &str)]) -> Settings {
    Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set_all(FAST_FAILURE.iter().copied())
            .set_all(overrides.iter().copied()),
    )
    .expect("test settings load")
}

/// A store on a fresh private redis-server.
pub(crate) fn redis_store() -> (RedisServer, Store) {
    let server = RedisServer::start();
    let store = Store::from_settings(&redis_settings(&server)).expect("store");
    (server, store)
}

/// A store on the in-process backend (test profile).
pub(crate) fn memory_store() -> Store {
    let settings = Settings::embedded(Environment::Test).expect("test profile");
    Store::from_settings(&settings).expect("memory store")
}

pub(crate) fn tenant(id: &str) -> TenantId {
    TenantId::new(id).expect("valid tenant")
}

/// How many times the server has run `command` (from `INFO commandstats`).
pub(crate) fn calls(server: &RedisServer, command: &str) -> u64 {
    let info = server
        .command(&["INFO", "commandstats"])
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a call count"))
}

/// Reads `key` until the store reads it without fetching the generations: tracking has started on every hot
/// connection (it starts in the background) and the generations of `(tenant, cache_type)` are remembered.
pub(crate) async fn until_tracked(
    server: &RedisServer,
    store: &Store,
    tenant: &TenantId,
    cache_type: &CacheType,
    key: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = calls(server, "mget");
        for _ in 0..20 {
            let _ = store.get::<u64>(tenant, cache_type, key).await.unwrap();
        }
        if calls(server, "mget") == before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "hits still read the generations with MGET after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
