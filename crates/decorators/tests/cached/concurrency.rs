//! Single-flight through the macro: a cold key under 500 concurrent callers runs the body once; errors reach
//! the waiters when they can be copied.

use std::{sync::Arc, time::Duration};

use fernando_cache_decorators::cached;
use fernando_cache_store::Store;
use tokio::task::JoinSet;

use crate::support::{Calls, redis_store};

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
