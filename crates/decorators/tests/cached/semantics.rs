//! What is cached: `Ok` but not `Err`, `Some` but not `None` (unless asked), methods, presets, invalidation,
//! and the function simply running when no store is there or Redis is gone.

use fernando_cache_decorators::{
    cache_billing_summary, cache_user_dashboard_data, cached, invalidates,
};
use fernando_cache_store::{
    InvalidationStrategy, Store, Target, config::CacheType, keys::TenantId,
};
use serde::{Deserialize, Serialize};

use crate::support::{Calls, entry_keys, redis_store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    tenant: String,
    total: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Failed(&'static str);

static RESULT_CALLS: Calls = Calls::new();

#[cached(store = store, cache_type = "billing", ttl = "1m")]
async fn report(store: &Store, tenant_id: &str, fail: bool) -> Result<Report, Failed> {
    RESULT_CALLS.hit();
    if fail {
        return Err(Failed("upstream down"));
    }
    Ok(Report {
        tenant: tenant_id.to_owned(),
        total: 42,
    })
}

#[tokio::test]
async fn ok_is_cached_and_err_is_not() {
    let (server, store) = redis_store();
    let ok = report(&store, "acme", false).await.unwrap();
    assert_eq!(ok.total, 42);
    assert_eq!(report(&store, "acme", false).await.unwrap(), ok);
    assert_eq!(RESULT_CALLS.get(), 1, "the second call is a hit");

    assert_eq!(
        report(&store, "acme", true).await,
        Err(Failed("upstream down"))
    );
    assert_eq!(
        report(&store, "acme", true).await,
        Err(Failed("upstream down"))
    );
    assert_eq!(RESULT_CALLS.get(), 3, "errors are computed every time");

    let keys = entry_keys(&server);
    assert_eq!(keys.len(), 1, "only the Ok result is stored: {keys:?}");
    assert!(
        keys[0].starts_with("fernando:test:{tenant_acme}:billing:"),
        "{keys:?}"
    );
    let ttl: i64 = server
        .command(&["PTTL", &keys[0]])
        .unwrap()
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(
        (50_000..=60_000).contains(&ttl),
        "the ttl option applies: {ttl} ms"
    );
}

static OPTION_CALLS: Calls = Calls::new();
static OPTION_NONE_CALLS: Calls = Calls::new();

#[cached(store = store, cache_type = "reference_data", tenant = "shared-ref")]
async fn lookup(store: &Store, code: &str) -> Option<String> {
    OPTION_CALLS.hit();
    (code != "missing").then(|| format!("name of {code}"))
}

#[cached(store = store, cache_type = "reference_data", tenant = "shared-ref", cache_none)]
async fn lookup_remembering_absence(store: &Store, code: &str) -> Option<String> {
    OPTION_NONE_CALLS.hit();
    (code != "missing").then(|| format!("name of {code}"))
}

#[tokio::test]
async fn some_is_cached_and_none_only_when_asked() {
    let (_server, store) = redis_store();
    for _ in 0..3 {
        assert_eq!(lookup(&store, "DE").await.as_deref(), Some("name of DE"));
        assert_eq!(lookup(&store, "missing").await, None);
    }
    assert_eq!(OPTION_CALLS.get(), 1 + 3, "Some once, None every time");

    for _ in 0..3 {
        assert_eq!(lookup_remembering_absence(&store, "missing").await, None);
    }
    assert_eq!(OPTION_NONE_CALLS.get(), 1, "cache_none caches the None");
}

struct Billing {
    store: Store,
    calls: Calls,
    rate: u64,
}

impl Billing {
    #[cached(store = self.store, cache_type = "billing")]
    async fn amount(&self, tenant: &TenantId, units: u64) -> Result<u64, std::io::Error> {
        self.calls.hit();
        Ok(units * self.rate)
    }

    #[cached(store = &self.store, cache_type = "billing", key = "seats:{team}")]
    async fn seats(&mut self, tenant: TenantId, team: String) -> u32 {
        self.calls.hit();
        self.rate += 1;
        team.len() as u32
    }
}

#[tokio::test]
async fn methods_with_self_are_cached() {
    let (server, store) = redis_store();
    let mut billing = Billing {
        store: store.clone(),
        calls: Calls::new(),
        rate: 3,
    };
    let acme = TenantId::new("acme").unwrap();
    assert_eq!(billing.amount(&acme, 5).await.unwrap(), 15);
    assert_eq!(billing.amount(&acme, 5).await.unwrap(), 15);
    assert_eq!(billing.amount(&acme, 6).await.unwrap(), 18);
    assert_eq!(billing.calls.get(), 2);

    assert_eq!(billing.seats(acme.clone(), "ops".into()).await, 3);
    assert_eq!(billing.seats(acme.clone(), "ops".into()).await, 3);
    assert_eq!(billing.calls.get(), 3, "`&mut self` methods are cached too");
    assert!(
        entry_keys(&server).contains(&"fernando:test:{tenant_acme}:billing:seats%3Aops".to_owned()),
        "{:?}",
        entry_keys(&server)
    );
}

static DASHBOARD_CALLS: Calls = Calls::new();
static BILLING_CALLS: Calls = Calls::new();

#[cache_user_dashboard_data(store = store)]
async fn dashboard(store: &Store, tenant_id: &str) -> Vec<u32> {
    DASHBOARD_CALLS.hit();
    vec![1, 2, 3]
}

#[cache_billing_summary(store = store)]
async fn billing_summary(store: &Store, tenant_id: &str) -> u64 {
    BILLING_CALLS.hit();
    99
}

#[invalidates(store = store, cache_type = "dashboard")]
async fn record_activity(store: &Store, tenant_id: &str) -> Result<(), Failed> {
    Ok(())
}

#[invalidates(store = store, cache_type = "dashboard")]
async fn failed_activity(store: &Store, tenant_id: &str) -> Result<(), Failed> {
    Err(Failed("rejected"))
}

#[tokio::test]
async fn presets_use_their_types_and_invalidates_clears_on_success_only() {
    let (server, store) = redis_store();
    dashboard(&store, "acme").await;
    billing_summary(&store, "acme").await;
    let keys = entry_keys(&server);
    assert!(
        keys.iter()
            .any(|k| k.starts_with("fernando:test:{tenant_acme}:dashboard:")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("fernando:test:{tenant_acme}:billing:")),
        "{keys:?}"
    );

    failed_activity(&store, "acme").await.unwrap_err();
    dashboard(&store, "acme").await;
    assert_eq!(
        DASHBOARD_CALLS.get(),
        1,
        "a failed change invalidates nothing"
    );

    record_activity(&store, "acme").await.unwrap();
    dashboard(&store, "acme").await;
    assert_eq!(
        DASHBOARD_CALLS.get(),
        2,
        "a successful change invalidates the dashboard"
    );
    billing_summary(&store, "acme").await;
    assert_eq!(BILLING_CALLS.get(), 1, "other types stay cached");

    dashboard(&store, "other").await;
    record_activity(&store, "acme").await.unwrap();
    dashboard(&store, "other").await;
    assert_eq!(
        DASHBOARD_CALLS.get(),
        3,
        "another tenant's entries stay cached"
    );
}

static DOWN_CALLS: Calls = Calls::new();

#[cached(store = store, cache_type = "dashboard")]
async fn resilient(store: &Store, tenant_id: &str) -> Result<String, std::io::Error> {
    DOWN_CALLS.hit();
    Ok(format!("fresh for {tenant_id}"))
}

#[tokio::test]
async fn redis_killed_the_function_still_returns_its_value() {
    let (mut server, store) = redis_store();
    assert_eq!(resilient(&store, "acme").await.unwrap(), "fresh for acme");
    server.kill();
    for _ in 0..5 {
        assert_eq!(resilient(&store, "acme").await.unwrap(), "fresh for acme");
    }
    assert_eq!(
        DOWN_CALLS.get(),
        6,
        "every call ran the body while Redis was gone"
    );
    assert!(
        store.metrics().totals().degraded > 0,
        "the misses were counted as degraded"
    );
}

static GLOBAL_CALLS: Calls = Calls::new();

#[cached(cache_type = "api_response")]
async fn uses_the_installed_store(tenant_id: &str, n: u32) -> u32 {
    GLOBAL_CALLS.hit();
    n * 2
}

#[tokio::test]
async fn without_an_installed_store_the_function_simply_runs_and_with_one_it_caches() {
    // The only test of this binary that touches the installed store.
    assert!(fernando_cache_store::installed().is_none());
    assert_eq!(uses_the_installed_store("acme", 4).await, 8);
    assert_eq!(uses_the_installed_store("acme", 4).await, 8);
    assert_eq!(GLOBAL_CALLS.get(), 2);

    let (_server, store) = redis_store();
    fernando_cache_store::install(&store);
    assert_eq!(uses_the_installed_store("acme", 4).await, 8);
    assert_eq!(uses_the_installed_store("acme", 4).await, 8);
    assert_eq!(GLOBAL_CALLS.get(), 3);
    let hits = store
        .metrics()
        .series("acme", CacheType::API_RESPONSE.as_str())
        .map(|s| s.counters.hits);
    assert_eq!(hits, Some(1));

    assert!(fernando_cache_store::uninstall().is_some());
    assert_eq!(uses_the_installed_store("acme", 4).await, 8);
    assert_eq!(GLOBAL_CALLS.get(), 4);
}

static INVALID_CALLS: Calls = Calls::new();

#[cached(store = store)]
async fn with_tenant(store: &Store, tenant_id: String) -> usize {
    INVALID_CALLS.hit();
    tenant_id.len()
}

#[tokio::test]
async fn an_invalid_tenant_runs_uncached_instead_of_failing() {
    let (server, store) = redis_store();
    assert_eq!(with_tenant(&store, String::new()).await, 0);
    assert_eq!(with_tenant(&store, "bad\u{7}".into()).await, 4);
    assert_eq!(INVALID_CALLS.get(), 2);
    assert!(entry_keys(&server).is_empty());
    assert_eq!(with_tenant(&store, "ok".into()).await, 2);
    assert_eq!(entry_keys(&server).len(), 1);
}

static TAGGED_CALLS: Calls = Calls::new();

/// Each customer's invoices are tagged with the customer, so one call can retire them all.
#[cached(store = store, cache_type = "billing", tag = format!("customer:{customer}"), tag = "invoices")]
async fn invoice(
    store: &Store,
    tenant_id: &str,
    customer: u32,
    number: u32,
) -> Result<String, Failed> {
    TAGGED_CALLS.hit();
    Ok(format!("{customer}/{number}"))
}

#[invalidates(store = store, tag = format!("customer:{customer}"))]
async fn customer_changed(store: &Store, tenant_id: &str, customer: u32) -> Result<(), Failed> {
    Ok(())
}

#[tokio::test]
async fn a_tag_names_what_an_invalidation_retires() {
    let (_server, store) = redis_store();
    for (customer, number) in [(1, 10), (1, 11), (2, 20)] {
        let _ = invoice(&store, "acme", customer, number).await.unwrap();
    }
    assert_eq!(TAGGED_CALLS.get(), 3);
    for (customer, number) in [(1, 10), (1, 11), (2, 20)] {
        let _ = invoice(&store, "acme", customer, number).await.unwrap();
    }
    assert_eq!(TAGGED_CALLS.get(), 3, "all hits");

    customer_changed(&store, "acme", 1).await.unwrap();
    let _ = invoice(&store, "acme", 2, 20).await.unwrap();
    assert_eq!(TAGGED_CALLS.get(), 3, "customer 2's entry is untouched");
    let _ = invoice(&store, "acme", 1, 10).await.unwrap();
    let _ = invoice(&store, "acme", 1, 11).await.unwrap();
    assert_eq!(
        TAGGED_CALLS.get(),
        5,
        "customer 1's entries were recomputed"
    );

    // A static tag works the same way, from the store's API.
    let acme: TenantId = "acme".parse().unwrap();
    store
        .invalidate(Target::tag(&acme, "invoices"), InvalidationStrategy::Lazy)
        .await
        .unwrap();
    let _ = invoice(&store, "acme", 2, 20).await.unwrap();
    assert_eq!(TAGGED_CALLS.get(), 6);
}

static STATEMENT_CALLS: Calls = Calls::new();
static STATEMENT_TAGS: Calls = Calls::new();

fn statement_tag(customer: u32) -> String {
    STATEMENT_TAGS.hit();
    format!("customer:{customer}")
}

#[cached(store = store, cache_type = "billing", tag = statement_tag(customer))]
async fn statement(store: &Store, tenant_id: &str, customer: u32) -> u32 {
    STATEMENT_CALLS.hit();
    customer * 2
}

/// A tag is needed only to write the entry: a hit evaluates no tag expression (issue 32).
#[tokio::test]
async fn tag_expressions_are_evaluated_on_a_miss_only() {
    let (_server, store) = redis_store();
    assert_eq!(statement(&store, "acme", 4).await, 8);
    assert_eq!((STATEMENT_CALLS.get(), STATEMENT_TAGS.get()), (1, 1));
    for _ in 0..3 {
        assert_eq!(statement(&store, "acme", 4).await, 8);
    }
    assert_eq!(
        (STATEMENT_CALLS.get(), STATEMENT_TAGS.get()),
        (1, 1),
        "hits evaluate no tag"
    );

    // The entry was written with its tag all the same.
    let acme: TenantId = "acme".parse().unwrap();
    store
        .invalidate(Target::tag(&acme, "customer:4"), InvalidationStrategy::Lazy)
        .await
        .unwrap();
    assert_eq!(statement(&store, "acme", 4).await, 8);
    assert_eq!((STATEMENT_CALLS.get(), STATEMENT_TAGS.get()), (2, 2));
}
