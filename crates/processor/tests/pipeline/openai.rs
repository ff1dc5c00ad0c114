//! The OpenAI-compatible extractor against a local HTTP server that speaks the chat completions API: a good
//! answer, an error status, an unusable answer, and a server too slow to answer.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use fernando_cache_processor::{EngineError, FieldExtractor, OpenAiExtractor};
use fernando_cache_store::config::{Environment, LoadOptions, Settings};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// A request the fake server saw: its `Authorization` header and JSON body.
type Seen = (Option<String>, Value);

/// What the fake server answers, and the requests it saw.
#[derive(Clone)]
struct Fake {
    mode: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn completions(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    fake.seen.lock().await.push((auth, body));
    let content = match fake.mode {
        "ok" => json!({
            "invoice_number": "INV-7781",
            "dates": ["2026-11-03"],
            "total": "1482.00 GBP",
            "vat_ids": ["GB123456789"],
            "ibans": ["GB82 WEST 1234 5698 7654 32"],
            "emails": ["Accounts@Example-Logistics.example"]
        })
        .to_string(),
        "fenced" => "```json\n{\"invoice_number\": \"X-1\"}\n```".to_owned(),
        "error" => {
            return (StatusCode::TOO_MANY_REQUESTS, "rate limited, try later").into_response();
        }
        "prose" => "The invoice number is INV-7781.".to_owned(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "{}".to_owned()
        }
        other => panic!("unknown mode {other}"),
    };
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
    }))
    .into_response()
}

async fn serve(mode: &'static str) -> (SocketAddr, Fake) {
    let fake = Fake {
        mode,
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, fake)
}

fn extractor(addr: SocketAddr) -> OpenAiExtractor {
    let settings = Settings::load(
        LoadOptions::isolated(Environment::Test)
            .set("processor.extractor", "openai")
            .set("processor.openai.url", format!("http://{addr}/v1"))
            .set("processor.openai.model", "local-model")
            .set("processor.openai.api_key", "sk-test")
            .set("processor.openai.timeout", "500ms"),
    )
    .unwrap();
    OpenAiExtractor::new(&settings.processor.openai, &settings.prices)
}

#[tokio::test]
async fn a_good_answer_becomes_validated_fields_and_the_request_is_well_formed() {
    let (addr, fake) = serve("ok").await;
    let e = extractor(addr);
    assert_eq!(e.id().to_string(), "openai@local-model+prompt1");
    let f = e.extract("Invoice number: INV-7781 …").await.unwrap();
    assert_eq!(f.fields.invoice_number.as_deref(), Some("INV-7781"));
    assert_eq!(f.fields.total.as_deref(), Some("1482.00 GBP"));
    assert!(f.fields.ibans.contains("GB82WEST12345698765432"));
    assert!(
        f.fields
            .emails
            .contains("accounts@example-logistics.example")
    );
    let seen = fake.seen.lock().await;
    let (auth, body) = &seen[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(body["model"], "local-model");
    assert_eq!(body["messages"][1]["content"], "Invoice number: INV-7781 …");
    assert_eq!(body["response_format"]["type"], "json_object");

    let (addr, _) = serve("fenced").await;
    let f = extractor(addr).extract("x").await.unwrap();
    assert_eq!(f.fields.invoice_number.as_deref(), Some("X-1"));
}

#[tokio::test]
async fn errors_and_unusable_answers_are_upstream_errors_that_say_what_happened() {
    let (addr, _) = serve("error").await;
    let err = extractor(addr).extract("x").await.unwrap_err();
    assert!(matches!(err, EngineError::Upstream { .. }));
    assert!(err.to_string().contains("429"), "{err}");
    assert!(err.to_string().contains("rate limited"), "{err}");

    let (addr, _) = serve("prose").await;
    let err = extractor(addr).extract("x").await.unwrap_err();
    assert!(err.to_string().contains("not the asked JSON"), "{err}");

    // Nothing listening at all.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = extractor(closed).extract("x").await.unwrap_err();
    assert!(err.to_string().contains("request failed"), "{err}");
}

#[tokio::test]
async fn a_server_slower_than_the_timeout_is_a_timeout_error() {
    let (addr, _) = serve("slow").await;
    let started = std::time::Instant::now();
    let err = extractor(addr).extract("x").await.unwrap_err();
    assert!(matches!(err, EngineError::Timeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the call gave up at its timeout"
    );
}
