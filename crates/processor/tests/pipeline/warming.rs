//! Warming: a hot document's entries are refreshed before they expire; a cold one is left to expire; reference
//! data is loaded into `reference_data`.

use std::time::Duration;

use async_trait::async_trait;
use fernando_cache_processor::{ReferenceSource, StageOutcome, WarmPolicy, Warmer};
use fernando_cache_store::{
    KeyTtl, Store,
    config::{CacheType, Environment, LoadOptions, Settings},
    keys::{DocumentFingerprint, Scope, TenantId, layout::DocumentKeys},
};
use fernando_cache_testkit::RedisServer;

use crate::support::{CountingText, processor, sample};

fn short_ttl_store(server: &RedisServer) -> Store {
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set("types.doc_hash.ttl", "3s")
            .set("types.ocr_result.ttl", "3s")
            .set("types.llm_extraction.ttl", "3s"),
    )
    .unwrap();
    Store::from_settings(&settings).unwrap()
}

async fn ttl_left(store: &Store, tenant: &TenantId, key: &str) -> Option<Duration> {
    match store
        .admin()
        .remaining_ttl(tenant, &CacheType::DOC_HASH, key)
        .await
        .unwrap()
    {
        KeyTtl::Expires(d) => Some(d),
        _ => None,
    }
}

#[tokio::test]
async fn hot_documents_outlive_their_ttl_and_cold_ones_expire() {
    let server = RedisServer::start();
    let store = short_ttl_store(&server);
    let engine = CountingText::new("1");
    let p = processor(store.clone(), engine.clone(), "acme");
    let warmer = Warmer::new(p.clone(), 2);
    let hot = sample("acme/invoices/RE-2026-0042.txt");
    let cold = sample("acme/letters/payment-reminder.txt");
    p.process_file(&cold).await.unwrap();
    // Read the hot document across three TTLs, warming every second as the server would.
    for _ in 0..9 {
        p.process_file(&hot).await.unwrap();
        p.process_file(&hot).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        warmer.warm_hot().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let again = p.process_file(&hot).await.unwrap();
    assert_eq!(
        again.stages.document,
        StageOutcome::Hit,
        "the hot document never expired"
    );
    let fp: DocumentFingerprint = again.result.fingerprint.parse().unwrap();
    let tenant: TenantId = "acme".parse().unwrap();
    let doc_key = DocumentKeys::new(&fp).result(&again.result.text_engine, "rules@1");
    assert!(ttl_left(&store, &tenant, &doc_key).await.is_some());
    let cold_again = p.process_file(&cold).await.unwrap();
    assert_eq!(
        cold_again.stages.document,
        StageOutcome::Miss,
        "the cold document expired"
    );
    // The hot document was computed once; the cold one twice.
    assert_eq!(engine.calls(), 1 + 2);
}

struct Currencies;

#[async_trait]
impl ReferenceSource for Currencies {
    async fn load(&self) -> Result<Vec<(String, serde_json::Value)>, String> {
        Ok(vec![
            ("currency:EUR".into(), serde_json::json!({"minor_units": 2})),
            ("currency:JPY".into(), serde_json::json!({"minor_units": 0})),
        ])
    }
}

struct Broken;

#[async_trait]
impl ReferenceSource for Broken {
    async fn load(&self) -> Result<Vec<(String, serde_json::Value)>, String> {
        Err("source offline".into())
    }
}

#[tokio::test]
async fn reference_data_is_loaded_globally_and_a_failing_source_says_why() {
    let server = RedisServer::start();
    let store = short_ttl_store(&server);
    let p = processor(store.clone(), CountingText::new("1"), "acme");
    let warmer = Warmer::new(p, 1);
    let report = warmer
        .warm_reference(Scope::Global, &Currencies)
        .await
        .unwrap();
    assert_eq!((report.checked, report.refreshed), (2, 2));
    let jpy: Option<String> = store
        .get(Scope::Global, &CacheType::REFERENCE_DATA, "currency:JPY")
        .await
        .unwrap();
    assert_eq!(jpy.as_deref(), Some(r#"{"minor_units":0}"#));
    assert_eq!(
        warmer
            .warm_reference(Scope::Global, &Broken)
            .await
            .unwrap_err(),
        "source offline"
    );
}

/// Issue 14: on a Zipf trace with a daily rhythm and TTLs shorter than the period, within one budget, the
/// predictive policy's hit ratio beats frequency-only warming, which beats none — decided by the same
/// `WarmPolicy::plan` the warmup jobs run.
#[test]
fn predictive_warming_beats_frequency_which_beats_none_on_a_daily_trace() {
    let day = Duration::from_secs(86_400);
    let none = crate::daily_trace::daily_replay(&WarmPolicy::None);
    let frequency =
        crate::daily_trace::daily_replay(&WarmPolicy::FrequencyBased { half_life: day });
    let predictive = crate::daily_trace::daily_replay(&WarmPolicy::Predictive {
        half_life: day,
        periods: vec![day, 7 * day],
        min_probability: 0.3,
    });
    println!("none {none:?}\nfrequency {frequency:?}\npredictive {predictive:?}");
    assert_eq!(none.warm_ms, 0);
    let budget_ms = 1_500 * (14 * 96 + 1);
    for o in [&frequency, &predictive] {
        assert!(o.warm_ms <= budget_ms, "{o:?}");
    }
    assert!(
        frequency.hit_ratio() > none.hit_ratio(),
        "frequency {:.3} vs none {:.3}",
        frequency.hit_ratio(),
        none.hit_ratio()
    );
    assert!(
        predictive.hit_ratio() > frequency.hit_ratio(),
        "predictive {:.3} vs frequency {:.3}",
        predictive.hit_ratio(),
        frequency.hit_ratio()
    );
}
