//! Fail-safe through the pipeline (design 0014), against a local HTTP server speaking the chat completions API
//! whose behaviour the test switches: an extractor that starts failing → the previous extraction is served,
//! marked stale, and not retried within the throttle period; one slower than the soft timeout → the stale
//! extraction now, the fresh one in the cache later; with nothing kept → the error, or the hard timeout,
//! reaches the caller.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use fernando_cache_processor::{
    DocumentProcessor, OpenAiExtractor, ProcessError,
    StageOutcome::{Hit, Miss, Stale},
};
use fernando_cache_store::{
    Store,
    config::{Environment, LoadOptions, Settings},
};
use fernando_cache_testkit::{FAST_FAILURE, RedisServer};
use serde_json::json;
use tokio::sync::Mutex;

use crate::support::{CountingText, sample};

/// The fake extractor: what it does now, and how many requests it saw.
#[derive(Clone, Default)]
struct Upstream {
    mode: Arc<Mutex<&'static str>>,
    requests: Arc<AtomicUsize>,
}

impl Upstream {
    async fn set(&self, mode: &'static str) {
        *self.mode.lock().await = mode;
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn completions(State(up): State<Upstream>) -> Response {
    up.requests.fetch_add(1, Ordering::SeqCst);
    let mode = *up.mode.lock().await;
    let number = match mode {
        "v1" => "INV-1",
        "v2" => "INV-2",
        "slow-v3" => {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "INV-3"
        }
        "hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "INV-never"
        }
        _ => return (StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response(),
    };
    let content = json!({ "invoice_number": number }).to_string();
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
    }))
    .into_response()
}

async fn upstream() -> (SocketAddr, Upstream) {
    let up = Upstream::default();
    up.set("v1").await;
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, up)
}

/// Extractions fresh 300 ms and kept an hour past that; documents fresh 300 ms.
fn pipeline(server: &RedisServer, addr: SocketAddr, extra: &[(&str, &str)]) -> DocumentProcessor {
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set_all(server.overrides())
            .set_all(FAST_FAILURE.iter().copied())
            .set("processor.openai.url", format!("http://{addr}/v1"))
            .set("processor.openai.model", "local-model")
            .set("processor.openai.timeout", "5s")
            .set("types.doc_hash.ttl", "300ms")
            .set("types.llm_extraction.ttl", "300ms")
            .set("types.llm_extraction.max_stale", "1h")
            .set("types.llm_extraction.fail_safe_throttle", "1s")
            .set_all(extra.iter().map(|(k, v)| (*k, (*v).to_owned()))),
    )
    .unwrap();
    let store = Store::from_settings(&settings).unwrap();
    let extractor = OpenAiExtractor::new(&settings.processor.openai, &settings.prices);
    let mut p = DocumentProcessor::new(
        store,
        vec![CountingText::new("1")],
        Arc::new(extractor),
        50 << 20,
    );
    p.set_tenant_context("acme".parse().unwrap());
    p
}

async fn expire() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_extractor_is_answered_with_the_previous_extraction_marked_stale() {
    let server = RedisServer::start();
    let (addr, up) = upstream().await;
    let p = pipeline(&server, addr, &[]);
    let doc = sample("acme/invoices/RE-2026-0042.txt");
    let first = p.process_file(&doc).await.unwrap();
    assert_eq!(first.stages.extraction, Miss);
    assert_eq!(first.result.fields.invoice_number.as_deref(), Some("INV-1"));

    expire().await;
    up.set("down").await;
    let before = up.requests();
    let stale = p.process_file(&doc).await.unwrap();
    assert_eq!(
        stale.stages.extraction, Stale,
        "served the previous extraction, marked stale"
    );
    assert_eq!(stale.result.fields.invoice_number.as_deref(), Some("INV-1"));
    assert_eq!(up.requests(), before + 1, "the extractor was asked once");

    // Within the throttle period: still stale, and the extractor is not asked again (nor is the document
    // cached whole on a stale stage, so the stage is consulted each time).
    for _ in 0..3 {
        let again = p.process_file(&doc).await.unwrap();
        assert_eq!(
            (again.stages.document, again.stages.extraction),
            (Miss, Stale)
        );
    }
    assert_eq!(up.requests(), before + 1, "no retry within the throttle");

    // The extractor recovers; after the throttle period the stage computes again.
    up.set("v2").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = p.process_file(&doc).await.unwrap();
    assert_eq!(fresh.stages.extraction, Miss);
    assert_eq!(fresh.result.fields.invoice_number.as_deref(), Some("INV-2"));
    let cached = p.process_file(&doc).await.unwrap();
    assert_eq!(
        cached.stages.document, Hit,
        "a fresh result is cached whole again"
    );

    // A document never extracted before: nothing to fall back on, the error reaches the caller.
    up.set("down").await;
    let other = sample("acme/letters/payment-reminder.txt");
    let err = p.process_file(&other).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_extractor_past_the_soft_timeout_serves_stale_now_and_fresh_later() {
    let server = RedisServer::start();
    let (addr, up) = upstream().await;
    let p = pipeline(
        &server,
        addr,
        &[
            ("types.llm_extraction.soft_timeout", "100ms"),
            ("types.llm_extraction.hard_timeout", "2s"),
        ],
    );
    let doc = sample("acme/invoices/RE-2026-0042.txt");
    let _ = p.process_file(&doc).await.unwrap();
    expire().await;

    up.set("slow-v3").await;
    let now = p.process_file(&doc).await.unwrap();
    assert_eq!(now.stages.extraction, Stale);
    assert_eq!(now.result.fields.invoice_number.as_deref(), Some("INV-1"));

    // The slow extraction completes in the background and lands in the cache.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let later = p.process_file(&doc).await.unwrap();
        if later.stages.extraction == Hit {
            assert_eq!(later.result.fields.invoice_number.as_deref(), Some("INV-3"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow extraction never reached the cache"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Nothing kept and an extractor that hangs: the hard timeout reaches the caller.
    up.set("hang").await;
    let other = sample("acme/letters/payment-reminder.txt");
    let err = p.process_file(&other).await.unwrap_err();
    assert!(
        matches!(err, ProcessError::TimedOut(t) if t == Duration::from_secs(2)),
        "{err}"
    );
}
