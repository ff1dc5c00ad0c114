//! Alerts are announced once per condition (issue 14): a `noeviction` policy seen by every health check is
//! posted to the webhook — a real local HTTP server — once, resolved when the policy changes, posted again when
//! it comes back; Redis going down is one more alert, however many checks see it.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, routing::post};
use fernando_cache_config::{Environment, LoadOptions, Settings};
use fernando_cache_models::{Db, list_events, run_pending};
use fernando_cache_ops::{
    alerts::Webhook,
    recorder::{Recorder, RecorderOptions},
};
use fernando_cache_store::Store;
use fernando_cache_testkit::{FAST_FAILURE, PostgresDb, RedisServer};
use serde_json::Value;

type Received = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let app = Router::new()
        .route(
            "/hooks/cache",
            post(
                |State(got): State<Received>, Json(body): Json<Value>| async move {
                    got.lock().unwrap().push(body);
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks/cache"), got)
}

fn alerts_named(got: &Received, name: &str) -> usize {
    got.lock()
        .unwrap()
        .iter()
        .filter(|a| a["alert"] == name)
        .count()
}

/// Waits until `check` holds, for a few seconds (checks run every 50 ms).
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_is_posted_once_while_it_lasts_and_again_when_it_returns() {
    let mut redis = RedisServer::start(); // the default policy: noeviction
    let pg = PostgresDb::create();
    run_pending(&mut Db::open(pg.url()).unwrap()).unwrap();
    let (url, got) = receiver().await;
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(redis.overrides())
            .set_all(FAST_FAILURE.iter().copied()),
    )
    .unwrap();
    let store = Store::from_settings(&settings).unwrap();
    let recorder = Recorder::spawn(
        store,
        RecorderOptions::new(pg.url())
            .flush_interval(Duration::from_millis(50))
            .health_interval(Duration::from_millis(50))
            .webhook(Webhook::new(url, Duration::from_secs(2)).unwrap()),
    );

    until("the noeviction alert", || {
        alerts_named(&got, "alert.noeviction") == 1
    })
    .await;
    // Ten more checks see the same condition: nothing more is posted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        alerts_named(&got, "alert.noeviction"),
        1,
        "{:?}",
        got.lock().unwrap()
    );
    let first = got.lock().unwrap()[0].clone();
    assert!(
        first["details"].as_str().unwrap().contains("allkeys-lru"),
        "{first}"
    );
    assert_eq!(first["severity"], "warning");

    // Fixed: resolved (recorded, not posted); broken again: posted again.
    redis
        .command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis
        .command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .unwrap();
    until("the second noeviction alert", || {
        alerts_named(&got, "alert.noeviction") == 2
    })
    .await;

    // Redis dies: one alert, however many checks fail.
    redis.kill();
    until("the backend-down alert", || {
        alerts_named(&got, "alert.backend_down") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(alerts_named(&got, "alert.backend_down"), 1);

    recorder.shutdown(Duration::from_secs(5)).await;
    let mut db = Db::open(pg.url()).unwrap();
    let epoch = chrono::DateTime::UNIX_EPOCH.naive_utc();
    let logged = |t: &str| {
        list_events(&mut Db::open(pg.url()).unwrap(), epoch, Some(t))
            .unwrap()
            .len()
    };
    assert_eq!(
        logged("alert.noeviction"),
        2,
        "the event log holds each start once"
    );
    assert!(
        !list_events(&mut db, epoch, Some("alert.resolved"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(logged("alert.backend_down"), 1);
}
