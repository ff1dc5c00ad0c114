//! The store on its in-process backend: typed `set` / `get` in a tenant's namespace, cache-first
//! `get_or_compute` (a miss computes, the next call is a hit), a lazy invalidation, and the counters the store
//! keeps. Nothing to install or start.
//!
//! ```sh
//! cargo run -p fernando-cache-examples --example store
//! ```

use std::convert::Infallible;

use fernando_cache_store::{
    InvalidationStrategy, Store, Target,
    config::{CacheType, Environment, Settings},
    keys::TenantId,
};
use serde::{Deserialize, Serialize};

/// A value worth caching: who a session belongs to and what they may do.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    user: String,
    roles: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The test profile keeps entries in process memory (`backend = "memory"`); production reads its settings
    // with `Settings::load(LoadOptions::new())` and points them at Redis.
    let store = Store::from_settings(&Settings::embedded(Environment::Test)?)?;
    println!("backend: {}", store.admin().backend_kind());
    let acme = TenantId::new("acme")?;

    // Typed set / get: each cache type has its TTL, each tenant its own namespace.
    let session = Session {
        user: "ana".to_owned(),
        roles: vec!["admin".to_owned()],
    };
    let outcome = store
        .set(&acme, &CacheType::SESSION, "user:42", &session)
        .await?;
    println!("acme   set session user:42 -> {outcome:?}");
    let ours: Option<Session> = store.get(&acme, &CacheType::SESSION, "user:42").await?;
    let theirs: Option<Session> = store
        .get(TenantId::new("globex")?, &CacheType::SESSION, "user:42")
        .await?;
    println!("acme   get session user:42 -> {ours:?}");
    println!("globex get session user:42 -> {theirs:?}");

    // Cache-first with fallback: the first call computes and stores, the second is answered from the cache.
    for round in 1..=2 {
        let total: u64 = store
            .get_or_compute(&acme, &CacheType::BILLING, "total:2026-11", || async {
                println!("  computing the billing total…");
                Ok::<_, Infallible>(123_450)
            })
            .await?;
        println!("round {round}: billing total {total} cents");
    }

    // A lazy invalidation is one O(1) write: the tenant's billing entries are invisible at once.
    store
        .invalidate(
            Target::entries(&acme, &CacheType::BILLING),
            InvalidationStrategy::Lazy,
        )
        .await?;
    let after: Option<u64> = store
        .get(&acme, &CacheType::BILLING, "total:2026-11")
        .await?;
    println!("after invalidating acme's billing: {after:?}");

    let totals = store.metrics().totals();
    println!(
        "counters: {} hits, {} misses, {} sets, {} hidden by invalidation; hit ratio {:.2}",
        totals.hits,
        totals.misses,
        totals.sets,
        totals.stale,
        totals.hit_ratio().unwrap_or(0.0)
    );
    Ok(())
}
