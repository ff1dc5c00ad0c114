//! Event-driven invalidation with the seeded rules, and health rows, against real Redis and a real database.

use std::time::Duration;

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::{DocumentFingerprint, Scope, TenantId, layout::DocumentKeys};
use fernando_cache_models::{
    Db, NewPendingInvalidation, health_rows, list_events, pending_invalidations, run_pending,
    schedule_invalidation,
};
use fernando_cache_ops::{
    events::{CacheEvent, EventError, apply, run_due},
    health::AlertThresholds,
    recorder::{Recorder, RecorderOptions},
};
use fernando_cache_store::Store;
use fernando_cache_testkit::{FAST_FAILURE, PostgresDb, RedisServer};

fn store_on(server: &RedisServer) -> Store {
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set_all(FAST_FAILURE.iter().copied())
            // Every failed invalidation is attempted (and logged), never refused by an open breaker.
            .set("degradation.breaker_failure_threshold", "100"),
    )
    .unwrap();
    Store::from_settings(&settings).unwrap()
}

fn tenant(t: &str) -> TenantId {
    TenantId::new(t).unwrap()
}

fn epoch() -> chrono::NaiveDateTime {
    chrono::DateTime::UNIX_EPOCH.naive_utc()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_updated_invalidates_that_documents_stages_only() {
    let pg = PostgresDb::create();
    run_pending(&mut Db::open(pg.url()).unwrap()).unwrap();
    let server = RedisServer::start();
    let store = store_on(&server);
    let (fp, other) = (
        DocumentFingerprint::of_bytes(b"invoice v1"),
        DocumentFingerprint::of_bytes(b"letter"),
    );
    let text = DocumentFingerprint::of_bytes(b"text");
    for t in ["acme", "globex"] {
        // The document's own entry and the pipeline's stages, at the keys the pipeline writes.
        for doc in [&fp, &other] {
            let keys = DocumentKeys::new(doc);
            let _ = store
                .set(&tenant(t), &CacheType::DOC_HASH, keys.document(), "result")
                .await
                .unwrap();
            // Two engine versions: the event reaches both.
            for engine in ["tesseract-5", "tesseract-6"] {
                let _ = store
                    .set(
                        &tenant(t),
                        &CacheType::OCR_RESULT,
                        &keys.text(engine),
                        "text",
                    )
                    .await
                    .unwrap();
            }
            let fields = keys.fields("rules-1", &text);
            let _ = store
                .set(&tenant(t), &CacheType::LLM_EXTRACTION, &fields, "fields")
                .await
                .unwrap();
        }
    }
    let applied = apply(
        &store,
        pg.url(),
        &CacheEvent::new("document.updated", tenant("acme")).subject(fp.to_hex()),
    )
    .await
    .unwrap();
    // doc_hash, ocr_result, llm_extraction and api_response (the HTTP copies; none here).
    assert_eq!(applied.len(), 4, "{applied:?}");
    assert_eq!(applied.iter().map(|a| a.deleted).sum::<u64>(), 4);
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let (keys, other_keys) = (DocumentKeys::new(&fp), DocumentKeys::new(&other));
    let read = |t: &TenantId, ty: CacheType, key: String| {
        let (store, t) = (store.clone(), t.clone());
        async move { store.get::<String>(&t, &ty, &key).await.unwrap() }
    };
    assert!(
        read(&acme, CacheType::DOC_HASH, keys.document().to_owned())
            .await
            .is_none()
    );
    assert!(
        read(&acme, CacheType::OCR_RESULT, keys.text("tesseract-5"))
            .await
            .is_none()
    );
    assert!(
        read(
            &acme,
            CacheType::LLM_EXTRACTION,
            keys.fields("rules-1", &text)
        )
        .await
        .is_none()
    );
    assert!(
        read(&acme, CacheType::OCR_RESULT, other_keys.text("tesseract-5"))
            .await
            .is_some(),
        "other document kept"
    );
    assert!(
        read(&globex, CacheType::OCR_RESULT, keys.text("tesseract-5"))
            .await
            .is_some(),
        "other tenant kept"
    );
    let log = list_events(
        &mut Db::open(pg.url()).unwrap(),
        epoch(),
        Some("invalidation"),
    )
    .unwrap();
    assert_eq!(log.len(), 4);
    assert!(log.iter().all(|e| e.tenant_id.as_deref() == Some("acme")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_changed_and_logout_follow_their_rules_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    run_pending(&mut Db::open(&url).unwrap()).unwrap();
    let server = RedisServer::start();
    let store = store_on(&server);
    let acme = tenant("acme");
    for ty in [CacheType::BILLING, CacheType::DASHBOARD, CacheType::SESSION] {
        let _ = store.set(&acme, &ty, "k", &1u8).await.unwrap();
        let _ = store.set(&tenant("globex"), &ty, "k", &1u8).await.unwrap();
    }
    // A session whose id starts with another's survives that other's logout.
    for id in ["sess-2", "k2"] {
        let _ = store
            .set(&acme, &CacheType::SESSION, id, &1u8)
            .await
            .unwrap();
    }

    let applied = apply(
        &store,
        &url,
        &CacheEvent::new("billing.changed", acme.clone()),
    )
    .await
    .unwrap();
    assert_eq!(applied.len(), 2);
    assert!(applied.iter().all(|a| a.strategy.as_str() == "lazy"));
    assert!(
        store
            .get::<u8>(&acme, &CacheType::BILLING, "k")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get::<u8>(&acme, &CacheType::DASHBOARD, "k")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get::<u8>(&acme, &CacheType::SESSION, "k")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get::<u8>(&tenant("globex"), &CacheType::BILLING, "k")
            .await
            .unwrap()
            .is_some()
    );

    let applied = apply(
        &store,
        &url,
        &CacheEvent::new("user.logout", acme.clone()).subject("k"),
    )
    .await
    .unwrap();
    assert_eq!(applied[0].deleted, 1);
    assert!(
        store
            .get::<u8>(&acme, &CacheType::SESSION, "k")
            .await
            .unwrap()
            .is_none()
    );
    for id in ["sess-2", "k2"] {
        assert!(
            store
                .get::<u8>(&acme, &CacheType::SESSION, id)
                .await
                .unwrap()
                .is_some(),
            "{id} kept"
        );
    }

    // Issue 30: a name that no rule and no built-in event has is an error that suggests the one meant …
    let err = apply(
        &store,
        &url,
        &CacheEvent::new("billing.chaged", acme.clone()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EventError::Unknown(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("did you mean \"billing.changed\"?")
            && text.contains("document.updated, reference_data.changed, user.logout"),
        "{text}"
    );
    // … while a known event that no enabled rule matches for this tenant applies nothing; another tenant's
    // rule makes its event known to that tenant alone.
    {
        use diesel::{Connection, connection::SimpleConnection};
        diesel::SqliteConnection::establish(dir.path().join("s.db").to_str().unwrap())
            .unwrap()
            .batch_execute(
                "INSERT INTO cache_invalidation_rules \
                 (name, event_type, tenant_id, cache_types, strategy, delay_seconds, enabled, created_at) \
                 VALUES ('globex-sync', 'globex.synced', 'globex', 'billing', 'eager', 0, 1, CURRENT_TIMESTAMP), \
                 ('all-sync', 'all.synced', NULL, 'billing', 'eager', 0, 0, CURRENT_TIMESTAMP)",
            )
            .unwrap();
    }
    assert!(
        apply(&store, &url, &CacheEvent::new("all.synced", acme.clone()))
            .await
            .unwrap()
            .is_empty()
    );
    let err = apply(&store, &url, &CacheEvent::new("globex.synced", acme))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EventError::Unknown(_)) && !err.to_string().contains("did you mean"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_event_invalidates_the_global_reference_data_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    run_pending(&mut Db::open(&url).unwrap()).unwrap();
    let server = RedisServer::start();
    let store = store_on(&server);
    let ty = CacheType::REFERENCE_DATA;
    let _ = store
        .set(Scope::Global, &ty, "currency:EUR", &1u8)
        .await
        .unwrap();
    let _ = store
        .set(&tenant("acme"), &ty, "currency:EUR", &1u8)
        .await
        .unwrap();

    let applied = apply(&store, &url, &CacheEvent::global("reference_data.changed"))
        .await
        .unwrap();
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(applied[0].deleted, 1);
    assert!(
        store
            .get::<u8>(Scope::Global, &ty, "currency:EUR")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get::<u8>(&tenant("acme"), &ty, "currency:EUR")
            .await
            .unwrap()
            .is_some(),
        "a tenant's own reference data is not the global scope's"
    );
    let log = list_events(&mut Db::open(&url).unwrap(), epoch(), Some("invalidation")).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].tenant_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_that_cannot_run_is_an_error_and_is_logged() {
    let pg = PostgresDb::create();
    run_pending(&mut Db::open(pg.url()).unwrap()).unwrap();
    let mut server = RedisServer::start();
    let store = store_on(&server);
    server.kill();
    let err = apply(
        &store,
        pg.url(),
        &CacheEvent::new("billing.changed", tenant("acme")),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("unavailable"), "{err}");
    let log = list_events(
        &mut Db::open(pg.url()).unwrap(),
        epoch(),
        Some("invalidation.failed"),
    )
    .unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].severity, "error");
}

async fn health_of(
    server: &RedisServer,
    url: &str,
) -> Vec<fernando_cache_models::models::HealthRow> {
    let store = store_on(server);
    let recorder = Recorder::spawn(
        store.clone(),
        RecorderOptions::new(url)
            .flush_interval(Duration::from_millis(20))
            .health_interval(Duration::from_millis(50))
            .alerts(AlertThresholds::new(0.8, 0.9)),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    recorder.shutdown(Duration::from_secs(5)).await;
    let mut db = Db::open(url).unwrap();
    let mut rows = health_rows(&mut db, "redis", 100).unwrap();
    rows.extend(health_rows(&mut db, "database", 100).unwrap());
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_rows_reflect_a_real_redis_server() {
    let pg = PostgresDb::create();
    run_pending(&mut Db::open(pg.url()).unwrap()).unwrap();

    let lru =
        RedisServer::start_with(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let rows = health_of(&lru, pg.url()).await;
    let redis = rows
        .iter()
        .find(|r| r.component == "redis")
        .expect("a redis row");
    assert_eq!(redis.status, "healthy", "{redis:?}");
    assert_eq!(redis.eviction_policy.as_deref(), Some("allkeys-lru"));
    assert_eq!(redis.max_memory, Some(64 * 1024 * 1024));
    assert!(
        redis.used_memory.unwrap() > 0
            && redis.latency_us.is_some()
            && redis.connected_clients.unwrap() >= 1
    );
    assert!(
        rows.iter()
            .any(|r| r.component == "database" && r.status == "healthy")
    );

    let pg2 = PostgresDb::create();
    run_pending(&mut Db::open(pg2.url()).unwrap()).unwrap();
    let noeviction = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let rows = health_of(&noeviction, pg2.url()).await;
    let redis = rows.iter().find(|r| r.component == "redis").unwrap();
    assert_eq!(redis.status, "degraded");
    assert!(redis.message.contains("noeviction"), "{}", redis.message);

    let pg3 = PostgresDb::create();
    run_pending(&mut Db::open(pg3.url()).unwrap()).unwrap();
    let mut gone = RedisServer::start();
    gone.kill();
    let rows = health_of(&gone, pg3.url()).await;
    assert!(
        rows.iter()
            .any(|r| r.component == "redis" && r.status == "down")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_hit_ratio_raises_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    run_pending(&mut Db::open(&url).unwrap()).unwrap();
    let server = RedisServer::start();
    let store = store_on(&server);
    let recorder = Recorder::spawn(
        store.clone(),
        RecorderOptions::new(&url)
            .flush_interval(Duration::from_millis(20))
            .alerts(AlertThresholds::new(0.8, 0.9)),
    );
    for i in 0..50 {
        let _ = store
            .get::<u8>(&tenant("acme"), &CacheType::SESSION, &format!("cold{i}"))
            .await
            .unwrap();
    }
    recorder.shutdown(Duration::from_secs(5)).await;
    let alerts = list_events(
        &mut Db::open(&url).unwrap(),
        epoch(),
        Some("alert.hit_ratio"),
    )
    .unwrap();
    assert!(!alerts.is_empty());
    assert_eq!(alerts[0].tenant_id.as_deref(), Some("acme"));
    assert_eq!(alerts[0].cache_type.as_deref(), Some("session"));
}

/// Issue 12: a delayed rule is a row, not a sleeping task — it survives the process that scheduled it, and of
/// two replicas polling at once, one applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_rule_survives_a_restart_and_runs_once_across_replicas() {
    use diesel::{Connection, connection::SimpleConnection};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let url = format!("sqlite://{}", path.display());
    run_pending(&mut Db::open(&url).unwrap()).unwrap();
    diesel::SqliteConnection::establish(path.to_str().unwrap())
        .unwrap()
        .batch_execute(
            "INSERT INTO cache_invalidation_rules \
             (name, event_type, tenant_id, cache_types, strategy, delay_seconds, enabled, created_at) \
             VALUES ('later', 'catalog.changed', NULL, 'reference_data', 'eager', 1, 1, CURRENT_TIMESTAMP)",
        )
        .unwrap();
    let server = RedisServer::start();
    let acme = tenant("acme");
    {
        // The process that receives the event, then goes away before the delay is over.
        let store = store_on(&server);
        let _ = store
            .set(&acme, &CacheType::REFERENCE_DATA, "fx", &1u8)
            .await
            .unwrap();
        let applied = apply(
            &store,
            &url,
            &CacheEvent::new("catalog.changed", acme.clone()),
        )
        .await
        .unwrap();
        assert!(applied.len() == 1 && applied[0].delayed, "{applied:?}");
        assert_eq!(
            run_due(&store, &url).await.unwrap(),
            0,
            "nothing is due before the delay"
        );
    }
    let (a, b) = (store_on(&server), store_on(&server));
    assert!(
        a.get::<u8>(&acme, &CacheType::REFERENCE_DATA, "fx")
            .await
            .unwrap()
            .is_some(),
        "not applied yet"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (ran_a, ran_b) = tokio::join!(run_due(&a, &url), run_due(&b, &url));
    assert_eq!(
        ran_a.unwrap() + ran_b.unwrap(),
        1,
        "applied by exactly one replica"
    );
    assert!(
        a.get::<u8>(&acme, &CacheType::REFERENCE_DATA, "fx")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(run_due(&a, &url).await.unwrap(), 0, "and never again");
    let log = list_events(&mut Db::open(&url).unwrap(), epoch(), Some("invalidation")).unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].details.contains("via rule later"),
        "{}",
        log[0].details
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_pending_row_is_reported_once_and_retired() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let mut db = Db::open(&url).unwrap();
    run_pending(&mut db).unwrap();
    let now = chrono::Utc::now().naive_utc();
    schedule_invalidation(
        &mut db,
        &NewPendingInvalidation {
            rule_name: "by-hand".into(),
            event_type: "e".into(),
            tenant_id: Some("acme".into()),
            subject: None,
            cache_type: "not a type!".into(),
            strategy: "eager".into(),
            due_at: now,
            created_at: now,
        },
    )
    .unwrap();
    let server = RedisServer::start();
    let store = store_on(&server);
    assert_eq!(run_due(&store, &url).await.unwrap(), 0);
    assert_eq!(
        pending_invalidations(&mut db).unwrap(),
        0,
        "retired, not retried"
    );
    let errors = list_events(&mut db, epoch(), Some("invalidation.rule_error")).unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].details.contains("by-hand"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_behind_another_past_max_lag_raises_an_alert_naming_it_and_never_its_url() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set("regions.name", "us")
            .set("regions.from.eu", "redis://:hunter2@eu.example:6379")
            .set("regions.from.ap", "redis://ap.example:6379"),
    )
    .unwrap();
    let store = Store::from_settings(&settings).unwrap();
    let thresholds = AlertThresholds::new(0.0, 1.0).region_lag(Duration::from_secs(30));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // What replicators noted: EU's caught up a moment ago; AP's two minutes ago, and has noted nothing since.
    let note = |region: &str, at: u64, behind_ms: u64| {
        server
            .cli(&[
                "SET",
                &format!("fernando:test:_repl_applied:{region}"),
                &format!("applied=1-0 behind=0 behind_ms={behind_ms} gaps=0 at={at}"),
            ])
            .unwrap();
    };
    note("eu", now_ms, 0);
    note("ap", now_ms - 120_000, 0);
    let (row, events) = fernando_cache_ops::health::check_backend(&store, &thresholds).await;
    let alert = events
        .iter()
        .find(|e| e.event_type == "alert.region_lag")
        .expect("an alert for AP");
    assert!(alert.details.contains("ap by 12"), "{}", alert.details);
    assert!(!alert.details.contains("eu"), "{}", alert.details);
    assert!(!alert.details.contains("example"), "{}", alert.details);
    assert_eq!(row.status, "degraded");
    // AP's replicator runs again, but far behind: still an alert; then caught up: none.
    note("ap", now_ms, 45_000);
    let (_, events) = fernando_cache_ops::health::check_backend(&store, &thresholds).await;
    assert!(events.iter().any(|e| e.event_type == "alert.region_lag"));
    note("ap", now_ms, 0);
    let (row, events) = fernando_cache_ops::health::check_backend(&store, &thresholds).await;
    assert!(
        !events.iter().any(|e| e.event_type == "alert.region_lag"),
        "{events:?}"
    );
    assert_eq!(row.status, "healthy", "{}", row.message);
    // A region nothing was ever noted of is one no replicator runs for.
    server
        .cli(&["DEL", "fernando:test:_repl_applied:eu"])
        .unwrap();
    let (_, events) = fernando_cache_ops::health::check_backend(&store, &thresholds).await;
    let alert = events
        .iter()
        .find(|e| e.event_type == "alert.region_lag")
        .expect("an alert for EU");
    assert!(
        alert.details.contains("eu (no replicator"),
        "{}",
        alert.details
    );
}
