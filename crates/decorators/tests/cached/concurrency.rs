//! Single-flight through the macro: a cold key under 500 concurrent callers runs the body once; errors reach
//! the waiters when they can be copied, and a waiter that serves a stale value instead writes its fail-safe copy
//! with its own tags.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use fernando_cache_decorators::cached;
use fernando_cache_store::{
    InvalidationStrategy, Store, Target, Write, config::CacheType, keys::TenantId,
};
use tokio::task::JoinSet;

use crate::support::{Calls, redis_store, redis_store_with};

static COLD_CALLS: Calls = Calls::new();

#[cached(store = store, cache_type = "dashboard")]
async fn slow_report(store: Store, tenant_id: Arc<str>, month: u8) -> Result<Vec<u64>, String> {
    COLD_CALLS.hit();
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(vec![u64::from(month); 16])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_callers_on_a_cold_key_run_the_body_once() {
    let (_server, store) = redis_store();
    let tenant: Arc<str> = Arc::from("acme");
    let mut set = JoinSet::new();
    for _ in 0..500 {
        let (store, tenant) = (store.clone(), tenant.clone());
        set.spawn(async move { slow_report(store, tenant, 11).await });
    }
    let mut results = 0;
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().unwrap(), vec![11; 16]);
        results += 1;
    }
    assert_eq!(results, 500);
    assert_eq!(
        COLD_CALLS.get(),
        1,
        "one computation for 500 concurrent misses"
    );
}

#[derive(Debug, Clone, PartialEq)]
struct Upstream(u16);

static CLONE_ERR_CALLS: Calls = Calls::new();
static OPAQUE_ERR_CALLS: Calls = Calls::new();

#[cached(store = store, cache_type = "dashboard")]
async fn failing_shared(store: Store, tenant_id: &'static str) -> Result<u8, Upstream> {
    CLONE_ERR_CALLS.hit();
    tokio::time::sleep(Duration::from_millis(100)).await;
    Err(Upstream(503))
}

#[cached(store = store, cache_type = "dashboard")]
async fn failing_opaque(store: Store, tenant_id: &'static str) -> Result<u8, std::io::Error> {
    OPAQUE_ERR_CALLS.hit();
    tokio::time::sleep(Duration::from_millis(100)).await;
    Err(std::io::Error::other("upstream 503"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copyable_error_reaches_every_waiter_and_an_opaque_one_lets_each_retry() {
    let (_server, store) = redis_store();
    let mut set = JoinSet::new();
    for _ in 0..20 {
        let store = store.clone();
        set.spawn(async move { failing_shared(store, "acme").await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap(), Err(Upstream(503)));
    }
    assert_eq!(CLONE_ERR_CALLS.get(), 1, "the leader's error was shared");

    let mut set = JoinSet::new();
    for _ in 0..20 {
        let store = store.clone();
        set.spawn(async move { failing_opaque(store, "acme").await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().unwrap_err().to_string(), "upstream 503");
    }
    let runs = OPAQUE_ERR_CALLS.get();
    assert!(
        (2..=20).contains(&runs),
        "an io::Error cannot be copied, so the waiters ran the function themselves: {runs}"
    );
}

static LEDGER_CALLS: Calls = Calls::new();
static BALANCE_CALLS: Calls = Calls::new();
static BALANCE_TAGS: Calls = Calls::new();
static LEDGER_DOWN: AtomicBool = AtomicBool::new(true);

/// Leads the computation of `balance:{customer}` and fails after a while.
#[cached(store = store, cache_type = "billing", key = "balance:{customer}")]
async fn ledger_balance(
    store: Store,
    tenant_id: &'static str,
    customer: u32,
) -> Result<u32, Upstream> {
    LEDGER_CALLS.hit();
    tokio::time::sleep(Duration::from_millis(300)).await;
    Err(Upstream(503))
}

fn balance_tag(customer: u32) -> String {
    BALANCE_TAGS.hit();
    format!("customer:{customer}")
}

/// The same key, tagged.
#[cached(store = store, cache_type = "billing", key = "balance:{customer}", tag = balance_tag(customer))]
async fn balance(store: Store, tenant_id: &'static str, customer: u32) -> Result<u32, Upstream> {
    BALANCE_CALLS.hit();
    if LEDGER_DOWN.load(Ordering::SeqCst) {
        Err(Upstream(503))
    } else {
        Ok(customer * 100)
    }
}

/// Tags are evaluated only when the body is about to run (issue 32); a waiter that never runs it but serves a
/// stale value still writes the fail-safe copy with its tags, so invalidating one of them hides the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_serving_a_stale_value_writes_its_fail_safe_copy_with_its_tags() {
    let (_server, store) = redis_store_with(&[("types.billing.max_stale", "1h")]);
    let acme: TenantId = "acme".parse().unwrap();
    // The leader finds nothing (so it has no stale value and writes no copy) and computes.
    let leader = tokio::spawn(ledger_balance(store.clone(), "acme", 7));
    while LEDGER_CALLS.get() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Then an entry appears and expires: kept an hour past its TTL, a stale value to fall back on.
    let _ = store
        .set_with(
            &acme,
            &CacheType::BILLING,
            "balance:7",
            &700u32,
            Write::default().ttl(Duration::from_millis(10)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;

    // The waiter reads the stale value, joins the leader's flight and takes its error: stale value served.
    assert_eq!(balance(store.clone(), "acme", 7).await, Ok(700));
    assert_eq!(leader.await.unwrap(), Err(Upstream(503)));
    assert_eq!((LEDGER_CALLS.get(), BALANCE_CALLS.get()), (1, 0));
    assert_eq!(BALANCE_TAGS.get(), 1, "the waiter's tags, for its copy");

    // The copy carries the tag: invalidating it makes the next call compute.
    store
        .invalidate(Target::tag(&acme, "customer:7"), InvalidationStrategy::Lazy)
        .await
        .unwrap();
    LEDGER_DOWN.store(false, Ordering::SeqCst);
    assert_eq!(balance(store.clone(), "acme", 7).await, Ok(700));
    assert_eq!(
        BALANCE_CALLS.get(),
        1,
        "the fail-safe copy was hidden by its tag"
    );
    assert_eq!(BALANCE_TAGS.get(), 2);
}
