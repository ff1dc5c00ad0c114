//! Shared helpers: settings pointing at a private redis-server, and a tenant constructor.

use std::time::Duration;

use fernando_cache_config::{Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::Store;
use fernando_cache_testkit::RedisServer;

/// The command timeout the fault tests use.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_millis(200);

/// Test-profile settings on the Redis backend at `server`.
pub(crate) fn redis_settings(server: &RedisServer) -> Settings {
    redis_settings_with(server, &[])
}

/// [`redis_settings`] with `overrides` (`(key, value)` pairs) applied last.
pub(crate) fn redis_settings_with(server: &RedisServer, overrides: &[(&str, &str)]) -> Settings {
    let mut options = LoadOptions::new()
        .environment(Environment::Test)
        .without_environment_variables()
        .set("backend", "redis")
        .set("redis.url", server.url())
        .set("redis.command_timeout", "200ms")
        .set("redis.connect_timeout", "200ms")
        .set("degradation.breaker_failure_threshold", "3")
        .set("degradation.breaker_open_for", "300ms");
    for (key, value) in overrides {
        options = options.set(*key, *value);
    }
    Settings::load(options).expect("test settings load")
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
