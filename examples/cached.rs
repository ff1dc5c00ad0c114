//! `#[cached]` on an async function: the first call runs the body and stores its `Ok`, the second is answered
//! from the cache without running it; `#[invalidates]` on a function that changes the data hides the entries
//! once it succeeds, so the next call runs the body again. On the in-process backend: nothing to install.
//!
//! ```sh
//! cargo run -p fernando-cache-examples --example cached
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

use fernando_cache_decorators::{cached, invalidates};
use fernando_cache_store::{
    Store,
    config::{Environment, Settings},
};
use serde::{Deserialize, Serialize};

/// How many times the body of `billing_summary` ran.
static BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A tenant's billing summary for a period.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Summary {
    invoices: u32,
    total_cents: u64,
}

/// Cached per tenant (the `tenant_id` argument) and period, under the `billing` cache type, for ten minutes;
/// the store is the `store` argument (without `store = …`, the one installed with `fernando_cache_store::install`). Only `Ok`
/// is cached.
#[cached(store = store, cache_type = "billing", ttl = "10m")]
async fn billing_summary(
    store: &Store,
    tenant_id: &str,
    period: &str,
) -> Result<Summary, std::io::Error> {
    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(Summary {
        invoices: 3,
        total_cents: 123_450,
    })
}

/// Adds an invoice; once it succeeds, the tenant's `billing` entries are invisible (lazy invalidation).
#[invalidates(store = store, cache_type = "billing")]
async fn add_invoice(store: &Store, tenant_id: &str) -> Result<(), std::io::Error> {
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::from_settings(&Settings::embedded(Environment::Test)?)?;

    for call in 1..=2 {
        let summary = billing_summary(&store, "acme", "2026-11").await?;
        let runs = BODY_RUNS.load(Ordering::SeqCst);
        println!("call {call}: {summary:?} (body has run {runs} time(s))");
    }

    add_invoice(&store, "acme").await?;
    let summary = billing_summary(&store, "acme", "2026-11").await?;
    let runs = BODY_RUNS.load(Ordering::SeqCst);
    println!("after add_invoice: {summary:?} (body has run {runs} time(s))");

    let totals = store.metrics().totals();
    println!(
        "counters: {} hits, {} misses, {} sets",
        totals.hits, totals.misses, totals.sets
    );
    Ok(())
}
